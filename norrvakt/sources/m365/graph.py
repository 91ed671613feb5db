"""Microsoft Graph audit and security feeds, by time window, paged by ``@odata.nextLink``.

    GET {graph}/beta/auditLogs/signIns?$filter=createdDateTime ge 2026-12-01T08:00:00Z and
        createdDateTime lt 2026-12-01T09:00:00Z and signInEventTypes/any(t: t eq 'nonInteractiveUser')
    → {"value": [{"id": "…", "createdDateTime": "…", "userPrincipalName": "…", …}],
       "@odata.nextLink": "https://graph.microsoft.com/beta/auditLogs/signIns?$skiptoken=…"}

| feed | path | time field |
|---|---|---|
| ``graph.signIns`` | ``beta/auditLogs/signIns``, once per ``signInEventTypes`` value | ``createdDateTime`` |
| ``graph.directoryAudits`` | ``v1.0/auditLogs/directoryAudits`` | ``activityDateTime`` |
| ``graph.alerts_v2`` | ``v1.0/security/alerts_v2`` | ``createdDateTime`` |
| ``graph.intune.auditEvents`` | ``v1.0/deviceManagement/auditEvents`` | ``activityDateTime`` |

Sign-ins come from beta: v1.0 ``signIns`` returns interactive sign-ins only, and the filter on
``signInEventTypes`` (non-interactive, service principal, managed identity) exists on beta.
An alert is pulled once, when created; later status changes of it are not pulled again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from norrvakt.sources.m365.feeds import Chunk, Item, iso, one_record, parse_time
from norrvakt.sources.m365.fetch import ApiClient

DEFAULT_GRAPH_URL = "https://graph.microsoft.com"
SIGNIN_TYPES = ("interactiveUser", "nonInteractiveUser")

_PATHS = {
    "graph.signIns": ("beta/auditLogs/signIns", "createdDateTime"),
    "graph.directoryAudits": ("v1.0/auditLogs/directoryAudits", "activityDateTime"),
    "graph.alerts_v2": ("v1.0/security/alerts_v2", "createdDateTime"),
    "graph.intune.auditEvents": ("v1.0/deviceManagement/auditEvents", "activityDateTime"),
}


class GraphFeed:
    def __init__(
        self, api: ApiClient, graph_url: str, feed: str, signin_types: tuple[str, ...] = SIGNIN_TYPES
    ) -> None:
        self.api = api
        self.feed = feed
        self.scope = f"{graph_url.rstrip('/')}/.default"
        path, self.time_field = _PATHS[feed]
        self.url = f"{graph_url.rstrip('/')}/{path}"
        self.signin_types = signin_types if feed == "graph.signIns" else ("",)

    async def pull(self, start: int, end: int, seen: Callable[[str], bool]) -> AsyncIterator[Chunk]:
        window = (
            f"{self.time_field} ge {iso(start, zone=True)} and {self.time_field} lt {iso(end, zone=True)}"
        )
        for kind in self.signin_types:
            flt = f"{window} and signInEventTypes/any(t: t eq '{kind}')" if kind else window
            url: str | None = self.url
            params: dict[str, str] | None = {"$filter": flt}
            while url is not None:
                page = await self.api.get_json(url, self.scope, params)
                yield self._chunk(page.body, start)
                link = page.body.get("@odata.nextLink") if isinstance(page.body, dict) else None
                url = link if isinstance(link, str) and link else None  # exactly as given
                params = None

    def _chunk(self, body: Any, start: int) -> Chunk:
        chunk = Chunk([])
        values = body.get("value") if isinstance(body, dict) else None
        if not isinstance(values, list):
            chunk.bad.append((one_record(body), f"{self.feed}: page without a 'value' array"))
            return chunk
        for rec in values:
            rid = rec.get("id") if isinstance(rec, dict) else None
            if not rid:
                chunk.bad.append((one_record(rec), f"{self.feed}: record without id"))
                continue
            at = parse_time(rec.get(self.time_field)) or start
            chunk.items.append(Item(str(rid), at, one_record(rec)))
        return chunk
