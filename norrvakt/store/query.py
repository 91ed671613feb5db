"""The search language: compile a query to ClickHouse SQL over ``events`` and run it.

    >>> compiled = compile_query("user.name:anna event.code:4625", tenants=["lulea"])
    >>> result = run_query(store, compiled)        # result.rows, result.total

:mod:`norrvakt.store.query_parse` reads the text (grammar there), :mod:`norrvakt.store.query_sql`
turns the search expression into a parameterized condition; this module adds the caller's
tenant scope and time range around it — ANDed, so ``tenant:x OR ...`` in the text can never
widen what the caller may read — and the SELECT, ORDER BY and paging for events or stats.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from norrvakt.event import Event, now_us
from norrvakt.store.clickhouse import SELECT_EVENT_COLUMNS, ClickHouseStore, event_from_row
from norrvakt.store.query_ast import MatchAll, Query, QueryError, Stats
from norrvakt.store.query_parse import parse_query
from norrvakt.store.query_sql import SqlBuilder, micros_sql, where_sql
from norrvakt.store.query_time import parse_time
from norrvakt.store.schema import EVENTS_TABLE

__all__ = [
    "CompiledQuery",
    "QueryError",
    "SearchResult",
    "compile_query",
    "parse_query",
    "parse_time",
    "run_query",
]

DEFAULT_STATS_LIMIT = 100

# Keys of an events row (see :func:`event_row`).
EVENT_ROW_COLUMNS = [
    "@timestamp",
    "tenant",
    "seq",
    "ts",
    "ingested",
    "source",
    "peer",
    "ecs",
    "fields",
    "message",
    "raw",
]


@dataclass(frozen=True)
class CompiledQuery:
    """SQL and its parameters. ``count_sql`` (events only) counts all matches for paging;
    ``projected`` means ``| fields`` chose the columns, so rows are flat, not whole events."""

    sql: str
    parameters: dict[str, Any]
    kind: Literal["events", "stats"]
    columns: list[str]
    count_sql: str | None = None
    projected: bool = False


@dataclass(frozen=True)
class SearchResult:
    """Rows as dicts keyed by ``columns``; ``total`` = all matching events (events) or groups
    returned (stats)."""

    kind: Literal["events", "stats"]
    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    elapsed_ms: float


# -- whole queries -------------------------------------------------------------------------------


def compile_query(
    query: Query | str,
    *,
    tenants: Sequence[str],
    since_us: int | None = None,
    until_us: int | None = None,
    limit: int = 100,
    offset: int = 0,
    order: str = "desc",
    now: int | None = None,
) -> CompiledQuery:
    """SQL for ``query`` restricted to ``tenants`` and ``since_us <= ts < until_us``.

    Events come newest first (``order="asc"`` for oldest first) unless ``| sort`` says
    otherwise, ``limit``/``offset`` page them, ``| head N`` caps the whole result. Stats are
    grouped counts, largest first, capped by ``| head`` or 100. ``now`` (µs) anchors relative
    times inside the query text such as ``@timestamp:>now-1h``.
    """
    parsed = parse_query(query) if isinstance(query, str) else query
    _check_arguments(tenants, limit, offset, order)
    conditions, sql = filter_conditions(parsed, tenants, since_us, until_us, now)
    if parsed.stats is not None:
        return _compile_stats(parsed.stats, parsed, conditions, sql)
    return _compile_events(parsed, conditions, sql, limit, offset, order)


def filter_conditions(
    parsed: Query,
    tenants: Sequence[str],
    since_us: int | None,
    until_us: int | None,
    now: int | None = None,
    ingested_after_us: int | None = None,
) -> tuple[list[str], SqlBuilder]:
    """The WHERE conditions of a query (scope, time range, the query's own filter) and the
    builder holding their parameters — for callers that aggregate differently (histograms, facets)."""
    sql = SqlBuilder(parsed.text, now_us() if now is None else now)
    conditions = [f"tenant IN {sql.param(list(tenants), 'Array(String)')}"]
    if since_us is not None:
        conditions.append(f"{EVENTS_TABLE}.ts >= {micros_sql(since_us, sql)}")
    if until_us is not None:
        conditions.append(f"{EVENTS_TABLE}.ts < {micros_sql(until_us, sql)}")
    if ingested_after_us is not None:
        conditions.append(f"{EVENTS_TABLE}.ingested > {micros_sql(ingested_after_us, sql)}")
    if not isinstance(parsed.where, MatchAll):
        conditions.append(where_sql(parsed.where, sql))
    return conditions, sql


def _check_arguments(tenants: Sequence[str], limit: int, offset: int, order: str) -> None:
    # Programming errors of the caller (not the analyst): plain ValueError.
    if isinstance(tenants, str) or not tenants or not all(isinstance(t, str) and t for t in tenants):
        raise ValueError("tenants must be a non-empty list of tenant ids")
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0, got {limit} and {offset}")
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")


def _compile_events(
    parsed: Query, conditions: list[str], sql: SqlBuilder, limit: int, offset: int, order: str
) -> CompiledQuery:
    where = " AND ".join(conditions)
    direction = order.upper()
    keys = [k for key in parsed.sort for k in _order_by(key.field, key.descending, sql)]
    keys += [f"{EVENTS_TABLE}.ts {direction}", f"seq {direction}", "tenant"]
    if parsed.head is not None:
        limit = max(0, min(limit, parsed.head - offset))
    select, columns = SELECT_EVENT_COLUMNS, EVENT_ROW_COLUMNS
    if parsed.fields:
        select, columns = _projection(parsed.fields, sql)
    page = f"LIMIT {sql.param(limit, 'UInt64')} OFFSET {sql.param(offset, 'UInt64')}"
    count = "count()" if parsed.head is None else f"least(count(), {sql.param(parsed.head, 'UInt64')})"
    return CompiledQuery(
        sql=f"SELECT {select} FROM {EVENTS_TABLE} WHERE {where} ORDER BY {', '.join(keys)} {page}",
        parameters=sql.parameters,
        kind="events",
        columns=list(columns),
        count_sql=f"SELECT {count} FROM {EVENTS_TABLE} WHERE {where}",
        projected=bool(parsed.fields),
    )


def _order_by(name: str, descending: bool, sql: SqlBuilder) -> list[str]:
    expr, kind = sql.column(name)
    direction = "DESC" if descending else "ASC"
    if kind == "string":  # numbers in numeric order (port 80 before 443), then the rest as text
        return [f"toFloat64OrNull({expr}) {direction} NULLS LAST", f"{expr} {direction}"]
    return [f"{expr} {direction}"]


def _output(name: str, sql: SqlBuilder) -> str:
    """A field as a result column; times as ISO text like ``@timestamp`` of event rows."""
    expr, kind = sql.column(name)
    return f"formatDateTime({expr}, '%Y-%m-%dT%H:%i:%S.%fZ')" if kind == "time" else expr


def _projection(names: Sequence[str], sql: SqlBuilder) -> tuple[str, list[str]]:
    chosen = [n for n in dict.fromkeys(names) if n not in ("@timestamp", "ts", "tenant", "seq")]
    select = [f"tenant, seq, toUnixTimestamp64Micro({EVENTS_TABLE}.ts) AS ts"]
    select += [f"{_output(n, sql)} AS c{i}" for i, n in enumerate(chosen)]
    return ", ".join(select), ["@timestamp", "tenant", "seq", *chosen]


def _compile_stats(stats: Stats, parsed: Query, conditions: list[str], sql: SqlBuilder) -> CompiledQuery:
    groups = []
    for i, name in enumerate(stats.by):
        expr, kind = sql.column(name)
        if kind not in ("seq", "time"):  # like Splunk: events without the field form no group
            conditions.append(f"{expr} != ''")
        groups.append(f"{_output(name, sql)} AS g{i}")
    aliases = {name: f"g{i}" for i, name in enumerate(stats.by)} | {"count": "n"}
    keys = [f"{aliases[k.field]} {'DESC' if k.descending else 'ASC'}" for k in parsed.sort]
    keys = keys or ["n DESC"]
    keys += [f"g{i}" for i in range(len(groups))]  # ties in a stable order
    select = ", ".join([*groups, "count() AS n"])
    text = f"SELECT {select} FROM {EVENTS_TABLE} WHERE {' AND '.join(conditions)}"
    if groups:
        text += f" GROUP BY {', '.join(f'g{i}' for i in range(len(groups)))}"
    limit = parsed.head if parsed.head is not None else DEFAULT_STATS_LIMIT
    text += f" ORDER BY {', '.join(keys)} LIMIT {sql.param(limit, 'UInt64')}"
    return CompiledQuery(text, sql.parameters, "stats", [*stats.by, "count"])


# -- running ------------------------------------------------------------------------------------


def run_query(store: ClickHouseStore, compiled: CompiledQuery) -> SearchResult:
    """Run ``compiled``; events rows are event dicts (see :func:`event_row`), stats rows
    ``{by_field: value, ..., "count": n}``."""
    started = time.perf_counter()
    names, raw_rows = store.query_columns(compiled.sql, compiled.parameters)
    rows = [dict(zip(names, r, strict=True)) for r in raw_rows]
    if compiled.kind == "stats":
        out = [_stats_row(compiled.columns, r) for r in rows]
        total = len(out)
    else:
        if compiled.projected:
            out = [_projected_row(compiled.columns, r) for r in rows]
        else:
            out = [event_row(event_from_row(r)) for r in rows]
        total = int(store.query(compiled.count_sql or "", compiled.parameters)[0][0])
    elapsed = (time.perf_counter() - started) * 1000
    return SearchResult(compiled.kind, compiled.columns, out, total, elapsed)


def iso_time(micros: int) -> str:
    """``2024-05-01T12:00:00.000001Z`` for microseconds since the epoch."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_row(event: Event) -> dict[str, Any]:
    """:meth:`Event.to_dict` with ``@timestamp`` (ISO) and ``raw`` always as text (invalid
    UTF-8 replaced: the exact bytes stay available through the journal)."""
    doc = event.to_dict()
    doc.pop("raw_b64", None)
    doc.pop("v", None)  # the canonical form's version: journal business, not search
    doc["raw"] = event.raw.decode("utf-8", "replace")
    doc["@timestamp"] = iso_time(event.ts)
    return doc


def _value(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _projected_row(columns: list[str], row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"@timestamp": iso_time(int(row["ts"])), "tenant": _value(row["tenant"])}
    out["seq"] = int(row["seq"])
    for i, name in enumerate(columns[3:]):
        out[name] = _value(row[f"c{i}"])
    return out


def _stats_row(columns: list[str], row: dict[str, Any]) -> dict[str, Any]:
    out = {name: _value(row[f"g{i}"]) for i, name in enumerate(columns[:-1])}
    out["count"] = int(row["n"])
    return out
