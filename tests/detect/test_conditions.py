"""Condition forms: and/or/not, parentheses, precedence, `1 of` / `all of` / `them`, lists."""

from __future__ import annotations

import pytest

from .helpers import event, fires, load, rule_yaml

SELECTIONS = """
sel_a: {A: '1'}
sel_b: {B: '1'}
filter_c: {C: '1'}
"""


def check(condition: str, **fields: str) -> bool:
    return fires(SELECTIONS + f"condition: {condition}", **fields)


@pytest.mark.parametrize(
    ("condition", "fields", "expected"),
    [
        ("sel_a and sel_b", {"A": "1", "B": "1"}, True),
        ("sel_a and sel_b", {"A": "1"}, False),
        ("sel_a or sel_b", {"B": "1"}, True),
        ("sel_a or sel_b", {"C": "1"}, False),
        ("not sel_a", {"B": "1"}, True),
        ("not sel_a", {"A": "1"}, False),
        ("sel_a and not filter_c", {"A": "1"}, True),
        ("sel_a and not filter_c", {"A": "1", "C": "1"}, False),
        ("(sel_a or sel_b) and not filter_c", {"B": "1"}, True),
        ("(sel_a or sel_b) and not filter_c", {"B": "1", "C": "1"}, False),
        ("not (sel_a or sel_b)", {"C": "1"}, True),
        ("not (sel_a or sel_b)", {"B": "1"}, False),
    ],
)
def test_boolean_operators(condition: str, fields: dict[str, str], expected: bool) -> None:
    assert check(condition, **fields) is expected


def test_and_binds_tighter_than_or() -> None:
    # sel_a or (sel_b and filter_c), not (sel_a or sel_b) and filter_c
    assert check("sel_a or sel_b and filter_c", A="1")
    assert not check("sel_a or sel_b and filter_c", B="1")


def test_not_binds_tighter_than_and() -> None:
    # (not sel_a) and sel_b
    assert check("not sel_a and sel_b", B="1")
    assert not check("not sel_a and sel_b", C="1")


@pytest.mark.parametrize(
    ("condition", "fields", "expected"),
    [
        ("1 of sel_*", {"B": "1"}, True),
        ("1 of sel_*", {"C": "1"}, False),
        ("any of sel_*", {"A": "1"}, True),
        ("all of sel_*", {"A": "1", "B": "1"}, True),
        ("all of sel_*", {"A": "1"}, False),
        ("1 of them", {"C": "1"}, True),
        ("1 of them", {"D": "1"}, False),
        ("all of them", {"A": "1", "B": "1", "C": "1"}, True),
        ("all of them", {"A": "1", "B": "1"}, False),
        ("1 of sel_* and not 1 of filter_*", {"A": "1"}, True),
        ("1 of sel_* and not 1 of filter_*", {"A": "1", "C": "1"}, False),
        ("all of *_b", {"B": "1"}, True),
    ],
)
def test_quantifiers_and_wildcards(condition: str, fields: dict[str, str], expected: bool) -> None:
    assert check(condition, **fields) is expected


def test_map_items_are_and_and_list_of_maps_is_or() -> None:
    detection = """
    sel:
      - {A: '1', B: '1'}
      - {C: '1'}
    condition: sel
    """
    assert fires(detection, A="1", B="1")
    assert fires(detection, C="1")
    assert not fires(detection, A="1")


def test_a_list_of_conditions_fires_when_any_holds() -> None:
    detection = SELECTIONS + "condition:\n  - sel_a and filter_c\n  - sel_b"
    assert fires(detection, B="1")
    assert fires(detection, A="1", C="1")
    assert not fires(detection, A="1")


def test_condition_naming_an_unknown_selection_is_not_loaded() -> None:
    rules, report = load(rule_yaml("sel: {A: '1'}\ncondition: sel and nosuch"))
    assert len(rules) == 0
    assert "nosuch" in report.not_loaded[0].reason


def test_match_carries_rule_metadata() -> None:
    rules, _ = load(rule_yaml("sel: {A: '1'}\ncondition: sel", level="critical"))
    (match,) = rules.match(event(A="1"))
    assert match.rule.id == "5d3b6a1e-0000-4000-8000-000000000001"
    assert match.rule.title == "Test rule"
    assert match.rule.level == "critical"
    assert match.rule.tags == ("attack.execution", "attack.t1059")
    assert match.event.fields["A"] == "1"
