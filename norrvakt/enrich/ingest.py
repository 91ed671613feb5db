"""Enrichment at ingest: what is stable about an event, added to it before it is journaled.

    4625 LogonType=3 SubStatus=0xC000006A, source.ip=83.255.1.1 (tenant lulea)
        → fields winlog.logon.type_name=Network, event.reason=Bad password (the user name is correct),
          source.geo.country_iso_code=SE, source.as.number=1257,
          source.as.organization.name=Tele2 Sverige AB
    source.ip=10.20.201.7 (tenant lulea, enrich.networks.lulea."VPN-pool" = ["10.20.200.0/22"])
        → source.network.name=VPN-pool

Added to ``Event.fields`` under ECS names (searchable like any field: ``source.as.number:1257``,
``winlog.logon.type_name:RemoteInteractive``); the event's own fields and ECS columns are never
changed, and a name the event already carries (a Winlogbeat document with its own
``source.geo.*``) keeps its value. Stable means: the Windows code tables, the country and AS of
the installed database version, the tenant's named ranges as configured when the event came
in — so the sealed journal says what the analyst saw. What changes (assets, directory accounts)
is looked up when the alert is shown (norrvakt.enrich.assets, norrvakt.enrich.directory).

Runs wherever records are parsed (the node and its parse workers, the cluster's ingest
nodes, ``norrvakt import``) through :func:`enrich_event`, with the configuration the process
was given by :func:`use` (the setting ``enrich``; a parse worker gets it on its command line).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from norrvakt.enrich.ip import lookup
from norrvakt.enrich.networks import TenantNetworks
from norrvakt.enrich.windows_codes import decode_windows
from norrvakt.event import KIND_PIPELINE_ERROR, Event

if TYPE_CHECKING:
    from norrvakt.config import Settings

# (ECS column of the address, the prefix of the fields added for it)
_ADDRESSES = (("source.ip", "source"), ("destination.ip", "destination"))
_NAMES = {
    prefix: (
        f"{prefix}.geo.country_iso_code",
        f"{prefix}.as.number",
        f"{prefix}.as.organization.name",
        f"{prefix}.network.name",
    )
    for _, prefix in _ADDRESSES
}


@dataclass(frozen=True)
class EnrichConfig:
    """What ingest adds to every event (the setting ``enrich``, docs/enrichment.md).

    ``windows_codes``: logon types, 4625 status/sub-status, Kerberos result codes and UAC flags
    in words. ``ip``: country and AS of public source/destination addresses (offline
    databases of installed packages). ``networks``: tenant → name → CIDR list, naming the
    tenant's own ranges (``*`` for every tenant). ``enabled = false`` turns all of it off.
    """

    enabled: bool = True
    windows_codes: bool = True
    ip: bool = True
    networks: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def build(self) -> Enricher:
        return Enricher(self, TenantNetworks.from_setting(self.networks))

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> EnrichConfig:
        doc = json.loads(text) if text else {}
        return cls(**doc)

    @classmethod
    def from_settings(cls, settings: Settings) -> EnrichConfig:
        en = settings.enrich
        return cls(enabled=en.enabled, windows_codes=en.windows_codes, ip=en.ip, networks=en.networks)


class Enricher:
    """Adds the stable enrichment of :class:`EnrichConfig` to events, in place."""

    def __init__(self, config: EnrichConfig, networks: TenantNetworks) -> None:
        self.config = config
        self.networks = networks
        self.windows = config.enabled and config.windows_codes
        self.ip = config.enabled and config.ip
        self.named = config.enabled and bool(networks.ranges)

    def enrich(self, event: Event) -> Event:
        ecs = event.ecs
        if not (self.windows or self.ip or self.named) or ecs.get("event.kind") == KIND_PIPELINE_ERROR:
            return event
        fields = event.fields
        added: dict[str, str] = {}
        if self.windows and ecs.get("event.module") == "windows":
            decode_windows(fields, added)
        if self.ip or self.named:
            for column, prefix in _ADDRESSES:
                ip = ecs.get(column)
                if ip:
                    self._address(event.tenant, ip, _NAMES[prefix], added)
        for key, value in added.items():
            fields.setdefault(key, value)
        return event

    def _address(self, tenant: str, ip: str, names: tuple[str, str, str, str], out: dict[str, str]) -> None:
        if self.named:
            name = self.networks.name(tenant, ip)
            if name is not None:
                out[names[3]] = name
        if self.ip:
            info = lookup(ip)
            if info is not None:
                if info.country:
                    out[names[0]] = info.country
                if info.asn:
                    out[names[1]] = str(info.asn)
                if info.organization:
                    out[names[2]] = info.organization


_active: Enricher = EnrichConfig().build()


def use(config: EnrichConfig) -> Enricher:
    """Enrich this process's events as ``config`` says from now on."""
    global _active
    _active = config.build()
    return _active


def active() -> Enricher:
    return _active


def enrich_event(event: Event) -> Event:
    """``event`` with the enrichment this process was configured for (in place)."""
    return _active.enrich(event)
