"""A store writer: one tenant stream's events into one store replica, each event exactly once.

Fed by a consumer of the tenant's stream (seq 1, 2, 3, … in order; redelivered events welcome),
it cuts batches by the rules of norrvakt.store.ranges, and for each:

1. records the range in its ledger (``pending``, fsynced) — before anything reaches the store;
2. inserts it as one block with ``insert_deduplication_token = {tenant}:{first}-{last}``;
3. records ``stored_through = last`` (its checkpoint; the consumer may now ack up to ``last``).

A crash anywhere leaves a ledger that says what to do: ``pending`` is replayed exactly — the
same rows (redelivered by the stream, which only acks what is stored), one block, the same token:

- crash before 2: nothing was inserted; the replay inserts it.
- crash between 2 and 3 (the insert landed, the checkpoint did not): the writer asks the store
  and finds the whole range there, so it does not insert again; had it replayed anyway, or
  asked a replica that does not show the insert yet, the token makes ClickHouse skip it.
- crash inside 2 (a batch across midnight is a part per day; one may have landed): the replay
  with the same token stores the missing part and skips the landed one (ClickHouse tracks the
  token per partition; tests/store/test_exactly_once.py).

An insert that fails (the store down, a timeout that may or may not have landed) keeps
``pending`` and is retried with the same range — never a longer one — at the next call.

One writer per replica and tenant at a time (a lease); two overlapping would cut partial ranges
differently. ``dedupe=False`` is at-least-once, the negative control: no token, deduplication
off, and a pending range replayed without asking the store — a replay then stores duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from norrvakt.event import Event
from norrvakt.store.clickhouse import ClickHouseStore, StoreError
from norrvakt.store.ledger import FileLedger, Ledger, LedgerState
from norrvakt.store.ranges import dedupe_token, next_range

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreWriterConfig:
    """A store replica's writer.

    ``ledger_dir``: where the per-tenant ledger files live (beside the replica's store).
    ``batch_rows``: B, rows per full range; recorded in the ledger, and a different B is
    refused while a range is pending (change it after a clean :meth:`StoreWriter.stop`).
    ``linger_s``: how long the oldest event of a partial range waits before the partial range
    is inserted on its own. ``dedupe``: tokens, deduplication and the resume check on (False
    only for the negative control: at-least-once). The store must keep block ids
    (``StoreConfig.dedupe_window`` or the cluster schema) unless ``dedupe`` is False.
    """

    ledger_dir: Path
    batch_rows: int = 10_000
    linger_s: float = 1.0
    dedupe: bool = True

    def build(
        self,
        store: ClickHouseStore,
        ledger: Ledger | None = None,
        after_insert: Callable[[str, int, int], None] | None = None,
    ) -> StoreWriter:
        if not 1 <= self.batch_rows <= 1_000_000:
            raise ValueError(f"store writer: batch_rows {self.batch_rows} — must be 1..1000000")
        if self.linger_s < 0:
            raise ValueError(f"store writer: linger_s {self.linger_s} — must be ≥ 0")
        if self.dedupe and store.config.dedupe_window <= 0 and store.config.cluster is None:
            raise StoreError(
                f"store writer: the store {store.config.database!r} keeps no block ids (dedupe_window 0), "
                "so a replay after a crash would store its batch twice"
            )
        ledger = ledger if ledger is not None else FileLedger(self.ledger_dir)
        return StoreWriter(self, store, ledger, after_insert=after_insert)


@dataclass
class _Tenant:
    next_seq: int  # the first seq not stored
    pending_last: int | None = None  # a recorded range must be re-formed up to exactly here
    buffer: list[Event] = field(default_factory=list)  # next_seq, next_seq + 1, … in order
    oldest_at: float = 0.0  # when buffer[0] arrived


class StoreWriter:
    """Not thread-safe: one consumer loop calls it (offer / flush_due / stop)."""

    def __init__(
        self,
        config: StoreWriterConfig,
        store: ClickHouseStore,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.monotonic,
        after_insert: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.ledger = ledger
        self._clock = clock
        self._after_insert = after_insert  # fault injection for the crash tests
        self._tenants: dict[str, _Tenant] = {}
        self.inserts = 0
        self.rows = 0

    # -- start-up --------------------------------------------------------------------------

    def resume(self, tenant: str) -> int:
        """Load ``tenant``'s ledger; returns the first seq the writer needs from the stream."""
        if tenant in self._tenants:
            return self._tenants[tenant].next_seq
        b = self.config.batch_rows
        state = self.ledger.load(tenant)
        n, max_seq = self.store.tenant_counts().get(tenant, (0, 0))
        if state is None:
            # No ledger: a new replica (empty store) or a lost ledger. A complete prefix is safe
            # to continue after; anything else cannot be told apart from a half-done batch.
            if n != max_seq:
                raise StoreError(
                    f"store writer {tenant}: no ledger in {self.config.ledger_dir}, and the store holds {n} "
                    f"rows up to seq {max_seq} (not a complete prefix); rebuild this replica from the stream"
                )
            state = LedgerState(batch_rows=b, stored_through=max_seq)
            self.ledger.save(tenant, state)
        ahead = state.pending[1] if state.pending else state.stored_through
        if max_seq > ahead:
            raise StoreError(
                f"store writer {tenant}: the store holds seqs up to {max_seq} but the ledger "
                f"{self.config.ledger_dir} says {ahead} (a ledger restored from a backup?); "
                "rebuild this replica from the stream"
            )
        if state.batch_rows != b:
            if state.pending:
                raise StoreError(
                    f"store writer {tenant}: batch_rows {b} configured but range {state.pending[0]}-"
                    f"{state.pending[1]} was cut with {state.batch_rows} and may be half inserted; "
                    f"start with batch_rows {state.batch_rows} (change it after a clean stop)"
                )
            log.info("store writer %s: batch_rows %d → %d after a clean stop", tenant, state.batch_rows, b)
            state = LedgerState(batch_rows=b, stored_through=state.stored_through)
            self.ledger.save(tenant, state)
        t = _Tenant(next_seq=state.stored_through + 1)
        if state.pending:
            first, last = state.pending
            stored = self.config.dedupe and self.store.count_range(tenant, first, last) == last - first + 1
            if stored:
                # The insert landed; only the checkpoint was lost. Do not insert again: the
                # replay would be skipped, but only while the block id is in the window.
                log.info("store writer %s: range %d-%d is stored; checkpoint recorded", tenant, first, last)
                self.ledger.save(tenant, LedgerState(batch_rows=b, stored_through=last))
                t.next_seq = last + 1
            else:
                how = "with its token" if self.config.dedupe else "without a token (dedupe off)"
                log.warning("store writer %s: replaying range %d-%d %s", tenant, first, last, how)
                t.next_seq, t.pending_last = first, last
        self._tenants[tenant] = t
        return t.next_seq

    # -- feeding ---------------------------------------------------------------------------

    def offer(self, events: Sequence[Event]) -> list[tuple[str, int, int]]:
        """Take events (per tenant in seq order; already-stored ones are skipped) and insert every
        range that is due. Returns the ranges inserted, as (tenant, first, last)."""
        now = self._clock()
        touched: set[str] = set()
        for e in events:
            t = self._tenants.get(e.tenant)
            if t is None:
                self.resume(e.tenant)
                t = self._tenants[e.tenant]
            expected = t.next_seq + len(t.buffer)
            if e.seq < expected:
                continue  # redelivered: stored, or already buffered
            if e.seq > expected:
                raise StoreError(
                    f"store writer {e.tenant}: expected seq {expected} from the stream, got {e.seq} "
                    "(the stream must be gapless)"
                )
            if not t.buffer:
                t.oldest_at = now
            t.buffer.append(e)
            touched.add(e.tenant)
        done: list[tuple[str, int, int]] = []
        for tenant in sorted(touched):
            done += self._drain(tenant, partial=False)
        return done

    def flush_due(self) -> list[tuple[str, int, int]]:
        """Insert the partial ranges whose oldest event has waited ``linger_s`` (and any range a
        failed insert left behind)."""
        now = self._clock()
        done: list[tuple[str, int, int]] = []
        for tenant, t in sorted(self._tenants.items()):
            if t.buffer:
                done += self._drain(tenant, partial=now - t.oldest_at >= self.config.linger_s)
        return done

    def stop(self) -> list[tuple[str, int, int]]:
        """A clean stop: insert everything buffered, so no range is left pending."""
        done: list[tuple[str, int, int]] = []
        for tenant in sorted(self._tenants):
            done += self._drain(tenant, partial=True)
        return done

    def stored_through(self, tenant: str) -> int:
        """Every seq of ``tenant`` up to this is in the store (the consumer may ack up to it)."""
        t = self._tenants.get(tenant)
        return t.next_seq - 1 if t else 0

    # -- inserting -------------------------------------------------------------------------

    def _drain(self, tenant: str, *, partial: bool) -> list[tuple[str, int, int]]:
        t = self._tenants[tenant]
        done: list[tuple[str, int, int]] = []
        while t.buffer:
            available = t.next_seq + len(t.buffer) - 1
            if t.pending_last is not None:
                # A recorded range is re-formed exactly: never cut shorter or longer.
                cut = (t.next_seq, t.pending_last) if available >= t.pending_last else None
            else:
                cut = next_range(t.next_seq, available, self.config.batch_rows, partial=partial)
            if cut is None:
                break
            first, last = cut
            self._insert(tenant, t, first, last)
            done.append((tenant, first, last))
        return done

    def _insert(self, tenant: str, t: _Tenant, first: int, last: int) -> None:
        b = self.config.batch_rows
        rows = t.buffer[: last - first + 1]
        if t.pending_last is None:
            self.ledger.save(
                tenant, LedgerState(batch_rows=b, stored_through=first - 1, pending=(first, last))
            )
            t.pending_last = last  # a failed insert is retried with this range, not a longer one
        token = dedupe_token(tenant, first, last) if self.config.dedupe else None
        self.store.insert_block(rows, token=token, dedupe=self.config.dedupe)
        if self._after_insert is not None:
            self._after_insert(tenant, first, last)
        self.ledger.save(tenant, LedgerState(batch_rows=b, stored_through=last))
        del t.buffer[: last - first + 1]
        t.next_seq, t.pending_last = last + 1, None
        if t.buffer:
            t.oldest_at = self._clock()  # the rest arrived no later than now; linger anew
        self.inserts += 1
        self.rows += len(rows)
