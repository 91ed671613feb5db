"""The commands after ``|``: text → the pipeline parts of a :class:`Query`, with errors that say where.

Sample pipelines it reads::

    | where source.port > 1024 | stats count, dc(user.name) as users by source.ip | where users > 3
    | timechart span=1h count by host.name
    | top 5 user.name by host.name | rare process.name | dedup user.name | fields - raw, message

Grammar (after the search expression; see :mod:`norrvakt.store.query_parse`)::

    command   = "stats" aggs [ "by" names ]
              | "timechart" { ("span" | "limit") "=" word } aggs [ "by" name ]
              | ( "top" | "rare" ) [ N | "limit=" N ] names [ "by" names ]
              | "where" cond | "dedup" names | "fields" [ "-" | "+" ] names
              | "sort" key { "," key } | "head" [ N ]
    aggs      = agg { [","] agg }        agg = fn [ "(" [ name ] ")" ] [ "as" name ]
    fn        = count | dc | sum | avg | min | max
    cond      = and { "OR" and }         and = not { "AND" not }
    not       = "NOT" not | "(" cond ")" | operand op operand
    operand   = number | "string" | name [ "(" [ name ] ")" ]     op = = == != < <= > >=

Order: ``where`` may come anywhere and more than once — before an aggregation it filters
events, after one it filters the aggregation's rows (like SQL's HAVING). One aggregation at
most (stats, timechart, top or rare), and only ``where`` before it; ``dedup`` is for events;
nothing but ``where`` filters (before it) goes with ``timechart``. ``sort`` and ``head`` apply
to the whole result wherever they stand.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from norrvakt.store.query_ast import (
    AGG_FUNCTIONS,
    Agg,
    Comparison,
    Condition,
    CondNot,
    Operand,
    Query,
    SortKey,
    Stats,
    Timechart,
    Top,
)
from norrvakt.store.query_cond import FIELD_RE, parse_condition, read_ident, read_name
from norrvakt.store.query_time import parse_span

if TYPE_CHECKING:
    from norrvakt.store.query_parse import _Parser

DEFAULT_HEAD = 10
DEFAULT_TOP = 10
COMMANDS = ("stats", "timechart", "top", "rare", "where", "dedup", "sort", "head", "fields")
AGGREGATIONS = ("stats", "timechart", "top", "rare")
_DIRECTION_RE = re.compile(r"(asc|desc)\b", re.IGNORECASE)
_DIGITS_RE = re.compile(r"\d+")


def result_columns(query: Query) -> list[str]:
    """The columns of an aggregation's rows (a timechart's depend on the data: ``[]``)."""
    agg = query.aggregate
    if isinstance(agg, Stats):
        return [*agg.by, *(a.name for a in agg.aggs)]
    if isinstance(agg, Top):
        return [*agg.by, *agg.fields, "count", "percent"]
    return []


def parse_pipeline(parser: _Parser, query: Query) -> Query:
    seen: list[str] = []
    q = query
    while parser.peek() == "|":
        parser.pos += 1
        parser.skip_space()
        start = parser.pos
        name = read_ident(parser, "a command (" + ", ".join(COMMANDS) + ")")
        if name not in COMMANDS:
            raise parser.error(f"unknown command '{name}' at {{col}} (expected {', '.join(COMMANDS)})", start)
        if name in seen and name != "where":
            raise parser.error(f"'{name}' given twice at {{col}}", start)
        q = _command(parser, q, name, start, seen)
        seen.append(name)
        parser.skip_space()
        if parser.peek() not in ("", "|"):
            extra = parser.text[parser.pos :].split("|", 1)[0].split()[0]
            raise parser.error(f"unexpected '{extra}' at {{col}}", parser.pos)
    _check_names(parser, q)
    return q


def _command(parser: _Parser, q: Query, name: str, start: int, seen: list[str]) -> Query:
    before = next((c for c in seen if c in AGGREGATIONS), None)
    if before == "timechart" and name != "where":
        raise parser.error(f"'{name}' cannot follow 'timechart' (at {{col}})", start)
    if name in AGGREGATIONS:
        if before is not None:
            raise parser.error(f"'{name}' cannot follow '{before}': one aggregation only (at {{col}})", start)
        if any(c != "where" for c in seen):
            raise parser.error(
                f"'{name}' must be the first command (only 'where' may come before it) (at {{col}})", start
            )
        if name == "stats":
            return replace(q, aggregate=_parse_stats(parser))
        if name == "timechart":
            return replace(q, aggregate=_parse_timechart(parser, start))
        return replace(q, aggregate=_parse_top(parser, rare=name == "rare"))
    if name == "where":
        cond = parse_condition(parser)
        if before is not None:
            if before == "timechart":
                raise parser.error("'where' cannot follow 'timechart' (at {col})", start)
            return replace(q, having=(*q.having, cond))
        return replace(q, filters=(*q.filters, cond))
    if name == "dedup":
        if before is not None:
            raise parser.error(f"'dedup' cannot be combined with '{before}' (at {{col}})", start)
        return replace(q, dedup=tuple(parse_names(parser)))
    if name == "sort":
        return replace(q, sort=_parse_sort(parser))
    if name == "head":
        return replace(q, head=_parse_head(parser))
    parser.skip_space()
    sign = parser.peek()
    if sign in ("-", "+"):
        parser.pos += 1
    parser.skip_space()
    names_at = parser.pos
    names = tuple(parse_names(parser))
    columns = result_columns(q)
    unknown = next((n for n in names if columns and n not in columns), None)
    if unknown is not None:
        message = f"'fields' names '{unknown}' at {{col}}, not a column of the result ({', '.join(columns)})"
        raise parser.error(message, names_at)
    return replace(q, drop=names) if sign == "-" else replace(q, fields=names)


def _check_names(parser: _Parser, q: Query) -> None:
    """After an aggregation, sort / where / fields can only name its result columns."""
    if q.aggregate is None or isinstance(q.aggregate, Timechart):
        return
    allowed = result_columns(q)
    hint = ", ".join(allowed)
    for key in q.sort:
        if key.field not in allowed:
            what = "stats" if isinstance(q.aggregate, Stats) else "the result"
            message = f"cannot sort {what} by '{key.field}' at {{col}} (use one of: {hint})"
            raise parser.error(message, key.position)
    for cond in q.having:
        for operand in _operands(cond):
            if operand.kind == "field" and operand.value not in allowed:
                message = (
                    f"unknown column '{operand.value}' at {{col}} after the aggregation (columns: {hint})"
                )
                raise parser.error(message, operand.position)


def _operands(cond: Condition) -> list[Operand]:
    if isinstance(cond, Comparison):
        return [cond.left, cond.right]
    if isinstance(cond, CondNot):
        return _operands(cond.child)
    return [o for c in cond.children for o in _operands(c)]


# -- names --------------------------------------------------------------------------------------


def parse_names(parser: _Parser, stop_at_by: bool = False) -> list[str]:
    names = [read_ident(parser, "a field name")]
    while True:
        parser.skip_space()
        if parser.peek() in ("", "|") or (stop_at_by and _at_word(parser, "by")):
            return names
        if parser.peek() == ",":
            parser.pos += 1
        names.append(read_ident(parser, "a field name"))


def _at_word(parser: _Parser, word: str) -> bool:
    end = parser.pos + len(word)
    return parser.text.startswith(word, parser.pos) and parser.text[end : end + 1] in (
        "",
        " ",
        "\t",
        "\n",
        "|",
    )


# -- aggregations -------------------------------------------------------------------------------


def _parse_aggs(parser: _Parser) -> tuple[Agg, ...]:
    aggs: list[Agg] = []
    while True:
        aggs.append(_parse_agg(parser))
        parser.skip_space()
        if parser.peek() == ",":
            parser.pos += 1
            continue
        if parser.peek() in ("", "|") or _at_word(parser, "by"):
            break
        match = FIELD_RE.match(parser.text, parser.pos)
        if not match or match.group() not in AGG_FUNCTIONS:
            raise parser.error("expected 'by' at {col}", parser.pos)
    for i, agg in enumerate(aggs):
        if agg.name in (a.name for a in aggs[:i]):
            raise parser.error(f"two results named '{agg.name}' at {{col}}: name one with 'as'", agg.position)
    return tuple(aggs)


def _parse_agg(parser: _Parser) -> Agg:
    parser.skip_space()
    start = parser.pos
    function = read_ident(parser, "a stats function (" + ", ".join(AGG_FUNCTIONS) + ")")
    if function not in AGG_FUNCTIONS:
        supported = ", ".join(AGG_FUNCTIONS)
        raise parser.error(f"unknown stats function '{function}' at {{col}} (supported: {supported})", start)
    field: str | None = None
    if parser.peek() == "(":
        parser.pos += 1
        parser.skip_space()
        if parser.peek() != ")":
            field = read_ident(parser, "a field name")
            parser.skip_space()
        if parser.peek() != ")":
            raise parser.error(f"missing ')' after '{function}(' at {{col}}", parser.pos)
        parser.pos += 1
    if field is None and function != "count":
        raise parser.error(f"'{function}' needs a field, e.g. {function}(source.port) (at {{col}})", start)
    parser.skip_space()
    alias = ""
    if _at_word(parser, "as"):
        parser.pos += 2
        alias = read_ident(parser, "a name after 'as'")
    return Agg(function, field, alias, start)


def _parse_by(parser: _Parser) -> tuple[str, ...]:
    parser.skip_space()
    if parser.peek() in ("", "|"):
        return ()
    start = parser.pos
    if read_ident(parser, "'by'") != "by":
        raise parser.error("expected 'by' at {col}", start)
    return tuple(parse_names(parser))


def _parse_stats(parser: _Parser) -> Stats:
    aggs = _parse_aggs(parser)
    return Stats(aggs, _parse_by(parser))


def _parse_timechart(parser: _Parser, start: int) -> Timechart:
    span: int | None = None
    limit = 10
    while True:
        parser.skip_space()
        match = re.compile(r"(span|limit)\s*=\s*([^\s|]*)").match(parser.text, parser.pos)
        if not match:
            break
        key, value = match.group(1), match.group(2)
        if key == "span":
            try:
                span = parse_span(value)
            except ValueError as exc:
                raise parser.error(f"{exc} (at {{col}})", match.start(2)) from None
        elif not value.isdigit() or int(value) < 1:
            raise parser.error(
                f"'limit' takes a number of series at {{col}}, found '{value}'", match.start(2)
            )
        else:
            limit = int(value)
        parser.pos = match.end()
    aggs = _parse_aggs(parser)
    by_start = parser.pos
    by = _parse_by(parser)
    if len(by) > 1:
        raise parser.error("timechart takes one 'by' field (at {col})", by_start)
    if by and len(aggs) > 1:
        raise parser.error("timechart with 'by' takes one aggregation (at {col})", by_start)
    return Timechart(aggs, by[0] if by else None, span, limit, start)


def _parse_top(parser: _Parser, rare: bool) -> Top:
    parser.skip_space()
    limit = DEFAULT_TOP
    match = re.compile(r"(?:limit\s*=\s*)?(\d+)\b").match(parser.text, parser.pos)
    if match:
        limit = int(match.group(1))
        if limit < 1:
            raise parser.error("'top' needs at least 1 row at {col}", match.start(1))
        parser.pos = match.end()
    fields = tuple(parse_names(parser, stop_at_by=True))
    return Top(fields, _parse_by(parser), limit, rare)


# -- sort, head ----------------------------------------------------------------------------------


def _parse_sort(parser: _Parser) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    while True:
        parser.skip_space()
        sign, start = parser.peek(), parser.pos
        if sign in "+-" and sign:
            parser.pos += 1
        name = read_name(parser, "a field to sort by")
        parser.skip_space()
        descending = sign == "-"
        direction = _DIRECTION_RE.match(parser.text, parser.pos)
        if direction:
            descending = direction.group(1).lower() == "desc"
            parser.pos = direction.end()
            parser.skip_space()
        keys.append(SortKey(name, descending, start))
        if parser.peek() != ",":
            return tuple(keys)
        parser.pos += 1


def _parse_head(parser: _Parser) -> int:
    parser.skip_space()
    match = _DIGITS_RE.match(parser.text, parser.pos)
    if not match:
        if parser.peek() in ("", "|"):
            return DEFAULT_HEAD
        raise parser.error(f"'head' takes a number of rows at {{col}}, found '{parser.peek()}'", parser.pos)
    parser.pos = match.end()
    n = int(match.group())
    if n < 1:
        raise parser.error("'head' needs at least 1 row at {col}", match.start())
    return n
