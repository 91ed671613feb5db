"""``| where`` conditions → ClickHouse boolean expressions, on events or on an aggregation's rows.

    | where source.port > 1024                      events: the port as a number
    | where user.name != user.target.name           events: two fields (text, exact)
    | stats count as n by source.ip | where n > 50  rows: a result column (HAVING)

A field compared with a number compares as a number (rows where it is not one drop out); with
``"text"`` it compares as text, exactly (case matters — unlike a search term); times take the
same forms as ``--since`` (``@timestamp > "now-1h"``). Values are server-side parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from norrvakt.store.query_ast import Comparison, CondBool, Condition, CondNot, Operand, WhereOp
from norrvakt.store.query_sql import Kind, SqlBuilder, typed_value

# What a result column or field holds, for comparisons.
Resolved = tuple[str, str]  # (SQL expression, "string" | "number" | "seq" | "time")
_FLIP: dict[WhereOp, WhereOp] = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def event_condition(cond: Condition, sql: SqlBuilder) -> str:
    """A ``| where`` before any aggregation: over the events' fields."""

    def resolve(operand: Operand) -> Resolved:
        if "(" in operand.value:
            raise sql.error(
                f"'{operand.value}' is a result of stats: put this 'where' after the stats (at {{col}})",
                operand.position,
            )
        expr, kind = sql.column(operand.value)
        return expr, _event_kind(kind)

    return condition_sql(cond, sql, resolve)


def _event_kind(kind: Kind) -> str:
    return kind if kind in ("seq", "time") else "string"


def row_condition(cond: Condition, sql: SqlBuilder, columns: Mapping[str, Resolved]) -> str:
    """A ``| where`` after an aggregation: over its result columns (the parser checked the names)."""

    def resolve(operand: Operand) -> Resolved:
        return columns[operand.value]

    return condition_sql(cond, sql, resolve)


def condition_sql(cond: Condition, sql: SqlBuilder, resolve: Callable[[Operand], Resolved]) -> str:
    if isinstance(cond, CondNot):
        return f"NOT ({condition_sql(cond.child, sql, resolve)})"
    if isinstance(cond, CondBool):
        return "(" + f" {cond.op} ".join(condition_sql(c, sql, resolve) for c in cond.children) + ")"
    return _comparison(cond, sql, resolve)


def _comparison(cond: Comparison, sql: SqlBuilder, resolve: Callable[[Operand], Resolved]) -> str:
    left, op, right = cond.left, cond.op, cond.right
    if left.kind != "field":  # 5 < x  →  x > 5
        left, op, right = right, _FLIP[op], left
    expr, kind = resolve(left)
    if right.kind == "field":
        other, other_kind = resolve(right)
        return _two_fields(cond, sql, (expr, kind), (other, other_kind), op)
    if kind in ("seq", "time"):
        if kind == "seq" and not right.value.isdigit():
            raise sql.error(
                f"'{left.value}' needs a whole number, got '{right.value}' (at {{col}})", right.position
            )
        typed = typed_value(left.value, "seq" if kind == "seq" else "time", right.value, right.position, sql)
        return f"{expr} {op} {typed}"
    if right.kind == "number":
        column = expr if kind == "number" else f"toFloat64OrNull({expr})"
        return f"{column} {op} {sql.param(float(right.value), 'Float64')}"
    if kind == "number":
        raise sql.error(
            f"'{left.value}' is a number: compare it with a number, not \"{right.value}\" (at {{col}})",
            right.position,
        )
    return f"{expr} {op} {sql.param(right.value, 'String')}"


def _two_fields(cond: Comparison, sql: SqlBuilder, a: Resolved, b: Resolved, op: WhereOp) -> str:
    (left, left_kind), (right, right_kind) = a, b
    special = {left_kind, right_kind} & {"seq", "time"}
    if special:
        if left_kind != right_kind:
            raise sql.error(
                f"cannot compare '{cond.left.value}' with '{cond.right.value}' (a {special.pop()} with "
                "something else) (at {col})",
                cond.position,
            )
        return f"{left} {op} {right}"
    if left_kind == right_kind == "string" and op in ("=", "!="):
        return f"{left} {op} {right}"
    as_number = [
        e if k == "number" else f"toFloat64OrNull({e})" for e, k in ((left, left_kind), (right, right_kind))
    ]
    return f"{as_number[0]} {op} {as_number[1]}"
