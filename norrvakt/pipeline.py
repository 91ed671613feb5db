"""The running pipeline: parse → journal (group commit) → acknowledge → index into the store.

Sources call :meth:`Pipeline.submit` with the records they received and acknowledge their
sender only when it returns: by then every record is parsed and durably journaled. The
:class:`Indexer` tails the journal into the store in large batches, so a slow store never
holds up acknowledgements and a restart simply resumes from the store's complete prefix.

Every record is counted by source: received, parsed, pipeline errors (with the reason), and
the indexer counts what it stored. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from norrvakt.event import KIND_PIPELINE_ERROR, SYSTEM_TENANT, Event, RawRecord, event_from_canonical, now_us
from norrvakt.journal.log import Journal, JournalCursor, JournalError
from norrvakt.parsers import parse_record
from norrvakt.store.clickhouse import ClickHouseStore

log = logging.getLogger(__name__)

StoredHook = Callable[[Sequence[Event]], Awaitable[None] | None]


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
        self._task: asyncio.Task[None] | None = None
        self._failed: str | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._commit_loop(), name="journal-commit")

    async def stop(self) -> None:
        # Let outstanding commits finish so every acknowledged record is durable.
        while self._waiters:
            self._wake.set()
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

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
            self.committed_event.set()


class Indexer:
    """Tails every tenant's journal into the store, in seq order, exactly once."""

    def __init__(
        self,
        journal: Journal,
        store: ClickHouseStore,
        *,
        batch_rows: int = 20_000,
        wake: asyncio.Event | None = None,
        counters: PipelineCounters | None = None,
    ) -> None:
        self.journal = journal
        self.store = store
        self.batch_rows = batch_rows
        self.wake = wake or asyncio.Event()
        self.counters = counters or PipelineCounters()
        self.hooks: list[StoredHook] = []
        self._cursors: dict[str, JournalCursor] = {}  # read position (may run ahead of the store)
        self._stored: dict[str, int] = {}  # highest seq known to be in the store
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.idle = asyncio.Event()  # set whenever the store has caught up with the journal
        self.last_error: str | None = None

    def stored_seq(self, tenant: str) -> int:
        return self._stored.get(tenant, 0)

    def reconcile(self) -> dict[str, int]:
        """Make the store a complete prefix of the journal; returns tenant → first seq to index.

        A killed INSERT can leave part of a batch; rows past the first missing seq are deleted
        and re-indexed from the journal, so every committed event ends up stored exactly once.
        """
        counts = self.store.tenant_counts()
        start: dict[str, int] = {}
        for tenant in self.journal.tenants():
            committed = self.journal.committed_seq(tenant)
            segs = self.journal.segments(tenant)
            first = segs[0][0] if segs else 1
            n, max_seq = counts.get(tenant, (0, 0))
            if max_seq > committed:
                log.critical(
                    "store has %s rows up to seq %d but the journal ends at %d; the journal decides — "
                    "removing rows past it (run `norrvakt verify`)", tenant, max_seq, committed,
                )
                self.store.delete_tenant_from(tenant, committed + 1)
                n, max_seq = self.store.tenant_counts().get(tenant, (0, 0))
            if n == max_seq - first + 1 or n == 0:
                nxt = max_seq + 1 if n else first
            else:
                nxt = self.store.first_gap(tenant, first, max_seq)
                log.warning(
                    "store for %s is incomplete from seq %d (a batch was cut short); re-indexing from there",
                    tenant, nxt,
                )
                self.store.delete_tenant_from(tenant, nxt)
            start[tenant] = nxt
            self._cursors[tenant] = JournalCursor(self.journal, tenant, nxt)
            self._stored[tenant] = nxt - 1
        return start

    async def start(self) -> None:
        await asyncio.to_thread(self.reconcile)
        self._task = asyncio.create_task(self._run(), name="indexer")

    async def stop(self) -> None:
        """Stop after the batch in flight is stored (an INSERT is never abandoned halfway)."""
        self._stopping = True
        self.wake.set()
        if self._task:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=60)
            except TimeoutError:
                log.error("indexer did not finish its last batch within 60 s; it is re-indexed at next start")
                self._task.cancel()

    def backlog(self) -> int:
        total = 0
        for tenant in self.journal.tenants():
            total += self.journal.committed_seq(tenant) - self.stored_seq(tenant)
        return total

    async def _run(self) -> None:
        while not self._stopping:
            events = await asyncio.to_thread(self._read_batch)
            if not events:
                self.idle.set()
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=0.5)
                except TimeoutError:
                    pass
                continue
            self.idle.clear()
            try:
                await asyncio.to_thread(self.store.insert_events, events)
            except Exception as exc:  # store down or full: keep the cursor, retry the same batch
                self.last_error = f"store insert failed: {exc}"
                log.error("%s — retrying in 2 s (the journal keeps every record)", self.last_error)
                self._rewind(events)
                await asyncio.sleep(2)
                continue
            self.last_error = None
            self.counters.stored += len(events)
            for e in events:  # batches are in seq order per tenant
                self._stored[e.tenant] = e.seq
            for hook in self.hooks:
                result = hook(events)
                if result is not None:
                    await result

    def _rewind(self, events: Sequence[Event]) -> None:
        firsts: dict[str, int] = {}
        for e in events:
            firsts[e.tenant] = min(firsts.get(e.tenant, e.seq), e.seq)
        for tenant, seq in firsts.items():
            self._cursors[tenant] = JournalCursor(self.journal, tenant, seq)

    def _read_batch(self) -> list[Event]:
        events: list[Event] = []
        for tenant in self.journal.tenants():
            cursor = self._cursors.get(tenant)
            if cursor is None:
                cursor = self._cursors[tenant] = JournalCursor(self.journal, tenant, 1)
            room = self.batch_rows - len(events)
            if room <= 0:
                break
            try:
                records = cursor.read_batch(room)
            except JournalError as exc:
                log.critical("indexer cannot read %s: %s", tenant, exc)
                self.last_error = str(exc)
                continue
            events.extend(event_from_canonical(payload) for _seq, payload in records)
        return events

    async def wait_caught_up(self, timeout: float = 30.0) -> bool:
        """Wait until everything committed so far is stored (tests, imports, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.backlog() == 0:
                return True
            self.wake.set()
            await asyncio.sleep(0.05)
        return self.backlog() == 0


_EXCERPT = 120


def unmapped_sender_event(record: RawRecord) -> Event:
    """A record whose sender maps to no tenant: kept in the system tenant for the SOC to see."""
    message = (
        f"{record.source_id}: sender {record.peer} matches no tenant network and the source has no "
        "default tenant; the record is kept here until the sender is mapped"
    )
    return pipeline_error_event(record, "source.unmapped_sender", message, tenant=SYSTEM_TENANT)


def pipeline_error_event(
    record: RawRecord, error_type: str, message: str, *, tenant: str | None = None
) -> Event:
    """An event for a record a transport could not even frame (oversized, truncated, TLS garbage).

    The message ends with the first bytes of the data, so the bad value is visible and searchable."""
    if record.payload:
        excerpt = record.payload[:_EXCERPT].decode("utf-8", "backslashreplace")
        more = "…" if len(record.payload) > _EXCERPT else ""
        message = f"{message} — data: {excerpt!r}{more}"
    return Event(
        tenant=tenant or record.tenant,
        ts=record.received_at or now_us(),
        ingested=record.received_at or now_us(),
        source=record.source_id,
        peer=record.peer,
        ecs={"event.kind": KIND_PIPELINE_ERROR, "error.type": error_type, "error.message": message},
        fields={},
        message=message,
        raw=record.payload,
    )
