"""A worker's way to the journal: what the listeners of a worker process hand their records to.

In a worker (:mod:`norrvakt.node.parse_worker`), the stream listeners — syslog TCP/TLS and
RELP, on listening sockets the node lends it — call the same three methods they call on the
node's :class:`~norrvakt.node.pipeline.Pipeline` (:class:`~norrvakt.sources.base.RecordSink`).
The records are parsed here, in the worker; their events go to the node in one ``INGEST`` frame
per batch, and the node, which alone owns the journal, journals them in the order the frames
arrive (so a connection's records keep their order and seqs) and answers ``COMMITTED`` after the
fsync or ``REFUSED`` when the journal cannot take them. Only then does the future resolve, so a
listener acknowledges its sender exactly when it would in the node. When the node goes away
every batch still waiting fails: the connection is aborted and the sender resends.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence

from norrvakt.event import KIND_PIPELINE_ERROR, Event, RawRecord
from norrvakt.node import wire
from norrvakt.node.pipeline import PipelineUnavailable
from norrvakt.parsers.records import Tally, parse_one, tally


class JournalLink:
    """The node at the other end of a worker's socket, seen as a record sink."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._next = 0
        self._lost: str | None = None
        self._admitting: dict[int, asyncio.Future[bool]] = {}
        self.sent_events = 0

    @property
    def waiting(self) -> int:
        """Batches sent to the node and not yet durable."""
        return len(self._waiting)

    # -- the record sink the listeners see ------------------------------------------------

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        """Parse ``records`` here and have the node journal them (counted there)."""
        events = [parse_one(r) for r in records]
        return self._send(tally([r.source_id for r in records], events), events)

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]:
        """Have the node journal ``events`` as they are (a listener's own pipeline_error events)."""
        return self._send(None, events)

    def commit_counted(self, counts: Tally | None, events: Sequence[Event]) -> asyncio.Future[None]:
        """Have the node journal ``events`` and add ``counts`` (what was parsed for them here,
        see :func:`~norrvakt.parsers.records.tally`) to its counters: the HTTP ingest routes
        parse a body first and commit its events with their bad parts' events after."""
        return self._send(counts, events)

    def transport_error(self, source_id: str, reason: str) -> None:
        if self._lost is None:
            self._writer.write(wire.frame(wire.TRANSPORT, 0, [source_id, reason]))

    # -- the node's caps -------------------------------------------------------------------

    async def admit(self, listener_id: str, host: str) -> Callable[[], None] | None:
        """Ask the node whether a connection from ``host`` may stay: the listener's caps are
        the node's, shared by every worker. A release callback when admitted, else None."""
        if self._lost is not None:
            return None
        self._next += 1
        job = self._next
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._admitting[job] = fut
        self._writer.write(wire.frame(wire.ADMIT, job, [listener_id, host]))
        if not await fut:
            return None
        return functools.partial(self._release, job)

    def admitted(self, job: int, ok: bool) -> None:
        fut = self._admitting.pop(job, None)
        if fut is not None and not fut.done():
            fut.set_result(ok)

    def _release(self, job: int) -> None:
        if self._lost is None:
            self._writer.write(wire.frame(wire.RELEASE, job, []))

    # -- the node's answers ---------------------------------------------------------------

    def committed(self, job: int) -> None:
        fut = self._waiting.pop(job, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def refused(self, job: int, reason: str) -> None:
        fut = self._waiting.pop(job, None)
        if fut is not None and not fut.done():
            fut.set_exception(PipelineUnavailable(reason))

    def lost(self, reason: str) -> None:
        """The node is gone: nothing waiting can become durable through it."""
        self._lost = reason
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(PipelineUnavailable(reason))
        admitting, self._admitting = self._admitting, {}
        for admission in admitting.values():
            if not admission.done():
                admission.set_result(False)

    def _send(self, counts: Tally | None, events: Sequence[Event]) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._lost is not None:
            fut.set_exception(PipelineUnavailable(self._lost))
            return fut
        if not events:
            fut.set_result(None)
            return fut
        self._next += 1
        self._waiting[self._next] = fut
        self.sent_events += len(events)
        rows = [wire.event_row(e) for e in events]
        # counted here, not on the node's thread: what it adds up (counts), and the pipeline errors
        errors = sum(1 for e in events if e.ecs.get("event.kind") == KIND_PIPELINE_ERROR)
        body = [counts, errors, rows, time.process_time()]
        self._writer.write(wire.frame(wire.INGEST, self._next, body))
        return fut
