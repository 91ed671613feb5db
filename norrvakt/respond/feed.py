"""A tenant's blocklist as the threat feed its firewalls poll (``GET /feeds/blocklist/{tenant}``).

- ``text`` (default), ``pfsense``, ``opnsense``: for a pfSense / OPNsense alias of type
  *URL Table (IPs)* — one address or CIDR network per line.
- ``fortigate``: FortiGate *External Block List* (threat feed of IP addresses) — the same.
- ``paloalto``: Palo Alto *External Dynamic List* (IP list) — ``address #comment`` per line
  (PAN-OS takes what follows a space as the entry's comment: the case and the expiry).
- ``json``: ``{"tenant", "generated_at", "entries": [{address, expires_at, case_id, reason}]}``.

Plain-text lists carry nothing but the entries: a header or comment line is what some of these
parsers choke on. Expired and removed entries are not served; an empty list is an empty body.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from norrvakt.state.db import Row

FORMATS = ("text", "pfsense", "opnsense", "fortigate", "paloalto", "json")


def _iso(us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us / 1e6))


def _bare(address: str) -> str:
    # a single host as the bare address: every one of these parsers takes that form
    return address.rsplit("/", 1)[0] if address.endswith(("/32", "/128")) else address


def render(tenant: str, entries: Sequence[Row], fmt: str, now: int) -> tuple[bytes, str]:
    """The feed's body and media type; ValueError for an unknown format."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "json":
        doc: dict[str, Any] = {
            "tenant": tenant,
            "generated_at": _iso(now),
            "entries": [
                {
                    "address": e["address"],
                    "expires_at": _iso(int(e["expires_at"])),
                    "case_id": e["case_id"],
                    "reason": e["reason"],
                }
                for e in entries
            ],
        }
        return orjson.dumps(doc), "application/json"
    seen: set[str] = set()
    lines = []
    for e in entries:
        address = _bare(str(e["address"]))
        if address in seen:
            continue
        seen.add(address)
        if fmt == "paloalto":
            case = f" case {e['case_id']}" if e["case_id"] is not None else ""
            lines.append(f"{address} #norrvakt{case} until {_iso(int(e['expires_at']))}")
        else:
            lines.append(address)
    return ("".join(f"{line}\n" for line in lines)).encode("ascii"), "text/plain; charset=us-ascii"
