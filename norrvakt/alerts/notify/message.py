"""What a notification says, in each channel's form: a JSON document (webhook), a subject and
text (e-mail) and a CEF record (syslog)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from norrvakt import __version__


@dataclass(frozen=True)
class Notice:
    """One thing to tell: a new alert, an escalated case, or a digest of rate-limited notices.

    ``suppressed`` = notices of the channel held back by its rate limit since its last message."""

    kind: str  # alert.new | case.escalated | digest
    tenant: str
    level: str
    title: str
    at: int  # microseconds
    alert: dict[str, Any] | None = None
    case: dict[str, Any] | None = None
    url: str = ""
    suppressed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def alert_id(self) -> int | None:
        return int(self.alert["id"]) if self.alert else None

    @property
    def case_id(self) -> int | None:
        if self.case:
            return int(self.case["id"])
        if self.alert and self.alert.get("case_id") is not None:
            return int(self.alert["case_id"])
        return None


def as_json(notice: Notice) -> dict[str, Any]:
    return {
        "source": "norrvakt",
        "version": __version__,
        "kind": notice.kind,
        "tenant": notice.tenant,
        "level": notice.level,
        "title": notice.title,
        "at": notice.at,
        "url": notice.url,
        "alert": notice.alert,
        "case": notice.case,
        "suppressed": notice.suppressed,
        **notice.extra,
    }


def _when(us: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(us / 1e6))


def subject(notice: Notice) -> str:
    what = {"alert.new": "", "case.escalated": "ESCALATED ", "digest": "DIGEST "}.get(notice.kind, "")
    count = f" ({notice.alert['count']} events)" if notice.alert and notice.alert.get("count", 1) > 1 else ""
    return f"[Norrvakt] {what}{notice.level.upper()} {notice.tenant}: {notice.title}{count}"[:250]


def text(notice: Notice) -> str:
    lines = [
        notice.title,
        "",
        f"Tenant: {notice.tenant}",
        f"Level:  {notice.level}",
        f"When:   {_when(notice.at)}",
    ]
    if notice.alert:
        a = notice.alert
        rule = a.get("rule", {})
        lines += [
            f"Alert:  {a['id']} — rule {rule.get('id', '')} ({', '.join(rule.get('tags', []))})",
            f"Events: {a.get('count', 1)} between {_when(a['first_seen'])} and {_when(a['last_seen'])}",
        ]
        lines += [f"  {k}: {v}" for k, v in sorted(a.get("entities", {}).items())]
    if notice.case:
        c = notice.case
        lines.append(f"Case:   {c['id']} — {c.get('title', '')} [{c.get('status', '')}]")
    if notice.suppressed:
        lines += [
            "",
            f"{notice.suppressed} further notification(s) were held back by this channel's rate limit.",
        ]
    if notice.url:
        lines += ["", notice.url]
    return "\n".join(lines) + "\n"


CEF_SEVERITY = {"informational": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _cef_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("=", "\\=").replace("\r", "").replace("\n", "\\n")


def cef(notice: Notice) -> str:
    """ArcSight CEF: ``CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension``."""
    a = notice.alert or {}
    ents: dict[str, str] = a.get("entities", {})
    ext: list[tuple[str, object]] = [
        ("rt", notice.at // 1000),
        ("cat", notice.kind),
        ("cs1Label", "tenant"),
        ("cs1", notice.tenant),
    ]
    if a:
        ext += [
            ("externalId", a["id"]),
            ("cnt", a.get("count", 1)),
            ("cs2Label", "attack"),
            ("cs2", ",".join(a.get("rule", {}).get("tags", []))),
        ]
    if notice.case_id is not None:
        ext += [("cs3Label", "case"), ("cs3", notice.case_id)]
    for key, name in (
        ("src", "source.ip"),
        ("dst", "destination.ip"),
        ("suser", "user.name"),
        ("dhost", "host.name"),
    ):
        if ents.get(name):
            ext.append((key, ents[name]))
    if notice.suppressed:
        ext += [("cn1Label", "suppressed"), ("cn1", notice.suppressed)]
    if notice.url:
        ext.append(("request", notice.url))
    ext.append(("msg", notice.title))
    signature = str(a.get("rule", {}).get("id", notice.kind))
    severity = str(CEF_SEVERITY.get(notice.level, 5))
    parts = [
        "CEF:0",
        "Norrvakt",
        "Norrvakt",
        __version__,
        _cef_header(signature),
        _cef_header(notice.title),
        severity,
    ]
    header = "|".join(parts)
    return header + "|" + " ".join(f"{k}={_cef_value(v)}" for k, v in ext)
