"""Aggregations for the console: hits over time, top values of fields, field names.

All take the same query text, tenant scope and time range as a search, so the histogram and
the facets always describe exactly the events the search shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from norrvakt.event import ECS_FIELDS, now_us
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.query import filter_conditions, parse_query
from norrvakt.store.schema import EVENTS_TABLE

_NICE_STEPS_S = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400]
BASE_FIELDS = ["tenant", "source", "peer", "message", "@timestamp"]


def bucket_seconds(span_us: int, buckets: int) -> int:
    """A round bucket width giving about ``buckets`` bars over the span."""
    want = max(1, span_us // 1_000_000 // max(1, buckets))
    return next((s for s in _NICE_STEPS_S if s >= want), _NICE_STEPS_S[-1])


def histogram(
    store: ClickHouseStore,
    tenants: Sequence[str],
    query: str,
    since_us: int | None,
    until_us: int | None,
    buckets: int = 60,
) -> dict[str, Any]:
    """Hits per time bucket: ``{"step_s": …, "buckets": [{"t": µs, "count": n}, …]}``, empty ones included."""
    parsed = parse_query(query)
    end = until_us or now_us()
    start = since_us if since_us is not None else end - 24 * 3600 * 1_000_000
    step = bucket_seconds(end - start, buckets)
    conditions, sql = filter_conditions(parsed, tenants, start, end)
    rows = store.query(
        f"SELECT toUnixTimestamp(toStartOfInterval({EVENTS_TABLE}.ts, INTERVAL {step} SECOND)) AS b, count() "
        f"FROM {EVENTS_TABLE} WHERE {' AND '.join(conditions)} GROUP BY b ORDER BY b",
        sql.parameters,
    )
    counts = {int(b): int(n) for b, n in rows}
    first = (start // 1_000_000) // step * step
    out = [{"t": t * 1_000_000, "count": counts.get(t, 0)} for t in range(first, end // 1_000_000 + 1, step)]
    return {"step_s": step, "buckets": out[-max(buckets * 2, 1) :]}


def facets(
    store: ClickHouseStore,
    tenants: Sequence[str],
    query: str,
    since_us: int | None,
    until_us: int | None,
    fields: Sequence[str],
    top: int = 8,
) -> dict[str, list[dict[str, Any]]]:
    """The most frequent values of each field among the matching events.

    One query: a UNION ALL of one top-N per field, which ClickHouse runs side by side (six
    round trips one after another were most of the search page's time)."""
    parsed = parse_query(query)
    if not fields:
        return {}
    conditions, sql = filter_conditions(parsed, tenants, since_us, until_us)
    where = " AND ".join(conditions)
    branches = []
    for i, name in enumerate(fields):
        column, _kind = sql.column(name)
        branches.append(
            f"(SELECT {i} AS f, toString({column}) AS v, count() AS n FROM {EVENTS_TABLE} WHERE {where} "
            f"AND notEmpty(v) GROUP BY v ORDER BY n DESC, v LIMIT {int(top)})"
        )
    rows = store.query(" UNION ALL ".join(branches), sql.parameters)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in fields}
    for f, v, n in sorted(rows, key=lambda r: (int(r[0]), -int(r[2]), _text(r[1]))):
        out[fields[int(f)]].append({"value": _text(v), "count": int(n)})
    return out


def field_names(
    store: ClickHouseStore, tenants: Sequence[str], since_us: int | None = None, limit: int = 200
) -> list[str]:
    """Field names a query can use: ECS and base fields, then the sources' own fields seen lately."""
    since = since_us if since_us is not None else now_us() - 7 * 86400 * 1_000_000
    rows = store.query(
        f"SELECT k, count() AS n FROM {EVENTS_TABLE} ARRAY JOIN mapKeys(fields) AS k "
        f"WHERE tenant IN {{t:Array(String)}} AND {EVENTS_TABLE}.ts >= fromUnixTimestamp64Micro({{s:Int64}}) "
        f"GROUP BY k ORDER BY n DESC LIMIT {int(limit)}",
        {"t": list(tenants), "s": since},
    )
    return [*BASE_FIELDS, *ECS_FIELDS, *(_text(k) for k, _n in rows)]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def newer_events(
    store: ClickHouseStore, tenants: Sequence[str], query: str, after_us: int, limit: int = 200
) -> list[dict[str, Any]]:
    """Events matching ``query`` that arrived after ``after_us`` (ingest time), oldest first —
    the live tail polls this."""
    from norrvakt.store.clickhouse import SELECT_EVENT_COLUMNS, event_from_row
    from norrvakt.store.query import event_row

    parsed = parse_query(query)
    conditions, sql = filter_conditions(parsed, tenants, None, None, ingested_after_us=after_us)
    names, rows = store.query_columns(
        f"SELECT {SELECT_EVENT_COLUMNS} FROM {EVENTS_TABLE} WHERE {' AND '.join(conditions)} "
        f"ORDER BY {EVENTS_TABLE}.ingested, seq LIMIT {int(limit)}",
        sql.parameters,
    )
    return [event_row(event_from_row(dict(zip(names, row, strict=True)))) for row in rows]


def series(
    store: ClickHouseStore,
    tenants: Sequence[str],
    since_us: int,
    until_us: int,
    field: str = "source",
    buckets: int = 24,
    top: int = 8,
) -> dict[str, Any]:
    """Events over time, one series per value of ``field`` (the ``top`` most frequent, the rest "other")."""
    step = bucket_seconds(until_us - since_us, buckets)
    conditions, sql = filter_conditions(parse_query(""), tenants, since_us, until_us)
    column, _kind = sql.column(field)
    where = " AND ".join(conditions)
    leaders = [
        _text(v)
        for (v, _n) in store.query(
            f"SELECT {column} AS v, count() AS n FROM {EVENTS_TABLE} WHERE {where} "
            f"GROUP BY v ORDER BY n DESC LIMIT {int(top)}",
            sql.parameters,
        )
    ]
    rows = store.query(
        f"SELECT toUnixTimestamp(toStartOfInterval({EVENTS_TABLE}.ts, INTERVAL {step} SECOND)) AS b, "
        f"{column} AS v, count() FROM {EVENTS_TABLE} WHERE {where} GROUP BY b, v ORDER BY b",
        sql.parameters,
    )
    first = (since_us // 1_000_000) // step * step
    times = list(range(first, until_us // 1_000_000 + 1, step))
    index = {t: i for i, t in enumerate(times)}
    data: dict[str, list[int]] = {name: [0] * len(times) for name in [*leaders, "other"]}
    for b, v, n in rows:
        name = _text(v)
        i = index.get(int(b))
        if i is not None:
            data[name if name in data else "other"][i] += int(n)
    if not any(data["other"]):
        del data["other"]
    return {"step_s": step, "times": [t * 1_000_000 for t in times], "series": data}


def source_health(
    store: ClickHouseStore,
    tenants: Sequence[str],
    now: int,
    silent_after_s: int = 900,
    since_us: int | None = None,
) -> list[dict[str, Any]]:
    """Per tenant and source: last event, events in the window, and whether it went silent."""
    since = since_us if since_us is not None else now - 7 * 86400 * 1_000_000
    rows = store.query(
        f"SELECT tenant, source, toUnixTimestamp64Micro(max(ingested)), count() FROM {EVENTS_TABLE} "
        f"WHERE tenant IN {{t:Array(String)}} AND ingested >= fromUnixTimestamp64Micro({{s:Int64}}) "
        f"GROUP BY tenant, source ORDER BY tenant, source",
        {"t": list(tenants), "s": since},
    )
    out = []
    for tenant, source, last, count in rows:
        age_s = (now - int(last)) / 1e6
        out.append(
            {
                "tenant": _text(tenant),
                "source": _text(source),
                "last_seen": int(last),
                "count": int(count),
                "silent": age_s > silent_after_s,
                "age_s": round(age_s),
            }
        )
    return out


class SourceHealthCache:
    """:func:`source_health` per tenant scope, read again at most every ``ttl_s``.

    It is the dashboard's costliest read (the last 7 days of ``ingested``), and silence is
    judged in minutes (15 by default), so rows up to ``ttl_s`` old are enough when several
    people look at once. Ages and the silent flag are recomputed for ``now`` on every call."""

    MAX_SCOPES = 256

    def __init__(self, store: ClickHouseStore, ttl_s: float = 30.0, silent_after_s: int = 900) -> None:
        self.store = store
        self.ttl_us = int(ttl_s * 1_000_000)
        self.silent_after_s = silent_after_s
        self.reads = 0  # queries made
        self._rows: dict[tuple[str, ...], tuple[int, list[dict[str, Any]]]] = {}

    def get(self, tenants: Sequence[str], now: int) -> list[dict[str, Any]]:
        key = tuple(sorted(tenants))
        hit = self._rows.get(key)
        if hit is None or now - hit[0] > self.ttl_us:
            if len(self._rows) >= self.MAX_SCOPES:
                self._rows.clear()
            hit = (now, source_health(self.store, tenants, now, self.silent_after_s))
            self._rows[key] = hit
            self.reads += 1
        out = []
        for row in hit[1]:
            age_s = (now - row["last_seen"]) / 1e6
            out.append({**row, "age_s": round(age_s), "silent": age_s > self.silent_after_s})
        return out
