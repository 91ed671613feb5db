"""The search language's parser, errors and times — no store needed."""

from __future__ import annotations

import pytest

from norrvakt.store.query import compile_query
from norrvakt.store.query_ast import (
    Agg,
    And,
    Cidr,
    Compare,
    Exists,
    MatchAll,
    Not,
    Or,
    Query,
    QueryError,
    Range,
    SortKey,
    Stats,
    Term,
)
from norrvakt.store.query_parse import parse_query
from norrvakt.store.query_time import parse_time


def t(field: str | None, value: str, *wildcards: int, quoted: bool = False) -> Term:
    return Term(field, value, tuple(wildcards), quoted)


def where(text: str) -> object:
    return parse_query(text).where


# -- terms ----------------------------------------------------------------------------------------


def test_field_value_and_free_text() -> None:
    assert where("user.name:anna") == t("user.name", "anna")
    assert where("failed") == t(None, "failed")


def test_phrases_free_and_after_a_field() -> None:
    assert where('"failed password"') == t(None, "failed password", quoted=True)
    assert where('process.command_line:"a b"') == t("process.command_line", "a b", quoted=True)


def test_quoted_escape_and_backslashes_kept() -> None:
    assert where(r'"say \"hi\""') == t(None, 'say "hi"', quoted=True)
    assert where(r'process.executable:"C:\Windows\cmd.exe"') == t(
        "process.executable", r"C:\Windows\cmd.exe", quoted=True
    )


def test_wildcards_record_offsets() -> None:
    assert where("user.name:adm*") == t("user.name", "adm*", 3)
    assert where("host.name:*-dc?") == t("host.name", "*-dc?", 0, 4)


def test_escaped_star_is_literal() -> None:
    assert where(r"file.path:a\*b") == t("file.path", "a*b")


def test_wildcards_inside_quotes_are_literal() -> None:
    assert where('url.full:"http://x/?a=*"') == t("url.full", "http://x/?a=*", quoted=True)


def test_field_star_means_present() -> None:
    assert where("url.full:*") == Exists("url.full")


def test_bare_star_and_empty_query_match_all() -> None:
    assert where("*") == MatchAll()
    assert where("") == MatchAll()
    assert where("   ") == MatchAll()


def test_value_keeps_colons_for_ipv6_and_times() -> None:
    assert where("source.ip:2001:db8::1") == t("source.ip", "2001:db8::1")
    assert where("@timestamp:>=2025-03-10T08:00:00Z") == Compare("@timestamp", ">=", "2025-03-10T08:00:00Z")


def test_non_ascii_field_and_value() -> None:
    assert where("Åtkomst:nekad user.name:åsa") == And((t("Åtkomst", "nekad"), t("user.name", "åsa")))


def test_fields_prefix_is_kept_for_the_compiler() -> None:
    assert where("fields.EventID:4625") == t("fields.EventID", "4625")


def test_comparisons() -> None:
    assert where("source.port:>1024") == Compare("source.port", ">", "1024")
    assert where("source.port:>=1024") == Compare("source.port", ">=", "1024")
    assert where("source.port:<1024") == Compare("source.port", "<", "1024")
    assert where("source.port:<=1024") == Compare("source.port", "<=", "1024")


def test_ranges_inclusive_exclusive_open() -> None:
    assert where("source.port:[1 TO 1024]") == Range("source.port", "1", "1024", True, True)
    assert where("source.port:{1 TO 1024]") == Range("source.port", "1", "1024", False, True)
    assert where("source.port:[1024 TO *]") == Range("source.port", "1024", None)


def test_cidr_v4_and_v6_normalized() -> None:
    assert where("source.ip:10.0.0.0/8") == Cidr("source.ip", "10.0.0.0/8")
    assert where("source.ip:10.1.2.3/8") == Cidr("source.ip", "10.0.0.0/8")
    assert where("destination.ip:2001:DB8::/32") == Cidr("destination.ip", "2001:db8::/32")


def test_slash_value_that_is_not_a_network_stays_a_term() -> None:
    assert where("url.path:/admin/login") == t("url.path", "/admin/login")


def test_field_group_applies_field_to_each_value() -> None:
    assert where("event.code:(4624 OR 4625)") == Or((t("event.code", "4624"), t("event.code", "4625")))


# -- boolean structure -----------------------------------------------------------------------------


def test_implicit_and() -> None:
    assert where("a b c") == And((t(None, "a"), t(None, "b"), t(None, "c")))


def test_and_binds_tighter_than_or() -> None:
    assert where("a OR b AND c") == Or((t(None, "a"), And((t(None, "b"), t(None, "c")))))
    assert where("a OR b c") == Or((t(None, "a"), And((t(None, "b"), t(None, "c")))))


def test_not_binds_tighter_than_and() -> None:
    assert where("NOT a b") == And((Not(t(None, "a")), t(None, "b")))
    assert where("NOT a OR b") == Or((Not(t(None, "a")), t(None, "b")))


def test_minus_is_not() -> None:
    assert where("-user.name:admin x") == And((Not(t("user.name", "admin")), t(None, "x")))
    assert where("-(a OR b)") == Not(Or((t(None, "a"), t(None, "b"))))


def test_lone_minus_is_a_word() -> None:
    assert where("a - b") == And((t(None, "a"), t(None, "-"), t(None, "b")))


def test_parentheses_override_precedence() -> None:
    assert where("(a OR b) c") == And((Or((t(None, "a"), t(None, "b"))), t(None, "c")))


def test_lower_case_keywords_are_words() -> None:
    assert where("a and b") == And((t(None, "a"), t(None, "and"), t(None, "b")))


def test_keyword_prefix_is_a_word() -> None:
    assert where("NOTE ORDER") == And((t(None, "NOTE"), t(None, "ORDER")))


# -- pipeline --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["| stats count by source.ip", "| stats count() by source.ip", "|stats   count  by  source.ip"],
)
def test_stats_by_forms(text: str) -> None:
    assert parse_query(text) == Query(MatchAll(), Stats((Agg("count"),), ("source.ip",)))


def test_stats_without_by_and_several_by_fields() -> None:
    assert parse_query("x | stats count").stats == Stats((Agg("count"),))
    assert parse_query("| stats count by host.name, EventID").stats == Stats(
        (Agg("count"),), ("host.name", "EventID")
    )


def test_sort_forms() -> None:
    assert parse_query("| sort source.port").sort == (SortKey("source.port", False),)
    assert parse_query("| sort -source.port").sort == (SortKey("source.port", True),)
    assert parse_query("| sort source.port desc").sort == (SortKey("source.port", True),)
    assert parse_query("| sort host.name, -@timestamp").sort == (
        SortKey("host.name", False),
        SortKey("@timestamp", True),
    )


def test_head_default_and_number() -> None:
    assert parse_query("a | head").head == 10
    assert parse_query("a | head 3").head == 3


def test_fields_command() -> None:
    assert parse_query("a | fields user.name, source.ip").fields == ("user.name", "source.ip")


def test_full_pipeline() -> None:
    q = parse_query("event.code:4625 | stats count by source.ip | sort -count | head 5")
    assert q == Query(
        t("event.code", "4625"), Stats((Agg("count"),), ("source.ip",)), (SortKey("count", True),), 5, ()
    )


def test_pipe_inside_quotes_is_text() -> None:
    assert where('"a | b"') == t(None, "a | b", quoted=True)


# -- errors say where and why --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user.name:anna AND b)", "unexpected ')' at column 21"),
        ('a "failed', "unterminated quote starting at column 3"),
        ("a | stats mean by x", "unknown stats function 'mean' at column 11"),
        ("a | stats avg by x", "'avg' needs a field, e.g. avg(source.port) (at column 11)"),
        ("a | stats count x", "expected 'by' at column 17"),
        ("a | frobnicate", "unknown command 'frobnicate' at column 5"),
        ("user.name: x", "missing value after 'user.name:' at column 11"),
        ("(a OR b", "missing ')' for the '(' at column 1"),
        ("a AND", "expected a search term at column 6 (end of query)"),
        ("OR a", "unexpected 'OR' at column 1"),
        ("a OR OR b", "unexpected 'OR' at column 6"),
        ("()", "empty parentheses at column 1"),
        ("a | head x", "'head' takes a number of rows at column 10"),
        ("a | head 0", "'head' needs at least 1 row at column 10"),
        ("a | head 1 | head 2", "'head' given twice at column 14"),
        ("a | head 5 extra", "unexpected 'extra' at column 12"),
        ("a | sort x | stats count", "'stats' must be the first command (only 'where' may come before"),
        ("a | stats count | fields x", "'fields' names 'x' at column 26, not a column of the result (count)"),
        ("a | stats count by x | sort y", "cannot sort stats by 'y' at column 29"),
        ("source.port:[1 2]", "a range is written [low TO high] (at column 13)"),
        ("source.port:[1 TO 2", "unterminated range starting at column 13"),
        ("source.port:>*", "wildcards cannot be compared with '>' at column 1"),
        ("a\\", "nothing to escape after '\\' at column 2"),
        ("a | stats count by", "expected a field name at column 19, found 'end of query'"),
    ],
)
def test_error_messages_name_the_column(text: str, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(text)
    assert str(info.value).startswith(message)


def test_error_has_position_and_caret_excerpt() -> None:
    with pytest.raises(QueryError) as info:
        parse_query("user.name:anna)")
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.position, err.column) == (14, 15)
    assert err.excerpt().splitlines()[1:] == ["  user.name:anna)", "                ^"]


def test_compile_errors_name_the_column() -> None:
    with pytest.raises(QueryError, match=r"'seq' needs a whole number, got 'x' \(at column 3\)"):
        compile_query("a seq:x", tenants=["lulea"])
    with pytest.raises(QueryError, match=r"'@timestamp' does not take wildcards"):
        compile_query("@timestamp:2025*", tenants=["lulea"])
    with pytest.raises(QueryError, match=r"cannot read time 'yesterday'.*\(at column 1\)$"):
        compile_query("@timestamp:>yesterday", tenants=["lulea"])


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("(" * 101 + "a" + ")" * 101, 101),  # the 101st '('
        ("NOT " * 101 + "a", 401),
        ("-" * 101 + "a", 101),
        ("a (b OR " + "NOT (" * 51 + "c" + ")" * 52, 258),  # the 50th NOT's '(' is level 101
    ],
)
def test_nesting_beyond_the_hard_cap_is_a_query_error(text: str, column: int) -> None:
    # Without the cap a few hundred '(' ended in RecursionError (a 500 in the API).
    with pytest.raises(QueryError, match=r"nested too deeply at column \d+: more than 100 levels") as info:
        parse_query(text)
    assert info.value.column == column


def test_nesting_at_the_cap_still_parses_and_compiles() -> None:
    text = "(" * 100 + "a OR b" + ")" * 100
    compile_query(text, tenants=["lulea"])
    with pytest.raises(QueryError, match="at column 106: more than 100 levels"):
        parse_query(text.replace("b", "-b"))


def test_depth_and_length_limits_can_be_lowered() -> None:
    assert parse_query("((a))", max_depth=2).where == t(None, "a")
    with pytest.raises(QueryError, match="at column 3: more than 2 levels"):
        parse_query("(((a)))", max_depth=2)
    with pytest.raises(QueryError, match="more than 2 levels"):
        parse_query("NOT NOT NOT a", max_depth=2)
    assert parse_query("a" * 20, max_length=20).where == t(None, "a" * 20)
    with pytest.raises(QueryError, match="query too long: 21 characters, at most 20") as info:
        parse_query("a" * 21, max_length=20)
    assert info.value.column == 21
    # a caller cannot raise the hard caps
    with pytest.raises(QueryError, match="at most 100,000"):
        parse_query("a" * 100_001, max_length=10**9)
    with pytest.raises(QueryError, match="more than 100 levels"):
        parse_query("(" * 101 + "a" + ")" * 101, max_depth=10**9)


# -- compiled SQL keeps user text out of SQL --------------------------------------------------------


def test_user_values_travel_as_parameters_only() -> None:
    nasty = "x' OR 1=1 --"
    compiled = compile_query(f'user.name:"{nasty}" "{nasty}" Evil\\"Key:1', tenants=["lulea"])
    assert "1=1" not in compiled.sql and "Evil" not in compiled.sql and "Key" not in compiled.sql
    # lowered for the case-insensitive match, and whole for the free-text phrase
    assert list(compiled.parameters.values()).count("x' or 1=1 --") == 2


def test_scope_is_always_applied() -> None:
    compiled = compile_query("tenant:pitea OR user.name:anna", tenants=["lulea"])
    assert compiled.sql.split(" WHERE ", 1)[1].startswith("tenant IN {p0:Array(String)} AND ")
    assert compiled.parameters["p0"] == ["lulea"]


@pytest.mark.parametrize("tenants", [[], "lulea", [""]])
def test_scope_must_name_tenants(tenants: list[str]) -> None:
    with pytest.raises(ValueError, match="tenants must be a non-empty list"):
        compile_query("a", tenants=tenants)


def test_bad_order_and_paging_are_rejected() -> None:
    with pytest.raises(ValueError, match="order must be"):
        compile_query("a", tenants=["lulea"], order="up")
    with pytest.raises(ValueError, match="limit and offset"):
        compile_query("a", tenants=["lulea"], offset=-1)


# -- times -----------------------------------------------------------------------------------------

NOW = 1_741_600_000_000_000  # 2025-03-10T09:46:40Z
MIN = 60_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("30s", NOW - 30_000_000),
        ("15m", NOW - 15 * MIN),
        ("2h", NOW - 120 * MIN),
        ("7d", NOW - 7 * 1440 * MIN),
        ("1w", NOW - 7 * 1440 * MIN),
        ("now-1h", NOW - 60 * MIN),
        ("now+5m", NOW + 5 * MIN),
        (" NOW - 1h ", NOW - 60 * MIN),
        ("2025-03-10", 1_741_564_800_000_000),
        ("2025-03-10T08:00:00", 1_741_593_600_000_000),
        ("2025-03-10 08:00:00.5", 1_741_593_600_500_000),
        ("2025-03-10T08:00:00Z", 1_741_593_600_000_000),
        ("2025-03-10T10:00:00+02:00", 1_741_593_600_000_000),
        ("1741593600", 1_741_593_600_000_000),
        ("1741593600.25", 1_741_593_600_250_000),
    ],
)
def test_parse_time(text: str, expected: int) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty time"),
        ("yesterday", "cannot read time 'yesterday': use 15m, 2h, 7d, now, now-1h"),
        ("15x", "cannot read time '15x'"),
        ("2025-13-01", "cannot read time '2025-13-01'"),
        ("99999999999999", "epoch seconds out of range"),
    ],
)
def test_parse_time_errors(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_time(text, NOW)
