"""Which asset an alert is about, and what its criticality does to the alert's severity.

    entities host.name=TRESERVA-DB01.lulea.kommun.local → asset "treserva-db01" (the name, then
    its first label), or host.ip / destination.ip / destination.domain when an asset is an address

Criticality moves the severity by :data:`SHIFT` levels (low −1, medium 0, high +1, critical +2),
within informational..critical. The asset itself is looked up when the alert is shown (it may
have changed since): see :mod:`norrvakt.enrich.severity`.
"""

from __future__ import annotations

from collections.abc import Mapping

from norrvakt.state.assets import Asset

SHIFT = {"low": -1, "medium": 0, "high": 1, "critical": 2}
_HOST_FIELDS = ("host.name", "host.ip", "destination.ip", "destination.domain")


def candidates(entities: Mapping[str, str]) -> list[str]:
    """The names an asset of the alert may be listed under, most specific first."""
    out: list[str] = []
    for name in _HOST_FIELDS:
        value = (entities.get(name) or "").strip().lower()
        if not value:
            continue
        out.append(value)
        if name.endswith(("name", "domain")) and "." in value and not value[0].isdigit():
            out.append(value.split(".", 1)[0])  # dc01.lulea.kommun.local is listed as dc01
    return out


def asset_of(assets: Mapping[str, Asset], entities: Mapping[str, str]) -> Asset | None:
    for name in candidates(entities):
        found = assets.get(name)
        if found is not None:
            return found
    return None
