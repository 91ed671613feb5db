"""Testing a rule against stored events (norrvakt.detect.backtest): it compiles like live
detection, reports load problems with their lines, counts only the tested rules' detections,
and runs correlations that reference the built-in building blocks."""

from __future__ import annotations

import threading
import time

import pytest

from norrvakt.detect.backtest import RulesUnderTest, RuleTestError, RuleTestStop, backtest
from norrvakt.detect.detection import DetectionEngine
from norrvakt.event import Event
from tests.detect.helpers import rule_yaml

T0 = 1_795_729_200_000_000


def _events(n: int, message: str, **fields: str) -> list[Event]:
    return [
        Event(
            tenant="lulea",
            seq=i + 1,
            ts=T0 + i * 1_000_000,
            ingested=T0,
            source="t",
            peer="t",
            message=message,
            fields=dict(fields),
        )
        for i in range(n)
    ]


def test_a_keyword_rule_counts_its_matches() -> None:
    tested = RulesUnderTest.from_yaml(rule_yaml("keywords: [mimikatz]\ncondition: keywords"))
    events = _events(3, "ran mimikatz.exe") + _events(4, "nothing to see")
    result = backtest(tested, [events[:5], events[5:]], keep=2)
    assert (result.scanned, result.matched) == (7, 3)
    assert len(result.matches) == 2  # only ``keep`` in full, all counted
    assert [n for n in result.per_rule.values()] == [3]


def test_bad_yaml_names_the_line() -> None:
    with pytest.raises(RuleTestError) as err:
        RulesUnderTest.from_yaml("title: x\ndetection:\n  sel: [a\n  condition: sel\n")
    assert "line" in str(err.value)


def test_an_unknown_modifier_is_a_load_problem_not_an_exception() -> None:
    with pytest.raises(RuleTestError) as err:
        RulesUnderTest.from_yaml(rule_yaml("sel:\n  Image|frobnicate: x\ncondition: sel"))
    assert "frobnicate" in str(err.value) and err.value.problems


def test_text_without_a_rule_is_refused() -> None:
    with pytest.raises(RuleTestError, match="must have a title"):
        RulesUnderTest.from_yaml("just: a mapping\n")


def test_a_correlation_over_a_builtin_building_block() -> None:
    # five failed logins from one address in a minute
    text = """
title: Five failures
id: 0b7e1c7a-5a2b-4c0e-9a55-7d3f00000002
correlation:
  type: event_count
  rules: [norrvakt_auth_failure]
  group-by: [source.ip]
  timespan: 1m
  condition: {gte: 5}
level: high
"""
    tested = RulesUnderTest.from_yaml(text)
    events = _events(6, "Failed password")
    for e in events:
        e.ecs.update(
            {
                "source.ip": "10.1.2.3",
                "event.outcome": "failure",
                "event.category": "authentication",
                "event.dataset": "linux.auth",
            }
        )
    result = backtest(tested, [events])
    titles = {d.title for d in result.matches}
    assert titles == {"Five failures"}, titles  # the building block's own matches are not reported


def test_a_loaded_rule_by_id() -> None:
    engine, _ = DetectionEngine.load([], use_cache=False)
    tested = RulesUnderTest.from_loaded(engine.rules, "bc38af30-8b6b-4893-888d-c0fef0bb500c")
    assert {i.title for i in tested.tested} == {"Failed authentication (any login source)"}
    with pytest.raises(LookupError):
        RulesUnderTest.from_loaded(engine.rules, "no-such-rule")


# --- budget and cancel ------------------------------------------------------------------------

SLOW = (
    "sel:\n  message|re:\n" + "".join(f"    - 'a[ab]{{{20 + i}}}c'\n" for i in range(20)) + "condition: sel"
)


def _ab(n: int, size: int) -> list[Event]:
    """Events of random a/b text, each its own: RE2's DFA for SLOW never settles on them."""
    import random

    rnd = random.Random(5)
    events = _events(n, "")
    for e in events:
        e.message = "".join(rnd.choices("ab", k=size))
    return events


def test_a_test_without_a_stop_is_complete() -> None:
    tested = RulesUnderTest.from_yaml(rule_yaml("keywords: [mimikatz]\ncondition: keywords"))
    result = backtest(tested, [_events(5, "x")], stop=RuleTestStop(60))
    assert (result.scanned, result.stopped) == (5, "")


def test_a_test_stops_at_its_budget_with_what_it_scanned() -> None:
    tested = RulesUnderTest.from_yaml(rule_yaml(SLOW))
    start = time.monotonic()
    result = backtest(tested, [_ab(400, 4000)], stop=RuleTestStop(0.3))
    assert result.stopped == "time"
    assert 0 < result.scanned < 400
    assert time.monotonic() - start < 1.5


def test_a_stop_interrupts_matching_inside_one_huge_event() -> None:
    tested = RulesUnderTest.from_yaml(rule_yaml(SLOW))
    huge = _ab(1, 1_000_000)  # each of the 20 patterns: ~0.6-1 s on it
    start = time.monotonic()
    result = backtest(tested, [huge], stop=RuleTestStop(0.2))
    assert (result.stopped, result.scanned) == ("time", 0)  # the interrupted event is not counted
    assert time.monotonic() - start < 3.0  # one pattern's call, not the ~15 s of all


def test_a_test_is_cancelled_from_another_thread() -> None:
    tested = RulesUnderTest.from_yaml(rule_yaml(SLOW))
    stop = RuleTestStop(60)
    threading.Timer(0.2, stop.cancel, args=("disconnected",)).start()
    start = time.monotonic()
    result = backtest(tested, [_ab(400, 4000)], stop=stop)
    assert result.stopped == "disconnected"
    assert time.monotonic() - start < 1.5
