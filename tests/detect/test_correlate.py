"""Correlation rules: loading (with reasons when not), streaming semantics, bounds."""

from __future__ import annotations

import textwrap

import pytest

from norrvakt.detect.correlate import CorrelationLimits, Correlator
from norrvakt.detect.detection import Detection, DetectionEngine
from norrvakt.detect.engine import RuleSet
from norrvakt.event import Event

S = 1_000_000
BASE = """
title: Failed login
id: 0d6e1c1a-0000-4000-8000-000000000001
name: failed
logsource: {category: norrvakt_test}
detection: {sel: {outcome: failure}, condition: sel}
level: low
---
title: Good login
id: 0d6e1c1a-0000-4000-8000-000000000002
name: good
logsource: {category: norrvakt_test}
detection: {sel: {outcome: success}, condition: sel}
level: low
"""


def correlation(body: str, *, title: str = "Corr", rid: str = "0d6e1c1a-0000-4000-8000-0000000000c1") -> str:
    return f"title: {title}\nid: {rid}\nlevel: high\ncorrelation:\n" + textwrap.indent(
        textwrap.dedent(body).strip("\n"), "  "
    )


def engine(*correlations: str, limits: CorrelationLimits | None = None) -> DetectionEngine:
    text = BASE + "".join("---\n" + c + "\n" for c in correlations)
    rules, report = RuleSet.from_yaml(text)
    assert not report.not_loaded, [e.reason for e in report.not_loaded]
    return DetectionEngine(rules, Correlator(rules.correlations, len(rules.rules), limits, rules.derived))


SEQ = iter(range(1, 10**9))


def ev(t: float, outcome: str = "failure", tenant: str = "lulea", **fields: str) -> Event:
    return Event(
        tenant=tenant,
        ts=int(t * S),
        ingested=int(t * S),
        source="test",
        peer="test",
        fields={"outcome": outcome, **fields},
        seq=next(SEQ),
    )


def titles(found: list[Detection]) -> list[str]:
    return [d.title for d in found]


EVENT_COUNT = correlation("""
    type: event_count
    rules: [failed]
    group-by: [ip]
    timespan: 1m
    condition: {gte: 3}
""")


def test_event_count_fires_when_reached_then_starts_over() -> None:
    e = engine(EVENT_COUNT)
    found = e.process([ev(i, ip="1.2.3.4") for i in range(7)])
    assert titles(found) == ["Corr", "Corr"]  # events 3 and 6; the 7th starts a new count
    assert [len(d.refs) for d in found] == [3, 3]
    assert found[0].group == (("ip", "1.2.3.4"),) and found[0].detail.startswith("3 events gte 3")


def test_event_count_window_slides() -> None:
    e = engine(EVENT_COUNT)
    assert e.process([ev(0, ip="a"), ev(30, ip="a"), ev(61, ip="a")]) == []  # the first expired
    assert titles(e.process([ev(62, ip="a")])) == ["Corr"]


def test_groups_and_tenants_are_separate() -> None:
    e = engine(EVENT_COUNT)
    events = [ev(0, ip="a"), ev(1, ip="b"), ev(2, ip="a", tenant="pitea"), ev(3, ip="a", tenant="pitea")]
    assert e.process(events) == []
    assert [d.tenant for d in e.process([ev(4, ip="a", tenant="pitea")])] == ["pitea"]


def test_hit_without_group_field_is_not_counted() -> None:
    e = engine(EVENT_COUNT)
    assert e.process([ev(i) for i in range(5)]) == []
    assert e.correlations.stats.ungrouped == 5


def test_value_count_counts_distinct_values() -> None:
    e = engine(
        correlation("""
        type: value_count
        rules: [failed]
        group-by: [ip]
        timespan: 10m
        condition: {gte: 3, field: user}
        """)
    )
    assert e.process([ev(i, ip="a", user="anna") for i in range(10)]) == []
    found = e.process(
        [ev(11, ip="a", user="erik"), ev(12, ip="a", user="anna"), ev(13, ip="a", user="karin")]
    )
    assert titles(found) == ["Corr"] and len(found[0].refs) == 3  # one event per distinct user


def test_temporal_needs_all_rules_in_any_order() -> None:
    e = engine(
        correlation("""
        type: temporal
        rules: [good, failed]
        group-by: [user]
        timespan: 1m
        """)
    )
    assert e.process([ev(0, user="anna"), ev(1, user="erik", outcome="success")]) == []
    assert titles(e.process([ev(2, user="anna", outcome="success")])) == ["Corr"]


def test_temporal_ordered_respects_order() -> None:
    ordered = correlation("""
        type: temporal_ordered
        rules: [failed, good]
        group-by: [user]
        timespan: 1m
        """)
    e = engine(ordered)
    assert e.process([ev(0, user="anna", outcome="success"), ev(1, user="anna")]) == []
    assert titles(e.process([ev(2, user="anna", outcome="success")])) == ["Corr"]
    late = engine(ordered)
    assert late.process([ev(0, user="anna"), ev(70, user="anna", outcome="success")]) == []


def test_lt_is_judged_when_the_window_closes() -> None:
    e = engine(
        correlation("""
        type: event_count
        rules: [good]
        group-by: [host]
        timespan: 1h
        condition: {lt: 3}
        """)
    )
    assert e.process([ev(0, "success", host="dc01"), ev(10, "success", host="dc01")]) == []
    assert e.tick(3601 * S) == []  # event time has not passed the window, the wall clock's grace neither
    e.process([ev(3601, "failure", host="dc01")])  # any event of the tenant moves its time on
    found = e.tick(3602 * S)
    assert titles(found) == ["Corr"] and found[0].events == 2


def test_quiet_tenant_windows_close_after_the_grace() -> None:
    e = engine(
        correlation("""
        type: event_count
        rules: [good]
        group-by: [host]
        timespan: 1h
        condition: {lt: 3}
        """)
    )
    e.process([ev(0, "success", host="dc01")])
    assert titles(e.tick((3600 + 15 * 60 + 1) * S)) == ["Corr"]


def test_chained_correlation_uses_the_group_of_the_first() -> None:
    burst = correlation(
        """
        type: event_count
        rules: [failed]
        group-by: [ip, user]
        timespan: 5m
        condition: {gte: 3}
        """,
        title="Burst",
        rid="0d6e1c1a-0000-4000-8000-0000000000c2",
    ).replace("correlation:\n", "name: burst\ncorrelation:\n")
    then = correlation("""
        type: temporal_ordered
        rules: [burst, good]
        group-by: [ip, user]
        timespan: 10m
        """)
    e = engine(burst, then)
    events = [ev(i, ip="a", user="anna") for i in range(3)] + [ev(5, "success", ip="a", user="anna")]
    found = e.process(events)
    assert titles(found) == ["Corr"]  # "Burst" is only used by a generate: false correlation
    assert [s for _, s in found[0].refs] == [e.seq for e in events]


def test_aliases_join_different_fields() -> None:
    e = engine(
        correlation("""
        type: temporal
        rules: [failed, good]
        group-by: [addr]
        timespan: 1m
        aliases:
          addr: {failed: src, good: dst}
        """)
    )
    assert titles(e.process([ev(0, src="10.0.0.1"), ev(1, "success", dst="10.0.0.1")])) == ["Corr"]


def test_generate_true_keeps_the_base_rule_reporting() -> None:
    text = EVENT_COUNT.replace("condition: {gte: 3}", "condition: {gte: 3}\n  generate: true")
    found = engine(text).process([ev(0, ip="a")])
    assert titles(found) == ["Failed login"]


def test_groups_are_bounded() -> None:
    e = engine(EVENT_COUNT, limits=CorrelationLimits(max_groups=10))
    e.process([ev(i, ip=f"10.0.0.{i}") for i in range(50)])
    assert e.correlations.stats.evicted == 40


def test_refs_are_capped() -> None:
    text = EVENT_COUNT.replace("gte: 3", "gte: 100")
    e = engine(text, limits=CorrelationLimits(max_refs=8))
    found = e.process([ev(i * 0.1, ip="a") for i in range(100)])
    assert len(found) == 1 and len(found[0].refs) == 8 and found[0].events == 100


def test_idle_groups_expire_on_tick() -> None:
    e = engine(EVENT_COUNT)
    e.process([ev(0, ip="a"), ev(1, ip="b"), ev(200, ip="c")])
    e.tick(201 * S)
    assert e.correlations.stats.expired == 2  # a and b: idle for longer than the timespan


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            "type: event_count\nrules: [nosuch]\ngroup-by: [a]\ntimespan: 1m\ncondition: {gte: 2}",
            "nosuch (no such rule)",
        ),
        ("type: event_count\nrules: [failed]\ntimespan: 1m\ncondition: {gte: 20000}", "window limit"),
        (
            "type: temporal_ordered\nrules: [failed, good]\ntimespan: 1m\ncondition: 'failed and good'",
            "only temporal",
        ),
        ("type: temporal_ordered\nrules: [failed, good]\ntimespan: 1m\ncondition: {gte: 1}", "in order"),
    ],
)
def test_correlations_that_cannot_run_say_why(body: str, reason: str) -> None:
    rules, report = RuleSet.from_yaml(BASE + "---\n" + correlation(body))
    assert not rules.correlations
    [row] = report.not_loaded
    assert row.kind == "correlation" and reason in row.reason


def test_correlation_cycle_is_reported() -> None:
    a = correlation(
        "type: temporal\nrules: [b, good]\ntimespan: 1m", rid="0d6e1c1a-0000-4000-8000-0000000000a1"
    ).replace("correlation:\n", "name: a\ncorrelation:\n")
    b = correlation(
        "type: temporal\nrules: [a, good]\ntimespan: 1m", rid="0d6e1c1a-0000-4000-8000-0000000000b1"
    ).replace("correlation:\n", "name: b\ncorrelation:\n")
    _, report = RuleSet.from_yaml(BASE + "---\n" + a + "\n---\n" + b)
    assert ["cycle" in r.reason for r in report.not_loaded] == [True, True]
