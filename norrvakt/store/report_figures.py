"""The store's figures for the scheduled reports (norrvakt/reports): events per source and day
in a period, and when a silent source was heard from again. Times by the event's own time
(``ts``) except for silence, which is about arrival (``ingested``), as source health judges it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.schema import EVENTS_TABLE

_RANGE = (
    "tenant IN {t:Array(String)} AND ts >= fromUnixTimestamp64Micro({s:Int64}) "
    "AND ts < fromUnixTimestamp64Micro({u:Int64})"
)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def events_per_source(
    store: ClickHouseStore, tenants: Sequence[str], since: int, until: int
) -> dict[tuple[str, str, str], int]:
    """(tenant, source id, event.dataset) → events with ``ts`` in [since, until)."""
    rows = store.query(
        f"SELECT tenant, source, event_dataset, count() FROM {EVENTS_TABLE} WHERE {_RANGE} "
        "GROUP BY tenant, source, event_dataset",
        {"t": list(tenants), "s": since, "u": until},
    )
    return {(_text(t), _text(s), _text(d)): int(n) for t, s, d, n in rows}


def events_per_day(
    store: ClickHouseStore, tenants: Sequence[str], since: int, until: int, zone: str
) -> dict[tuple[str, dt.date], int]:
    """(tenant, local day) → events with ``ts`` in [since, until)."""
    rows = store.query(
        f"SELECT tenant, toDate(ts, {{z:String}}) AS d, count() FROM {EVENTS_TABLE} WHERE {_RANGE} "
        "GROUP BY tenant, d",
        {"t": list(tenants), "s": since, "u": until, "z": zone},
    )
    out: dict[tuple[str, dt.date], int] = {}
    for t, d, n in rows:
        day = d if isinstance(d, dt.date) else dt.date.fromisoformat(_text(d))
        out[(_text(t), day)] = int(n)
    return out


_KIND_COLUMN = {"host": "host_name", "dataset": "event_dataset", "source": "source"}


def heard_again(
    store: ClickHouseStore, tenant: str, kind: str, name: str, after: int, until: int
) -> int | None:
    """When the first event from a silent source (``kind`` host | dataset | source) arrived after
    ``after`` and before ``until`` (µs), or None if none did."""
    column = _KIND_COLUMN.get(kind)
    if column is None:
        raise ValueError(f"source kind {kind!r}: one of {', '.join(_KIND_COLUMN)}")
    match = f"{column} = {{n:String}}"
    if kind == "dataset":  # an event without a dataset counts under its source id (detect/health.py)
        match = f"({match} OR (event_dataset = '' AND source = {{n:String}}))"
    rows = store.query(
        f"SELECT toUnixTimestamp64Micro(min(ingested)), count() FROM {EVENTS_TABLE} "
        f"WHERE tenant = {{t:String}} AND {match} AND ingested > fromUnixTimestamp64Micro({{a:Int64}}) "
        "AND ingested < fromUnixTimestamp64Micro({u:Int64})",
        {"t": tenant, "n": name, "a": after, "u": until},
    )
    if not rows or not int(rows[0][1]):
        return None
    return int(rows[0][0])
