"""The search language: compile a query to ClickHouse SQL over ``events`` and run it.

    >>> compiled = compile_query("user.name:anna event.code:4625", tenants=["lulea"])
    >>> result = run_query(store, compiled)        # result.rows, result.total

:mod:`norrvakt.store.query_parse` reads the text (grammar there and in
:mod:`norrvakt.store.query_pipe`), :mod:`norrvakt.store.query_sql` turns the search expression
into a parameterized condition, :mod:`norrvakt.store.query_where` the ``| where`` filters; this
module adds the caller's tenant scope and time range around them — ANDed, so ``tenant:x OR
...`` in the text can never widen what the caller may read — and the SELECT, ORDER BY and
paging for events; :mod:`norrvakt.store.query_agg` does stats, top / rare and timechart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from norrvakt.event import ECS_FIELD_SET, Event, now_us
from norrvakt.store.clickhouse import SELECT_EVENT_COLUMNS, ClickHouseStore, event_from_row
from norrvakt.store.query_agg import (
    DEFAULT_STATS_LIMIT,
    Plan,
    chart,
    compile_aggregate,
    output,
    stats_rows,
    timechart_rows,
)
from norrvakt.store.query_ast import MatchAll, Query, QueryError
from norrvakt.store.query_parse import parse_query
from norrvakt.store.query_sql import SqlBuilder, micros_sql, where_sql
from norrvakt.store.query_time import iso_time, parse_time
from norrvakt.store.query_where import event_condition
from norrvakt.store.schema import EVENTS_TABLE

__all__ = [
    "DEFAULT_STATS_LIMIT",
    "CompiledQuery",
    "QueryError",
    "SearchResult",
    "compile_query",
    "iso_time",
    "parse_query",
    "parse_time",
    "run_query",
]

Kind = Literal["events", "stats", "timechart"]
# What identifies an event row: ``| fields -`` cannot drop it.
_KEPT = ("@timestamp", "ts", "tenant", "seq")

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
    ``projected`` means ``| fields`` chose the columns, so rows are flat, not whole events;
    ``plan`` (aggregations) turns the SQL's rows into result rows; ``keep`` / ``drop`` are the
    columns ``| fields`` keeps or ``| fields -`` removes after that."""

    sql: str
    parameters: dict[str, Any]
    kind: Kind
    columns: list[str]
    count_sql: str | None = None
    projected: bool = False
    plan: Plan | None = None
    keep: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    stream_limit: int | None = None  # compiled with ``stream``: read at most this many rows


@dataclass(frozen=True)
class SearchResult:
    """Rows as dicts keyed by ``columns``; ``total`` = all matching events (events) or rows
    returned (stats, timechart); ``chart`` = what the console draws for an aggregation."""

    kind: Kind
    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    elapsed_ms: float
    chart: dict[str, Any] | None = None


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
    stream: bool = False,
) -> CompiledQuery:
    """SQL for ``query`` restricted to ``tenants`` and ``since_us <= ts < until_us``.

    Events come newest first (``order="asc"`` for oldest first) unless ``| sort`` says
    otherwise, ``limit``/``offset`` page them, ``| head N`` caps the whole result. Stats are
    grouped, largest first, capped by ``| head`` or 100. ``now`` (µs) anchors relative
    times inside the query text such as ``@timestamp:>now-1h``.

    ``stream`` (exports) puts events without ``| sort`` in the table's key order — by tenant,
    then newest first — which ClickHouse reads in order instead of sorting the whole result
    first, and leaves LIMIT out of the SQL: the reader stops after ``stream_limit`` rows. (With
    a LIMIT below the number of matches, ClickHouse answered in one block of LIMIT rows —
    measured — so a cut export of a million rows would have held them all.)
    """
    parsed = parse_query(query) if isinstance(query, str) else query
    _check_arguments(tenants, limit, offset, order)
    conditions, sql = filter_conditions(parsed, tenants, since_us, until_us, now)
    if parsed.aggregate is not None:
        plan = compile_aggregate(parsed, conditions, sql, since_us, until_us)
        _check_columns(parsed, plan.columns)
        return CompiledQuery(
            plan.sql, sql.parameters, plan.kind, plan.columns, plan=plan, keep=parsed.fields, drop=parsed.drop
        )
    bad = next((n for n in parsed.drop if n in _KEPT), None)
    if bad is not None:
        raise QueryError(f"'fields -' cannot drop '{bad}': tenant, seq and @timestamp identify an event")
    return _compile_events(parsed, conditions, sql, limit, offset, order, stream)


def _check_columns(parsed: Query, columns: list[str]) -> None:
    if columns == ["_time"]:  # a timechart's columns are its series, known from the data
        return
    for name in (*parsed.fields, *parsed.drop):
        if name not in columns:
            raise QueryError(f"'fields' names '{name}', not a column of the result ({', '.join(columns)})")


def filter_conditions(
    parsed: Query,
    tenants: Sequence[str],
    since_us: int | None,
    until_us: int | None,
    now: int | None = None,
    ingested_after_us: int | None = None,
) -> tuple[list[str], SqlBuilder]:
    """The WHERE conditions of a query (scope, time range, the query's own filter and its
    ``| where`` filters on events) and the builder holding their parameters — for callers that
    aggregate differently (histograms, facets)."""
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
    conditions += [event_condition(c, sql) for c in parsed.filters]
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
    parsed: Query,
    conditions: list[str],
    sql: SqlBuilder,
    limit: int,
    offset: int,
    order: str,
    stream: bool = False,
) -> CompiledQuery:
    direction = order.upper()
    keys = [k for key in parsed.sort for k in _order_by(key.field, key.descending, sql)]
    if stream and not keys:  # (tenant, ts) is the table's key: read backwards, no sort
        keys = [f"tenant {direction}", f"{EVENTS_TABLE}.ts {direction}", f"seq {direction}"]
    else:
        keys += [f"{EVENTS_TABLE}.ts {direction}", f"seq {direction}", "tenant"]
    if parsed.head is not None:
        limit = max(0, min(limit, parsed.head - offset))
    select, columns = SELECT_EVENT_COLUMNS, EVENT_ROW_COLUMNS
    if parsed.fields:
        select, columns = _projection(parsed.fields, sql)
    page = "" if stream else f"LIMIT {sql.param(limit, 'UInt64')} OFFSET {sql.param(offset, 'UInt64')}"
    matches = "count()"
    if parsed.dedup:  # the first event (in the result's order) of each combination of values
        found = [sql.column(n) for n in parsed.dedup]
        conditions = conditions + [f"{e} != ''" for e, kind in found if kind not in ("seq", "time")]
        exprs = ", ".join(e for e, _ in found)
        page = f"LIMIT 1 BY {exprs} {page}".rstrip()
        matches = f"uniqExact({exprs})"
    where = " AND ".join(conditions)
    count = matches if parsed.head is None else f"least({matches}, {sql.param(parsed.head, 'UInt64')})"
    return CompiledQuery(
        sql=f"SELECT {select} FROM {EVENTS_TABLE} WHERE {where} ORDER BY {', '.join(keys)} {page}".rstrip(),
        parameters=sql.parameters,
        kind="events",
        columns=[c for c in columns if c not in parsed.drop],
        count_sql=f"SELECT {count} FROM {EVENTS_TABLE} WHERE {where}",
        projected=bool(parsed.fields),
        drop=parsed.drop,
        stream_limit=limit if stream else None,
    )


def _order_by(name: str, descending: bool, sql: SqlBuilder) -> list[str]:
    expr, kind = sql.column(name)
    direction = "DESC" if descending else "ASC"
    if kind == "string":  # numbers in numeric order (port 80 before 443), then the rest as text
        return [f"toFloat64OrNull({expr}) {direction} NULLS LAST", f"{expr} {direction}"]
    return [f"{expr} {direction}"]


def _projection(names: Sequence[str], sql: SqlBuilder) -> tuple[str, list[str]]:
    chosen = [n for n in dict.fromkeys(names) if n not in ("@timestamp", "ts", "tenant", "seq")]
    select = [f"tenant, seq, toUnixTimestamp64Micro({EVENTS_TABLE}.ts) AS ts"]
    select += [f"{output(n, sql)} AS c{i}" for i, n in enumerate(chosen)]
    return ", ".join(select), ["@timestamp", "tenant", "seq", *chosen]


# -- running ------------------------------------------------------------------------------------


def run_query(store: ClickHouseStore, compiled: CompiledQuery) -> SearchResult:
    """Run ``compiled``; events rows are event dicts (see :func:`event_row`), stats rows
    ``{by_field: value, ..., "count": n}``, timechart rows ``{"_time": iso, series: value}``."""
    started = time.perf_counter()
    names, raw_rows = store.query_columns(compiled.sql, compiled.parameters)
    rows = [dict(zip(names, r, strict=True)) for r in raw_rows]
    columns, figure = compiled.columns, None
    if compiled.plan is not None:
        columns, out = aggregate_rows(compiled, rows)
        numeric = columns[1:] if compiled.kind == "timechart" else compiled.plan.numeric
        figure = chart(
            compiled.kind, columns, [c for c in columns if c in numeric], compiled.plan.labels, out
        )
        total = len(out)
    else:
        out = [event_result(compiled, r) for r in rows]
        total = int(store.query(compiled.count_sql or "", compiled.parameters)[0][0])
    elapsed = (time.perf_counter() - started) * 1000
    return SearchResult(compiled.kind, columns, out, total, elapsed, figure)


def aggregate_rows(
    compiled: CompiledQuery, rows: list[dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The result columns and rows of an aggregation (``| fields`` applied)."""
    plan = compiled.plan
    if plan is None:
        raise ValueError("aggregate_rows() is for aggregations (a compiled query with a plan)")
    if plan.kind == "timechart":
        columns, out = timechart_rows(plan, rows)
    else:
        columns, out = plan.columns, stats_rows(plan, rows)
    chosen = [c for c in columns if (not compiled.keep or c in compiled.keep or c == "_time")]
    chosen = [c for c in chosen if c not in compiled.drop]
    if chosen == columns:
        return columns, out
    return chosen, [{c: r[c] for c in chosen if c in r} for r in out]


def event_result(compiled: CompiledQuery, row: dict[str, Any]) -> dict[str, Any]:
    """One row of an events query as the API answers it (``| fields -`` applied)."""
    if compiled.projected:
        return drop_fields(_projected_row(compiled.columns, row), compiled.drop)
    return drop_fields(event_row(event_from_row(row)), compiled.drop)


def drop_fields(doc: dict[str, Any], drop: Sequence[str]) -> dict[str, Any]:
    """``doc`` without the fields ``| fields -`` names: a key of the row, an ECS field (in
    ``ecs``) or an original field (in ``fields``, with or without ``fields.``)."""
    for name in drop:
        if name in doc:
            del doc[name]
        elif name in ECS_FIELD_SET and isinstance(doc.get("ecs"), dict):
            doc["ecs"].pop(name, None)
        elif isinstance(doc.get("fields"), dict):
            doc["fields"].pop(name.removeprefix("fields."), None)
    return doc


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
