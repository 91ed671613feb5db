"""Report periods in local time: a calendar month (``2026-11``) or an ISO week (``2026-W48``).

p = parse_period("2026-11", "Europe/Stockholm")     # schedule read from the label's form
p.start_us, p.end_us                                # [start, end) in UTC microseconds
previous(p).label                                   # 2026-10 (the trend compares with it)
last_complete("monthly", zone, now)                 # what the scheduler sends at the month's start
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from norrvakt.errors import StatusError

SCHEDULES = ("monthly", "weekly")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class BadPeriod(StatusError, ValueError):
    """A period label that names no month or week, or one that has not ended yet."""


@dataclass(frozen=True)
class Period:
    label: str  # 2026-11 | 2026-W48
    schedule: str  # monthly | weekly
    first_day: dt.date
    end_day: dt.date  # exclusive
    zone: str

    @property
    def start_us(self) -> int:
        return _us(self.first_day, self.zone)

    @property
    def end_us(self) -> int:
        return _us(self.end_day, self.zone)

    @property
    def last_day(self) -> dt.date:
        return self.end_day - dt.timedelta(days=1)

    def days(self) -> list[dt.date]:
        n = (self.end_day - self.first_day).days
        return [self.first_day + dt.timedelta(days=i) for i in range(n)]

    def day_start_us(self, day: dt.date) -> int:
        return _us(day, self.zone)


def _us(day: dt.date, zone: str) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).timestamp()) * 1_000_000


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month(first: dt.date, zone: str) -> Period:
    return Period(f"{first.year}-{first.month:02d}", "monthly", first, _add_months(first, 1), zone)


def week(monday: dt.date, zone: str) -> Period:
    year, number, _ = monday.isocalendar()
    return Period(f"{year}-W{number:02d}", "weekly", monday, monday + dt.timedelta(days=7), zone)


def parse_period(label: str, zone: str, schedule: str | None = None) -> Period:
    """The period ``label`` names; with ``schedule`` given, it must be of that kind."""
    label = label.strip()
    m, w = _MONTH.match(label), _WEEK.match(label)
    if m and 1 <= int(m.group(2)) <= 12 and int(m.group(1)) >= 2000:
        found = month(dt.date(int(m.group(1)), int(m.group(2)), 1), zone)
    elif w and int(w.group(1)) >= 2000:
        try:
            monday = dt.date.fromisocalendar(int(w.group(1)), int(w.group(2)), 1)
        except ValueError:
            raise BadPeriod(f"period {label!r}: {w.group(1)} has no ISO week {int(w.group(2))}") from None
        found = week(monday, zone)
    else:
        raise BadPeriod(f"period {label!r}: a month like 2026-11 or an ISO week like 2026-W48")
    if schedule is not None and found.schedule != schedule:
        wanted = "a month like 2026-11" if schedule == "monthly" else "an ISO week like 2026-W48"
        raise BadPeriod(f"period {label!r}: the {schedule} report takes {wanted}")
    return found


def previous(p: Period) -> Period:
    if p.schedule == "monthly":
        return month(_add_months(p.first_day, -1), p.zone)
    return week(p.first_day - dt.timedelta(days=7), p.zone)


def local_date(us: int, zone: str) -> dt.date:
    return dt.datetime.fromtimestamp(us / 1_000_000, ZoneInfo(zone)).date()


def last_complete(schedule: str, zone: str, now: int) -> Period:
    """The newest period that has ended by ``now`` (µs)."""
    today = local_date(now, zone)
    if schedule == "monthly":
        return month(_add_months(dt.date(today.year, today.month, 1), -1), zone)
    if schedule == "weekly":
        return week(today - dt.timedelta(days=today.weekday() + 7), zone)
    raise BadPeriod(f"schedule {schedule!r}: one of {', '.join(SCHEDULES)}")


def due_us(p: Period, send_hour: int) -> int:
    """When the scheduler sends ``p``'s reports: ``send_hour`` local time on the day it ended."""
    end = p.end_day
    return (
        int(dt.datetime(end.year, end.month, end.day, send_hour, tzinfo=ZoneInfo(p.zone)).timestamp())
        * 1_000_000
    )


def check_ended(p: Period, now: int) -> None:
    """A report covers a whole period: one that has not ended is refused, never half made."""
    if p.end_us > now:
        raise BadPeriod(
            f"period {p.label} has not ended yet (it ends {p.end_day.isoformat()} 00:00 {p.zone}); "
            "a report covers a whole period"
        )
