"""stats functions, top / rare, timechart, dedup, where and fields - against real chDB (the events
of test_query_store: 34 of Luleå's, 2 of Piteå's), tenant scope kept."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from norrvakt.store.clickhouse import ClickHouseStore, StoreConfig
from norrvakt.store.query import SearchResult, compile_query, run_query
from norrvakt.store.query_ast import QueryError
from tests.store.test_query_store import EVENTS, MIN, T0


@pytest.fixture(scope="module")
def store(chdb_path: Path) -> Iterator[ClickHouseStore]:
    database = f"test_agg_{os.getpid()}"
    s = StoreConfig(dsn=f"chdb://{chdb_path}", database=database, retention_days=0).build()
    s.insert_events(EVENTS)
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{database}`")
    s.close()


def run(store: ClickHouseStore, text: str, tenants: tuple[str, ...] = ("lulea",), **kw: Any) -> SearchResult:
    compiled = compile_query(text, tenants=list(tenants), limit=1000, **kw)
    return run_query(store, compiled)


def test_stats_functions_and_where_on_the_result(store: ClickHouseStore) -> None:
    r = run(store, "| stats count, dc(user.name) as users, max(source.port) by host.name | where users >= 2")
    assert r.columns == ["host.name", "count", "users", "max(source.port)"]
    assert r.rows[0] == {"host.name": "srv-web2", "count": 22, "users": 22, "max(source.port)": 52200}
    assert {row["host.name"] for row in r.rows} == {"srv-web2", "srv-web1", "lul-dc1"}
    assert r.chart is not None and r.chart["type"] == "bar"
    assert r.chart["labels"][0] == "srv-web2"
    assert [s["name"] for s in r.chart["series"]] == ["count", "users", "max(source.port)"]


def test_top_counts_and_percent_per_group(store: ClickHouseStore) -> None:
    r = run(store, "event.outcome:failure | top 1 source.ip by host.name")
    assert r.columns == ["host.name", "source.ip", "count", "percent"]
    assert r.rows == [
        {"host.name": "srv-web1", "source.ip": "10.1.2.3", "count": 1, "percent": 100},
        {"host.name": "srv-web2", "source.ip": "10.1.2.4", "count": 20, "percent": 90.91},
    ]


def test_rare_is_least_common_first(store: ClickHouseStore) -> None:
    r = run(store, "| rare 2 source.ip")
    assert [row["count"] for row in r.rows] == [1, 1]
    assert run(store, "| top 1 source.ip").rows[0]["source.ip"] == "10.1.2.4"


def test_timechart_buckets_filled_and_series_by_size(store: ClickHouseStore) -> None:
    r = run(store, "| timechart span=10m count by host.name", since_us=T0, until_us=T0 + 60 * MIN)
    assert len(r.rows) == 6  # 08:00 … 08:50, the last two empty
    assert r.columns[:2] == ["_time", "srv-web2"]
    assert r.rows[0]["_time"] == "2025-03-10T08:00:00.000000Z"
    assert r.rows[5]["srv-web2"] == 0
    assert sum(row["srv-web2"] for row in r.rows) == 22
    top1 = run(store, "| timechart span=10m limit=1 count by host.name", since_us=T0, until_us=T0 + 60 * MIN)
    assert top1.columns == ["_time", "srv-web2", "OTHER"]
    assert sum(row["OTHER"] for row in top1.rows) == 6  # the other hosts' events
    assert top1.chart is not None and top1.chart["type"] == "line" and len(top1.chart["series"]) == 2


def test_timechart_refuses_too_many_buckets(store: ClickHouseStore) -> None:
    with pytest.raises(QueryError, match="makes 43,200 buckets over the time range, at most 1,000"):
        compile_query(
            "| timechart span=1m count", tenants=["lulea"], since_us=T0, until_us=T0 + 30 * 1440 * MIN
        )


def test_dedup_keeps_the_newest_event_per_value(store: ClickHouseStore) -> None:
    r = run(store, "event.outcome:failure | dedup source.ip | fields source.ip")
    assert [(row["seq"], row["source.ip"]) for row in r.rows] == [
        (34, "10.1.2.4"),
        (14, "172.16.0.9"),
        (13, "10.1.2.3"),
    ]
    assert r.total == 3


def test_where_on_events_numbers_text_and_two_fields(store: ClickHouseStore) -> None:
    assert sorted(x["seq"] for x in run(store, "| where source.port > 52000").rows) == [1, 2, 13]
    assert [x["seq"] for x in run(store, '| where user.name = "anna"').rows] == [2]  # exact, case matters
    assert [
        x["seq"] for x in run(store, "| where TargetUserName = user.name AND event.code = 4625").rows
    ] == [4, 3]
    since = run(store, '| where @timestamp >= "2025-03-10T08:33:00Z"').rows
    assert [x["seq"] for x in since] == [34, 33]


def test_fields_minus_drops_columns_and_ecs_fields(store: ClickHouseStore) -> None:
    row = run(store, "mimikatz | fields - raw, message, host.name, EventID").rows[0]
    assert "raw" not in row and "message" not in row
    assert "host.name" not in row["ecs"] and "EventID" not in row["fields"]
    assert row["fields"] == {"IpAddress": "-"}
    with pytest.raises(QueryError, match="cannot drop 'seq'"):
        compile_query("| fields - seq", tenants=["lulea"])


def test_aggregations_keep_the_tenant_scope(store: ClickHouseStore) -> None:
    # Piteå's anna is not counted for Luleå, whatever the query says about tenants
    r = run(store, "tenant:pitea OR user.name:anna | top user.name | where count > 0")
    assert {row["user.name"]: row["count"] for row in r.rows} == {"anna": 1, "Anna": 1}
    both = run(store, "user.name:anna | stats count by tenant", tenants=("lulea", "pitea"))
    assert {row["tenant"]: row["count"] for row in both.rows} == {"lulea": 2, "pitea": 2}
    chart = run(store, "| timechart span=1h count", tenants=("pitea",), since_us=T0, until_us=T0 + 60 * MIN)
    assert chart.rows == [{"_time": "2025-03-10T08:00:00.000000Z", "count": 2}]
