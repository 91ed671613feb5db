"""Which tenant a record belongs to: decided by where it arrived, never by what it says.

A listener has a default tenant and a table of sender networks; the most specific network
that contains the sender's address wins. A sender that matches nothing, on a listener without
a default, is not dropped: its records go to the system tenant as pipeline errors so the SOC
sees an unmapped sender.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class TenantResolver:
    default: str | None
    networks: dict[str, str] = field(default_factory=dict)
    _parsed: list[tuple[IPNetwork, str]] = field(init=False, default_factory=list)
    _cache: dict[str, str | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        parsed = [(ipaddress.ip_network(net, strict=False), tenant) for net, tenant in self.networks.items()]
        # Most specific first, so 10.1.2.0/24 beats 10.1.0.0/16.
        self._parsed = sorted(parsed, key=lambda p: p[0].prefixlen, reverse=True)

    def resolve(self, host: str) -> str | None:
        """Tenant for a sender address, or None when nothing maps it."""
        if host in self._cache:
            return self._cache[host]
        tenant = self.default
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            addr = None
        if addr is not None:
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            for net, t in self._parsed:
                if addr.version == net.version and addr in net:
                    tenant = t
                    break
        if len(self._cache) < 100_000:
            self._cache[host] = tenant
        return tenant
