"""The case report: one document of a case — its timeline, alerts, decisions, NIS2 times and the
evidence events, each with its inclusion proof against a signed checkpoint — as HTML or PDF.

Two variants:

- ``municipality`` (default): everything, the SOC's comments and attached searches included —
  for the municipality's own records and its board.
- ``police``: for a police report (polisanmälan) or a request from the police. It leaves out the
  comments and attached searches (internal deliberations: guesses, names of colleagues, other
  persons' data found while searching — not evidence) and the history lines that carry their
  text; it keeps every fact the evidence rests on: the events as journaled, their proofs and
  the public keys that verify them.

The PDF carries each proof as an embedded file (``proof-<tenant>-<seq>.json``, the format of
``norrvakt prove``) and the signing keys as ``signing-key-<id>.pem``, so an investigator checks
them offline with ``norrvakt verify-proof`` (or any RFC 9162 verifier); the HTML has the same
proofs in its appendix.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from norrvakt.event import now_us
from norrvakt.reports.subject_access import TEMPLATES

VARIANTS = ("municipality", "police")
MAX_EVIDENCE = 200  # evidence events (with proofs) in one report; the report says how many more
INTERNAL_ACTIONS = ("comment", "attach")  # history lines that carry internal text
DECISIONS = ("status", "merged", "merge", "assign", "severity", "nis2", "nis2-report")
ZONE = "Europe/Stockholm"
OUTCOMES = {"met": "i tid", "missed": "för sent", "overdue": "försenad", "pending": "ej skickad"}
REPORT_NAMES = {
    "early_warning": "Tidig varning (24 h)",
    "notification": "Incidentanmälan (72 h)",
    "final_report": "Slutrapport (1 månad)",
}


class CaseReportError(ValueError):
    pass


def local(us: int | None) -> str:
    if not us:
        return "–"
    return dt.datetime.fromtimestamp(us / 1_000_000, ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M:%S")


def report_data(
    detail: dict[str, Any],
    history: list[dict[str, Any]],
    evidence: list[dict[str, Any]],
    keys: dict[str, str],
    *,
    variant: str,
    produced_by: str,
    evidence_total: int,
) -> dict[str, Any]:
    """What the template shows. ``evidence``: per event ``alert_id``, ``seq``, ``event`` (the
    journaled event, ``to_dict`` form) and ``proof`` (an inclusion proof) or ``proof_error``.
    ``keys``: signing key id → public key (PEM)."""
    if variant not in VARIANTS:
        raise CaseReportError(f"variant {variant!r}: one of {', '.join(VARIANTS)}")
    police = variant == "police"
    lines = [h for h in history if not (police and h["action"] in INTERNAL_ACTIONS)]
    timeline = sorted(
        [
            {"at": a["first_seen"], "what": f"{a['rule']['title']} ({a['level']}) ×{a['count']}"}
            for a in detail["alerts"]
        ]
        + [{"at": h["at"], "what": _change_text(h)} for h in lines]
        + [{"at": e["event"].get("ts"), "what": f"#{e['seq']} {_short(e['event'])}"} for e in evidence],
        key=lambda x: x["at"] or 0,
    )
    used_keys = sorted({str(e["proof"]["checkpoint"].get("key")) for e in evidence if e.get("proof")})
    return {
        "case": detail,
        "variant": variant,
        "police": police,
        "timeline": [{**t, "time": local(t["at"])} for t in timeline],
        "decisions": [
            {**h, "time": local(h["at"]), "text": _change_text(h)} for h in lines if h["action"] in DECISIONS
        ],
        "alerts": [
            {**a, "first": local(a["first_seen"]), "last": local(a["last_seen"])} for a in detail["alerts"]
        ],
        "comments": [] if police else [{**c, "time": local(c["at"])} for c in detail["comments"]],
        "attachments": [] if police else detail.get("attachments", []),
        "evidence": [
            {
                **e,
                "time": local(e["event"].get("ts")),
                "summary": _short(e["event"]),
                "proof_text": json.dumps(e["proof"], indent=1, ensure_ascii=False) if e.get("proof") else "",
            }
            for e in evidence
        ],
        "evidence_total": evidence_total,
        "keys": {k: keys[k] for k in used_keys if k in keys},
        "nis2": _nis2(detail["nis2"]),
        "produced_by": produced_by,
        "produced_at": local(now_us()),
    }


def _change_text(h: dict[str, Any]) -> str:
    field = f" {h['field']}" if h.get("field") and h["field"] != h["action"] else ""
    change = f": {h['old'] or '–'} → {h['new'] or '–'}" if h.get("old") or h.get("new") else ""
    return f"{h['actor']} {h['action']}{field}{change}"[:500]


def _short(event: dict[str, Any]) -> str:
    if event.get("missing"):
        return "(not in the store or journal any more)"
    return str(event.get("message") or event.get("raw") or "")[:300]


def _nis2(n: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for kind, sent_key in (
        ("early_warning", "early_warning_sent_at"),
        ("notification", "notification_sent_at"),
        ("final_report", "final_report_at"),
    ):
        out.append(
            {
                "kind": REPORT_NAMES[kind],
                "outcome": OUTCOMES.get(str((n.get("status") or {}).get(kind)), "–"),
                "due": local(n.get(f"{kind}_due")),
                "sent": local(n.get(sent_key)),
                "status": str((n.get("status") or {}).get(kind) or "–"),
            }
        )
    return out


def render_html(data: dict[str, Any], tenant_name: str) -> str:
    return TEMPLATES.get_template("case_report.html").render(tenant_name=tenant_name, local=local, **data)


def render_pdf(data: dict[str, Any], tenant_name: str) -> bytes:
    """The PDF, with each proof and signing key as an embedded file."""
    from weasyprint import HTML, Attachment

    files = [
        Attachment(
            string=json.dumps(e["proof"], indent=2, ensure_ascii=False),
            name=f"proof-{e['proof']['tenant']}-{e['proof']['seq']}.json",
            description=f"Inclusion proof of {e['proof']['tenant']} seq {e['proof']['seq']}",
        )
        for e in data["evidence"]
        if e.get("proof")
    ] + [
        Attachment(string=pem, name=f"signing-key-{kid}.pem", description=f"Checkpoint signing key {kid}")
        for kid, pem in data["keys"].items()
    ]
    return bytes(HTML(string=render_html(data, tenant_name)).write_pdf(attachments=files))
