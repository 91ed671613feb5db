"""Hand-written timestamp parsing: RFC 3339 forms, local zones with DST, year inference, epochs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from norrvakt.parsers.timestamps import epoch_to_us, infer_year, local_to_us, parse_iso


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1_000_000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T21:43:23.306142+00:00", "2026-11-26T21:43:23.306142+00:00"),
        ("2026-11-26T21:43:23Z", "2026-11-26T21:43:23+00:00"),
        ("2026-11-26t21:43:23z", "2026-11-26T21:43:23+00:00"),
        ("2003-08-24T05:14:15.000003-07:00", "2003-08-24T12:14:15.000003+00:00"),
        ("2026-11-26T21:43:23.123456789Z", "2026-11-26T21:43:23.123456+00:00"),
        ("2026-11-26T21:43:23,5+0130", "2026-11-26T20:13:23.500000+00:00"),
        ("2026-11-26 21:43:23+01", "2026-11-26T20:43:23+00:00"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59+00:00"),
    ],
)
def test_parse_iso(text: str, expected: str) -> None:
    assert parse_iso(text) == _us(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-26",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T21:43:23.Z",
        "2026-11-26T21:43:23+25:00",
        "2026-11-26T21:43:23 CET",
        "２０２６-11-26T21:43:23Z",
    ],
)
def test_parse_iso_rejects(text: str) -> None:
    assert parse_iso(text) is None


def test_zoneless_time_uses_the_zone_with_dst() -> None:
    assert parse_iso("2026-11-26T21:43:38", "Europe/Stockholm") == _us("2026-11-26T20:43:38+00:00")
    assert parse_iso("2026-07-01T21:43:38", "Europe/Stockholm") == _us("2026-07-01T19:43:38+00:00")
    assert local_to_us("Europe/Stockholm", 2026, 3, 29, 3, 30, 0) == _us("2026-03-29T01:30:00+00:00")
    assert local_to_us("No/Such_Zone", 2026, 11, 26, 21, 0, 0) == _us("2026-11-26T21:00:00+00:00")


@pytest.mark.parametrize(
    ("month", "received", "year"),
    [
        (12, "2027-01-01T00:00:10+00:00", 2026),
        (1, "2026-12-31T23:59:59+00:00", 2027),
        (11, "2026-11-26T00:00:00+00:00", 2026),
        (12, "2026-11-30T00:00:00+00:00", 2026),
        (6, "2026-03-01T00:00:00+00:00", 2025),
    ],
)
def test_infer_year(month: int, received: str, year: int) -> None:
    assert infer_year(month, _us(received)) == year


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1795729970, 1795729970_000000),
        (1795729970.412, 1795729970_412000),
        ("1795729970.5", 1795729970_500000),
        (1795729970412, 1795729970_412000),
        (1795729970412345, 1795729970_412345),
        (1795729970412345678, 1795729970_412345),
        (True, None),
        ("soon", None),
        (float("inf"), None),
        (-5, None),
    ],
)
def test_epoch_to_us(value: float | int | str, expected: int | None) -> None:
    assert epoch_to_us(value) == expected
