"""Fields the engine derives from an event before matching, so rules can test them like any field.

    norrvakt.local_hour    "3"      hour of ``Event.ts`` in the configured zone (0-23)
    norrvakt.weekday       "7"      ISO weekday of ``Event.ts`` there (Monday = 1 ... Sunday = 7)
    norrvakt.after_hours   "true"   outside 07:00-18:00 Monday-Friday, on a weekend or a holiday
    norrvakt.family        "locks"  what kind of log this is (the rule index is keyed on it)

They are never written into the event (the journal seals exactly what arrived): rules, the
correlation group-by and the hunt read them through :class:`~norrvakt.detect.atoms.EventView`.
More can be registered (``DerivedFields(extra={"hr.department": lookup})``) — a per-event
function of the event, called only when a rule asks for the name.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from norrvakt.event import Event

LOCAL_HOUR = "norrvakt.local_hour"
WEEKDAY = "norrvakt.weekday"
AFTER_HOURS = "norrvakt.after_hours"
FAMILY = "norrvakt.family"

Deriver = Callable[[Event], str | None]


class DerivedFieldsError(ValueError):
    """A working-hours setting that cannot be used (unknown zone, hours out of range)."""


@dataclass(frozen=True)
class WorkingHours:
    """When ``norrvakt.after_hours`` is "false": ``start_hour`` <= local hour < ``end_hour`` on
    ``workdays`` (ISO numbers) that are not ``holidays`` ("se": Swedish public holidays and the
    eves that offices close on; "none"; or explicit ISO dates)."""

    zone: str = "Europe/Stockholm"
    start_hour: int = 7
    end_hour: int = 18
    workdays: tuple[int, ...] = (1, 2, 3, 4, 5)
    holidays: str = "se"
    extra_holidays: frozenset[str] = field(default_factory=frozenset)  # "2026-12-23", ...


def family_of(event: Event) -> str | None:
    """The part of ``event.dataset`` before its first dot (``eservices`` for ``eservices.login``,
    ``linux`` for ``linux.auth``); else ``event.module`` (``windows``, ``sysmon``, ``cef``);
    else ``syslog`` for a syslog message no parser classified; else None."""
    ecs = event.ecs
    dataset = ecs.get("event.dataset")
    if dataset:
        return dataset.partition(".")[0]
    module = ecs.get("event.module")
    if module:
        return module
    if "log.syslog.facility.code" in ecs or "log.syslog.appname" in ecs:
        return "syslog"
    return None


class DerivedFields:
    """The derived fields of a rule set; one instance per engine (it memoises the last time)."""

    def __init__(self, hours: WorkingHours | None = None, extra: Mapping[str, Deriver] | None = None) -> None:
        self.hours = hours or WorkingHours()
        if not 0 <= self.hours.start_hour <= self.hours.end_hour <= 24:
            raise DerivedFieldsError(
                f"working hours {self.hours.start_hour}-{self.hours.end_hour}: need 0 <= start <= end <= 24"
            )
        try:
            self.zone = ZoneInfo(self.hours.zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DerivedFieldsError(f"time zone {self.hours.zone!r} is not known: {exc}") from None
        if self.hours.holidays not in ("se", "none"):
            raise DerivedFieldsError(f"holidays {self.hours.holidays!r}: expected 'se' or 'none'")
        self._derivers: dict[str, Deriver] = {
            LOCAL_HOUR: lambda e: str(self._local(e.ts)[0]),
            WEEKDAY: lambda e: str(self._local(e.ts)[1]),
            AFTER_HOURS: lambda e: "true" if self.off_hours(e.ts) else "false",
            FAMILY: family_of,
        }
        for name, fn in (extra or {}).items():
            if name in self._derivers:
                raise DerivedFieldsError(f"derived field {name!r} is already defined")
            self._derivers[name] = fn
        self.names: frozenset[str] = frozenset(self._derivers)
        self._memo_ts: int | None = None
        self._memo: tuple[int, int, bool] = (0, 0, False)

    def getter(self, name: str) -> Deriver | None:
        return self._derivers.get(name)

    def value(self, name: str, event: Event) -> str | None:
        fn = self._derivers.get(name)
        return fn(event) if fn is not None else None

    def off_hours(self, ts: int) -> bool:
        """Whether ``ts`` (microseconds) is outside working hours, as ``norrvakt.after_hours`` says."""
        return self._local(ts)[2]

    def _local(self, ts: int) -> tuple[int, int, bool]:
        # The three time fields of one event share one conversion.
        if ts == self._memo_ts:
            return self._memo
        local = dt.datetime.fromtimestamp(ts / 1e6, self.zone)
        h = self.hours
        day = local.date()
        working = (
            local.isoweekday() in h.workdays
            and h.start_hour <= local.hour < h.end_hour
            and not self._is_holiday(day)
        )
        self._memo_ts, self._memo = ts, (local.hour, local.isoweekday(), not working)
        return self._memo

    def _is_holiday(self, day: dt.date) -> bool:
        if day.isoformat() in self.hours.extra_holidays:
            return True
        return self.hours.holidays == "se" and day in swedish_holidays(day.year)


@functools.lru_cache(maxsize=32)
def swedish_holidays(year: int) -> frozenset[dt.date]:
    """Public holidays (lag 1989:253, from the ``holidays`` package), plus Midsummer, Christmas
    and New Year's Eve, when municipal offices are closed too (the law does not list them)."""
    official = holidays.country_holidays("SE", years=year, language="en_US")
    midsummer_day = next(d for d, name in official.items() if "Midsummer" in name)
    eves = {midsummer_day - dt.timedelta(days=1), dt.date(year, 12, 24), dt.date(year, 12, 31)}
    return frozenset(official) | frozenset(eves)


def holidays_between(first: dt.date, last: dt.date) -> list[str]:
    """The Swedish holidays (as :func:`swedish_holidays`) from ``first`` to ``last``, ISO dates —
    for SQL that asks whether a local date is one (``has({holidays:Array(String)}, …)``)."""
    years = range(first.year, last.year + 1)
    return sorted(d.isoformat() for y in years for d in swedish_holidays(y) if first <= d <= last)
