"""Improper use, live: volume outliers against the user's own baseline, after-hours patterns
(Swedish public holidays included) and same surname / address from the hashed lookup table.

Events are real lines of the social-services case system and the student-health record
system, parsed by Norrvakt's own mappings and stored in a real chDB before the detector sees
them (as the indexer does); the lookup table lives in the real state database (SQLite and
PostgreSQL). The last test sends the lines to a running server over syslog TCP.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from norrvakt.detect.detection import Detection
from norrvakt.detect.improper import (
    AFTER_HOURS,
    LOOKUP_CHECK_S,
    SHARED_IDENTITY,
    VOLUME_OUTLIER,
    ImproperUse,
)
from norrvakt.detect.live import LiveDetection
from norrvakt.event import Event, RawRecord
from norrvakt.followup.lookup import hash_plain_rows
from norrvakt.parsers import parse_record
from norrvakt.state import followup as lookup_rows
from norrvakt.store.clickhouse import ClickHouseStore
from tests.state.conftest import engine  # noqa: F401 - the two-backend fixture

ZONE = ZoneInfo("Europe/Stockholm")


def at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=ZONE)


def us(when: dt.datetime) -> int:
    return int(when.timestamp()) * 1_000_000


def social_line(
    when: dt.datetime, user: str, subject: str, action: str = "read", zone: dt.tzinfo = ZONE
) -> bytes:
    """A syslog line of the social-services system; its own time stamp is local time in ``zone``."""
    body = ";".join(
        [
            when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
            user,
            "Anna Berg",
            "handlaggare",
            "IFO",
            action,
            subject,
            "none",
            f"IFO-{subject}",
            user,
            "",
            "10.20.4.17",
        ]
    )
    stamp = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    return f"<134>1 {stamp} lulea-app01 socialsystem 3321 - - {body}".encode()


def health_line(when: dt.datetime, user: str, patient: str) -> bytes:
    return json.dumps(
        {
            "timestamp": when.isoformat(),
            "system": "elevhalsa",
            "user": user,
            "role": "skolskoterska",
            "unit": "Hertsöskolan",
            "action": "read",
            "patient_id": patient,
            "protection": "none",
            "journal_id": "J-1",
            "assigned_users": [user],
            "care_relation": "yes",
            "reason_code": "",
            "client_ip": "10.20.7.31",
        }
    ).encode()


class Feed:
    """Stores parsed lines in the real chDB with gapless seqs per tenant, as the indexer does,
    and hands live batches to the detector after they are stored."""

    def __init__(self, store: ClickHouseStore) -> None:
        self.store = store
        self.seqs: dict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))

    def events(self, payloads: list[bytes], tenant: str = "lulea", fmt: str = "syslog") -> list[Event]:
        out = []
        for payload in payloads:
            record = RawRecord(tenant, "socialsystem", 0, "10.20.4.17:514", payload, fmt, "Europe/Stockholm")
            event = parse_record(record)
            assert event.ecs.get("event.dataset", "").endswith("record_access"), event.message
            event.seq = next(self.seqs[tenant])
            event.ingested = event.ts
            out.append(event)
        return out

    def history(self, payloads: list[bytes], **kw: Any) -> None:
        self.store.insert_events(self.events(payloads, **kw))

    def live(self, detector: ImproperUse, payloads: list[bytes], **kw: Any) -> list[Detection]:
        events = self.events(payloads, **kw)
        self.store.insert_events(events)
        return detector.process(events)


class Clock:
    def __init__(self, when: dt.datetime) -> None:
        self.now = us(when)

    def __call__(self) -> int:
        return self.now


DAY = dt.date(2026, 11, 10)  # a Tuesday


def weekdays_before(day: dt.date, n: int) -> list[dt.date]:
    out, d = [], day
    while len(out) < n:
        d -= dt.timedelta(days=1)
        if d.weekday() < 5:
            out.append(d)
    return out


def reads(day: dt.date, user: str, n: int, hour: int = 9) -> list[bytes]:
    """n reads in working hours (from ``hour``, 20 s apart)."""
    start = at(day, hour)
    return [social_line(start + dt.timedelta(seconds=20 * i), user, f"s-{i % 7}") for i in range(n)]


@pytest.fixture
def feed(store: ClickHouseStore) -> Feed:
    return Feed(store)


def detector(feed: Feed, when: dt.datetime, state: sa.Engine | None = None) -> ImproperUse:
    return ImproperUse(feed.store, state, zone="Europe/Stockholm", clock=Clock(when))


# -- volume outlier ----------------------------------------------------------------------------


def test_outlier_fires_once_when_the_day_passes_three_times_the_users_median(feed: Feed) -> None:
    for day in weekdays_before(DAY, 22):
        feed.history(reads(day, "u-1", 7))  # median 7 → limit max(20, 21) = 21
    d = detector(feed, at(DAY, 16))
    assert feed.live(d, reads(DAY, "u-1", 21)) == []
    found = feed.live(d, reads(DAY, "u-1", 10, hour=13))
    assert [x.rule_id for x in found] == [VOLUME_OUTLIER.id]
    (hit,) = found
    assert hit.kind == "rule" and hit.level == "medium" and hit.tenant == "lulea"
    assert hit.event is not None and hit.event.ecs["user.name"] == "u-1"
    assert dict(hit.group) == {
        "user.name": "u-1",
        "norrvakt.day": "2026-11-10",
        "norrvakt.count": "22",
        "norrvakt.baseline": "7",
    }
    assert "baseline 7 a day, limit 21" in hit.detail
    alert = LiveDetection.as_input(hit)
    assert alert is not None and alert.entities["user.name"] == "u-1"
    assert alert.dedupe_key_fields == ["user.name", "norrvakt.day"]


def test_a_user_with_high_normal_volume_is_not_an_outlier(feed: Feed) -> None:
    for day in weekdays_before(DAY, 22):
        feed.history(reads(day, "u-2", 40, hour=8))  # limit 120
    d = detector(feed, at(DAY, 16))
    assert feed.live(d, reads(DAY, "u-2", 100, hour=8)) == []


def test_a_user_without_history_is_compared_with_the_typical_user(feed: Feed) -> None:
    for day in weekdays_before(DAY, 22):
        feed.history(reads(day, "u-1", 7))  # the typical user-day: 7 → limit max(20, 5 × 7) = 35
    d = detector(feed, at(DAY, 16))
    assert feed.live(d, reads(DAY, "u-new", 35)) == []
    (hit,) = feed.live(d, reads(DAY, "u-new", 1, hour=11))
    assert hit.rule_id == VOLUME_OUTLIER.id
    assert "no history of their own, the typical user 7 a day, limit 35" in hit.detail


def test_a_system_new_to_norrvakt_learns_before_it_judges(feed: Feed) -> None:
    d = detector(feed, at(DAY, 16))  # no access of anyone before today: nobody's normal is known
    assert feed.live(d, reads(DAY, "u-new", 100)) == []


def test_history_that_arrives_later_ends_the_learning(feed: Feed) -> None:
    from norrvakt.detect.improper import LEARNING_RECHECK_S

    clock = Clock(at(DAY, 10))
    d = ImproperUse(feed.store, zone="Europe/Stockholm", clock=clock)
    assert feed.live(d, reads(DAY, "u-new", 40, hour=9)) == []  # nobody's normal known yet
    for day in weekdays_before(DAY, 10):
        feed.history(reads(day, "u-1", 4))  # a backfill: the typical user-day is 4 → limit 20
    assert feed.live(d, reads(DAY, "u-new", 1, hour=10)) == []  # still the state read at 09:00
    clock.now += (LEARNING_RECHECK_S + 1) * 1_000_000
    (hit,) = feed.live(d, reads(DAY, "u-new", 1, hour=10))
    assert "typical user 4 a day" in hit.detail and dict(hit.group)["norrvakt.count"] == "42"


def test_the_baseline_is_one_query_per_tenant_and_day(feed: Feed) -> None:
    for day in weekdays_before(DAY, 5):
        feed.history(reads(day, "u-1", 5))
    clock = Clock(at(DAY, 16))
    d = ImproperUse(feed.store, zone="Europe/Stockholm", clock=clock)
    for hour in (8, 9, 10):
        feed.live(d, reads(DAY, "u-1", 3, hour=hour))
    assert d.queries == 1
    feed.live(d, reads(DAY, "u-1", 3, hour=12), tenant="pitea")
    assert d.queries == 2
    clock.now = us(at(DAY + dt.timedelta(days=1), 8))
    feed.live(d, reads(DAY + dt.timedelta(days=1), "u-1", 3))
    assert d.queries == 3


def test_the_day_so_far_is_read_from_the_store_after_a_restart(feed: Feed) -> None:
    for day in weekdays_before(DAY, 5):
        feed.history(reads(day, "u-2", 3))  # typical user-day 3: u-1's limit is the floor of 20
    feed.history(reads(DAY, "u-1", 18))  # stored before the server (re)started
    d = detector(feed, at(DAY, 16))
    assert feed.live(d, reads(DAY, "u-1", 2, hour=14)) == []
    (hit,) = feed.live(d, reads(DAY, "u-1", 1, hour=15))
    assert dict(hit.group)["norrvakt.count"] == "21"


# -- after hours -------------------------------------------------------------------------------


def test_accesses_on_a_swedish_public_holiday_are_after_hours(feed: Feed) -> None:
    christmas = dt.date(2026, 12, 25)  # a Friday: a working day but for the holiday
    d = detector(feed, at(christmas, 12))
    lines = [health_line(at(christmas, 10, i), "u-3301", f"p-{i}") for i in range(5)]
    found = feed.live(d, lines, fmt="json")
    assert [x.rule_id for x in found] == [AFTER_HOURS.id]
    (hit,) = found
    assert dict(hit.group) == {"user.name": "u-3301", "norrvakt.day": "2026-12-25"}
    assert hit.events == 5 and len(hit.refs) == 5
    assert "health.record_access" in hit.detail


def test_weekday_working_hours_are_not_after_hours(feed: Feed) -> None:
    tuesday = dt.date(2026, 11, 24)
    d = detector(feed, at(tuesday, 12))
    lines = [social_line(at(tuesday, 10, i), "u-6", f"s-{i}") for i in range(8)]
    assert feed.live(d, lines) == []


def test_one_night_spans_midnight_and_needs_five_accesses(feed: Feed) -> None:
    monday, tuesday = dt.date(2026, 11, 23), dt.date(2026, 11, 24)
    d = detector(feed, at(tuesday, 6, 30))
    evening = [social_line(at(monday, 22, i), "u-6", f"s-{i}") for i in range(3)]
    early = [social_line(at(tuesday, 2, i), "u-6", f"s-{i}") for i in range(1)]
    assert feed.live(d, evening + early) == []  # 4 in the night: not yet
    (hit,) = feed.live(d, [social_line(at(tuesday, 6, 10), "u-6", "s-9")])
    assert hit.rule_id == AFTER_HOURS.id and dict(hit.group)["norrvakt.day"] == "2026-11-23"
    assert feed.live(d, [social_line(at(tuesday, 6, 20), "u-6", "s-9")]) == []  # once per night


def test_the_night_so_far_is_read_from_the_store_after_a_restart(feed: Feed) -> None:
    christmas = dt.date(2026, 12, 25)
    feed.history([social_line(at(christmas, 10, i), "u-6", f"s-{i}") for i in range(3)])
    feed.history([social_line(at(christmas, 11, i), "u-7", f"s-{i}") for i in range(4)])
    d = detector(feed, at(christmas, 12))
    (hit,) = feed.live(d, [social_line(at(christmas, 12, i), "u-6", "s-1") for i in range(2)])
    assert dict(hit.group)["user.name"] == "u-6" and hit.events == 5


# -- same surname / same address ---------------------------------------------------------------


def upload(engine: sa.Engine, kind: str, plain: list[dict[str, str]], tenant: str = "lulea") -> None:  # noqa: F811
    with engine.begin() as conn:
        lookup_rows.replace_lookup(conn, tenant, kind, hash_plain_rows(tenant, plain))


@pytest.fixture
def lookup(engine: sa.Engine) -> sa.Engine:  # noqa: F811
    upload(
        engine,
        "staff",
        [
            {"id": "u-2", "surname": "Lindqvist", "address": "Storgatan 1, Luleå"},
            {"id": "u-4", "surname": "Nilsson", "address": "Hamngatan 7, Luleå"},
        ],
    )
    upload(
        engine,
        "subject",
        [
            {"id": "s-lind", "surname": "LINDQVIST ", "address": "Skolgatan 3, Luleå"},
            {"id": "s-003", "surname": "Berg", "address": "Storgatan 1, Luleå"},
            {"id": "s-004", "surname": "Öberg", "address": "Kungsgatan 2, Luleå"},
        ],
    )
    return engine


def test_same_surname_in_the_lookup_table_fires_once_a_day(feed: Feed, lookup: sa.Engine) -> None:
    d = detector(feed, at(DAY, 16), lookup)
    found = feed.live(
        d, [social_line(at(DAY, 10), "u-2", "s-lind"), social_line(at(DAY, 11), "u-2", "s-lind")]
    )
    assert [x.rule_id for x in found] == [SHARED_IDENTITY.id]
    (hit,) = found
    assert hit.level == "medium"  # a surname alone
    assert dict(hit.group)["subject_id"] == "s-lind" and dict(hit.group)["norrvakt.shared"] == "surname"
    assert "Lindqvist" not in hit.detail  # hashes are compared, names never known
    assert feed.live(d, [social_line(at(DAY, 12), "u-2", "s-lind", "print")]) == []


def test_same_address_is_high(feed: Feed, lookup: sa.Engine) -> None:
    d = detector(feed, at(DAY, 16), lookup)
    (hit,) = feed.live(d, [social_line(at(DAY, 10), "u-2", "s-003", "search")])
    assert hit.level == "high" and dict(hit.group)["norrvakt.shared"] == "address"


def test_no_shared_surname_or_address_no_detection(feed: Feed, lookup: sa.Engine) -> None:
    d = detector(feed, at(DAY, 16), lookup)
    lines = [social_line(at(DAY, 10), "u-4", "s-004"), social_line(at(DAY, 10, 5), "u-9", "s-lind")]
    assert feed.live(d, lines) == []
    # another tenant's identical names do not match: the hashes include the tenant
    assert feed.live(d, [social_line(at(DAY, 10), "u-2", "s-lind")], tenant="pitea") == []


def test_a_new_upload_is_used_within_the_check_interval(feed: Feed, lookup: sa.Engine) -> None:
    clock = Clock(at(DAY, 9))
    d = ImproperUse(feed.store, lookup, zone="Europe/Stockholm", clock=clock)
    assert feed.live(d, [social_line(at(DAY, 9), "u-4", "s-004")]) == []
    upload(lookup, "staff", [{"id": "u-4", "surname": "Öberg", "address": ""}])
    clock.now += LOOKUP_CHECK_S * 1_000_000
    (hit,) = feed.live(d, [social_line(at(DAY, 9, 1), "u-4", "s-004")])
    assert dict(hit.group)["user.name"] == "u-4"


# -- the rules page ----------------------------------------------------------------------------


def test_the_three_rules_have_load_report_rows() -> None:
    rows = ImproperUse.statuses()
    assert {r.id for r in rows} == {VOLUME_OUTLIER.id, AFTER_HOURS.id, SHARED_IDENTITY.id}
    assert all(r.kind == "baseline" and r.loaded and r.title and r.level for r in rows)


# -- through a running server ------------------------------------------------------------------


def test_a_volume_outlier_arriving_over_syslog_raises_an_alert(tmp_path: Path) -> None:
    if shutil.which("logger") is None:
        pytest.skip("util-linux logger is not installed")
    from tests.e2e.harness import running_server

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # today's 30 reads must fall on one UTC day and not in the future: just after midnight,
    # ten minutes back would split them over two user-days (CI once ran this at 00:08)
    midnight = now.replace(hour=0, minute=0, second=0)
    if now - midnight < dt.timedelta(seconds=30):
        time.sleep(30 - (now - midnight).total_seconds())
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = max(now - dt.timedelta(minutes=10), midnight)
    step = min(10, int((now - start).total_seconds()) // 30)

    def write(name: str, lines: list[bytes]) -> Path:
        path = tmp_path / name
        text = "\n".join(line.decode().split(" - - ", 1)[1] for line in lines)  # logger adds the header
        path.write_text(text + "\n", encoding="utf-8")
        return path

    # the harness's server runs in UTC. History first (a backfill: 2–4 days old, which needs
    # no day state): u-1 read 5 records a day, so the typical user-day is 5 and u-77 (no
    # history of their own) may read 25 today
    history = write(
        "history.log",
        [
            social_line(now - dt.timedelta(days=d, minutes=i), "u-1", f"s-{i}", zone=dt.UTC)
            for d in (2, 3, 4)
            for i in range(5)
        ],
    )
    today = write(
        "today.log",
        [
            social_line(start + dt.timedelta(seconds=step * i), "u-77", f"s-{i}", zone=dt.UTC)
            for i in range(30)
        ],
    )
    with running_server(tmp_path / "srv") as server:
        rules = {r["id"]: r for r in server.api("GET", "/api/rules").json()["rules"]}
        assert rules[VOLUME_OUTLIER.id]["kind"] == "baseline" and rules[VOLUME_OUTLIER.id]["loaded"]
        port = str(server.ports["tcp"])
        for source in (history, today):
            subprocess.run(
                ["logger", "--tcp", "--octet-count", "--rfc5424", "-n", "127.0.0.1", "-P", port,
                 "-t", "socialsystem", "-p", "local0.info", "-f", str(source)],
                check=True,
                timeout=30,
            )  # fmt: skip
            if source is history:
                assert server.wait_count("user.name:u-1", 15, tenant="lulea", since="7d") == 15
        deadline = time.monotonic() + 15
        alerts: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not alerts:
            got = server.api("GET", "/api/alerts", params={"rule": VOLUME_OUTLIER.id, "status": ""})
            alerts = got.json()["alerts"]
            time.sleep(0.25)
        assert len(alerts) == 1, server.log()
        assert alerts[0]["tenant"] == "lulea"
        assert "u-77" in json.dumps(alerts[0])
