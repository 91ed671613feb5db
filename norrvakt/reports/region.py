"""The region report for the e-committee: each municipality's figures side by side, the
indicators seen in more than one municipality, and the region's trend — the joint
assessment the committee's minutes ask for.

    figures = region_figures(src, list(settings.tenants), period, produced_by="norrvakt")
"""

from __future__ import annotations

from typing import Any

from norrvakt.reports.figures import SEVERITIES, change_pct
from norrvakt.reports.monthly import ReportSources, tenant_figures
from norrvakt.reports.periods import Period
from norrvakt.state import report_figures as state_figures

REGION = "_region"  # the region report's row in report_runs
INDICATOR_KINDS = (
    "source.ip",
    "destination.ip",
    "destination.domain",
    "url.domain",
    "user.name",
    "host.name",
    "file.hash.sha256",
    "file.hash.sha1",
    "file.hash.md5",
)


def region_figures(
    src: ReportSources, tenants: list[str], period: Period, *, produced_by: str, indicator_limit: int = 25
) -> dict[str, Any]:
    """Every tenant's figures (one integrity verification for all), side by side."""
    verification = src.verify(list(tenants)) if src.verify is not None else None
    each = [
        tenant_figures(src, t, period, produced_by=produced_by, verification=verification) for t in tenants
    ]
    with src.state.connect() as conn:
        shared = state_figures.shared_indicators(
            conn, tenants, INDICATOR_KINDS, period.start_us, period.end_us, indicator_limit
        )
    names = src.settings.tenants
    for row in shared:
        row["tenant_names"] = [names.get(t, t) for t in row["tenants"]]
    rows = [_row(f) for f in each]
    events = sum(r["events"] for r in rows)
    events_before = sum(r["events_previous"] for r in rows)
    alerts = sum(r["alerts"] for r in rows)
    alerts_before = sum(f["alerts"]["previous_total"] for f in each)
    days = [
        {"day": d["day"], "count": sum(f["events"]["daily"][i]["count"] for f in each)}
        for i, d in enumerate(each[0]["events"]["daily"] if each else [])
    ]
    return {
        "kind": "region",
        "period": each[0]["period"] if each else None,
        "previous": each[0]["previous"] if each else None,
        "rows": rows,
        "tenants": each,
        "indicators": shared,
        "trend": {
            "events": events,
            "events_previous": events_before,
            "events_change_pct": change_pct(events, events_before),
            "alerts": alerts,
            "alerts_previous": alerts_before,
            "alerts_change_pct": change_pct(alerts, alerts_before),
            "cases": sum(r["cases"] for r in rows),
            "significant": sum(r["significant"] for r in rows),
            "daily": days,
            "by_severity": {lv: sum(f["alerts"]["by_severity"][lv] for f in each) for lv in SEVERITIES},
        },
        "quiet": all(f["quiet"] for f in each),
        "produced_by": produced_by,
        "produced_at": each[0]["produced_at"] if each else src.clock(),
    }


def _row(f: dict[str, Any]) -> dict[str, Any]:
    """One municipality's line in the side-by-side table."""
    sla = {r["severity"]: r for r in f["sla"]}
    worst = next((sla[lv] for lv in SEVERITIES if lv in sla), None)
    missed = sum(1 for c in f["nis2"] for r in c["reports"] if r["verdict"] in ("late", "overdue"))
    top = f["top_rules"][0] if f["top_rules"] else None
    return {
        "tenant": f["tenant"],
        "tenant_name": f["tenant_name"],
        "events": f["events"]["total"],
        "events_previous": f["events"]["previous_total"],
        "events_change_pct": f["events"]["change_pct"],
        "silences": len(f["silences"]),
        "alerts": f["alerts"]["total"],
        "alerts_high": f["alerts"]["by_severity"]["critical"] + f["alerts"]["by_severity"]["high"],
        "cases": f["cases"]["total"],
        "open_at_end": f["cases"]["open_at_end"],
        "sla_severity": worst["severity"] if worst else None,
        "mtta_s": worst["mtta_s"] if worst else None,
        "mtta_met": worst["mtta_met"] if worst else None,
        "mttr_s": worst["mttr_s"] if worst else None,
        "mttr_met": worst["mttr_met"] if worst else None,
        "significant": len(f["nis2"]),
        "nis2_missed": missed,
        "followup_signed_off": f["followup"]["signed_off"],
        "followup_drawn": f["followup"]["drawn"],
        "integrity_ok": f["integrity"]["ok"],
        "top_rule": top["title"] if top else None,
        "top_rule_fp": top["fp_ratio"] if top else None,
    }
