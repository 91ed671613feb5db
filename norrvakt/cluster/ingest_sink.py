"""What an ingest node's listeners hand their records to: the tenants' streams.

The same :class:`~norrvakt.sources.base.RecordSink` the listeners use on a single node (the
node's pipeline, or a worker's link to it), so every stream listener — syslog UDP/TCP/TLS,
RELP — runs unchanged on a stateless ingest node. Records are parsed here; each tenant's
events queue for its stream, and one publishing task per tenant takes everything queued, in
order, as envelopes (a group commit: while one publish waits for JetStream's acknowledgement,
the next batches gather). A batch's future resolves only when JetStream has acknowledged all of
its envelopes; then the listener acknowledges its sender. Per tenant, batches reach the stream
in the order they were handed in, so a connection's records keep their order.

When JetStream refuses (the stream is full) or does not answer in time, every batch waiting
for that publish fails with :class:`~norrvakt.node.pipeline.PipelineUnavailable`, as a
journal that cannot write does on a single node: the connection is aborted, RELP gets no
``rsp 200``, and the sender resends. What the failed publish had stored before it failed is
then in the stream twice once resent: duplicates only of sends that were never acknowledged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from norrvakt.cluster.publisher import EnvelopePublisher, LogFull, LogUnavailable
from norrvakt.event import SYSTEM_TENANT, Event, RawRecord
from norrvakt.node.pipeline import PipelineCounters, PipelineUnavailable
from norrvakt.parsers.records import parse_one
from norrvakt.tasks import cancel_and_wait, pass_on

log = logging.getLogger(__name__)

MAX_TAKE = 5_000  # events one publishing round takes from a tenant's queue


@dataclass
class SinkCounters(PipelineCounters):
    """A node's pipeline counters (received, pipeline and transport errors, refused), and the
    events the log acknowledged."""

    published: int = 0


@dataclass
class _Queue:
    items: list[tuple[list[Event], asyncio.Future[None]]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    publishing: int = 0  # events of the round being published


class JetStreamSink:
    """Parses records and publishes their events to the tenants' streams, in order per tenant."""

    def __init__(
        self, publisher: EnvelopePublisher, ensure_stream: Callable[[str], Awaitable[object]]
    ) -> None:
        self.publisher = publisher
        self.ensure_stream = ensure_stream
        self.counters = SinkCounters()
        self._queues: dict[str, _Queue] = {}

    # -- the record sink ------------------------------------------------------------------

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        events = [parse_one(r) for r in records]
        self.counters.count([r.source_id for r in records], events)
        return self.commit_nowait(events)

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        by_tenant: dict[str, list[Event]] = {}
        for e in events:
            if not e.tenant:  # as on a single node: never a tenant named ""
                e.tenant = SYSTEM_TENANT
            by_tenant.setdefault(e.tenant, []).append(e)
        if not by_tenant:
            nothing: asyncio.Future[None] = loop.create_future()
            nothing.set_result(None)
            return nothing
        parts = []
        for tenant, part in by_tenant.items():
            fut: asyncio.Future[None] = loop.create_future()
            self._queue(tenant).items.append((part, fut))
            self._queues[tenant].wake.set()
            parts.append(fut)
        if len(parts) == 1:
            return parts[0]
        done: asyncio.Future[None] = loop.create_future()
        asyncio.gather(*parts).add_done_callback(functools.partial(pass_on, done))
        return done

    def transport_error(self, source_id: str, reason: str) -> None:
        self.counters.transport_errors[f"{source_id}: {reason}"] += 1

    # -- publishing -----------------------------------------------------------------------

    def _queue(self, tenant: str) -> _Queue:
        q = self._queues.get(tenant)
        if q is None:
            q = self._queues[tenant] = _Queue()
            q.task = asyncio.get_running_loop().create_task(
                self._publish_loop(tenant, q), name=f"publish-{tenant}"
            )
        return q

    async def _publish_loop(self, tenant: str, q: _Queue) -> None:
        ready = False
        while True:
            await q.wake.wait()
            q.wake.clear()
            while q.items:
                take: list[tuple[list[Event], asyncio.Future[None]]] = []
                size = 0
                while q.items and (not take or size + len(q.items[0][0]) <= MAX_TAKE):
                    item = q.items.pop(0)
                    take.append(item)
                    size += len(item[0])
                q.publishing = size
                try:
                    if not ready:
                        await self.ensure_stream(tenant)
                        ready = True
                    await self.publisher.publish(tenant, [e for events, _ in take for e in events])
                except (LogFull, LogUnavailable, TimeoutError, OSError) as exc:
                    self.counters.refused += size
                    log.error(
                        "%s: %d event(s) not taken by the log, their senders retry: %s", tenant, size, exc
                    )
                    for _, fut in take:
                        if not fut.done():
                            fut.set_exception(PipelineUnavailable(str(exc)))
                    continue
                finally:
                    q.publishing = 0
                self.counters.published += size
                for _, fut in take:
                    if not fut.done():
                        fut.set_result(None)

    def waiting(self) -> int:
        """Events queued or being published."""
        return sum(q.publishing + sum(len(events) for events, _ in q.items) for q in self._queues.values())

    async def stop(self) -> None:
        """Publish what is queued (the listeners were stopped first), then end the tasks."""
        while self.waiting():
            await asyncio.sleep(0.02)
        for q in self._queues.values():
            await cancel_and_wait(q.task)
