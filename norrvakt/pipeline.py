"""The running pipeline: parse → journal (group commit) → acknowledge.

Sources call :meth:`Pipeline.submit` with the records they received and acknowledge their
sender only when it returns: by then every record is parsed and durably journaled. The
:class:`~norrvakt.indexer.Indexer` then moves committed events into the store.

Every record is counted by source: received, parsed, pipeline errors (with the reason), and
the indexer counts what it stored. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from norrvakt.event import KIND_PIPELINE_ERROR, SYSTEM_TENANT, Event, RawRecord
from norrvakt.journal.log import Journal
from norrvakt.parsers import error_event, parse_record
from norrvakt.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class PipelineUnavailable(Exception):
    """The journal cannot take records (disk failure); senders must retry later."""


@dataclass
class PipelineCounters:
    received: Counter[str] = field(default_factory=Counter)  # by source id
    pipeline_errors: Counter[str] = field(default_factory=Counter)  # by "source: error.type"
    committed: int = 0
    commits: int = 0
    stored: int = 0
    transport_errors: Counter[str] = field(default_factory=Counter)  # by "source: reason"

    def as_dict(self) -> dict[str, object]:
        return {
            "received": dict(self.received),
            "pipeline_errors": dict(self.pipeline_errors),
            "transport_errors": dict(self.transport_errors),
            "committed": self.committed,
            "commits": self.commits,
            "stored": self.stored,
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
        self._failed: str | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._commit_loop(), name="journal-commit")

    async def stop(self) -> None:
        # Let outstanding commits finish so every acknowledged record is durable.
        while self._waiters:
            self._wake.set()
            await asyncio.sleep(0.01)
        await cancel_and_wait(self._task)

    def parse(self, records: Sequence[RawRecord]) -> list[Event]:
        events = [parse_record(r) if r.tenant else unmapped_sender_event(r) for r in records]
        counters = self.counters
        for r, e in zip(records, events, strict=True):
            counters.received[r.source_id] += 1
            if e.ecs.get("event.kind") == KIND_PIPELINE_ERROR:
                counters.pipeline_errors[f"{r.source_id}: {e.ecs.get('error.type', 'unknown')}"] += 1
        return events

    async def submit(self, records: Sequence[RawRecord]) -> list[Event]:
        """Parse and durably journal ``records``; returns once they may be acknowledged."""
        events = self.parse(records)
        await self.commit(events)
        return events

    async def commit(self, events: Sequence[Event]) -> None:
        await self.commit_nowait(events)

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]:
        """Journal ``events`` now (seqs assigned in call order); the future resolves when durable.

        Synchronous up to the fsync so records of one connection keep their order."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._failed:
            waiter.set_exception(PipelineUnavailable(self._failed))
            return waiter
        if not events:
            waiter.set_result(None)
            return waiter
        self.journal.append(events)
        self._pending_events.extend(events)
        self._waiters.append(waiter)
        self._wake.set()
        return waiter

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        """Parse and journal ``records`` now; the future resolves when they may be acknowledged."""
        return self.commit_nowait(self.parse(records))

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
            except Exception as exc:  # disk full, I/O error: stop accepting, tell every sender
                self._failed = f"journal commit failed: {exc}"
                log.critical("%s — no further records are accepted until restart", self._failed)
                for w in waiters:
                    if not w.done():
                        w.set_exception(PipelineUnavailable(self._failed))
                continue
            self.counters.commits += 1
            self.counters.committed += sum(len(v) for v in batch.values())
            for w in waiters:
                if not w.done():
                    w.set_result(None)
            for hook in self.committed_hooks:
                hook(events)
            self.committed_event.set()


_EXCERPT = 120


def unmapped_sender_event(record: RawRecord) -> Event:
    """A record whose sender maps to no tenant: kept in the system tenant for the SOC to see."""
    message = (
        f"sender {record.peer} matches no tenant network and the source has no "
        "default tenant; the record is kept here until the sender is mapped"
    )
    return pipeline_error_event(record, "source.unmapped_sender", message, tenant=SYSTEM_TENANT)


def pipeline_error_event(
    record: RawRecord, error_type: str, message: str, *, tenant: str | None = None
) -> Event:
    """The event for a record a transport could not even frame (oversized, truncated, TLS garbage).

    ``message`` says what went wrong and where; the source id is added, and the first bytes of
    the data are appended so the bad value is visible and searchable."""
    detail = message
    if record.payload:
        excerpt = record.payload[:_EXCERPT].decode("utf-8", "backslashreplace")
        more = "…" if len(record.payload) > _EXCERPT else ""
        detail = f"{message} — data: {excerpt!r}{more}"
    event = error_event(record, error_type, detail, detail)
    if tenant:
        event.tenant = tenant
    return event
