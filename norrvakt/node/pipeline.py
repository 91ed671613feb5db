"""The running pipeline: parse → journal (group commit) → acknowledge.

Sources call :meth:`Pipeline.submit` with the records they received and acknowledge their
sender only when it returns: by then every record is parsed and durably journaled. The
:class:`~norrvakt.node.indexer.Indexer` then moves committed events into the store.

Every record is counted by source: received, parsed, pipeline errors (with the reason), and
the indexer counts what it stored. Nothing is dropped.

With a :class:`~norrvakt.node.parse_pool.ParsePool` (``norrvakt serve``), records are parsed in
worker processes; the pipeline still journals every batch in the order it was submitted, so
the records of one connection keep their order and seqs stay in arrival order.

When a commit fails (disk full, no file descriptors, an I/O error) the journal undoes it, every
sender waiting on it — and on records appended meanwhile — is told to retry (503, connection
reset), and the pipeline refuses new records at once instead of queueing them. A probe retries
the journal with growing pauses; once it can write again, records are accepted again without a
restart. Norrvakt's own audit events are the exception: a search or a login must still work
while the journal cannot write, so their audit records are held (in memory, bounded) and
journaled first when the journal is back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from norrvakt.event import SYSTEM_TENANT, Event, RawRecord
from norrvakt.journal.log import Journal, JournalError
from norrvakt.parsers.records import Tally, parse_one, pipeline_error_event, tally, unmapped_sender_event
from norrvakt.sources.bulk_body import BulkPlan, parse_bulk_body
from norrvakt.sources.hec_body import BadPart, parse_hec_body

__all__ = ["Pipeline", "PipelineUnavailable", "parse_one", "pipeline_error_event", "unmapped_sender_event"]
from norrvakt.tasks import cancel_and_wait, pass_on

if TYPE_CHECKING:
    from norrvakt.node.parse_pool import ParsePool

log = logging.getLogger(__name__)


class PipelineUnavailable(Exception):
    """The journal cannot take records (disk failure); senders must retry later."""


HELD_LIMIT = 100_000  # audit events held while the journal cannot write
PROBE_FIRST_S = 0.5  # first retry of a journal that failed; doubled up to PROBE_MAX_S
PROBE_MAX_S = 15.0


@dataclass
class PipelineCounters:
    received: Counter[str] = field(default_factory=Counter)  # by source id
    pipeline_errors: Counter[str] = field(default_factory=Counter)  # by "source: error.type"
    committed: int = 0
    commits: int = 0
    stored: int = 0
    transport_errors: Counter[str] = field(default_factory=Counter)  # by "source: reason"
    refused: int = 0  # records answered "retry later" because the journal could not write
    held_dropped: int = 0  # held audit events beyond HELD_LIMIT (logged one by one)

    def count(self, source_ids: Sequence[str], events: Sequence[Event]) -> None:
        """Count records received by source (one id per event), and the pipeline errors among them."""
        self.add(tally(source_ids, events))

    def add(self, counts: Tally) -> None:
        """Add what another process counted (a worker counts its own records: see tally)."""
        received, errors = counts
        self.received.update(received)
        self.pipeline_errors.update(errors)

    def as_dict(self) -> dict[str, object]:
        return {
            "received": dict(self.received),
            "pipeline_errors": dict(self.pipeline_errors),
            "transport_errors": dict(self.transport_errors),
            "committed": self.committed,
            "commits": self.commits,
            "stored": self.stored,
            "refused": self.refused,
            "held_dropped": self.held_dropped,
        }


class Pipeline:
    """Parses records, journals them with group commit, and wakes the indexer."""

    def __init__(self, journal: Journal, *, group_commit_s: float = 0.0) -> None:
        self.journal = journal
        self.group_commit_s = group_commit_s
        self.counters = PipelineCounters()
        self.committed_event = asyncio.Event()  # set after every commit (indexer wake-up)
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future[None]] = []
        self._pending_events: list[Event] = []
        # Called with every committed batch (the indexer takes them from memory).
        self.committed_hooks: list[Callable[[list[Event]], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._failed: str | None = None
        self.failed_since: float | None = None  # time.time() of the first refusal of this episode
        self._held: deque[Event] = deque()
        self.pool: ParsePool | None = None  # parse workers; None: parse in this process
        # Batches submitted and not yet journaled, oldest first: (parsed events, acknowledgement).
        self._ordered: deque[tuple[asyncio.Future[list[Event]], asyncio.Future[None]]] = deque()

    @property
    def refusing(self) -> str | None:
        """Why records are refused right now, or None when the journal takes them."""
        return self._failed

    @property
    def held(self) -> int:
        return len(self._held)

    def backlog(self) -> dict[str, int]:
        """What the journal owner has not journaled yet: batches still being parsed (in order),
        and events appended and waiting for the next fsync."""
        return {
            "parsing_batches": len(self._ordered),
            "awaiting_fsync": len(self._pending_events),
            "held_audit_events": len(self._held),
        }

    async def start(self) -> None:
        self._task = asyncio.create_task(self._commit_loop(), name="journal-commit")

    async def stop(self) -> None:
        # Let outstanding parses and commits finish so every acknowledged record is durable.
        while self._ordered or self._waiters:
            self._wake.set()
            await asyncio.sleep(0.01)
        await cancel_and_wait(self._probe_task)
        await cancel_and_wait(self._task)
        if self._held:
            log.error(
                "%d audit event(s) could not be journaled before the stop (the journal could not write); "
                "they are in this log only",
                len(self._held),
            )

    def parse(self, records: Sequence[RawRecord]) -> list[Event]:
        """Parse ``records`` in this process (and count them)."""
        events = [parse_one(r) for r in records]
        self._count([r.source_id for r in records], events)
        return events

    def parse_here(self, records: Sequence[RawRecord]) -> list[Event]:
        """Parse in this process without counting (the pool's fallback; the caller counts)."""
        return [parse_one(r) for r in records]

    async def parse_async(self, records: Sequence[RawRecord]) -> list[Event]:
        """Parse ``records`` in a worker process when there are workers (and count them)."""
        if self.pool is None:
            return self.parse(records)
        events = await self.pool.parse(records)
        self._count([r.source_id for r in records], events)
        return events

    async def parse_hec(
        self, body: bytes, max_event_bytes: int, template: RawRecord
    ) -> tuple[list[Event], list[BadPart]]:
        """A HEC body's events (in body order, counted) and its bad parts, in a parse worker
        when there are workers: splitting and checking the body is most of its cost."""
        if self.pool is None:
            _, events, bad = parse_hec_body(body, max_event_bytes, template)
        else:
            events, bad = await self.pool.parse_hec(body, max_event_bytes, template)
        self._count([template.source_id] * len(events), events)  # every part came with the template's source
        return events, bad

    async def parse_bulk(
        self, body: bytes, max_event_bytes: int, index: str | None, template: RawRecord
    ) -> tuple[BulkPlan, list[Event]]:
        """A ``_bulk`` body's plan and its documents' events (counted), in a parse worker when
        there are workers: reading the actions and the documents is most of its cost."""
        if self.pool is None:
            plan, events = parse_bulk_body(body, max_event_bytes, index, template)
        else:
            plan, events = await self.pool.parse_bulk(body, max_event_bytes, index, template)
        self._count([template.source_id] * len(events), events)
        return plan, events

    def ingest_parsed(self, counts: Tally | None, events: list[Event]) -> asyncio.Future[None]:
        """Events a worker's listeners received and parsed: ``counts`` as the worker tallied them
        (None for a listener's own pipeline_error events, counted as transport errors), and
        journaled behind everything submitted before."""
        if counts is not None:
            self.counters.add(counts)
        return self.commit_nowait(events)

    def _count(self, source_ids: Sequence[str], events: Sequence[Event]) -> None:
        self.counters.count(source_ids, events)

    async def submit(self, records: Sequence[RawRecord]) -> list[Event]:
        """Parse and durably journal ``records``; returns once they may be acknowledged."""
        events = await self.parse_async(records)
        await self.commit(events)
        return events

    async def commit(self, events: Sequence[Event]) -> None:
        await self.commit_nowait(events)

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]:
        """Journal ``events`` now (seqs assigned in call order); the future resolves when durable.

        Synchronous up to the fsync so records of one connection keep their order. While
        batches submitted earlier are still being parsed, ``events`` wait behind them."""
        if self._ordered:
            parsed: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
            parsed.set_result(list(events))
            return self._behind(parsed)
        return self._commit_now(events)

    def _behind(self, parsed: asyncio.Future[list[Event]]) -> asyncio.Future[None]:
        """Journal ``parsed`` once it is done and everything submitted before it is journaled."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ordered.append((parsed, waiter))
        parsed.add_done_callback(self._journal_ready)
        return waiter

    def _journal_ready(self, _: object = None) -> None:
        while self._ordered and self._ordered[0][0].done():
            parsed, waiter = self._ordered.popleft()
            if parsed.cancelled():  # (the pool parses here rather than fail: this is a stop)
                waiter.cancel()
                continue
            if (exc := parsed.exception()) is not None:
                waiter.set_exception(exc)
                continue
            self._commit_now(parsed.result()).add_done_callback(functools.partial(pass_on, waiter))

    def _commit_now(self, events: Sequence[Event]) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._failed:
            self.counters.refused += len(events)
            waiter.set_exception(PipelineUnavailable(self._failed))
            return waiter
        if not events:
            waiter.set_result(None)
            return waiter
        for e in events:
            # Never a tenant named "": it would be the journal's root folder, unsearchable and
            # unverified. Whatever reaches here without a tenant belongs to the system tenant.
            if not e.tenant:
                e.tenant = SYSTEM_TENANT
        try:
            self.journal.append(events)
        except OSError as exc:  # a new tenant's folder cannot be made: no space or no descriptors
            reason = f"the journal cannot write: {exc}"
            self.counters.refused += len(events)
            log.critical("%s — refusing records until the journal can write again", reason)
            self._start_refusing(reason)
            waiter.set_exception(PipelineUnavailable(reason))
            return waiter
        self._pending_events.extend(events)
        self._waiters.append(waiter)
        self._wake.set()
        return waiter

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        """Parse and journal ``records`` in submission order; the future resolves when they may
        be acknowledged."""
        if self.pool is None:
            return self.commit_nowait(self.parse(records))
        if self._failed:  # refused now, as without workers: the sender retries
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.counters.refused += len(records)
            waiter.set_exception(PipelineUnavailable(self._failed))
            return waiter
        parsed = self.pool.parse(records)

        def count(f: asyncio.Future[list[Event]]) -> None:
            if not f.cancelled() and f.exception() is None:
                self._count([r.source_id for r in records], f.result())

        parsed.add_done_callback(count)  # (runs before _journal_ready: callbacks keep their order)
        return self._behind(parsed)

    def hold(self, events: Sequence[Event]) -> None:
        """Keep Norrvakt's own audit events that the journal cannot take now; they are
        journaled first once it can (bounded: beyond HELD_LIMIT the oldest are logged and
        dropped, counted as ``held_dropped``)."""
        for e in events:
            if len(self._held) >= HELD_LIMIT:
                lost = self._held.popleft()
                self.counters.held_dropped += 1
                log.error(
                    "audit event not journaled (the journal could not write for too long): %s", lost.message
                )
            self._held.append(e)

    def transport_error(self, source_id: str, reason: str) -> None:
        self.counters.transport_errors[f"{source_id}: {reason}"] += 1

    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            if self.group_commit_s:
                await asyncio.sleep(self.group_commit_s)
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            events, self._pending_events = self._pending_events, []
            batch = self.journal.take_pending()
            try:
                await asyncio.to_thread(self.journal.commit, batch)
            except Exception as exc:  # disk full, no descriptors, I/O error: the journal undid it
                self._refuse(exc, waiters)
                continue
            self.counters.commits += 1
            self.counters.committed += sum(len(v) for v in batch.values())
            for w in waiters:
                if not w.done():
                    w.set_result(None)
            for hook in self.committed_hooks:
                hook(events)
            self.committed_event.set()

    def _refuse(self, exc: Exception, waiters: list[asyncio.Future[None]]) -> None:
        """A commit failed and was undone: fail it and everything appended after it, refuse
        new records, and start probing the journal."""
        reason = f"the journal cannot write: {exc}" if isinstance(exc, JournalError) else f"{exc!r}"
        self._start_refusing(reason)
        later, self._waiters = self._waiters, []
        self._pending_events = []
        forgotten = self.journal.rewind()  # drops what was appended since; seqs stay gapless
        self.counters.refused += forgotten
        log.critical(
            "%s — %d record(s) refused (their senders retry); refusing new records until the journal "
            "can write again (checked with growing pauses)",
            reason,
            forgotten,
        )
        for w in [*waiters, *later]:
            if not w.done():
                w.set_exception(PipelineUnavailable(reason))

    def _start_refusing(self, reason: str) -> None:
        """Refuse new records with ``reason`` until the probe finds the journal writable."""
        if self._failed is None:
            self.failed_since = time.time()
        self._failed = reason
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.create_task(self._probe_until_writable(), name="journal-probe")

    async def _probe_until_writable(self) -> None:
        pause = PROBE_FIRST_S
        while True:
            await asyncio.sleep(pause)
            try:
                await asyncio.to_thread(self.journal.probe)
            except OSError as exc:
                self._failed = f"the journal cannot write: {exc}"
                pause = min(PROBE_MAX_S, pause * 2)
                continue
            since = self.failed_since or time.time()
            self._failed = None
            self.failed_since = None
            log.warning(
                "the journal can write again after %.1f s: accepting records again", time.time() - since
            )
            self._release_held()
            return

    def _release_held(self) -> None:
        if not self._held:
            return
        held = list(self._held)
        self._held.clear()
        fut = self.commit_nowait(held)

        def done(f: asyncio.Future[None]) -> None:
            if f.cancelled() or f.exception() is not None:
                self.hold(held)  # failed again: keep them for the next recovery

        fut.add_done_callback(done)
