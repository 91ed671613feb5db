"""Times an analyst types for a search range: ``15m``, ``now-1h``, ``2025-03-10``, epoch seconds.

Used for the time picker / CLI ``--since`` and for time values inside a query
(``@timestamp:>now-1h``). Everything is microseconds since the epoch, UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from norrvakt.store.query_ast import QueryError

_UNIT_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000}
_RELATIVE_RE = re.compile(r"(?:now\s*([+-])\s*)?(\d+)\s*([smhdw])", re.IGNORECASE)
_EPOCH_RE = re.compile(r"-?\d+(?:\.\d{1,6})?")
_MAX_EPOCH_S = 253_402_300_799  # 9999-12-31T23:59:59Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str, now_us: int) -> int:
    """Microseconds since the epoch for a time an analyst types.

    ``now``; ``15m`` / ``2h`` / ``7d`` / ``30s`` / ``1w`` (that long before now);
    ``now-1h`` / ``now+5m``; ISO 8601 dates and date-times (no zone = UTC); epoch seconds
    (``1714557600`` or ``1714557600.25``).
    """
    value = text.strip()
    if not value:
        raise QueryError("empty time: use e.g. 15m, now-1h, 2024-05-01 or epoch seconds")
    if value.lower() == "now":
        return now_us
    relative = _RELATIVE_RE.fullmatch(value)
    if relative:
        sign, amount, unit = relative.groups()
        delta = int(amount) * _UNIT_US[unit.lower()]
        return now_us + delta if sign == "+" else now_us - delta
    if _EPOCH_RE.fullmatch(value):
        seconds = Decimal(value)
        if abs(seconds) > _MAX_EPOCH_S:
            raise QueryError(f"epoch seconds out of range: {value!r}")
        return int(seconds * 1_000_000)
    return _parse_iso(value)


def _parse_iso(value: str) -> int:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            f"cannot read time {value!r}: use 15m, 2h, 7d, now, now-1h, "
            "an ISO 8601 date or date-time, or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


_SPAN_RE = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)


def parse_span(text: str) -> int:
    """Microseconds of a bucket span such as ``30s``, ``5m``, ``1h``, ``1d`` or ``1w``."""
    match = _SPAN_RE.fullmatch(text.strip())
    if not match or int(match.group(1)) < 1:
        raise QueryError(f"cannot read span {text!r}: use e.g. 30s, 5m, 1h, 1d or 1w")
    return int(match.group(1)) * _UNIT_US[match.group(2).lower()]


def iso_time(micros: int) -> str:
    """``2024-05-01T12:00:00.000001Z`` for microseconds since the epoch."""
    moment = _EPOCH + timedelta(microseconds=micros)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
