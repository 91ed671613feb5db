"""Routing: which channels hear of an alert, by tenant and level. Every matching route
applies, e.g. critical alerts of Luleå → SOC on-call and Luleå's IT security officer::

    [[alerts.routes]]
    min_level = "high"
    channels = ["soc-oncall"]

    [[alerts.routes]]
    tenants = ["lulea"]
    min_level = "critical"
    channels = ["lulea-itsec"]
"""

from __future__ import annotations

from collections.abc import Sequence

from norrvakt.alerts.model import level_rank
from norrvakt.config import RouteSettings


class Router:
    def __init__(self, routes: Sequence[RouteSettings]) -> None:
        self.routes = list(routes)

    def channels_for(self, tenant: str, level: str) -> list[str]:
        """Channel names in the order routes name them, each once."""
        rank = level_rank(level)
        out: dict[str, None] = {}
        for route in self.routes:
            if route.tenants and tenant not in route.tenants:
                continue
            if rank < level_rank(route.min_level):
                continue
            out.update(dict.fromkeys(route.channels))
        return list(out)
