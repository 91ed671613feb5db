"""The store's insert sends only the ECS columns a batch has, with the types read once (#12).

Every row must come out exactly as the earlier insert stored it — all ~60 ECS columns sent,
empty ones as ``""``, column types described before each insert — so the reference here is
that insert, kept as a small function, writing the same events into a second database.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from norrvakt.event import Event, canonical_bytes
from norrvakt.store.clickhouse import ClickHouseStore, StoreConfig, StoreError
from norrvakt.store.schema import ECS_COLUMNS, EVENTS_TABLE, INSERT_COLUMNS, events_ddl
from tests.journal.workload import windows_like_events

_db = itertools.count()


def _reference_insert(store: ClickHouseStore, events: Sequence[Event]) -> None:
    """The insert as it was at commit 267ee2b: every column, types described by the client."""
    n = len(events)
    ecs_cols: dict[str, list[Any]] = {name: [""] * n for name in ECS_COLUMNS}
    for i, e in enumerate(events):
        for name, value in e.ecs.items():
            col = ecs_cols.get(name)
            if col is not None:
                col[i] = value
    columns = [
        [e.tenant for e in events],
        [e.seq for e in events],
        [e.ts for e in events],
        [e.ingested for e in events],
        [e.source for e in events],
        [e.peer for e in events],
        *ecs_cols.values(),
        [e.fields for e in events],
        [e.message for e in events],
        [e.raw for e in events],
    ]
    store._writer.insert(EVENTS_TABLE, columns, column_names=list(INSERT_COLUMNS), column_oriented=True)


def _varied_events() -> list[Event]:
    events = windows_like_events(700, seed=21)
    events[0].ecs = {}  # no ECS field at all
    events[1].ecs = {"event.kind": "", "no.such.field": "kept out of the columns", "host.name": "WS-1"}
    events[2].ecs = {name: f"v-{i}-åäö" for i, name in enumerate(ECS_COLUMNS)}  # every column
    events[3].fields = {}
    events[4].fields = {"Åtkomst": "nekad", "": "empty key", "tab\tkey": "line\nbreak"}
    events[5].raw = b"\x00\xff\xfe binary"
    events[6].ts, events[6].ingested = 0, 1
    events[7].ts = 7_258_118_400_000_000  # 2200-01-01
    events[8].message = ""
    for i, e in enumerate(events):
        e.seq = i + 1
    return events


@pytest.fixture
def reference(chdb_path: Path) -> Iterator[ClickHouseStore]:
    database = f"reference_{os.getpid()}_{next(_db)}"
    s = StoreConfig(dsn=f"chdb://{chdb_path}", database=database, retention_days=0).build()
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{database}`")
    s.close()


def _rows(store: ClickHouseStore) -> list[tuple[Any, ...]]:
    return store.query(f"SELECT *, message_lower FROM {EVENTS_TABLE} ORDER BY tenant, seq")


def test_rows_are_the_ones_the_full_insert_stored(store: ClickHouseStore, reference: ClickHouseStore) -> None:
    events = _varied_events()
    for batch in (events[:1], events[1:3], events[3:200], events[200:]):  # batches of varied columns
        store.insert_events(batch)
        _reference_insert(reference, batch)
    got, want = _rows(store), _rows(reference)
    assert len(got) == len(events)
    assert got == want
    for tenant in {e.tenant for e in events}:
        # An ECS name without a column ("no.such.field") is not stored, by either insert.
        mine = [e for e in events if e.tenant == tenant and "no.such.field" not in e.ecs]
        back = store.fetch_events(tenant, [e.seq for e in mine])
        assert [canonical_bytes(e) for e in back] == [canonical_bytes(e) for e in mine]


def test_a_batch_without_ecs_fields_is_stored(store: ClickHouseStore) -> None:
    event = _varied_events()[0]
    store.insert_events([event])
    (back,) = store.fetch_events(event.tenant, [event.seq])
    assert canonical_bytes(back) == canonical_bytes(event)


def test_a_table_without_a_column_is_named(chdb_path: Path) -> None:
    """A table made by another version, lacking a column: the insert says which one."""
    database = f"older_{os.getpid()}_{next(_db)}"
    bootstrap = StoreConfig(dsn=f"chdb://{chdb_path}", database="default", retention_days=0)
    setup = bootstrap.build()
    try:
        setup.command(f"CREATE DATABASE `{database}`")
        ddl = events_ddl(0).replace("  `user_id` String,\n", "")
        assert "`user_id`" not in ddl
        setup.command(
            ddl.replace(f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE}", f"CREATE TABLE `{database}`.events")
        )
        store = StoreConfig(dsn=f"chdb://{chdb_path}", database=database, retention_days=0).build()
        event = _varied_events()[9]
        event.ecs["user.id"] = "S-1-5-18"
        with pytest.raises(StoreError, match="has no column 'user_id'"):
            store.insert_events([event])
        event.ecs.pop("user.id")
        store.insert_events([event])  # without that field the table takes it
        assert store.tenant_counts() == {event.tenant: (1, event.seq)}
        store.close()
    finally:
        setup.command(f"DROP DATABASE IF EXISTS `{database}`")
        setup.close()
