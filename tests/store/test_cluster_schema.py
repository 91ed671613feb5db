"""The production store's DDL (1 shard × 2 replicas, ReplicatedReplacingMergeTree ON CLUSTER).

No ClickHouse server or Keeper installs on these machines, so: the syntax is checked by chDB's
own parser (``formatQuery``), the setting names against chDB's settings tables (the same
ClickHouse 26.9 code), and the same table with the non-replicated engine is created in chDB
and compared with the embedded one. The test marked ``clickhouse_server`` runs it for real.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest

from norrvakt.event import Event
from norrvakt.store.clickhouse import ClickHouseStore, StoreConfig, StoreError
from norrvakt.store.cluster_schema import ClusterSchemaConfig
from norrvakt.store.schema import EVENTS_TABLE, table_ddl

_db = itertools.count()
SCHEMA = ClusterSchemaConfig().build()


def _format(store: ClickHouseStore, sql: str) -> str:
    return str(store.query("SELECT formatQuery({q:String})", {"q": sql})[0][0])


def test_the_cluster_ddl_parses(store: ClickHouseStore) -> None:
    for sql in SCHEMA.statements():
        formatted = _format(store, sql)
        assert "ON CLUSTER norrvakt" in formatted
    table = _format(store, SCHEMA.create_table())
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/norrvakt/events', '{replica}')"
        in table
    )
    assert "PRIMARY KEY (tenant, ts)\nORDER BY (tenant, ts, seq)" in table
    # the check can fail: a misspelt statement does not parse
    with pytest.raises(Exception, match="Syntax error"):
        _format(store, SCHEMA.create_table().replace("ENGINE =", "ENGIN ="))


def test_its_settings_exist_in_clickhouse(store: ClickHouseStore) -> None:
    """formatQuery parses any name in SETTINGS; ClickHouse refuses unknown ones at CREATE."""
    clause = SCHEMA.create_table().rsplit("SETTINGS", 1)[1]
    table_settings = {name for name, _ in re.findall(r"(\w+)\s*=\s*(\w+)", clause)}
    assert "replicated_deduplication_window_seconds" in table_settings
    known = {str(r[0]) for r in store.query("SELECT name FROM system.merge_tree_settings")}
    assert table_settings <= known, table_settings - known
    known_query = {str(r[0]) for r in store.query("SELECT name FROM system.settings")}
    insert = set(SCHEMA.insert_settings()) | {
        "insert_deduplication_token",
        "async_insert",
        "min_insert_block_size_rows",
        "min_insert_block_size_bytes",
        "deduplicate_insert",
    }
    assert insert <= known_query, insert - known_query


def test_the_same_table_non_replicated_is_valid_and_has_the_embedded_columns(
    store: ClickHouseStore, chdb_path: Path
) -> None:
    """chDB refuses Replicated* without Keeper; everything else of the DDL it checks for real."""
    c = SCHEMA.config
    local = table_ddl(
        "events_replacing",
        engine="ReplacingMergeTree",
        primary_key="(tenant, ts)",
        order_by="(tenant, ts, seq)",
        retention_days=c.retention_days,
        settings="index_granularity = 8192",
    )
    assert (
        local.split("(", 1)[1].split(") ENGINE")[0]
        == SCHEMA.create_table().split("(", 1)[1].split(") ENGINE")[0]
    )
    store.command(local)

    def describe(table: str) -> list[tuple[object, ...]]:
        return [tuple(r[:3]) for r in store.query(f"DESCRIBE TABLE {table}")]

    assert describe("events_replacing") == describe(EVENTS_TABLE)

    # (tenant, ts, seq) collapses true copies only: two events in one microsecond stay two.
    def ev(seq: int) -> Event:
        return Event(
            tenant="lulea",
            seq=seq,
            ts=1_795_729_970_000_000,
            ingested=1_795_729_971_000_000,
            source="syslog-tcp",
            peer="127.0.0.1:5000",
            ecs={},
            fields={},
            message=f"event {seq}",
            raw=b"x",
        )

    columns = "tenant, seq, ts, ingested, source, peer, fields, message, raw"
    for e in (ev(1), ev(2), ev(1)):
        store.command(
            f"INSERT INTO events_replacing ({columns}) VALUES ('lulea', {e.seq}, "
            f"fromUnixTimestamp64Micro({e.ts}), fromUnixTimestamp64Micro({e.ingested}), "
            f"'syslog-tcp', '127.0.0.1:5000', map(), '{e.message}', 'x')"
        )
    store.command("OPTIMIZE TABLE events_replacing FINAL")
    assert store.query("SELECT seq FROM events_replacing ORDER BY seq") == [(1,), (2,)]


def test_the_config_refuses_what_would_break_the_ddl() -> None:
    with pytest.raises(ValueError, match="not a plain ClickHouse identifier"):
        ClusterSchemaConfig(cluster="a b").build()
    with pytest.raises(ValueError, match="may not contain quotes"):
        ClusterSchemaConfig(keeper_path="/x'); DROP TABLE y; --").build()
    with pytest.raises(StoreError, match="is not the cluster schema's"):
        StoreConfig(dsn="chdb:///nowhere", database="other", cluster=ClusterSchemaConfig()).build()


CLUSTER_URLS = os.environ.get("NORRVAKT_CLICKHOUSE_URLS", "")


@pytest.mark.clickhouse_server
@pytest.mark.skipif(
    not CLUSTER_URLS,
    reason="needs a ClickHouse server cluster (1 shard x 2 replicas, 3 Keeper nodes): set "
    "NORRVAKT_CLICKHOUSE_URLS=http://user:pw@replica1:8123,http://user:pw@replica2:8123. None "
    "installs on these machines (Debian bookworm has 18.16, backports/trixie/sid none, PyPI and npm none)",
)
def test_on_a_clickhouse_cluster_a_replay_is_stored_once_on_both_replicas(tmp_path: Path) -> None:
    from norrvakt.store.writer import StoreWriterConfig

    first_url, second_url = CLUSTER_URLS.split(",")[:2]
    config = ClusterSchemaConfig(database=f"norrvakt_test_{os.getpid()}_{next(_db)}", retention_days=0)
    stores = [
        StoreConfig(dsn=url, database=config.database, cluster=config).build()
        for url in (first_url, second_url)
    ]
    try:
        events = [
            Event(
                tenant="lulea",
                seq=n,
                ts=1_795_729_970_000_000 + n,
                ingested=1_795_729_971_000_000 + n,
                source="syslog-tcp",
                peer="127.0.0.1:5000",
                ecs={},
                fields={},
                message=f"event {n}",
                raw=b"x",
            )
            for n in range(1, 1301)
        ]
        writer = StoreWriterConfig(ledger_dir=tmp_path / "ledger", batch_rows=1000).build(stores[0])
        writer.offer(events)
        writer.stop()
        stores[0].insert_block(events[1000:], token="lulea:1001-1300")  # the replay: a no-op
        for s in stores:  # insert_quorum = 2: both replicas have it when the insert returns
            assert s.query(f"SELECT count(), uniqExact(seq) FROM {EVENTS_TABLE}") == [(1300, 1300)]
    finally:
        stores[0].command(f"DROP DATABASE IF EXISTS `{config.database}` ON CLUSTER {config.cluster} SYNC")
        for s in stores:
            s.close()
