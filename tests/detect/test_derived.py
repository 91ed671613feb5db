"""Derived fields: local time in Europe/Stockholm, after hours (with Swedish holidays), family."""

from __future__ import annotations

import datetime as dt

import pytest

from norrvakt.detect.derived import (
    AFTER_HOURS,
    FAMILY,
    LOCAL_HOUR,
    WEEKDAY,
    DerivedFields,
    DerivedFieldsError,
    WorkingHours,
    swedish_holidays,
)
from norrvakt.event import Event

from .helpers import fires


def at(iso: str, **ecs: str) -> Event:
    ts = int(dt.datetime.fromisoformat(iso).timestamp() * 1_000_000)
    return Event(tenant="lulea", ts=ts, ingested=ts, source="t", peer="t", ecs=dict(ecs))


@pytest.mark.parametrize(
    ("iso", "hour", "weekday", "after"),
    [
        ("2026-11-26T06:59:00+00:00", "7", "4", "false"),  # Thursday 07:59 in Stockholm (UTC+1)
        ("2026-11-26T05:59:00+00:00", "6", "4", "true"),
        ("2026-11-26T17:00:00+00:00", "18", "4", "true"),
        ("2026-11-28T10:00:00+00:00", "11", "6", "true"),  # Saturday
        ("2026-07-01T05:30:00+00:00", "7", "3", "false"),  # summer time: UTC+2
        ("2026-06-19T10:00:00+00:00", "12", "5", "true"),  # Midsummer Eve 2026
        ("2026-04-03T10:00:00+00:00", "12", "5", "true"),  # Good Friday 2026
    ],
)
def test_local_time_fields(iso: str, hour: str, weekday: str, after: str) -> None:
    d = DerivedFields()
    e = at(iso)
    assert (d.value(LOCAL_HOUR, e), d.value(WEEKDAY, e), d.value(AFTER_HOURS, e)) == (hour, weekday, after)


def test_zone_and_hours_are_configurable() -> None:
    d = DerivedFields(WorkingHours(zone="UTC", start_hour=6, end_hour=22, holidays="none"))
    e = at("2026-12-24T21:00:00+00:00")
    assert d.value(LOCAL_HOUR, e) == "21" and d.value(AFTER_HOURS, e) == "false"


def test_bad_settings_say_what() -> None:
    with pytest.raises(DerivedFieldsError, match="Europe/Lulea"):
        DerivedFields(WorkingHours(zone="Europe/Lulea"))
    with pytest.raises(DerivedFieldsError, match="start <= end"):
        DerivedFields(WorkingHours(start_hour=19, end_hour=7))


def test_swedish_holidays_2026() -> None:
    days = {d.isoformat() for d in swedish_holidays(2026)}
    assert {"2026-04-03", "2026-04-06", "2026-05-14", "2026-06-06", "2026-06-19", "2026-12-24"} <= days


@pytest.mark.parametrize(
    ("ecs", "family"),
    [
        ({"event.dataset": "eservices.case.export"}, "eservices"),
        ({"event.dataset": "linux.auth"}, "linux"),
        ({"event.module": "sysmon"}, "sysmon"),
        ({"log.syslog.appname": "cron"}, "syslog"),
        ({}, None),
    ],
)
def test_family(ecs: dict[str, str], family: str | None) -> None:
    assert DerivedFields().value(FAMILY, at("2026-11-26T10:00:00+00:00", **ecs)) == family


def test_extra_derived_field_is_seen_by_rules() -> None:
    from norrvakt.detect.engine import RuleSet

    from .helpers import rule_yaml

    derived = DerivedFields(
        extra={"hr.department": lambda e: "IT" if e.fields.get("user") == "anna" else None}
    )
    rules, _ = RuleSet.from_yaml(rule_yaml("sel: {hr.department: it}\ncondition: sel"), derived=derived)
    anna = Event(tenant="t", ts=0, ingested=0, source="t", peer="t", fields={"user": "anna"})
    assert rules.match(anna)


def test_rules_can_test_after_hours() -> None:
    # helpers.event() is at ts 0: 1970-01-01 01:00 in Stockholm, a Thursday and a holiday.
    assert fires("sel: {norrvakt.after_hours: 'true', norrvakt.local_hour|lt: 7}\ncondition: sel")
    assert not fires("sel: {norrvakt.weekday: 6}\ncondition: sel")
