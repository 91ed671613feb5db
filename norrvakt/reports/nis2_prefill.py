"""A NIS2 report draft prefilled from its case: what Norrvakt knows when the draft is made.

From the case: title, severity, the NIS2 times (detected, aware), whether it is still open.
From its alerts: when the incident began (the earliest first_seen), the ATT&CK tactics and
techniques of the rules (the type of threat; whether an attack is suspected; the CERT-SE
category), the hosts and accounts involved. From the evidence events: the services (datasets and
sources) they came from, and the indicators — external addresses, domains, URLs, file hashes
and executables — with when each was first and last seen. Measures start from the case's
comments and status decisions, for the editor to rewrite; what Norrvakt cannot know (the
organisation number, the contact, a cross-border impact) is left empty or ``unknown``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from norrvakt.reports.nis2_fields import fields_of, iso

# Entity and event fields whose values are indicators of compromise, and their indicator type.
INDICATOR_FIELDS = {
    "source.ip": "ip",
    "destination.ip": "ip",
    "destination.domain": "domain",
    "url.domain": "domain",
    "url.full": "url",
    "file.hash.md5": "md5",
    "file.hash.sha1": "sha1",
    "file.hash.sha256": "sha256",
    "process.executable": "file",
}
# ATT&CK tactics (Sigma tag names) → CERT-SE category; anything else under attack.* is "angrepp".
TACTIC_CATEGORY = {
    "exfiltration": "informationsforlust",
    "collection": "informationsforlust",
    "impact": "hindrad_tillgang",
}
TACTICS = (
    "reconnaissance",
    "resource_development",
    "initial_access",
    "execution",
    "persistence",
    "privilege_escalation",
    "defense_evasion",
    "credential_access",
    "discovery",
    "lateral_movement",
    "collection",
    "command_and_control",
    "exfiltration",
    "impact",
)
SECTOR = "Offentlig förvaltning – kommun (cybersäkerhetslagen; NIS2 bilaga I.10)"


def prefill(
    kind: str,
    case: dict[str, Any],
    events: Sequence[dict[str, Any]],
    *,
    municipality: str,
    references: Sequence[str] = (),
) -> dict[str, Any]:
    """The draft's fields (times in µs). ``case`` is the case's detail (``CaseService.detail``),
    ``events`` its alerts' evidence events (``to_dict`` form)."""
    alerts = case.get("alerts", [])
    nis2 = case.get("nis2", {})
    tags = sorted({t for a in alerts for t in a["rule"]["tags"]})
    tactics = [t for t in TACTICS if f"attack.{t}" in tags]
    techniques = sorted(t.removeprefix("attack.").upper() for t in tags if t.startswith("attack.t"))
    hosts = _values(alerts, events, "host.name")
    users = _values(alerts, events, "user.name")
    first = min((a["first_seen"] for a in alerts), default=None)
    last = max((a["last_seen"] for a in alerts), default=None)
    indicators = _indicators(alerts, events)
    closed = case.get("status") in ("resolved", "false_positive", "merged")
    rules = sorted({a["rule"]["title"] for a in alerts})
    count = sum(int(a["count"]) for a in alerts)
    known = (
        f"Norrvakt ärende #{case['id']}: {case['title']}. {len(alerts)} larm ({count} träffar) från "
        f"reglerna {', '.join(rules) or '–'}, {iso(first) or '–'} – {iso(last) or '–'}."
        + (f" Berörda system: {', '.join(hosts[:10])}." if hosts else "")
        + (f" Berörda konton: {', '.join(users[:10])}." if users else "")
    )
    threat = (
        "MITRE ATT&CK: "
        + (", ".join(tactics) or "–")
        + (f" ({', '.join(techniques)})" if techniques else "")
        + f". Regler: {', '.join(rules) or '–'}."
    )
    categories = sorted({TACTIC_CATEGORY.get(t, "angrepp") for t in tactics})
    values: dict[str, Any] = {
        "organisation": municipality,
        "organisation_number": None,
        "sector": SECTOR,
        "municipality": f"{municipality} ({case['tenant']})",
        "contact_name": case.get("assignee"),
        "contact_email": None,
        "contact_phone": None,
        "csirt_reference": references[-1] if references else None,
        "case_reference": f"Norrvakt #{case['id']}",
        "title": case["title"],
        "occurred_at": first,
        "detected_at": nis2.get("detected_at") or case["created_at"],
        "aware_at": nis2.get("aware_at") or nis2.get("detected_at") or case["created_at"],
        "ongoing": "ended" if closed else "ongoing",
        "suspected_malicious": "yes" if tactics else "unknown",
        "cross_border": "unknown",
        "cross_border_description": None,
        "categories": categories,
        "description": known,
        "affected_services": _services(events),
        "affected_systems": hosts,
        "updates": None,
        "severity": case.get("severity") or None,
        "impact": f"{len(hosts)} system och {len(users)} konton berörda enligt larmen; "
        f"bedömning av driftstörning och skada görs av verksamheten.",
        "affected_users": str(len(users)) if users else None,
        "significance_basis": None,
        "indicators": indicators,
        "detailed_description": known,
        "threat_type": threat,
        "measures": _measures(case),
        "ended_at": case.get("resolved_at") if closed else None,
    }
    return {f.name: values.get(f.name) for f in fields_of(kind)}


def _values(alerts: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]], name: str) -> list[str]:
    found = [a["entities"].get(name) for a in alerts] + [_field(e, name) for e in events]
    return sorted({v for v in found if v})


def _field(event: dict[str, Any], name: str) -> str | None:
    value = (event.get("ecs") or {}).get(name) or (event.get("fields") or {}).get(name)
    return str(value) if value else None


def _services(events: Sequence[dict[str, Any]]) -> list[str]:
    found = {_field(e, "event.dataset") or e.get("source") for e in events if not e.get("missing")}
    return sorted(str(s) for s in found if s)


def _indicators(alerts: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One indicator per (type, value), with first and last seen. Internal addresses are kept
    (the CSIRT may ask which host was reached) but noted as internal."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}

    def add(name: str, value: str | None, first: int | None, last: int | None) -> None:
        if not value or name not in INDICATOR_FIELDS:
            return
        kind, note = INDICATOR_FIELDS[name], None
        if kind == "ip":
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                return  # a host name in an address field is no indicator of its own
            kind = f"ipv{address.version}"
            note = None if address.is_global else "intern adress"
        entry = seen.setdefault((kind, value), {"type": kind, "value": value})
        if note:
            entry["note"] = note
        for key, at, better in (("first_seen", first, min), ("last_seen", last, max)):
            if at is not None:
                entry[key] = better(entry.get(key, at), at)

    for a in alerts:
        for name, value in a["entities"].items():
            add(name, value, a["first_seen"], a["last_seen"])
    for e in events:
        if e.get("missing"):
            continue
        for name in INDICATOR_FIELDS:
            add(name, _field(e, name), e.get("ts"), e.get("ts"))
    return sorted(seen.values(), key=lambda i: (i["type"], i["value"]))


def _measures(case: dict[str, Any]) -> str | None:
    lines = [f"{iso(c['at'])} {c['author']}: {c['text']}" for c in case.get("comments", [])]
    return "\n".join(lines) or None
