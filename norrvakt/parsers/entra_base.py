"""What the Microsoft 365 / Entra ID parsers share: the time, the address, the outcome, the
geo location, and the error a record gets when one of them is missing or wrong.

    "createdDateTime": "2026-11-26T21:03:12Z"                     Graph (ISO 8601, Z)
    "CreationTime": "2026-11-26T21:03:12"                         Management API (UTC, no zone)
    "time": "2026-11-26T21:03:12.1234567Z"                        Azure Monitor (7 digits)
    "ClientIP": "[2001:db8::5]:50123"  /  "81.2.69.160:443"       Exchange writes a port

Every parser here keeps the record's own fields (flattened, by their own names) and *adds*
Sigma-style aliases and ECS-named fields with :func:`put`, which never overwrites a field the
record already had: an original value always wins over a derived one.
"""

from __future__ import annotations

from typing import Any

import orjson

from norrvakt.event import RawRecord
from norrvakt.parsers.base import ParseError, abbrev, is_ip, scalar_str
from norrvakt.parsers.timestamps import parse_iso

# ECS vocabulary for event.outcome from the many spellings Microsoft uses per workload
# (Management API ResultStatus, directoryAudit result, Intune activityResult, Activity log).
_OUTCOMES = {
    "success": "success",
    "succeeded": "success",
    "true": "success",
    "partiallysucceeded": "success",
    "failure": "failure",
    "failed": "failure",
    "false": "failure",
    "timeout": "failure",
}


def record_time(record: RawRecord, doc: dict[str, Any], keys: tuple[str, ...], what: str) -> int:
    """The record's time in µs from the first of ``keys`` present, or a ParseError naming the
    field: Microsoft always writes one, so a record without is not one we understand."""
    for key in keys:
        value = doc.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            ts = parse_iso(value, "UTC")  # CreationTime has no zone: the API documents UTC
            if ts is not None:
                return ts
        raise ParseError(
            "m365.invalid_time",
            "m365 record with an unreadable time",
            f"{what} record field {key!r} is not an ISO 8601 time: got {abbrev(scalar_str(value))} "
            f"(feed {feed_name(record)})",
        )
    raise ParseError(
        "m365.missing_time",
        "m365 record without a time",
        f"{what} record has no time: expected field {' or '.join(repr(k) for k in keys)} "
        f"(feed {feed_name(record)}; keys present: {abbrev(', '.join(list(doc)[:12]), 120)})",
    )


def feed_name(record: RawRecord) -> str:
    hints = record.hints or {}
    return hints.get("m365.feed") or "recognised by shape"


def outcome(value: Any) -> str:
    """success / failure / "" from a result word, case-insensitive."""
    if not isinstance(value, (str, bool)):
        return ""
    return _OUTCOMES.get(scalar_str(value).strip().lower(), "")


def bare_ip(value: Any) -> str:
    """An address without the port some workloads append (``1.2.3.4:443``, ``[::1]:443``);
    "" when it is not an address at all."""
    if not isinstance(value, str) or not value:
        return ""
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        text = text[1:end] if end > 0 else text
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return text if is_ip(text) else ""


def text(value: Any) -> str:
    """A field value as stored: scalars as :func:`scalar_str`, objects and lists as compact
    JSON (how Sentinel shows a dynamic column, which the Sigma rules test with ``contains``)."""
    if isinstance(value, (dict, list)):
        try:
            return orjson.dumps(value).decode("utf-8")
        except TypeError:  # nested beyond orjson's limit; the flattened fields still hold it
            return ""
    return scalar_str(value)


def put(fields: dict[str, str], name: str, value: Any) -> None:
    """Add ``name`` unless the record already has it or the value is absent (None)."""
    if value is None or name in fields:
        return
    fields[name] = text(value)


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def objs(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def geo(fields: dict[str, str], location: Any) -> None:
    """Graph's ``signIn.location`` (city, state, countryOrRegion, geoCoordinates) as ECS
    ``source.geo.*`` fields (ECS names, kept in ``fields``: the store has no geo columns)."""
    loc = obj(location)
    for key, name in (
        ("city", "city_name"),
        ("state", "region_name"),
        ("countryOrRegion", "country_iso_code"),
    ):
        value = loc.get(key)
        if isinstance(value, str) and value:
            put(fields, f"source.geo.{name}", value)
    coords = obj(loc.get("geoCoordinates"))
    lat, lon = coords.get("latitude"), coords.get("longitude")
    if isinstance(lat, (int, float)) and isinstance(lon, (int, float)) and not isinstance(lat, bool):
        put(fields, "source.geo.location.lat", lat)
        put(fields, "source.geo.location.lon", lon)


def user_domain(upn: str) -> str:
    return upn.rpartition("@")[2] if "@" in upn else ""


def verb_type(action: str) -> str:
    """ECS event.type of an admin activity from its verb (``Add member to role`` -> creation)."""
    word = action.strip().split(" ", 1)[0].lower()
    if word in ("add", "create", "new", "register", "invite", "consent", "assign", "restore"):
        return "creation"
    if word in ("delete", "remove", "hard", "unregister", "revoke"):
        return "deletion"
    if word in ("update", "set", "change", "reset", "enable", "disable", "modify", "edit", "patch"):
        return "change"
    return "info"
