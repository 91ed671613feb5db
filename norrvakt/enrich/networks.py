"""A tenant's own networks by name: the municipality's networks, VPN pools, school networks.

    [enrich.networks.lulea]
    "Luleå kommunnät" = ["10.20.0.0/16"]
    "VPN-pool" = ["10.20.200.0/22"]
    "Skolnät" = ["172.20.0.0/14", "2001:db8:20::/48"]

    lulea 10.20.201.7 → source.network.name=VPN-pool     (the narrowest range that holds it)
    lulea 10.20.3.4   → source.network.name=Luleå kommunnät
    boden 10.20.3.4   → nothing (Luleå's ranges name Luleå's addresses only)

Ranges under the tenant ``"*"`` apply to every tenant (the committee's shared networks); a
tenant's own range wins over a shared one of the same width. Names are the operator's words;
they are not translated.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALL_TENANTS = "*"
CACHE_SIZE = 1 << 16


class NetworkSettingError(ValueError):
    """A range in enrich.networks is not a network (names the tenant, the name and the value)."""


@dataclass(frozen=True)
class TenantNetworks:
    """Named ranges per tenant; :meth:`name` answers which range holds an address."""

    # tenant → [(network, name)], narrowest first, the tenant's own before "*" at equal width
    ranges: dict[str, tuple[tuple[IpNetwork, str], ...]] = field(default_factory=dict)
    # (tenant, ip) → name: addresses repeat, and a walk over the ranges costs ~1 µs a range
    _answers: dict[tuple[str, str], str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_setting(cls, setting: dict[str, dict[str, list[str]]]) -> TenantNetworks:
        parsed: dict[str, list[tuple[IpNetwork, str]]] = {}
        for tenant, names in setting.items():
            for name, cidrs in names.items():
                for cidr in cidrs:
                    try:
                        net = ipaddress.ip_network(cidr, strict=False)
                    except ValueError as exc:
                        raise NetworkSettingError(
                            f"enrich.networks.{tenant}.{name!r}: {cidr!r} is not a network ({exc})"
                        ) from exc
                    parsed.setdefault(tenant, []).append((net, name))
        shared = parsed.get(ALL_TENANTS, [])
        ranges: dict[str, tuple[tuple[IpNetwork, str], ...]] = {}
        for tenant, own in parsed.items():
            merged = [(n, name, 0) for n, name in own]
            if tenant != ALL_TENANTS:
                merged += [(n, name, 1) for n, name in shared]
            merged.sort(key=lambda item: (-item[0].prefixlen, item[2]))
            ranges[tenant] = tuple((n, name) for n, name, _ in merged)
        return cls(ranges)

    def name(self, tenant: str, ip: str) -> str | None:
        """The name of the narrowest range of ``tenant`` (or of everyone) holding ``ip``."""
        ranges = self.ranges.get(tenant) or self.ranges.get(ALL_TENANTS)
        if not ranges:
            return None
        key = (tenant, ip)
        answers = self._answers
        if key in answers:
            return answers[key]
        if len(answers) >= CACHE_SIZE:
            answers.clear()  # bounded; refilled from the next events
        answers[key] = found = _lookup(ranges, ip)
        return found


def _lookup(ranges: tuple[tuple[IpNetwork, str], ...], ip: str) -> str | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for net, name in ranges:
        if net.version == addr.version and addr in net:
            return name
    return None
