"""Scheduled searches as alert rules, on a real chDB store and a real state database: a threshold
over a window fires once (the next run deduplicates), an absence fires when a host goes silent
and not before, and bad rules and schedules get a clear answer."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from norrvakt.alerts.service import AlertService
from norrvakt.config import AlertSettings, SearchRuleSettings
from norrvakt.detect.scheduled import ScanTooBig, SearchRuleRunner, check_scan, rule_id
from norrvakt.detect.search_rule import parse_every, parse_rule
from norrvakt.event import Event
from norrvakt.state import alerts as alert_rows
from norrvakt.state import saved_searches as rows
from norrvakt.state.db import open_state
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.query_ast import QueryError

NOW = 1_767_261_600_000_000  # 2026-01-01T10:00:00Z
MIN = 60_000_000
TENANTS = ["lulea", "boden"]
_seq = itertools.count(1)


def _event(tenant: str, at: int, host: str, ip: str, code: str = "4625") -> Event:
    return Event(
        tenant=tenant,
        seq=next(_seq),
        ts=at,
        ingested=at + 1_000_000,
        source="winlogbeat",
        peer="10.0.0.1:5044",
        ecs={"event.code": code, "host.name": host, "source.ip": ip, "user.name": "anna"},
        fields={"EventID": code},
        message=f"An account failed to log on from {ip}",
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    e = open_state(f"sqlite:///{tmp_path}/state.db")
    yield e
    e.dispose()


@pytest.fixture
def alerts(engine: sa.Engine) -> AlertService:
    service = AlertService(engine, AlertSettings(), clock=lambda: NOW)
    service.warm()
    return service


def _rule(engine: sa.Engine, query: str, tenant: str = "lulea", every_s: int = 60) -> dict[str, object]:
    return rows.create(
        engine,
        name=f"rule {query[:20]}",
        description="",
        query=query,
        since="",
        until="",
        owner="soc.anna",
        tenant=tenant,
        visibility=rows.REGION if tenant == "*" else rows.TENANT,
        every_s=every_s,
        level="high",
        now=NOW - 10 * MIN,
    )


def _alerts(engine: sa.Engine, search_id: int) -> list[dict[str, object]]:
    with engine.connect() as conn:
        found = alert_rows.open_alerts(conn)
    return [a for a in found if a["rule_id"] == rule_id(search_id)]


def test_a_threshold_fires_once_per_group_and_the_next_run_deduplicates(
    store: ClickHouseStore, engine: sa.Engine, alerts: AlertService
) -> None:
    flood = [_event("lulea", NOW - (i % 9) * MIN - 1000 * i, "lul-dc1", "185.220.101.7") for i in range(60)]
    few = [_event("lulea", NOW - 2 * MIN, "lul-dc1", "10.1.1.1") for _ in range(5)]
    old = [_event("lulea", NOW - 30 * MIN, "lul-dc1", "10.9.9.9") for _ in range(80)]  # outside the window
    boden = [_event("boden", NOW - MIN, "bod-dc1", "185.220.101.7") for _ in range(70)]  # another tenant
    store.insert_events(flood + few + old + boden)
    row = _rule(engine, "event.code:4625 | count > 50 in 10m by source.ip")
    runner = SearchRuleRunner(store, engine, alerts, SearchRuleSettings(), TENANTS)

    (first,) = runner.run_due(NOW)
    assert first.status == "fired" and first.created == 1, first
    (alert,) = _alerts(engine, int(row["id"]))
    assert alert["tenant"] == "lulea" and alert["level"] == "high"
    assert alert["rule_title"] == row["name"]
    assert alert["evidence_count"] == 10 and alert["last_seq"] == max(e.seq for e in flood)

    assert runner.run_due(NOW + 30_000_000) == []  # not due yet: the schedule is every minute
    (second,) = runner.run_due(NOW + MIN)
    assert second.status == "fired" and second.created == 0  # the same group: counted, not new
    (again,) = _alerts(engine, int(row["id"]))
    assert again["id"] == alert["id"] and again["event_count"] == 2
    with engine.connect() as conn:
        stored = rows.get(conn, int(row["id"]))
    assert stored is not None and stored["last_status"] == "fired" and stored["last_run_at"] == NOW + MIN
    assert "lulea source.ip=185.220.101.7: 60" in stored["last_result"]


def test_an_absence_fires_when_the_host_goes_silent_and_not_before(
    store: ClickHouseStore, engine: sa.Engine, alerts: AlertService
) -> None:
    # lul-fw1 sends every 10 minutes until NOW - 20 min; lul-fw2 keeps sending
    store.insert_events(
        [_event("lulea", NOW - m * MIN, "lul-fw1", "10.0.0.1", "fw") for m in range(20, 300, 10)]
        + [_event("lulea", NOW - m * MIN, "lul-fw2", "10.0.0.2", "fw") for m in range(0, 300, 10)]
    )
    row = _rule(engine, "event.code:fw | absent in 1h by host.name", every_s=300)
    runner = SearchRuleRunner(store, engine, alerts, SearchRuleSettings(), TENANTS)

    (quiet,) = runner.run_due(NOW)  # fw1 silent for 20 minutes: not yet an hour
    assert quiet.status == "ok" and _alerts(engine, int(row["id"])) == []

    (fired,) = runner.run_due(NOW + 45 * MIN)  # 65 minutes without fw1
    assert fired.status == "fired" and fired.created == 1
    (alert,) = _alerts(engine, int(row["id"]))
    assert json.loads(str(alert["key_values"])) == {"host.name": "lul-fw1"}

    (repeat,) = runner.run_due(NOW + 50 * MIN)  # still silent: the same alert, not a second one
    assert repeat.created == 0 and len(_alerts(engine, int(row["id"]))) == 1


def test_bad_rules_and_schedules_say_why() -> None:
    with pytest.raises(QueryError, match="not an alert rule"):
        parse_rule("event.code:4625")
    with pytest.raises(QueryError, match="cannot read the rule step"):
        parse_rule("event.code:4625 | count > lots in 10m")
    with pytest.raises(QueryError, match="leave out pipeline commands"):
        parse_rule("x | stats count by host.name | count > 5 in 10m")
    with pytest.raises(QueryError, match="at most 168 hours"):
        parse_rule("x | absent in 30d")
    with pytest.raises(ValueError, match="longer than the rule's window"):
        parse_every("30m", min_s=60, window_s=600)
    with pytest.raises(ValueError, match="at least every 60 s"):
        parse_every("10s", min_s=60)
    with pytest.raises(ValueError, match="a duration such as"):
        parse_every("hourly", min_s=60)
    assert parse_every("every 5m", min_s=60, window_s=600) == 300


def test_a_rule_that_would_scan_too_much_is_refused(store: ClickHouseStore) -> None:
    store.insert_events([_event("lulea", NOW - MIN, "h", "10.0.0.1") for _ in range(20)])
    rule = parse_rule("event.code:4625 | count > 5 in 10m")
    assert check_scan(store, rule, ["lulea"], NOW, 20) == 20
    with pytest.raises(ScanTooBig, match=r"more than search_rules\.max_scan_events"):
        check_scan(store, rule, ["lulea"], NOW, 19)


def test_a_due_run_is_claimed_by_one_node_only(engine: sa.Engine) -> None:
    row = _rule(engine, "x | count > 5 in 10m")
    with engine.connect() as conn:
        (seen_by_a,) = rows.due(conn, NOW)
        (seen_by_b,) = rows.due(conn, NOW)  # both nodes read the row before either claims it
    assert rows.claim(engine, seen_by_a, NOW) is True
    assert rows.claim(engine, seen_by_b, NOW) is False
    with engine.connect() as conn:
        assert rows.due(conn, NOW) == []
        stored = rows.get(conn, int(row["id"]))
    assert stored is not None and stored["next_run_at"] == NOW + 60_000_000  # missed runs not replayed
