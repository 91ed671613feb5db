"""Sending notices: one worker per channel, each with its own queue, rate limit and retries,
so a slow webhook neither delays the e-mail nor the intake.

Rate limit: a token bucket per channel (``rate_per_minute``). A notice that finds the bucket
empty is held back — counted, logged as ``rate_limited`` — and the channel's next message says
how many were held back; if nothing else comes, a digest goes out once a token is free. A flood
of alerts therefore becomes a handful of messages, never a mail storm, and nothing is dropped
unseen. Every delivery (sent, failed after retries, rate limited) is written to the
notification log in the state database.

Crash safety: a notice is written to the outbox (:mod:`norrvakt.state.outbox`) before it is
queued and removed once its channel has handled it; at start the dispatcher queues what the
outbox still holds — notices the server had accepted when it stopped or was killed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from norrvakt.alerts.model import Alert
from norrvakt.alerts.notify.base import Channel, DeliveryError
from norrvakt.alerts.notify.message import Notice
from norrvakt.alerts.notify.ratelimit import TokenBucket
from norrvakt.alerts.routing import Router
from norrvakt.config import ChannelSettings
from norrvakt.event import now_us
from norrvakt.state import notifications as delivery_log
from norrvakt.state import outbox
from norrvakt.tasks import cancel_and_wait

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000

Queued = tuple[Notice, tuple[int, ...]]  # a notice and the outbox rows it settles


class ChannelWorker:
    def __init__(self, channel: Channel, settings: ChannelSettings, engine: sa.Engine) -> None:
        self.channel = channel
        self.settings = settings
        self.engine = engine
        self.bucket = TokenBucket(settings.rate_per_minute)
        self.queue: asyncio.Queue[Queued] = asyncio.Queue(QUEUE_SIZE)
        self.held_back: list[Queued] = []
        self.counts = {"sent": 0, "failed": 0, "rate_limited": 0}
        self.idle = asyncio.Event()
        self.idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"notify-{self.channel.name}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def offer(self, notice: Notice, outbox_ids: tuple[int, ...] = ()) -> None:
        self.idle.clear()
        try:
            self.queue.put_nowait((notice, outbox_ids))
        except asyncio.QueueFull:  # the queue is far beyond any rate limit: same as held back
            self._hold((notice, outbox_ids), "queue full")

    async def _run(self) -> None:
        while True:
            if self.queue.empty():
                if not self.held_back:
                    self.idle.set()
                try:
                    timeout = self.bucket.wait_s() if self.held_back else None
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except TimeoutError:
                    if self.held_back and self.bucket.take():
                        held, self.held_back = self.held_back, []
                        await self._deliver(_digest([n for n, _ in held]), _ids(held))
                    continue
            else:
                item = self.queue.get_nowait()
            notice, ids = item
            if self.bucket.take():
                if self.held_back:
                    held, self.held_back = self.held_back, []
                    notice, ids = replace(notice, suppressed=len(held)), ids + _ids(held)
                await self._deliver(notice, ids)
            else:
                self._hold(item, "rate limit")

    def _hold(self, item: Queued, why: str) -> None:
        self.held_back.append(item)
        self.counts["rate_limited"] += 1
        self._log(item[0], "rate_limited", 0, f"held back ({why}); summed up in the next message")

    async def _deliver(self, notice: Notice, outbox_ids: tuple[int, ...]) -> None:
        """Send with retries; then the notice (and the held-back ones it sums up) leaves the outbox."""
        # Failing for good also settles it (retried, then logged as failed). A cancelled task
        # (shutdown) raises out of here and leaves the rows: the notice goes out after a restart.
        await self._attempt(notice)
        await asyncio.to_thread(outbox.remove, self.engine, outbox_ids)

    async def _attempt(self, notice: Notice) -> None:
        attempts = 0
        delay = self.settings.retry_backoff_s
        while True:
            attempts += 1
            try:
                note = await self.channel.send(notice)
            except DeliveryError as exc:
                if exc.retry and attempts <= self.settings.retries:
                    log.warning("%s (attempt %d; retrying in %.1f s)", exc, attempts, delay)
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                log.error("notification not delivered after %d attempt(s): %s", attempts, exc)
                self.counts["failed"] += 1
                await asyncio.to_thread(self._log, notice, "failed", attempts, str(exc))
                return
            self.counts["sent"] += 1
            await asyncio.to_thread(self._log, notice, "sent", attempts, note)
            return

    def _log(self, notice: Notice, status: str, attempts: int, detail: str) -> None:
        delivery_log.log(
            self.engine,
            [
                {
                    "at": now_us(),
                    "channel": self.channel.name,
                    "kind": notice.kind,
                    "tenant": notice.tenant,
                    "alert_id": notice.alert_id,
                    "case_id": notice.case_id,
                    "status": status,
                    "attempts": attempts,
                    "detail": detail[:2000],
                }
            ],
        )


def _ids(items: Sequence[Queued]) -> tuple[int, ...]:
    return tuple(i for _, ids in items for i in ids)


def _digest(held: list[Notice]) -> Notice:
    last = held[-1]
    tenants = sorted({n.tenant for n in held})
    top = max(held, key=lambda n: ["informational", "low", "medium", "high", "critical"].index(n.level))
    return Notice(
        kind="digest",
        tenant=tenants[0] if len(tenants) == 1 else ",".join(tenants),
        level=top.level,
        title=f"{len(held)} notification(s) held back by the rate limit; latest: {last.title}",
        at=last.at,
        url=last.url,
        suppressed=len(held),
        extra={
            "held_back": [
                {"kind": n.kind, "tenant": n.tenant, "title": n.title, "alert": n.alert_id} for n in held[:50]
            ]
        },
    )


class Dispatcher:
    """Turns new alerts into notices for their routes' channels."""

    def __init__(
        self,
        engine: sa.Engine,
        channels: dict[str, tuple[Channel, ChannelSettings]],
        router: Router,
        *,
        public_url: str = "",
        clock: Callable[[], int] = now_us,
        notifies: Callable[[str], bool] | None = None,
        owner: str = "",
        orphaned_after_s: float = 300.0,
    ) -> None:
        self.router = router
        # the outbox rows this process queued; at start it takes back its own, and others'
        # older than orphaned_after_s (their process died), not a live one's (state/outbox.py)
        self.owner = owner
        self.orphaned_after_s = orphaned_after_s
        self.engine = engine
        # tenant → does it subscribe to SOC notification? (None = every tenant does)
        self.notifies: Callable[[str], bool] = notifies or (lambda _tenant: True)
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self.workers = {name: ChannelWorker(ch, cs, engine) for name, (ch, cs) in channels.items()}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        orphaned = self.clock() - int(self.orphaned_after_s * 1_000_000)
        waiting = await asyncio.to_thread(outbox.pending, self.engine, self.owner, orphaned)
        for w in self.workers.values():
            w.start()
        gone: list[int] = []
        for row_id, channel, doc in waiting:
            worker = self.workers.get(channel)
            if worker is None:
                why = f"channel {channel!r} is no longer configured; notice from before the restart dropped"
                log.error("%s: %s", why, doc.get("title"))
                lost = Notice(**doc)
                row = {"at": self.clock(), "channel": channel, "kind": lost.kind, "tenant": lost.tenant}
                row |= {"alert_id": lost.alert_id, "case_id": lost.case_id}
                await asyncio.to_thread(
                    delivery_log.log, self.engine, [{**row, "status": "failed", "attempts": 0, "detail": why}]
                )
                gone.append(row_id)
                continue
            worker.offer(Notice(**doc), (row_id,))
        if waiting:
            log.warning("%d notice(s) from before the restart queued again", len(waiting) - len(gone))
        await asyncio.to_thread(outbox.remove, self.engine, gone)

    async def stop(self) -> None:
        for w in self.workers.values():
            await w.stop()

    def alerts_created(self, alerts: list[Alert]) -> None:
        """Thread-safe (ingest runs in worker threads): a notice per new alert for each channel
        its route names, stored in the outbox, then queued."""
        if self._loop is None or not self.workers:
            return
        routed = [
            pair
            for notice in (self.alert_notice(a) for a in alerts)
            if self.notifies(notice.tenant)
            for pair in self._routable(notice, self.router.channels_for(notice.tenant, notice.level))
        ]
        self._loop.call_soon_threadsafe(self._offer, routed, self._store(routed))

    def alert_notice(self, alert: Alert) -> Notice:
        return Notice(
            kind="alert.new",
            tenant=alert.tenant,
            level=alert.level,
            title=alert.rule_title,
            at=self.clock(),
            alert=alert.as_dict(),
            url=f"{self.public_url}/api/alerts/{alert.id}" if self.public_url else "",
        )

    def send(self, notice: Notice, channels: Iterable[str]) -> None:
        """Queue ``notice`` for the named channels (call from the event loop)."""
        routed = self._routable(notice, channels)
        self._offer(routed, self._store(routed))

    def _routable(self, notice: Notice, channels: Iterable[str]) -> list[tuple[str, Notice]]:
        """(channel, notice) for each configured channel of ``channels``; the others are logged."""
        out = []
        for name in channels:
            if name in self.workers:
                out.append((name, notice))
            else:
                log.error("notice %r names unknown channel %r", notice.title, name)
        return out

    def _store(self, routed: list[tuple[str, Notice]]) -> list[int]:
        return outbox.put(
            self.engine, [(c, dataclasses.asdict(n)) for c, n in routed], self.clock(), self.owner
        )

    def _offer(self, routed: list[tuple[str, Notice]], ids: list[int]) -> None:
        for (channel, notice), row_id in zip(routed, ids, strict=True):
            self.workers[channel].offer(notice, (row_id,))

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Until every queued notice was handled (tests, shutdown)."""
        await asyncio.wait_for(asyncio.gather(*(w.idle.wait() for w in self.workers.values())), timeout)

    def status(self) -> dict[str, Any]:
        return {
            name: {**w.counts, "queued": w.queue.qsize(), "held_back": len(w.held_back)}
            for name, w in self.workers.items()
        }
