"""Country and autonomous system of a public IP address, from databases that PyPI packages ship.

    8.8.8.8       → source.geo.country_iso_code=US  source.as.number=15169
                    source.as.organization.name=Google LLC
    192.36.125.1  → SE, 1653, Vetenskapsradet / SUNET
    10.1.2.3      → nothing (not a public address: see norrvakt.enrich.networks for named ranges)

Nothing is downloaded at run time; the answers are those of the installed package versions
(:func:`database_versions` names them, the status API and docs/enrichment.md show them):

- country: ``iptocc`` (MIT OR Apache-2.0), the country each block is *registered* to by the
  five Regional Internet Registries (their delegation statistics, embedded in the wheel). No
  GeoLite2 data, so no MaxMind licence terms.
- AS number and organisation: ``plevin`` (reader, Apache-2.0) with ``plevin-db-network`` (origin
  AS by RIPE RIS route collectors, names from the RIRs, CAIDA AS-to-organisation and
  PeeringDB; the data carries its sources' terms — see docs/enrichment.md).

Lookups cost ~0.3 µs (country) and ~15 µs warm to 250 µs cold (AS; the file decodes in LZMA
blocks as far as a lookup reaches), so answers are kept per process in a bounded cache: logs
repeat their addresses.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import iptocc
import plevin

CACHE_SIZE = 1 << 16


@dataclass(frozen=True, slots=True)
class IpInfo:
    """What the databases say of one public address (None: they know nothing)."""

    country: str | None
    asn: int | None
    organization: str | None


@lru_cache(maxsize=CACHE_SIZE)
def lookup(ip: str) -> IpInfo | None:
    """Country and AS of ``ip``; None for an address that is not public (private, loopback,
    link-local, reserved, documentation ranges) or not an address at all."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if not addr.is_global:
        return None
    text = str(addr)
    country = iptocc.country_code(text)
    row = _network_row(int(addr), addr.version == 6)
    asn: int | None = None
    org: str | None = None
    if row is not None:
        net = row.get("network") or {}
        asn = net.get("asn") or None
        operator = net.get("operator") or {}
        org = operator.get("company") or net.get("handle") or None
        country = country or net.get("country") or None
    if country is None and asn is None:
        return IpInfo(None, None, None)
    return IpInfo(country, asn, org)


def _network_row(value: int, wide: bool) -> dict[str, Any] | None:
    # The raw row (a dict) instead of plevin.lookup's models: the same data, a fifth of the cost.
    row = plevin.database().file.row(value, wide)
    return row if isinstance(row, dict) else None


def database_versions() -> dict[str, str]:
    """The installed versions of the packages whose data answers (the data is as of these)."""
    out = {}
    for name in ("iptocc", "plevin", "plevin-db-network"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    try:
        out["plevin-db-network built"] = plevin.database().file.built
    except (OSError, ValueError) as exc:  # the file is missing or unreadable: say so, do not hide it
        out["plevin-db-network built"] = f"unreadable: {exc}"
    return out
