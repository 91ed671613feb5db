"""Timestamps as logs write them, to microseconds since the epoch (UTC).

Handles, by hand (slices and ``int``; ``strptime`` costs ~10 µs a call)::

    2026-11-26T21:43:23.306142+00:00      RFC 3339 (RFC 5424, JSON, ISODATE)
    2019-03-19T23:34:25.894341Z           EVTX SystemTime
    2026-11-26 21:43:38                   NXLog EventTime: no zone → the record's timezone
    Nov 26 21:43:38 / Nov  6 08:01:02     RFC 3164: no zone, no year
    1795729970.123                        HEC / epoch seconds (also ms, µs, ns by magnitude)

Local times use ``record.timezone`` (a zoneinfo name); an unknown name reads as UTC (the
config validates zone names, so that only happens to hand-made records). The UTC offset of a
zone is cached per (zone, local hour): DST changes on the hour in every zone Norrvakt serves.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_US = 1_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Sanity window for epoch numbers: 1970 up to the year 2200.
_MAX_US = 7_258_118_400 * _US

MONTHS: dict[str, int] = {}
for _i, _name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
):
    MONTHS[_name] = _i
    MONTHS[_name.upper()] = _i
    MONTHS[_name.lower()] = _i

_CACHE_LIMIT = 4096
_date_cache: dict[str, int] = {}  # "YYYY-MM-DD" → epoch seconds at midnight UTC
_ymd_cache: dict[tuple[int, int, int], int] = {}
_offset_cache: dict[tuple[str, int], int] = {}  # (zone, naive local epoch hour) → offset seconds
_zones: dict[str, ZoneInfo | None] = {}
_recv_cache: dict[int, tuple[int, int]] = {}  # epoch day → (year, month)
_second_cache: dict[str, int] = {}  # "YYYY-MM-DDThh:mm:ss" → epoch seconds (as if UTC)
_zone_cache: dict[str, int] = {}  # "+01:00" → offset seconds


def _zone(name: str) -> ZoneInfo | None:
    try:
        return _zones[name]
    except KeyError:
        pass
    zone: ZoneInfo | None
    try:
        zone = None if name in ("UTC", "Etc/UTC", "") else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        zone = None
    _zones[name] = zone
    return zone


def day_seconds(year: int, month: int, day: int) -> int | None:
    """Epoch seconds of midnight UTC on that date, or None when it is no date."""
    key = (year, month, day)
    got = _ymd_cache.get(key)
    if got is not None:
        return got
    try:
        secs = (date(year, month, day).toordinal() - _EPOCH_ORDINAL) * 86400
    except ValueError:
        return None
    if len(_ymd_cache) >= _CACHE_LIMIT:
        _ymd_cache.clear()
    _ymd_cache[key] = secs
    return secs


def _iso_date_seconds(text: str) -> int | None:
    got = _date_cache.get(text)
    if got is not None:
        return got
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    digits = text[0:4] + text[5:7] + text[8:10]
    if not (digits.isascii() and digits.isdigit()):
        return None
    secs = day_seconds(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    if secs is None:
        return None
    if len(_date_cache) >= _CACHE_LIMIT:
        _date_cache.clear()
    _date_cache[text] = secs
    return secs


def local_offset(zone_name: str, naive_seconds: int) -> int:
    """UTC offset in seconds of zone ``zone_name`` at local wall time ``naive_seconds``."""
    zone = _zone(zone_name)
    if zone is None:
        return 0
    key = (zone_name, naive_seconds // 3600)
    got = _offset_cache.get(key)
    if got is not None:
        return got
    try:
        wall = datetime.fromtimestamp(naive_seconds // 3600 * 3600, UTC).replace(tzinfo=zone)
        delta = wall.utcoffset()
    except (OverflowError, ValueError, OSError):
        return 0
    offset = int(delta.total_seconds()) if delta is not None else 0
    if len(_offset_cache) >= _CACHE_LIMIT:
        _offset_cache.clear()
    _offset_cache[key] = offset
    return offset


def parse_iso(text: str, zone_name: str = "UTC") -> int | None:
    """RFC 3339 / ISO 8601 date-time → µs since epoch UTC, or None when it is not one.

    ``T`` or a space between date and time; fraction after ``.`` or ``,`` (any number of
    digits, cut to µs); zone ``Z``, ``±hh:mm``, ``±hhmm`` or ``±hh``; none → ``zone_name``.
    """
    n = len(text)
    if n < 19:
        return None
    head = text[:19]
    seconds = _second_cache.get(head)
    if seconds is None:
        seconds = _head_seconds(head)
        if seconds is None:
            return None
        if len(_second_cache) >= _CACHE_LIMIT:
            _second_cache.clear()
        _second_cache[head] = seconds
    micros = 0
    pos = 19
    if pos < n and text[pos] in ".,":
        rest = text[20:]
        frac_len = len(rest) - len(rest.lstrip("0123456789"))
        if frac_len == 0:
            return None
        micros = int((rest[:frac_len] + "000000")[:6]) if frac_len < 6 else int(rest[:6])
        pos = 20 + frac_len
    if pos == n:
        return (seconds - local_offset(zone_name, seconds)) * _US + micros
    zone = text[pos:]
    offset = _zone_cache.get(zone)
    if offset is None:
        offset = _zone_offset(zone)
        if offset is None:
            return None
        if len(_zone_cache) < _CACHE_LIMIT:
            _zone_cache[zone] = offset
    return (seconds - offset) * _US + micros


def _head_seconds(head: str) -> int | None:
    """``YYYY-MM-DDThh:mm:ss`` → epoch seconds, read as UTC; None when it is not one."""
    if head[13] != ":" or head[16] != ":" or head[10] not in "Tt ":
        return None
    base = _iso_date_seconds(head[:10])
    if base is None:
        return None
    clock = head[11:13] + head[14:16] + head[17:19]
    if not (clock.isascii() and clock.isdigit()):
        return None
    hour, minute, second = int(clock[0:2]), int(clock[2:4]), int(clock[4:6])
    if hour > 23 or minute > 59 or second > 60:
        return None
    # A leap second is kept inside its minute rather than rejecting the event.
    return base + hour * 3600 + minute * 60 + min(second, 59)


def _zone_offset(rest: str) -> int | None:
    if rest in ("Z", "z"):
        return 0
    if rest[0] not in "+-":
        return None
    body = rest[1:].replace(":", "", 1)
    if not (body.isascii() and body.isdigit()) or len(body) not in (2, 4):
        return None
    hours = int(body[0:2])
    minutes = int(body[2:4]) if len(body) == 4 else 0
    if hours > 23 or minutes > 59:
        return None
    offset = hours * 3600 + minutes * 60
    return -offset if rest[0] == "-" else offset


def received_year_month(received_at: int) -> tuple[int, int]:
    """(year, month) of a receive time in µs (UTC; a day's precision is all year inference needs)."""
    day = received_at // (86400 * _US)
    got = _recv_cache.get(day)
    if got is not None:
        return got
    try:
        d = date.fromordinal(_EPOCH_ORDINAL + day)
        got = (d.year, d.month)
    except (ValueError, OverflowError):
        got = (1970, 1)
    if len(_recv_cache) >= _CACHE_LIMIT:
        _recv_cache.clear()
    _recv_cache[day] = got
    return got


def infer_year(month: int, received_at: int) -> int:
    """The year of a yearless timestamp: the receive year, unless that puts it in the future.

    A December line received in January is last year's; a January line received on 31
    December (clock skew, a slow relay) is next year's. A month more than one ahead of the
    receive month can only be an old file being imported, so it is last year's too.
    """
    year, recv_month = received_year_month(received_at)
    diff = month - recv_month
    if diff > 1:
        return year - 1
    if diff < -10:
        return year + 1
    return year


def local_to_us(
    zone_name: str, year: int, month: int, day: int, hour: int, minute: int, second: int, micros: int = 0
) -> int | None:
    """A local wall-clock time in ``zone_name`` → µs since epoch UTC; None when it is no time."""
    base = day_seconds(year, month, day)
    if base is None or hour > 23 or minute > 59 or second > 60:
        return None
    seconds = base + hour * 3600 + minute * 60 + min(second, 59)
    return (seconds - local_offset(zone_name, seconds)) * _US + micros


def epoch_to_us(value: float | int | str) -> int | None:
    """Epoch seconds (HEC ``time``), or ms/µs/ns told apart by magnitude → µs; None if no time."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value) if ("." in value or "e" in value or "E" in value) else int(value)
        except ValueError:
            return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    magnitude = abs(value)
    if magnitude < 1e11:
        us = round(value * _US)
    elif magnitude < 1e14:
        us = round(value * 1000)
    elif magnitude < 1e17:
        us = int(value)
    else:
        us = int(value // 1000)
    if us < 0 or us > _MAX_US:
        return None
    return us


def parse_clf_timestamp(text: str) -> int | None:
    """Common Log Format time ``26/Nov/2026:23:05:01 +0100`` → µs, or None when it is not one."""
    if len(text) != 26 or text[2] != "/" or text[6] != "/" or text[11] != ":" or text[20] != " ":
        return None
    month = MONTHS.get(text[3:6])
    sign = text[21]
    try:
        day, year = int(text[0:2]), int(text[7:11])
        hh, mm, ss = int(text[12:14]), int(text[15:17]), int(text[18:20])
        off = (int(text[22:24]) * 60 + int(text[24:26])) * 60
    except ValueError:
        return None
    if month is None or sign not in "+-" or hh > 23 or mm > 59 or ss > 60:
        return None
    midnight = day_seconds(year, month, day)
    if midnight is None:
        return None
    secs = midnight + hh * 3600 + mm * 60 + ss - (off if sign == "+" else -off)
    return secs * _US
