"""The follow-up report of one round: what was checked, by whom, what was found, what is open.

Per tenant and system (a plan) and period (the round), as HTML and PDF. It states whether
the round is signed off and whether its digest still matches the journaled sign-off, so the
report itself says if the record behind it was altered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from norrvakt.event import now_us
from norrvakt.followup.sampling import REASONS
from norrvakt.followup.service import DATASETS, FOLLOWUP_RULE, FollowupService
from norrvakt.reports.subject_access import TEMPLATES

REASON_LABELS = {
    "random": "Slumpmässigt urval",
    "protected_not_assigned": "Skyddad identitet, ej tilldelad akten",
    "protected_search": "Sökning på person med skyddad identitet",
    "no_case_relation": "Saknar ärende-/vårdrelation",
    "after_hours": "Utanför arbetstid",
    "volume_outlier": "Ovanligt många åtkomster (mot egen baslinje)",
    "same_surname": "Samma efternamn som personen",
    "same_address": "Samma adress som personen",
}
DECISION_LABELS = {
    "justified": "Befogad",
    "not_justified": "Ej befogad",
    "needs_investigation": "Utreds",
    None: "Ej bedömd",
}


def _local(us: int | None, zone: str) -> str:
    if not us:
        return "–"
    return dt.datetime.fromtimestamp(us / 1_000_000, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def report_data(
    service: FollowupService,
    round_id: int,
    scope: Sequence[str],
    case_status: dict[int, str],
    produced_by: str,
) -> dict[str, Any]:
    """Everything the template shows. ``case_status`` is case id → current status."""
    detail = service.round_detail(round_id, scope)
    zone = service.zone
    verification = service.verify(round_id, scope) if detail["status"] == "signed_off" else None
    items = detail["items"]
    drawn = {r: sum(1 for i in items if r in i["reasons"]) for r in REASONS}
    findings = [i for i in items if i["decision"] in ("not_justified", "needs_investigation")]
    cases = sorted({int(i["case_id"]) for i in items if i["case_id"]})
    return {
        "round": detail,
        "plan": detail["plan"],
        "system": DATASETS.get(detail["plan"]["dataset"], detail["plan"]["dataset"]),
        "period_from": _local(detail["period_start"], zone)[:10],
        "period_to": _local(detail["period_end"] - 1, zone)[:10],
        "reasons": [
            {"label": REASON_LABELS[r], "in_period": detail["reason_totals"].get(r, 0), "drawn": drawn[r]}
            for r in REASONS
        ],
        "items": [
            {
                **i,
                "time": _local(i["event_ts"], zone),
                "decision_label": DECISION_LABELS.get(i["decision"], "?"),
                "reason_labels": [REASON_LABELS.get(r, r) for r in i["reasons"]],
                "case_status": case_status.get(int(i["case_id"])) if i["case_id"] else None,
            }
            for i in items
        ],
        "findings": findings,
        "cases": [{"id": c, "status": case_status.get(c, "?")} for c in cases],
        "open_cases": [c for c in cases if case_status.get(c) in ("new", "acknowledged", "investigating")],
        "signed_off_at": _local(detail.get("signed_off_at"), zone),
        "verification": verification,
        "rule": FOLLOWUP_RULE,
        "produced_by": produced_by,
        "produced_at": _local(now_us(), zone),
    }


def render_html(data: dict[str, Any], tenant_name: str) -> str:
    return TEMPLATES.get_template("followup_report.html").render(tenant_name=tenant_name, **data)


def render_pdf(data: dict[str, Any], tenant_name: str) -> bytes:
    from weasyprint import HTML

    return bytes(HTML(string=render_html(data, tenant_name)).write_pdf())
