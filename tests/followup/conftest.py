"""A month of social-services record access for the follow-up tests.

The events are real syslog lines of the social-services case system, parsed by Norrvakt's
own mapping and stored in a real chDB; state runs on SQLite and on a real PostgreSQL.
October is the baseline, November the period under review. In November, besides ordinary
work (weekdays 09–15 local time, users on their own cases):

- u-3 reads the record of a person with protected identity without being on the case;
- u-4 searches for that person;
- u-5 reads a case they are not assigned to;
- u-1 reads 60 records on 10 November (their baseline is 5 a day);
- u-6 reads a record at 23:10 on a Thursday;
- u-2 (surname Lindqvist) reads the record of s-lind (surname Lindqvist) — on their own case;
- tenant pitea has its own accesses, which must never appear in lulea's follow-up.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.service import AlertService
from norrvakt.config import AlertSettings
from norrvakt.event import Event, RawRecord
from norrvakt.followup.service import FollowupService
from norrvakt.parsers import parse_record
from norrvakt.state.accounts import Principal
from norrvakt.store.clickhouse import ClickHouseStore
from tests.state.conftest import engine  # noqa: F401 - the two-backend fixture

ZONE = ZoneInfo("Europe/Stockholm")
NAMES = {
    "u-1": "Anna Berg",
    "u-2": "Erik Lindqvist",
    "u-3": "Karin Holmgren",
    "u-4": "Olof Nilsson",
    "u-5": "Sara Öberg",
    "u-6": "Jonas Lund",
    "u-9": "Maria Sandberg",
}
# case → (subject, protection, assigned users)
CASES = {
    "IFO-1": ("s-001", "none", ["u-1"]),
    "IFO-2": ("s-lind", "none", ["u-2"]),
    "IFO-3": ("s-003", "none", ["u-3"]),
    "IFO-4": ("s-004", "none", ["u-4"]),
    "IFO-5": ("s-005", "none", ["u-5"]),
    "IFO-6": ("s-006", "none", ["u-6"]),
    "IFO-7": ("s-007", "none", ["u-1"]),
    "IFO-P": ("s-prot", "skyddad_folkbokforing", ["u-9"]),
}
OWN = {"u-1": "IFO-1", "u-2": "IFO-2", "u-3": "IFO-3", "u-4": "IFO-4", "u-5": "IFO-5", "u-6": "IFO-6"}


@dataclass
class Access:
    local: dt.datetime
    user: str
    case: str
    action: str = "read"


def line(a: Access) -> bytes:
    subject, protection, users = CASES[a.case]
    body = ";".join(
        [
            a.local.strftime("%Y-%m-%d %H:%M:%S"),
            a.user,
            NAMES[a.user],
            "handlaggare",
            "IFO",
            a.action,
            subject,
            protection,
            a.case,
            ",".join(users),
            "",
            "10.20.4.17",
        ]
    )
    stamp = a.local.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    return f"<134>1 {stamp} lulea-app01 socialsystem 3321 - - {body}".encode()


def workdays(year: int, month: int) -> list[dt.date]:
    day, out = dt.date(year, month, 1), []
    while day.month == month:
        if day.weekday() < 5:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)


def accesses() -> list[Access]:
    out: list[Access] = []
    for month in (10, 11):
        for day in workdays(2026, month):
            for i in range(5):
                out.append(Access(at(day, 9 + i), "u-1", "IFO-1"))
            for user in ("u-2", "u-3", "u-4", "u-5", "u-6"):
                for i in range(2):
                    out.append(Access(at(day, 10 + 2 * i, 15), user, OWN[user]))
    spike = dt.date(2026, 11, 10)
    out += [Access(at(spike, 13, i % 60) + dt.timedelta(seconds=i), "u-1", "IFO-1") for i in range(55)]
    out.append(Access(at(dt.date(2026, 11, 17), 11, 5), "u-3", "IFO-P"))
    out.append(Access(at(dt.date(2026, 11, 18), 14, 40), "u-4", "IFO-P", "search"))
    out.append(Access(at(dt.date(2026, 11, 19), 10, 30), "u-5", "IFO-7"))
    out.append(Access(at(dt.date(2026, 11, 12), 23, 10), "u-6", "IFO-6"))
    return out


def parsed(tenant: str, items: list[Access], seqs: Iterator[int]) -> list[Event]:
    events = []
    for a in items:
        record = RawRecord(
            tenant=tenant,
            source_id="socialsystem",
            received_at=0,
            peer="10.20.4.17:514",
            payload=line(a),
            format="syslog",
            timezone="Europe/Stockholm",
        )
        event = parse_record(record)
        assert event.ecs.get("event.dataset") == "socialtjanst.record_access", event.message
        event.seq = next(seqs)
        event.ingested = event.ts
        events.append(event)
    return events


class Journal:
    """Journals into the system tenant of the real store (what the pipeline + indexer do)."""

    def __init__(self, store: ClickHouseStore) -> None:
        self.store = store
        self.seqs = itertools.count(1)
        self.events: list[Event] = []

    def __call__(self, events: Any) -> None:
        for e in events:
            e.seq = next(self.seqs)
        self.events += list(events)
        self.store.insert_events(list(events))


@pytest.fixture
def month(store: ClickHouseStore) -> ClickHouseStore:
    lulea = parsed("lulea", accesses(), itertools.count(1))
    pitea = parsed(
        "pitea", [Access(at(dt.date(2026, 11, 17), 11, 5), "u-3", "IFO-P")] * 3, itertools.count(1)
    )
    store.insert_events(lulea + pitea)
    return store


REVIEWERS = {"karin.granskare": "lulea", "pia.granskare": "pitea"}


@pytest.fixture
def followup(engine: sa.Engine, month: ClickHouseStore) -> FollowupService:  # noqa: F811
    alerts = AlertService(engine, AlertSettings())
    alerts.warm()
    soc = SimpleNamespace(alerts=alerts, cases=CaseService(engine, alerts))
    return FollowupService(
        engine,
        month,
        soc=soc,  # type: ignore[arg-type]
        journal=Journal(month),
        known_user=lambda user, tenant: REVIEWERS.get(user) == tenant,
        clock=lambda: int(dt.datetime(2026, 12, 2, 9, tzinfo=ZONE).timestamp() * 1_000_000),
    )


def officer(name: str, tenant: str, role: str = "tenant_officer") -> Principal:
    return Principal(username=name, role=role, tenants=frozenset({tenant}))


SOC = Principal(username="soc.anna", role="soc_analyst", tenants=None)
ALL = ["lulea", "pitea"]
