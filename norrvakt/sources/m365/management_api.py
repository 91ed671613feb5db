"""Office 365 Management Activity API: subscriptions, content listings, content blobs.

    POST {manage}/api/v1.0/{directory}/activity/feed/subscriptions/start?contentType=Audit.Exchange
    GET  {manage}/api/v1.0/{directory}/activity/feed/subscriptions/content
             ?contentType=Audit.Exchange&startTime=2026-12-01T08:00:00&endTime=2026-12-01T09:00:00
         → [{"contentType": "Audit.Exchange", "contentId": "…", "contentUri": "https://…",
             "contentCreated": "2026-12-01T08:10:00.000Z", "contentExpiration": "…"}, …]
         + header NextPageUri when the listing goes on (followed exactly as given)
    GET  {contentUri} → [{"Id": "…", "CreationTime": "2026-12-01T08:04:31", "Workload": …}, …]

A listing covers at most 24 hours and starts at most 7 days back (Microsoft's documented
limits; the connector cuts its windows so). The listing's axis is ``contentCreated`` — when a
blob became available, not when its events happened — so a window already pulled is never
filled in later. Blobs seen in an earlier listing are not fetched again (their content id is
remembered with the checkpoint); records are deduplicated on ``Id`` as well.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from norrvakt.sources.m365.feeds import Chunk, Item, iso, one_record, parse_time
from norrvakt.sources.m365.fetch import ApiClient, FetchError

log = logging.getLogger(__name__)

DEFAULT_MANAGE_URL = "https://manage.office.com"
ALREADY_ENABLED = "AF20024"  # "The subscription is already enabled. No property change."
NO_SUBSCRIPTION = "AF20022"  # "No subscription found for the specified content type"


class ManagementFeed:
    def __init__(self, api: ApiClient, manage_url: str, directory_id: str, content_type: str) -> None:
        self.api = api
        self.feed = content_type
        self.scope = f"{manage_url.rstrip('/')}/.default"
        self.base = f"{manage_url.rstrip('/')}/api/v1.0/{directory_id}/activity/feed"
        self.directory_id = directory_id
        self.subscribed = False

    async def subscribe(self) -> None:
        """Start the subscription (once per run; an enabled one answers AF20024, which is fine)."""
        try:
            await self.api.post(
                f"{self.base}/subscriptions/start",
                self.scope,
                {"contentType": self.feed, "PublisherIdentifier": self.directory_id},
            )
        except FetchError as exc:
            if exc.code != ALREADY_ENABLED and ALREADY_ENABLED.encode() not in exc.body:
                raise
        self.subscribed = True

    async def pull(self, start: int, end: int, seen: Callable[[str], bool]) -> AsyncIterator[Chunk]:
        if not self.subscribed:
            await self.subscribe()
        url: str | None = f"{self.base}/subscriptions/content"
        params: dict[str, str] | None = {
            "contentType": self.feed,
            "startTime": iso(start, zone=False),
            "endTime": iso(end, zone=False),
            "PublisherIdentifier": self.directory_id,
        }
        while url is not None:
            try:
                page = await self.api.get_json(url, self.scope, params)
            except FetchError as exc:
                if exc.code != NO_SUBSCRIPTION or params is None:
                    raise
                # stopped from outside (an admin, a tenant reset): start it again, list again
                await self.subscribe()
                page = await self.api.get_json(url, self.scope, params)
            listing = page.body if isinstance(page.body, list) else []
            for blob in listing:
                chunk = await self._blob(blob, start, seen)
                if chunk is not None:
                    yield chunk
            # Exactly as given: it carries Microsoft's own paging token and our window.
            url = page.headers.get("NextPageUri") or None
            params = None

    async def _blob(self, blob: Any, start: int, seen: Callable[[str], bool]) -> Chunk | None:
        if not isinstance(blob, dict) or not isinstance(blob.get("contentUri"), str):
            return Chunk(
                [], bad=[(one_record(blob), f"{self.feed}: content listing entry without contentUri")]
            )
        content_id = str(blob.get("contentId") or blob["contentUri"])
        mark = f"content:{content_id}"
        if seen(mark):
            return None
        at = parse_time(blob.get("contentCreated")) or start
        page = await self.api.get_json(blob["contentUri"], self.scope)
        records = page.body if isinstance(page.body, list) else []
        chunk = Chunk([], marks=[(mark, at)])
        if not isinstance(page.body, list):
            chunk.bad.append(
                (one_record(page.body), f"{self.feed}: content blob {content_id} is not a JSON array")
            )
        for rec in records:
            rid = rec.get("Id") if isinstance(rec, dict) else None
            if not rid:
                why = f"{self.feed}: record without Id in content blob {content_id}"
                chunk.bad.append((one_record(rec), why))
                continue
            chunk.items.append(Item(str(rid), at, one_record(rec)))
        return chunk
