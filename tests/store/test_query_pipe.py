"""The pipeline commands (timechart, top, rare, dedup, where, fields -, stats functions): what they
parse into, and errors that name the column and the bad token."""

from __future__ import annotations

import pytest

from norrvakt.store.query_ast import (
    Agg,
    Comparison,
    CondBool,
    CondNot,
    Operand,
    QueryError,
    Stats,
    Timechart,
    Top,
)
from norrvakt.store.query_parse import parse_query


def f(name: str) -> Operand:
    return Operand("field", name)


def n(value: str) -> Operand:
    return Operand("number", value)


def test_stats_functions_aliases_and_by() -> None:
    q = parse_query("| stats count, dc(user.name) as users avg(source.port) by host.name")
    assert q.aggregate == Stats(
        (Agg("count"), Agg("dc", "user.name", "users"), Agg("avg", "source.port")), ("host.name",)
    )
    assert [a.name for a in q.aggregate.aggs] == ["count", "users", "avg(source.port)"]


def test_timechart_span_limit_and_by() -> None:
    q = parse_query("| timechart span=5m limit=3 count by host.name")
    assert q.aggregate == Timechart((Agg("count"),), "host.name", 300_000_000, 3)
    assert parse_query("| timechart max(source.port)").aggregate == Timechart((Agg("max", "source.port"),))


@pytest.mark.parametrize(
    ("text", "top"),
    [
        ("| top user.name", Top(("user.name",))),
        ("| top 5 user.name, host.name", Top(("user.name", "host.name"), (), 5)),
        ("| top limit=3 user.name by host.name", Top(("user.name",), ("host.name",), 3)),
        ("| rare process.name", Top(("process.name",), (), 10, rare=True)),
    ],
)
def test_top_and_rare(text: str, top: Top) -> None:
    assert parse_query(text).aggregate == top


def test_where_before_an_aggregation_filters_events_after_it_rows() -> None:
    q = parse_query("| where source.port > 1024 | stats count by source.ip | where count >= 5")
    assert q.filters == (Comparison(f("source.port"), ">", n("1024")),)
    assert q.having == (Comparison(f("count"), ">=", n("5")),)


def test_where_boolean_logic_and_operands() -> None:
    q = parse_query('| where (a = "x y" or b != c) AND NOT d <= -2.5')
    inner = CondBool(
        "OR", (Comparison(f("a"), "=", Operand("string", "x y")), Comparison(f("b"), "!=", f("c")))
    )
    assert q.filters == (CondBool("AND", (inner, CondNot(Comparison(f("d"), "<=", n("-2.5"))))),)


def test_where_names_a_stats_result_by_its_function() -> None:
    q = parse_query("| stats dc(user.name) by source.ip | where dc(user.name) > 3 | sort -dc(user.name)")
    assert q.having == (Comparison(f("dc(user.name)"), ">", n("3")),)
    assert q.sort[0].field == "dc(user.name)"


def test_dedup_and_fields_minus() -> None:
    q = parse_query("x | dedup user.name, host.name | fields - raw, message")
    assert q.dedup == ("user.name", "host.name")
    assert q.drop == ("raw", "message")
    assert q.fields == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("| stats count as n, count as n", "two results named 'n' at column 21: name one with 'as'"),
        ("| stats sum by x", "'sum' needs a field, e.g. sum(source.port) (at column 9)"),
        ("| stats dc(x", "missing ')' after 'dc(' at column 13"),
        ("| timechart span=7x count", "cannot read span '7x': use e.g. 30s, 5m, 1h, 1d or 1w (at column 18)"),
        ("| timechart limit=0 count", "'limit' takes a number of series at column 19, found '0'"),
        ("| timechart count by a, b", "timechart takes one 'by' field (at column 19)"),
        ("| timechart count, dc(u) by a", "timechart with 'by' takes one aggregation (at column 26)"),
        ("| timechart count | sort -count", "'sort' cannot follow 'timechart' (at column 21)"),
        ("| timechart count | where count > 1", "'where' cannot follow 'timechart' (at column 21)"),
        ("| stats count | top x", "'top' cannot follow 'stats': one aggregation only (at column 17)"),
        ("| dedup x | stats count", "'stats' must be the first command (only 'where' may come before it)"),
        ("| stats count | dedup x", "'dedup' cannot be combined with 'stats' (at column 17)"),
        ("| where a >", "expected a field, number or \"text\" at column 12, found 'end of query'"),
        ("| where a ~ 3", "expected a comparison (= != < <= > >=) at column 11, found '~'"),
        ("| where 3 > 2", "'where' compares a field with a value or another field (at column 9)"),
        ("| where (a = 1", "missing ')' for the '(' at column 9"),
        ("| stats count by ip | where n > 2", "unknown column 'n' at column 29 after the aggregation"),
        ("| top user.name | sort -n", "cannot sort the result by 'n' at column 24 (use one of: user.name,"),
        ("| top 0 x", "'top' needs at least 1 row at column 7"),
        ("| frobnicate", "unknown command 'frobnicate' at column 3 (expected stats, timechart, top,"),
    ],
)  # fmt: skip
def test_errors_name_the_column_and_the_token(text: str, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(text)
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.position is not None
