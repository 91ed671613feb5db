"""``stats``, ``top`` / ``rare`` and ``timechart`` → ClickHouse SQL over ``events``, and their rows.

    | stats count, dc(user.name) as users by source.ip   GROUP BY, one row per group
    | top 5 user.name by host.name                        counts, percent of the group, N per group
    | timechart span=1h count by host.name                one row per bucket, a column per series

The WHERE conditions (tenant scope, time range, the search and ``| where`` filters) come from
:func:`norrvakt.store.query.filter_conditions`; ``| where`` after the aggregation filters its
rows in an outer SELECT (HAVING on result columns). Events without a ``by`` or ``top`` field
form no group, as in Splunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from norrvakt.store.query_ast import Agg, Query, QueryError, Stats, Timechart, Top
from norrvakt.store.query_sql import SqlBuilder
from norrvakt.store.query_time import iso_time
from norrvakt.store.query_where import Resolved, row_condition
from norrvakt.store.schema import EVENTS_TABLE

DEFAULT_STATS_LIMIT = 100
MAX_BUCKETS = 1000  # a timechart's most time buckets
AUTO_BUCKETS = 100  # about this many when the span is left to us
_SPANS_S = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400]
DEFAULT_SPAN_US = 86_400_000_000  # no span and no time range: a day
_ZERO_WHEN_EMPTY = ("count", "dc", "sum")


@dataclass(frozen=True)
class Plan:
    """SQL of an aggregation and what turns its rows into result rows."""

    sql: str
    kind: Literal["stats", "timechart"]
    columns: list[str]
    numeric: list[str] = field(default_factory=list)  # result columns that hold numbers
    span_us: int = 0
    fill: tuple[int, int] | None = None  # first and last bucket to show (timechart)
    by: bool = False
    aggs: tuple[Agg, ...] = ()
    groups: int = 0  # by fields (stats, top)

    @property
    def labels(self) -> list[str]:
        """The columns that name a row (by fields, top's fields)."""
        return self.columns[: self.groups + self.top]

    top: int = 0  # top / rare: its fields


def output(name: str, sql: SqlBuilder) -> str:
    """A field as a result column; times as ISO text like ``@timestamp`` of event rows."""
    expr, kind = sql.column(name)
    return f"formatDateTime({expr}, '%Y-%m-%dT%H:%i:%S.%fZ')" if kind == "time" else expr


def _present(name: str, sql: SqlBuilder, conditions: list[str]) -> None:
    expr, kind = sql.column(name)
    if kind not in ("seq", "time"):
        conditions.append(f"{expr} != ''")


def _agg_sql(agg: Agg, sql: SqlBuilder) -> tuple[str, str]:
    """(SQL, kind of the result: number | string)."""
    if agg.field is None:
        return "count()", "number"
    expr, kind = sql.column(agg.field)
    text = kind not in ("seq", "time")
    if agg.function == "count":
        return (f"countIf({expr} != '')" if text else "count()"), "number"
    if agg.function == "dc":
        return (f"uniqExactIf({expr}, {expr} != '')" if text else f"uniqExact({expr})"), "number"
    if kind == "time":
        if agg.function in ("sum", "avg"):
            raise sql.error(f"cannot {agg.function} a time ('{agg.field}') (at {{col}})", agg.position)
        return f"formatDateTime({agg.function}({expr}), '%Y-%m-%dT%H:%i:%S.%fZ')", "string"
    value = f"toFloat64OrNull({expr})" if text else expr
    return f"{agg.function}({value})", "number"


def compile_aggregate(
    parsed: Query, conditions: list[str], sql: SqlBuilder, since_us: int | None, until_us: int | None
) -> Plan:
    agg = parsed.aggregate
    if isinstance(agg, Timechart):
        return _timechart(agg, conditions, sql, since_us, until_us)
    if isinstance(agg, Top):
        return _top(agg, parsed, conditions, sql)
    if isinstance(agg, Stats):
        return _stats(agg, parsed, conditions, sql)
    raise ValueError("compile_aggregate() is for queries with stats, top, rare or timechart")


def _order(parsed: Query, aliases: dict[str, str], default: list[str]) -> list[str]:
    keys = [f"{aliases[k.field]} {'DESC' if k.descending else 'ASC'}" for k in parsed.sort]
    return keys or default


def _having(parsed: Query, sql: SqlBuilder, columns: dict[str, Resolved]) -> str:
    if not parsed.having:
        return ""
    return " WHERE " + " AND ".join(row_condition(c, sql, columns) for c in parsed.having)


def _stats(stats: Stats, parsed: Query, conditions: list[str], sql: SqlBuilder) -> Plan:
    groups = []
    for i, name in enumerate(stats.by):
        _present(name, sql, conditions)
        groups.append(f"{output(name, sql)} AS g{i}")
    values = [_agg_sql(a, sql) for a in stats.aggs]
    aliases = {name: f"g{i}" for i, name in enumerate(stats.by)}
    aliases |= {a.name: f"a{i}" for i, a in enumerate(stats.aggs)}
    resolved = {n: (aliases[n], "string") for n in stats.by}
    resolved |= {a.name: (f"a{i}", values[i][1]) for i, a in enumerate(stats.aggs)}
    select = ", ".join([*groups, *(f"{v} AS a{i}" for i, (v, _) in enumerate(values))])
    text = f"SELECT {select} FROM {EVENTS_TABLE} WHERE {' AND '.join(conditions)}"
    if groups:
        text += f" GROUP BY {', '.join(f'g{i}' for i in range(len(groups)))}"
    having = _having(parsed, sql, resolved)
    if having:
        text = f"SELECT * FROM ({text}){having}"
    keys = _order(parsed, aliases, ["a0 DESC"]) + [f"g{i}" for i in range(len(groups))]
    limit = parsed.head if parsed.head is not None else DEFAULT_STATS_LIMIT
    text += f" ORDER BY {', '.join(keys)} LIMIT {sql.param(limit, 'UInt64')}"
    numeric = [a.name for a, (_, kind) in zip(stats.aggs, values, strict=True) if kind == "number"]
    columns = [*stats.by, *(a.name for a in stats.aggs)]
    return Plan(text, "stats", columns, numeric, aggs=stats.aggs, groups=len(stats.by))


def _top(top: Top, parsed: Query, conditions: list[str], sql: SqlBuilder) -> Plan:
    keys = [*(f"{output(n, sql)} AS b{i}" for i, n in enumerate(top.by))]
    keys += [f"{output(n, sql)} AS g{i}" for i, n in enumerate(top.fields)]
    for name in (*top.by, *top.fields):
        _present(name, sql, conditions)
    by = [f"b{i}" for i in range(len(top.by))]
    values = [f"g{i}" for i in range(len(top.fields))]
    window = f"PARTITION BY {', '.join(by)}" if by else ""
    share = f"round(100 * count() / sum(count()) OVER ({window}), 2) AS pct"
    counted = (
        f"SELECT {', '.join(keys)}, count() AS n, {share} FROM {EVENTS_TABLE} "
        f"WHERE {' AND '.join(conditions)} GROUP BY {', '.join([*by, *values])}"
    )
    direction = "ASC" if top.rare else "DESC"
    ranked = f"{', '.join([*by, f'n {direction}', *values])}"
    per_group = f" LIMIT {sql.param(top.limit, 'UInt64')}" + (f" BY {', '.join(by)}" if by else "")
    picked = f"SELECT * FROM ({counted}) ORDER BY {ranked}{per_group}"
    aliases = {n: f"b{i}" for i, n in enumerate(top.by)} | {n: f"g{i}" for i, n in enumerate(top.fields)}
    aliases |= {"count": "n", "percent": "pct"}
    resolved = {n: (a, "number" if n in ("count", "percent") else "string") for n, a in aliases.items()}
    limit = parsed.head if parsed.head is not None else max(DEFAULT_STATS_LIMIT, top.limit)
    order = _order(parsed, aliases, [ranked])
    text = (
        f"SELECT * FROM ({picked}){_having(parsed, sql, resolved)} ORDER BY {', '.join(order)} "
        f"LIMIT {sql.param(limit, 'UInt64')}"
    )
    columns = [*top.by, *top.fields, "count", "percent"]
    return Plan(text, "stats", columns, ["count", "percent"], groups=len(top.by), top=len(top.fields))


def _span(chart: Timechart, sql: SqlBuilder, since_us: int | None, until_us: int | None) -> int:
    if since_us is None:
        return chart.span_us or DEFAULT_SPAN_US
    width = max(1, (until_us if until_us is not None else sql.now) - since_us)
    if chart.span_us is None:
        return next(
            (s * 1_000_000 for s in _SPANS_S if width / (s * 1_000_000) <= AUTO_BUCKETS), _SPANS_S[-1]
        )
    buckets = -(-width // chart.span_us)
    if buckets > MAX_BUCKETS:
        raise sql.error(
            f"the span at {{col}} makes {buckets:,} buckets over the time range, at most {MAX_BUCKETS:,}: "
            "use a larger span or a shorter range",
            chart.position,
        )
    return chart.span_us


def _timechart(
    chart: Timechart, conditions: list[str], sql: SqlBuilder, since_us: int | None, until_us: int | None
) -> Plan:
    span = _span(chart, sql, since_us, until_us)
    fill = None
    if since_us is not None:
        end = (until_us if until_us is not None else sql.now) - 1
        fill = (since_us // span * span, max(since_us, end) // span * span)
    bucket = f"intDiv(toUnixTimestamp64Micro({EVENTS_TABLE}.ts), {sql.param(span, 'Int64')})"
    values = [_agg_sql(a, sql)[0] for a in chart.aggs]
    select = [f"{bucket} AS t"]
    groups = ["t"]
    if chart.by is not None:
        _present(chart.by, sql, conditions)
        where = " AND ".join(conditions)
        expr = output(chart.by, sql)
        top = (
            f"SELECT {expr} FROM {EVENTS_TABLE} WHERE {where} GROUP BY {expr} "
            f"ORDER BY count() DESC, {expr} LIMIT {sql.param(chart.limit, 'UInt64')}"
        )
        select.append(f"if({expr} IN ({top}), {expr}, 'OTHER') AS s")
        groups.append("s")
    select += [f"{v} AS a{i}" for i, v in enumerate(values)]
    cap = (MAX_BUCKETS + 1) * (chart.limit + 1 if chart.by else 1)
    text = (
        f"SELECT {', '.join(select)} FROM {EVENTS_TABLE} WHERE {' AND '.join(conditions)} "
        f"GROUP BY {', '.join(groups)} ORDER BY {', '.join(groups)} LIMIT {sql.param(cap, 'UInt64')}"
    )
    return Plan(
        text, "timechart", ["_time"], span_us=span, fill=fill, by=chart.by is not None, aggs=chart.aggs
    )


# -- rows ------------------------------------------------------------------------------------------


def _value(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def stats_rows(plan: Plan, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{by_field: value, ..., agg_name: number}`` (by, value, count, percent for top / rare)."""
    keys = [f"g{i}" for i in range(plan.groups)] + [f"a{i}" for i in range(len(plan.aggs))]
    if plan.top:
        keys = [f"b{i}" for i in range(plan.groups)] + [f"g{i}" for i in range(plan.top)] + ["n", "pct"]
    return [
        {name: _number(_value(row[key])) for name, key in zip(plan.columns, keys, strict=True)}
        for row in rows
    ]


def timechart_rows(plan: Plan, rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Pivot (bucket, series, value) rows: one row per bucket, gaps filled, series by size."""
    cells: dict[int, dict[str, Any]] = {}
    totals: dict[str, float] = {}
    names = [a.name for a in plan.aggs]
    for row in rows:
        t = int(row["t"])
        for i, name in enumerate(names):
            series = _value(row["s"]) if plan.by else name
            value = _number(row[f"a{i}"])
            cells.setdefault(t, {})[series] = value
            totals[series] = totals.get(series, 0) + (value if isinstance(value, (int, float)) else 0)
    if len(cells) > MAX_BUCKETS:
        raise QueryError(
            f"the timechart has more than {MAX_BUCKETS:,} buckets: give a larger span= or a time range"
        )
    series_names = names
    if plan.by:
        series_names = sorted((s for s in totals if s != "OTHER"), key=lambda s: (-totals[s], s))
        series_names += ["OTHER"] if "OTHER" in totals else []
    zero = plan.aggs[0].function in _ZERO_WHEN_EMPTY
    first, last = plan.fill if plan.fill else (min(cells, default=0), max(cells, default=-1))
    if plan.fill is None:
        first, last = first * plan.span_us, last * plan.span_us
    out = []
    for start in range(first, last + 1, plan.span_us):
        found = cells.get(start // plan.span_us, {})
        item: dict[str, Any] = {"_time": iso_time(start)}
        for i, s in enumerate(series_names):
            empty = 0 if (zero if plan.by else plan.aggs[i].function in _ZERO_WHEN_EMPTY) else None
            item[s] = found.get(s, empty)
        out.append(item)
    return ["_time", *series_names], out


def chart(
    kind: str, columns: list[str], numeric: list[str], labels: list[str], rows: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """What the console draws next to a stats (bars: one per row, labelled by its ``labels``
    columns) or timechart (lines: one per series) table."""
    if kind == "timechart":
        series = columns[1:]
        labels = [str(r["_time"]) for r in rows]
        return {
            "type": "line",
            "labels": labels,
            "series": [{"name": s, "values": [r[s] for r in rows]} for s in series],
        }
    if kind != "stats" or not rows or not numeric:
        return None
    values = [c for c in numeric if c != "percent"]
    names = [" · ".join(str(r[k]) for k in labels if k in r) or "*" for r in rows]
    return {
        "type": "bar",
        "labels": names,
        "series": [{"name": v, "values": [r[v] for r in rows]} for v in values],
    }
