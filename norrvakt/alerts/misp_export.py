"""A case's indicators as a MISP event (the MISP core format, draft-dulaunoy-misp-core-format),
to import into a MISP instance or share with a MISP community.

One ``Event`` per case: ``info`` names the case and its rules (not the municipality's host or
user names), ``date`` the day of the first event, ``threat_level_id`` follows the case's
severity, ``analysis`` its status, ``distribution`` is ``cases.misp_distribution``, ``Orgc`` is
``cases.producer_name`` and ``Tag`` the TLP of ``cases.tlp``. Each observable becomes an
``Attribute`` of the MISP type and category for it:

=====================  ===============  =================  =======
observable (field)     type             category           to_ids
=====================  ===============  =================  =======
ip (source.ip)         ip-src           Network activity   yes¹
ip (destination, host) ip-dst           Network activity   yes¹
domain, 2 labels       domain           Network activity   yes
domain, more labels    hostname         Network activity   yes
url                    url              Network activity   yes
md5 / sha1 / sha256    md5/sha1/sha256  Payload delivery   yes
user                   target-user      Targeting data     no
host                   target-machine   Targeting data     no
=====================  ===============  =================  =======

¹ not for private, loopback or link-local addresses: they name the municipality's own network.
An address seen as source and as destination gives two attributes. Uuids are stable (UUIDv5),
so exporting a case again updates the event in MISP instead of adding a second one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from norrvakt.alerts.observables import Observable

NAMESPACE = uuid.UUID("5d1c8f0e-3a2b-4c6d-8e9f-0a1b2c3d1717")
THREAT_LEVEL = {"critical": "1", "high": "1", "medium": "2", "low": "3", "informational": "4"}
ANALYSIS = {"new": "0", "acknowledged": "1", "investigating": "1", "resolved": "2", "false_positive": "2"}
_NETWORK = "Network activity"


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(map(str, parts))))


def attribute_types(o: Observable) -> list[tuple[str, str, bool]]:
    """(MISP type, category, to_ids) for ``o`` — two for an address seen in both directions."""
    if o.kind == "ip":
        to_ids = not o.internal
        out = []
        if "source.ip" in o.fields:
            out.append(("ip-src", _NETWORK, to_ids))
        if o.fields - {"source.ip"} or not out:
            out.append(("ip-dst", _NETWORK, to_ids))
        return out
    if o.kind == "domain":
        return [("domain" if o.value.count(".") == 1 else "hostname", _NETWORK, True)]
    if o.kind == "url":
        return [("url", _NETWORK, True)]
    if o.kind in ("md5", "sha1", "sha256"):
        return [(o.kind, "Payload delivery", True)]
    if o.kind == "user":
        return [("target-user", "Targeting data", False)]
    if o.kind == "host":
        return [("target-machine", "Targeting data", False)]
    raise ValueError(f"no MISP attribute type for a {o.kind}")


def _iso(micros: int | None) -> str | None:
    if not micros:
        return None
    return datetime.fromtimestamp(micros / 1e6, UTC).isoformat(timespec="microseconds")


def case_event(
    case: dict[str, Any],
    observables: Sequence[Observable],
    *,
    producer: str,
    tlp: str,
    distribution: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``{"Event": {...}}`` for the case and its observables."""
    when = now or datetime.now(UTC)
    stamp = str(int(when.timestamp()))
    rules = sorted({r for o in observables for r in o.rules})
    first = min((o.first_seen for o in observables if o.first_seen), default=None)
    day = datetime.fromtimestamp(first / 1e6, UTC) if first else when
    attributes = []
    for o in observables:
        for kind, category, to_ids in attribute_types(o):
            attr: dict[str, Any] = {
                "uuid": _uuid(producer, case["id"], kind, o.value),
                "type": kind,
                "category": category,
                "value": o.value,
                "to_ids": to_ids,
                "distribution": "5",  # the event's distribution
                "timestamp": stamp,
                "comment": f"{max(1, o.events)} event(s); fields {', '.join(sorted(o.fields))}",
                "deleted": False,
                "disable_correlation": False,
            }
            if o.first_seen:
                attr["first_seen"] = _iso(o.first_seen)
                attr["last_seen"] = _iso(max(o.first_seen, o.last_seen or o.first_seen))
            attributes.append(attr)
    return {
        "Event": {
            "uuid": _uuid(producer, "case", case["id"]),
            "info": f"{producer} case {case['id']}: {', '.join(rules) or 'indicators'}"[:1000],
            "date": day.strftime("%Y-%m-%d"),
            "threat_level_id": THREAT_LEVEL.get(str(case.get("severity")), "4"),
            "analysis": ANALYSIS.get(str(case.get("status")), "0"),
            "distribution": str(distribution),
            "sharing_group_id": "0",
            "published": False,
            "timestamp": stamp,
            "publish_timestamp": "0",
            "Orgc": {"name": producer, "uuid": _uuid("org", producer)},
            "Tag": [{"name": f"tlp:{tlp}"}],
            "Attribute": attributes,
        }
    }
