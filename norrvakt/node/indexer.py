"""Moving committed events from the journal into the store, in seq order, exactly once.

Live events are handed over in memory right after their commit (no re-reading, no JSON
decoding); whenever the in-memory hand-off does not hold the next seq a tenant needs — at
start-up, after a restart, when the store fell behind and the hand-off overflowed — the
indexer reads the journal instead. Either way the store receives each tenant's events in seq
order, so the store is always a complete prefix of the journal plus at most one batch in
flight, and :meth:`Indexer.reconcile` can repair a batch a crash cut short.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from norrvakt.event import Event, event_from_canonical
from norrvakt.journal.log import Journal, JournalCursor, JournalError
from norrvakt.node.pipeline import PipelineCounters
from norrvakt.store.clickhouse import ClickHouseStore

log = logging.getLogger(__name__)

StoredHook = Callable[[Sequence[Event]], Awaitable[None] | None]

# Events kept in memory for the hand-off; beyond this the journal is read instead.
HANDOFF_LIMIT = 50_000


class Indexer:
    def __init__(
        self,
        journal: Journal,
        store: ClickHouseStore,
        *,
        batch_rows: int = 20_000,
        linger_s: float = 0.2,
        wake: asyncio.Event | None = None,
        counters: PipelineCounters | None = None,
    ) -> None:
        self.journal = journal
        self.store = store
        self.batch_rows = batch_rows
        # A small batch waits this long for more: chDB makes one part per INSERT, and a
        # part per trickle of events costs far more than 0.2 s of search latency.
        self.linger_s = linger_s
        self._hurry = 0  # callers waiting for the store to catch up: skip the linger
        self.wake = wake or asyncio.Event()
        self.counters = counters or PipelineCounters()
        self.hooks: list[StoredHook] = []  # called with every stored batch (detection, later)
        self._next: dict[str, int] = {}  # next seq to send to the store, per tenant
        self._stored: dict[str, int] = {}  # highest seq known to be in the store
        self._handoff: dict[str, list[Event]] = {}
        self._handoff_size = 0
        self._cursors: dict[str, JournalCursor] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_error: str | None = None

    # -- state -----------------------------------------------------------------------------

    def stored_seq(self, tenant: str) -> int:
        return self._stored.get(tenant, 0)

    def backlog(self) -> int:
        return sum(self.journal.committed_seq(t) - self.stored_seq(t) for t in self.journal.tenants())

    def offer(self, events: list[Event]) -> None:
        """Committed events, straight from the pipeline (called in the event loop)."""
        for e in events:
            buf = self._handoff.get(e.tenant)
            if buf is None:
                buf = self._handoff[e.tenant] = []
            buf.append(e)
        self._handoff_size += len(events)
        if self._handoff_size > HANDOFF_LIMIT:
            # The store is far behind: let the journal serve these events later.
            self._handoff.clear()
            self._handoff_size = 0
        self.wake.set()

    # -- start-up --------------------------------------------------------------------------

    def reconcile(self) -> dict[str, int]:
        """Make the store a complete prefix of the journal; returns tenant → first seq to index.

        A killed INSERT can leave part of a batch; rows past the first missing seq are deleted
        and re-indexed from the journal, so every committed event ends up stored exactly once.
        """
        counts = self.store.tenant_counts()
        for tenant in self.journal.tenants():
            committed = self.journal.committed_seq(tenant)
            segs = self.journal.segments(tenant)
            first = segs[0][0] if segs else 1
            n, max_seq = counts.get(tenant, (0, 0))
            if max_seq > committed:
                log.critical(
                    "store has %s rows up to seq %d but the journal ends at %d; the journal decides — "
                    "removing rows past it (run `norrvakt verify`)",
                    tenant,
                    max_seq,
                    committed,
                )
                self.store.delete_tenant_from(tenant, committed + 1)
                n, max_seq = self.store.tenant_counts().get(tenant, (0, 0))
            if n == 0:
                nxt = first
            elif n == max_seq - first + 1:
                nxt = max_seq + 1
            else:
                nxt = self.store.first_gap(tenant, first, max_seq)
                log.warning(
                    "store for %s is incomplete from seq %d (a batch was cut short); re-indexing from there",
                    tenant,
                    nxt,
                )
                self.store.delete_tenant_from(tenant, nxt)
            self._next[tenant] = nxt
            self._stored[tenant] = nxt - 1
        return dict(self._next)

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

    async def wait_caught_up(self, timeout: float = 30.0) -> bool:
        """Wait until everything committed so far is stored (tests, imports, benchmarks)."""
        deadline = time.monotonic() + timeout
        self._hurry += 1
        try:
            while time.monotonic() < deadline:
                if self.backlog() == 0:
                    return True
                self.wake.set()
                await asyncio.sleep(0.02)
            return self.backlog() == 0
        finally:
            self._hurry -= 1

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            if self.linger_s and not self._hurry and 0 < self.backlog() < self.batch_rows // 2:
                await asyncio.sleep(self.linger_s)
            from_memory, reads = self._plan()
            events = from_memory
            if reads:
                events = events + await asyncio.to_thread(self._read_journal, reads)
            if not events:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=0.5)
                except TimeoutError:
                    pass
                continue
            try:
                await asyncio.to_thread(self.store.insert_events, events)
            except Exception as exc:  # store down or full: retry the same seqs from the journal
                self.last_error = f"store insert failed: {exc}"
                log.error("%s — retrying in 2 s (the journal keeps every record)", self.last_error)
                self._rewind(events)
                await asyncio.sleep(2)
                continue
            self.last_error = None
            self.counters.stored += len(events)
            for e in events:  # in seq order per tenant
                self._stored[e.tenant] = e.seq
            for hook in self.hooks:
                result = hook(events)
                if result is not None:
                    await result

    def _plan(self) -> tuple[list[Event], dict[str, tuple[int, int]]]:
        """Next batch: events taken from the hand-off, and (first seq, count) to read per tenant."""
        events: list[Event] = []
        reads: dict[str, tuple[int, int]] = {}
        room = self.batch_rows
        for tenant in self.journal.tenants():
            if room <= 0:
                break
            nxt = self._next.get(tenant)
            if nxt is None:
                segs = self.journal.segments(tenant)
                nxt = self._next[tenant] = segs[0][0] if segs else 1
            committed = self.journal.committed_seq(tenant)
            if committed < nxt:
                continue
            buf = self._handoff.get(tenant)
            upto = committed
            if buf:
                first = buf[0].seq
                if buf[-1].seq < nxt:
                    self._handoff_size -= len(buf)
                    buf.clear()
                elif first <= nxt:
                    start = nxt - first
                    take = buf[start : start + room]
                    del buf[: start + len(take)]
                    self._handoff_size -= start + len(take)
                    events.extend(take)
                    self._next[tenant] = nxt + len(take)
                    room -= len(take)
                    continue
                else:
                    upto = first - 1  # the journal fills the gap before the hand-off
            count = min(room, upto - nxt + 1)
            reads[tenant] = (nxt, count)
            self._next[tenant] = nxt + count
            room -= count
        return events, reads

    def _read_journal(self, reads: dict[str, tuple[int, int]]) -> list[Event]:
        events: list[Event] = []
        for tenant, (first, count) in reads.items():
            cursor = self._cursors.get(tenant)
            if cursor is None or cursor.next_seq != first:
                cursor = self._cursors[tenant] = JournalCursor(self.journal, tenant, first)
            try:
                records = cursor.read_batch(count)
            except JournalError as exc:
                log.critical("indexer cannot read %s: %s", tenant, exc)
                self.last_error = str(exc)
                records = []
            events.extend(event_from_canonical(payload) for _seq, payload in records)
            if len(records) < count:
                # Unreadable records: try again from the first one not read.
                self._next[tenant] = first + len(records)
        return events

    def _rewind(self, events: Sequence[Event]) -> None:
        for e in events:
            if e.seq < self._next.get(e.tenant, e.seq + 1):
                self._next[e.tenant] = e.seq
        self._handoff.clear()
        self._handoff_size = 0
