"""Follow-up periods: a calendar month (``2026-11``) or quarter (``2026-Q4``) in local time."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

FREQUENCIES = ("monthly", "quarterly")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")


class BadPeriod(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    label: str  # 2026-11 or 2026-Q4
    start_us: int  # inclusive, UTC microseconds
    end_us: int  # exclusive


def _us(day: dt.date, zone: ZoneInfo) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * 1_000_000


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def parse_period(label: str, frequency: str, zone_name: str) -> Period:
    """The period ``label`` names, for a plan of ``frequency`` (a monthly plan takes months)."""
    zone = ZoneInfo(zone_name)
    label = label.strip()
    if frequency == "monthly":
        m = _MONTH.match(label)
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise BadPeriod(f"period {label!r}: a monthly plan takes a month like 2026-11")
        first = dt.date(int(m.group(1)), int(m.group(2)), 1)
        return Period(label, _us(first, zone), _us(_add_months(first, 1), zone))
    if frequency == "quarterly":
        q = _QUARTER.match(label)
        if not q:
            raise BadPeriod(f"period {label!r}: a quarterly plan takes a quarter like 2026-Q4")
        first = dt.date(int(q.group(1)), 3 * (int(q.group(2)) - 1) + 1, 1)
        return Period(label, _us(first, zone), _us(_add_months(first, 3), zone))
    raise BadPeriod(f"frequency {frequency!r}: one of {', '.join(FREQUENCIES)}")


def previous_period(frequency: str, zone_name: str, now: dt.datetime | None = None) -> str:
    """The last complete period: what a reviewer checks at the start of a month."""
    today = (now or dt.datetime.now(ZoneInfo(zone_name))).date()
    if frequency == "quarterly":
        quarter = (today.month - 1) // 3  # 0-based current quarter
        year, prev = (today.year, quarter) if quarter else (today.year - 1, 4)
        return f"{year}-Q{prev}"
    last = _add_months(dt.date(today.year, today.month, 1), -1)
    return f"{last.year}-{last.month:02d}"
