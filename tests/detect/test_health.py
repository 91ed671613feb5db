"""Source health: learn a source's gap, report its silence once, forget within bounds."""

from __future__ import annotations

from norrvakt.detect.detection import DetectionEngine
from norrvakt.detect.engine import RuleSet
from norrvakt.detect.health import HealthConfig, SourceHealth
from norrvakt.event import Event

S = 1_000_000
MIN = 60 * S


def arrival(at: int, host: str = "lulea-dc01", dataset: str = "", tenant: str = "lulea") -> Event:
    ecs = {"host.name": host}
    if dataset:
        ecs["event.dataset"] = dataset
    return Event(tenant=tenant, ts=at, ingested=at, source="hec", peer="t", ecs=ecs)


def feed(health: SourceHealth, every: int, count: int, start: int = 0, **kw: str) -> int:
    for i in range(count):
        health.observe(arrival(start + i * every, **kw))
    return start + (count - 1) * every


def test_silent_beyond_its_normal_gap_is_reported_once() -> None:
    health = SourceHealth(HealthConfig(keys=("host",)))
    last = feed(health, 2 * MIN, 40)  # a DC that logs every two minutes
    assert health.tick(last + 20 * MIN) == []  # 20 min < 5 x max(floor 5 min, 2 min)
    [silence] = health.tick(last + 26 * MIN)
    assert (silence.tenant, silence.kind, silence.name) == ("lulea", "host", "lulea-dc01")
    assert silence.expected_gap == 5 * MIN and silence.events == 40
    assert health.tick(last + 60 * MIN) == []  # once per silence


def test_a_slow_source_gets_a_longer_gap() -> None:
    health = SourceHealth(HealthConfig(keys=("dataset",)))
    last = feed(health, 30 * MIN, 20, dataset="earchive.delivery")
    assert health.tick(last + 2 * 60 * MIN) == []  # 2 h is normal for a half-hourly source
    [silence] = health.tick(last + 151 * MIN)
    assert silence.name == "earchive.delivery" and silence.expected_gap == 30 * MIN


def test_resumed_source_can_go_silent_again() -> None:
    health = SourceHealth(HealthConfig(keys=("host",)))
    last = feed(health, MIN, 30)
    assert len(health.tick(last + 30 * MIN)) == 1
    last = feed(health, MIN, 3, start=last + 31 * MIN)
    assert len(health.tick(last + 30 * MIN)) == 1


def test_not_judged_while_learning() -> None:
    health = SourceHealth(HealthConfig(keys=("host",)))
    last = feed(health, MIN, 3)  # three events: no rhythm yet
    assert health.tick(last + 10 * 60 * MIN) == []


def test_bursts_count_as_one_arrival() -> None:
    health = SourceHealth(HealthConfig(keys=("host",)))
    for burst in range(20):
        for i in range(50):  # 50 events within a second every 10 minutes
            health.observe(arrival(burst * 10 * MIN + i * 1000))
    gap = health.expected_gap(("lulea", "host", "lulea-dc01"))
    assert gap is not None and 10 * MIN - S < gap <= 10 * MIN


def test_sources_are_bounded() -> None:
    health = SourceHealth(HealthConfig(keys=("host",), max_sources=100))
    for i in range(250):
        health.observe(arrival(i * S, host=f"ws{i}"))
    assert len(health._sources) == 100 and health.stats.forgotten == 150


def test_engine_reports_health_on_tick() -> None:
    rules, _ = RuleSet.from_yaml()
    engine = DetectionEngine(rules, health=SourceHealth(HealthConfig(keys=("dataset",))))
    engine.process([arrival(i * MIN, dataset="locks.access") for i in range(30)])
    assert engine.tick(35 * MIN) == []
    [d] = engine.tick(29 * MIN + 26 * MIN)
    assert (d.kind, d.rule_id, d.level, d.event, d.refs) == ("health", "health:silence", "medium", None, ())
    assert ("dataset", "locks.access") in d.group and "normally every 5.0 min" in d.detail
