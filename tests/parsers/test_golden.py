"""Every golden case under tests/samples/<format>/*.yml: raw line in, expected fields out."""

from __future__ import annotations

from collections import Counter

import pytest

from norrvakt.parsers import parse_record
from tests.parsers.golden import GoldenCase, check_expectations, check_invariants, load_cases, record_for

CASES = load_cases()


@pytest.mark.parametrize("golden", CASES, ids=[c.id for c in CASES])
def test_golden_case(golden: GoldenCase) -> None:
    record = record_for(golden.case)
    event = parse_record(record)
    check_invariants(record, event)
    check_expectations(event, golden.case["expect"])


def test_golden_cases_cover_every_format() -> None:
    by_dir = Counter(c.path.parent.name for c in CASES)
    for folder in ("rfc5424", "rfc3164", "text", "linux", "cef", "windows", "json", "hec"):
        assert by_dir[folder] >= 5, f"tests/samples/{folder} has only {by_dir[folder]} cases"
    assert len(CASES) >= 60


def test_golden_case_names_are_unique() -> None:
    ids = Counter(c.id for c in CASES)
    assert [i for i, n in ids.items() if n > 1] == []
