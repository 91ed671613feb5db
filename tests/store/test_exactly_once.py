"""Store writers: exactly-once inserts by dedupe token over ranges re-formed after a crash.

Real chDB throughout (ClickHouse 26.9 in-process). The oracle is always the same: rows stored
== distinct seqs == seqs sent. Each exactly-once case has a negative control beside it — the
same steps with tokens and deduplication off — that stores duplicates, so the oracle can fail.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from norrvakt.event import Event
from norrvakt.store.clickhouse import ClickHouseStore, StoreConfig, StoreError, _columns
from norrvakt.store.ledger import FileLedger, LedgerState
from norrvakt.store.ranges import dedupe_token, next_range, range_end
from norrvakt.store.schema import EVENTS_TABLE, events_ddl
from norrvakt.store.writer import StoreWriter, StoreWriterConfig

DAY_US = 86_400_000_000
MIDNIGHT = 1_795_737_600_000_000  # 2026-11-27 00:00 UTC
_db = itertools.count()


def _event(seq: int, *, tenant: str = "lulea", raw_size: int = 0, next_day_from: int = 0) -> Event:
    """Seq n is always the same event. ``next_day_from``: seqs from there were received after
    midnight (their rows go to the next day's partition)."""
    ingested = MIDNIGHT - 10_000_000 + seq
    if next_day_from and seq >= next_day_from:
        ingested = MIDNIGHT + seq
    raw = f"<13>1 - vm - - - - event {seq} ".encode()
    return Event(
        tenant=tenant,
        seq=seq,
        ts=ingested - 5_000_000,
        ingested=ingested,
        source="syslog-tcp",
        peer="127.0.0.1:5000",
        ecs={
            "event.kind": "event",
            "host.name": f"vm{seq % 5}",
            **({"user.name": "anna"} if seq % 3 else {}),
        },
        fields={"n": str(seq)},
        message=f"event {seq}",
        raw=raw + b"x" * max(0, raw_size - len(raw)),
    )


def _events(first: int, last: int, *, raw_size: int = 0, next_day_from: int = 0) -> list[Event]:
    return [_event(n, raw_size=raw_size, next_day_from=next_day_from) for n in range(first, last + 1)]


@pytest.fixture
def dedupe_store(chdb_path: Path) -> Iterator[ClickHouseStore]:
    """A store replica's table: keeps the ids of the last 1,000 blocks."""
    database = f"test_eo_{os.getpid()}_{next(_db)}"
    s = StoreConfig(
        dsn=f"chdb://{chdb_path}", database=database, retention_days=0, dedupe_window=1000
    ).build()
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{database}`")
    s.close()


def _counts(store: ClickHouseStore, tenant: str = "lulea") -> tuple[int, int]:
    """(rows, distinct seqs) of ``tenant``."""
    (n, u) = store.query(
        f"SELECT count(), uniqExact(seq) FROM {EVENTS_TABLE} WHERE tenant = {{t:String}}", {"t": tenant}
    )[0]
    return int(n), int(u)


def _parts(store: ClickHouseStore) -> int:
    return int(store.query(f"SELECT uniqExact(_part) FROM {EVENTS_TABLE}")[0][0])


# -- ranges: a pure function of the seqs ------------------------------------------------------


def test_ranges_never_cross_an_aligned_boundary_and_tokens_name_their_rows() -> None:
    assert [range_end(s, 1000) for s in (1, 999, 1000, 1001, 2000, 2001)] == [1000] * 3 + [2000] * 2 + [3000]
    assert next_range(1, 999, 1000, partial=False) is None  # short of the boundary: wait
    assert next_range(1, 999, 1000, partial=True) == (1, 999)  # the linger has passed
    assert next_range(1, 5000, 1000, partial=False) == (1, 1000)
    # after a partial [1001, 1300], the rest of its aligned range is a range of its own
    assert next_range(1301, 5000, 1000, partial=False) == (1301, 2000)
    assert next_range(2001, 2000, 1000, partial=True) is None
    assert dedupe_token("lulea", 1301, 2000) == "lulea:1301-2000"

    # Whatever the arrivals and lingers: ranges are gapless, start at the next unstored seq, end
    # at or before their boundary, and one token never names two different sets of rows.
    rng = random.Random(13)
    for _ in range(100):
        b = rng.choice([1, 7, 100, 1000])
        first, available = 1, 0
        seen: dict[str, tuple[int, int]] = {}
        while first <= 5_000:
            available += rng.randint(0, 3 * b)
            cut = next_range(first, available, b, partial=rng.random() < 0.3)
            if cut is None:
                continue
            lo, hi = cut
            assert lo == first and lo <= hi <= min(available, range_end(lo, b))
            token = dedupe_token("lulea", lo, hi)
            assert seen.setdefault(token, (lo, hi)) == (lo, hi)
            first = hi + 1


# -- the insert: one block, a token ----------------------------------------------------------


def test_a_replay_of_the_same_batch_with_its_token_is_stored_once(dedupe_store: ClickHouseStore) -> None:
    batch = _events(1, 1000)
    dedupe_store.insert_block(batch, token="lulea:1-1000")
    dedupe_store.insert_block(batch, token="lulea:1-1000")
    assert _counts(dedupe_store) == (1000, 1000)


def test_negative_control_the_same_replay_with_tokens_and_dedupe_off_stores_duplicates(
    store: ClickHouseStore, dedupe_store: ClickHouseStore
) -> None:
    batch = _events(1, 1000)
    for s in (store, dedupe_store):  # the embedded node's table, and a replica's with dedupe off
        s.insert_block(batch, token=None, dedupe=False)
        s.insert_block(batch, token=None, dedupe=False)
        assert _counts(s) == (2000, 1000)


def test_without_a_token_a_deduplicating_table_still_drops_an_equal_block(
    dedupe_store: ClickHouseStore,
) -> None:
    """Why a negative control must turn deduplication off, not only leave out the token: the
    table then deduplicates by the block's content hash, and a replay is the same content."""
    batch = _events(1, 1000)
    dedupe_store.insert_block(batch, token=None)
    dedupe_store.insert_block(batch, token=None)
    assert _counts(dedupe_store) == (1000, 1000)


def _insert_in_blocks(
    store: ClickHouseStore, events: list[Event], token: str, block_rows: int | None, *, squash: bool = False
) -> None:
    """An INSERT cut into blocks of ``block_rows`` — None: clickhouse-connect's own cut, by its
    estimate of bytes per row — the thing insert_block never does. ``squash``: the server's
    default, gluing small blocks together up to min_insert_block_size_rows/bytes."""
    names, columns = _columns(events)
    types = [store._column_types[n] for n in names]
    settings: dict[str, object] = {"async_insert": 0, "insert_deduplication_token": token}
    if not squash:
        settings.update(min_insert_block_size_rows=0, min_insert_block_size_bytes=0)
    context = store._writer.create_insert_context(
        EVENTS_TABLE, names, column_type_names=types, column_oriented=True, settings=settings
    )
    if block_rows is not None:
        context.req_block_size = block_rows
    context.data = columns
    store._writer.data_insert(context)


def test_a_replay_with_another_block_size_silently_drops_rows(chdb_path: Path) -> None:
    """chDB 26.9: a batch of 1,000 sent as two blocks of 500 whose first block landed (the
    process died before the second), replayed as one block of 1,000 under the same token,
    stores 500: the replay's one block has the first attempt's first block's id. Replayed as
    the same two blocks but with the server's default squashing (one block of 1,000 again, by
    another route), it stores 1,500. Only the same blocks store it exactly once."""
    token, batch = "lulea:1-1000", _events(1, 1000)
    stores = []
    for _ in range(3):
        db = f"test_eo_bs_{os.getpid()}_{next(_db)}"
        stores.append(
            StoreConfig(dsn=f"chdb://{chdb_path}", database=db, retention_days=0, dedupe_window=1000).build()
        )
    same, other, squashed = stores
    try:
        for s in stores:  # the state a crash after the first of two blocks leaves
            _insert_in_blocks(s, batch[:500], token, block_rows=500)
            assert _counts(s) == (500, 500)
        _insert_in_blocks(same, batch, token, block_rows=500)  # the replay with the same block size
        assert _counts(same) == (1000, 1000)  # block 1 skipped, block 2 stored: exactly once
        other.insert_block(batch, token=token)  # the replay as one block
        assert _counts(other) == (500, 500)  # 500 rows silently dropped
        _insert_in_blocks(squashed, batch, token, block_rows=500, squash=True)
        assert _counts(squashed) == (1500, 1000)  # 500 rows twice
    finally:
        for s in stores:
            s.command(f"DROP DATABASE IF EXISTS `{s.config.database}`")
            s.close()


def test_a_batch_is_one_block_whatever_its_rows(dedupe_store: ClickHouseStore) -> None:
    """3,000 rows of 2 KB: clickhouse-connect's own cut sends them as several blocks, which the
    server (not squashing, as a store writer's inserts do not) stores as several parts;
    insert_block sends one, so a replay can never be cut differently."""
    dedupe_store.command(f"SYSTEM STOP MERGES {EVENTS_TABLE}")
    _insert_in_blocks(dedupe_store, _events(1, 3000, raw_size=2048), "lulea:1-3000", block_rows=None)
    split = _parts(dedupe_store)
    assert split > 1, "clickhouse-connect sent these rows as one block; the test no longer shows the risk"
    dedupe_store.insert_block(_events(3001, 6000, raw_size=2048), token="lulea:3001-6000")
    assert _parts(dedupe_store) == split + 1
    assert _counts(dedupe_store) == (6000, 6000)


def test_a_batch_across_midnight_half_landed_is_completed_by_its_replay(
    dedupe_store: ClickHouseStore, tmp_path: Path
) -> None:
    """A batch whose rows fall on two days is a part per day; a writer killed inside the INSERT
    can leave the first day's part alone. The replay (same rows, one block, same token) skips
    that part and stores the other: ClickHouse tracks the token per partition."""
    batch = _events(1, 1000, next_day_from=601)
    # The state the kill leaves: the first day's rows under the batch's token. (Killing chDB
    # between two parts of one INSERT cannot be timed from outside; this is that state.)
    dedupe_store.insert_block(batch[:600], token="lulea:1-1000")
    ledger_dir = tmp_path / "ledger"
    ledger = FileLedger(ledger_dir)
    ledger.save("lulea", LedgerState(batch_rows=1000, stored_through=0, pending=(1, 1000)))
    writer = StoreWriterConfig(ledger_dir=ledger_dir, batch_rows=1000).build(dedupe_store, ledger)
    assert writer.resume("lulea") == 1  # 600 of 1,000 stored: the range is replayed
    assert writer.offer(_events(1, 1000, next_day_from=601)) == [("lulea", 1, 1000)]
    assert _counts(dedupe_store) == (1000, 1000)
    assert ledger.load("lulea") == LedgerState(batch_rows=1000, stored_through=1000)


# -- the writer --------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _writer(
    store: ClickHouseStore,
    tmp_path: Path,
    clock: _Clock,
    *,
    dedupe: bool = True,
    after_insert: Callable[[str, int, int], None] | None = None,
) -> StoreWriter:
    config = StoreWriterConfig(ledger_dir=tmp_path / "ledger", batch_rows=1000, linger_s=1.0, dedupe=dedupe)
    config.build(store)  # the config's own checks
    return StoreWriter(config, store, FileLedger(config.ledger_dir), clock=clock, after_insert=after_insert)


def test_the_writer_cuts_full_ranges_at_once_and_a_partial_one_after_the_linger(
    dedupe_store: ClickHouseStore, tmp_path: Path
) -> None:
    clock = _Clock()
    w = _writer(dedupe_store, tmp_path, clock)
    assert w.offer(_events(1, 2300)) == [("lulea", 1, 1000), ("lulea", 1001, 2000)]
    assert w.flush_due() == []  # [2001, 2300] has not waited yet
    clock.now = 1.5
    assert w.flush_due() == [("lulea", 2001, 2300)]
    assert w.offer(_events(1, 3100)) == [("lulea", 2301, 3000)]  # redelivered seqs skipped
    assert w.stop() == [("lulea", 3001, 3100)]
    assert _counts(dedupe_store) == (3100, 3100)
    assert w.stored_through("lulea") == 3100


def _lose_one_answer(at_first: int) -> Callable[[str, int, int], None]:
    """An insert that lands but whose answer is lost (a timeout, a dropped connection)."""
    lost: list[int] = []

    def hook(tenant: str, first: int, last: int) -> None:
        if first == at_first and not lost:
            lost.append(first)
            raise ConnectionError(f"answer to the insert of {first}-{last} lost")

    return hook


@pytest.mark.parametrize("dedupe", [True, False], ids=["tokens", "negative-control"])
def test_a_retried_insert_whose_answer_was_lost(
    dedupe: bool, dedupe_store: ClickHouseStore, store: ClickHouseStore, tmp_path: Path
) -> None:
    """The writer cannot know whether [1001, 1300] landed; it retries the same range — not the
    longer one the events available by then would give — and the token makes it a no-op.
    With tokens and dedupe off the same retry stores those 300 events twice."""
    target = dedupe_store if dedupe else store
    clock = _Clock()
    w = _writer(target, tmp_path, clock, dedupe=dedupe, after_insert=_lose_one_answer(1001))
    w.offer(_events(1, 1300))
    clock.now = 2.0
    with pytest.raises(ConnectionError):
        w.flush_due()
    assert FileLedger(tmp_path / "ledger").load("lulea") == LedgerState(1000, 1000, (1001, 1300))
    assert w.offer(_events(1301, 1600)) == [("lulea", 1001, 1300)]  # the recorded range, again
    assert w.stop() == [("lulea", 1301, 1600)]
    assert _counts(target) == ((1600, 1600) if dedupe else (1900, 1600))


def _run(phase: str, directory: Path, dedupe: bool) -> subprocess.CompletedProcess[str]:
    script = Path(__file__).with_name("writer_crash.py")
    flag = "--dedupe" if dedupe else "--no-dedupe"
    return subprocess.run(
        [sys.executable, str(script), phase, "--dir", str(directory), flag],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("dedupe", [True, False], ids=["tokens", "negative-control"])
def test_a_writer_killed_between_insert_and_checkpoint(dedupe: bool, tmp_path: Path) -> None:
    """A real process dies right after inserting the partial range [1001, 1300] and before its
    checkpoint. Restarted with more events available (1..1600), it re-forms [1001, 1300] from
    its ledger — not [1001, 1600] — finds it stored and goes on at 1301; replaying that range
    anyway is a no-op. The negative control (no tokens, dedupe off, at-least-once) stores the
    300 again on restart, and 300 more on the extra replay."""
    crashed = _run("crash", tmp_path, dedupe)
    assert crashed.returncode == 137, crashed.stderr
    resumed = _run("resume", tmp_path, dedupe)
    assert resumed.returncode == 0, resumed.stderr
    got = json.loads(resumed.stdout)
    assert got["ledger_before"] == [1000, [1001, 1300]]
    assert got["ledger_after"] == [1600, None]
    if dedupe:
        assert got["resumed_at"] == 1301
        assert got["ranges"] == [[1301, 1600]]
        assert (got["rows"], got["unique_seqs"], got["rows_after_replaying_1001_1300"]) == (1600, 1600, 1600)
    else:
        assert got["ranges"] == [[1001, 1300], [1301, 1600]]
        assert (got["rows"], got["unique_seqs"], got["rows_after_replaying_1001_1300"]) == (1900, 1600, 2200)


# -- what the writer refuses -------------------------------------------------------------------


def test_the_writer_refuses_what_would_break_exactly_once(
    dedupe_store: ClickHouseStore, store: ClickHouseStore, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="keeps no block ids"):
        StoreWriterConfig(ledger_dir=tmp_path / "l0").build(store)

    ledger = FileLedger(tmp_path / "l1")
    ledger.save("lulea", LedgerState(batch_rows=1000, stored_through=0, pending=(1, 1000)))
    other_b = StoreWriterConfig(ledger_dir=tmp_path / "l1", batch_rows=500).build(dedupe_store)
    with pytest.raises(StoreError, match=r"batch_rows 500 configured but range 1-1000 was cut with 1000"):
        other_b.resume("lulea")

    w = StoreWriterConfig(ledger_dir=tmp_path / "l2", batch_rows=1000).build(dedupe_store)
    with pytest.raises(StoreError, match=r"store writer boden: expected seq 1 from the stream, got 2"):
        w.offer([_event(2, tenant="boden")])

    dedupe_store.insert_block([_event(s) for s in (1, 2, 4)], token="x")  # not a complete prefix
    with pytest.raises(StoreError, match=r"no ledger .*holds 3 rows up to seq 4 \(not a complete prefix\)"):
        StoreWriterConfig(ledger_dir=tmp_path / "l3").build(dedupe_store).resume("lulea")
    FileLedger(tmp_path / "l4").save("lulea", LedgerState(batch_rows=10_000, stored_through=2))
    with pytest.raises(StoreError, match=r"holds seqs up to 4 but the ledger .* says 2"):
        StoreWriterConfig(ledger_dir=tmp_path / "l4").build(dedupe_store).resume("lulea")

    with pytest.raises(StoreError, match="deduplicates inserts"):
        dedupe_store.delete_tenant_from("lulea", 3)


def test_batch_rows_may_change_after_a_clean_stop(dedupe_store: ClickHouseStore, tmp_path: Path) -> None:
    first = StoreWriterConfig(ledger_dir=tmp_path / "l", batch_rows=1000).build(dedupe_store)
    first.offer(_events(1, 1200))
    first.stop()
    second = StoreWriterConfig(ledger_dir=tmp_path / "l", batch_rows=500).build(dedupe_store)
    assert second.resume("lulea") == 1201
    assert second.offer(_events(1201, 1600)) == [("lulea", 1201, 1500)]


def test_the_embedded_store_is_unchanged_by_default(store: ClickHouseStore) -> None:
    assert store.config.dedupe_window == 0 and store.config.cluster is None
    assert "deduplication" not in events_ddl(395)
    assert "deduplication" not in store.query(f"SHOW CREATE TABLE {EVENTS_TABLE}")[0][0]
    store.insert_events(_events(1, 10))
    store.insert_events(_events(1, 10))  # the embedded table keeps no block ids: no dedupe
    assert _counts(store) == (20, 10)
    store.delete_tenant_from("lulea", 1)
    assert _counts(store) == (0, 0)
