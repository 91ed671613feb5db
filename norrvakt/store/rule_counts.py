"""The store's side of alert rules written in the search language: counts per tenant and group
over a window (threshold rules), the groups that fell silent (absence rules), and how many
stored events one run would read (the scan limit checked when a rule is saved).

    groups = over_threshold(store, parsed, ["lulea"], by=("source.ip",), since_us=..., until_us=...,
                            op=">", threshold=50)

Each group carries its tenant, its ``by`` values, the count, the newest matching event (seq
and time) and a few seqs as evidence, so the alert links to events the analyst can open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.query import filter_conditions
from norrvakt.store.query_ast import Query
from norrvakt.store.query_sql import SqlBuilder, micros_sql
from norrvakt.store.schema import EVENTS_TABLE

EVIDENCE = 10  # seqs kept per group as the alert's evidence
MAX_GROUPS = 1000  # groups one run reports at most (the largest first)


@dataclass(frozen=True)
class Group:
    tenant: str
    values: dict[str, str]  # by field -> value
    count: int
    last_seq: int
    last_ts: int  # µs
    seqs: tuple[int, ...]


def _grouped(
    parsed: Query, tenants: Sequence[str], by: Sequence[str], since_us: int, until_us: int, now: int
) -> tuple[list[str], SqlBuilder, list[str]]:
    conditions, sql = filter_conditions(parsed, tenants, since_us, until_us, now)
    groups = ["tenant"]
    for i, name in enumerate(by):
        expr, kind = sql.column(name)
        if kind not in ("seq", "time"):  # as | stats: events without the field form no group
            conditions.append(f"{expr} != ''")
        groups.append(f"toString({expr}) AS g{i}")
    return conditions, sql, groups


def _select(groups: list[str], by: Sequence[str]) -> str:
    keys = ["tenant", *[f"g{i}" for i in range(len(by))]]
    return (
        f"SELECT {', '.join(groups)}, count() AS n, max(seq) AS last_seq, "
        f"toUnixTimestamp64Micro(max({EVENTS_TABLE}.ts)) AS last_ts, groupArray({EVIDENCE})(seq) AS seqs "
        f"FROM {EVENTS_TABLE} WHERE {{where}} GROUP BY {', '.join(keys)}"
    )


def _rows(store: ClickHouseStore, text: str, parameters: dict[str, object], by: Sequence[str]) -> list[Group]:
    names, rows = store.query_columns(text, dict(parameters))
    out = []
    for raw in rows:
        row = dict(zip(names, raw, strict=True))
        out.append(
            Group(
                tenant=_text(row["tenant"]),
                values={name: _text(row[f"g{i}"]) for i, name in enumerate(by)},
                count=int(row["n"]),
                last_seq=int(row["last_seq"]),
                last_ts=int(row["last_ts"]),
                seqs=tuple(sorted(int(s) for s in row["seqs"])),
            )
        )
    return out


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def over_threshold(
    store: ClickHouseStore,
    parsed: Query,
    tenants: Sequence[str],
    *,
    by: Sequence[str],
    since_us: int,
    until_us: int,
    op: str,
    threshold: int,
) -> list[Group]:
    """Tenants and groups with ``count() op threshold`` matching events in ``[since_us, until_us)``."""
    if op not in (">", ">="):
        raise ValueError(f"op must be '>' or '>=', got {op!r}")
    conditions, sql, groups = _grouped(parsed, tenants, by, since_us, until_us, until_us)
    text = _select(groups, by).replace("{where}", " AND ".join(conditions))
    text += f" HAVING n {op} {sql.param(threshold, 'UInt64')} ORDER BY n DESC LIMIT {MAX_GROUPS}"
    return _rows(store, text, sql.parameters, by)


def gone_silent(
    store: ClickHouseStore,
    parsed: Query,
    tenants: Sequence[str],
    *,
    by: Sequence[str],
    window_start_us: int,
    until_us: int,
    lookback_s: int,
) -> list[Group]:
    """Tenants and groups with matching events in the look-back before ``window_start_us`` and
    none from then until ``until_us`` (their newest event is the last one seen)."""
    since = window_start_us - lookback_s * 1_000_000
    conditions, sql, groups = _grouped(parsed, tenants, by, since, until_us, until_us)
    text = _select(groups, by).replace("{where}", " AND ".join(conditions))
    text += f" HAVING max({EVENTS_TABLE}.ts) < {micros_sql(window_start_us, sql)}"
    text += f" ORDER BY last_ts LIMIT {MAX_GROUPS}"
    return _rows(store, text, sql.parameters, by)


def events_in_span(store: ClickHouseStore, tenants: Sequence[str], since_us: int, until_us: int) -> int:
    """Stored events of ``tenants`` in ``[since_us, until_us)`` — what a run reads at most (the
    table is ordered by tenant and time, so the filter cannot make it read more)."""
    sql = SqlBuilder("", until_us)
    where = (
        f"tenant IN {sql.param(list(tenants), 'Array(String)')} "
        f"AND {EVENTS_TABLE}.ts >= {micros_sql(since_us, sql)} "
        f"AND {EVENTS_TABLE}.ts < {micros_sql(until_us, sql)}"
    )
    return int(store.query(f"SELECT count() FROM {EVENTS_TABLE} WHERE {where}", sql.parameters)[0][0])
