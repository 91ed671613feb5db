"""Search-tree nodes → ClickHouse boolean expressions over the ``events`` table.

Every value the analyst typed becomes a server-side parameter (``{p0:String}``) through
:meth:`SqlBuilder.param`; field names only select among known columns or become a
parameterized ``fields[...]`` key, so no user text is ever SQL text.

How terms meet the indexes (EXPLAIN indexes=1 checks in tests/store/test_query_store.py):

- free text uses the ``text`` index on ``message_lower`` through ``hasToken``; phrases and
  words with punctuation need every whole token (``hasToken``) and then the exact substring
  (``position``); wildcards fall back to ``LIKE`` with the whole tokens still as a prefilter.
- ``message_lower`` is ``lowerUTF8(message)``, so one lowered term matches every case of it,
  non-ASCII letters included (``dörr`` finds ``Dörr``, ``DÖRR`` and ``DöRR``).
- ``field:value`` is case-insensitive (``lowerUTF8(col) = 'anna'``) only when the value has
  letters; numbers, IPs and codes compare exactly so bloom filters and the key still apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeAlias

from norrvakt.event import ECS_FIELD_SET
from norrvakt.store.query_ast import And, Cidr, Compare, Exists, MatchAll, Node, Not, QueryError, Range, Term
from norrvakt.store.query_time import parse_time
from norrvakt.store.schema import ECS_COLUMNS, EVENTS_TABLE

# What a field is to the compiler: text column (ECS or a ``fields`` key), or a special column.
Kind: TypeAlias = Literal["string", "tenant", "seq", "time", "message"]

_BASE: dict[str, tuple[str, Kind]] = {
    "tenant": ("tenant", "tenant"),
    "seq": ("seq", "seq"),
    "source": ("source", "string"),
    "peer": ("peer", "string"),
    "message": ("message", "message"),
    # Qualified: SELECT_EVENT_COLUMNS aliases ``... AS ts``, and an alias would win in WHERE
    # (comparing micro-seconds with a DateTime64 — and losing the primary key).
    "@timestamp": (f"{EVENTS_TABLE}.ts", "time"),
    "ts": (f"{EVENTS_TABLE}.ts", "time"),
    "ingested": (f"{EVENTS_TABLE}.ingested", "time"),
}


class SqlBuilder:
    """Collects parameters while SQL is built; every user value goes through :meth:`param`.

    ``now`` (µs) anchors relative times in the query text (``@timestamp:>now-1h``).
    """

    def __init__(self, query_text: str, now: int) -> None:
        self.parameters: dict[str, Any] = {}
        self.query_text = query_text
        self.now = now
        self._keys: dict[str, str] = {}  # one parameter per ``fields`` key, however often used

    def param(self, value: Any, type_: str) -> str:
        name = f"p{len(self.parameters)}"
        self.parameters[name] = value
        return f"{{{name}:{type_}}}"

    def column(self, name: str) -> tuple[str, Kind]:
        """SQL expression and kind of a field name (ECS column, base column or ``fields`` key)."""
        if name in ECS_FIELD_SET:
            return f"`{ECS_COLUMNS[name]}`", "string"
        if name in _BASE:
            return _BASE[name]
        key = name.removeprefix("fields.")
        if key not in self._keys:
            self._keys[key] = self.param(key, "String")
        return f"fields[{self._keys[key]}]", "string"

    def error(self, message: str, position: int) -> QueryError:
        return QueryError(message.replace("{col}", f"column {position + 1}"), position, self.query_text)


# -- free text ---------------------------------------------------------------------------------

# splitByNonAlpha splits on ASCII that is not a letter or digit; other bytes belong to tokens.
_TOKEN = re.compile(r"[^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _spellings(text: str) -> list[str]:
    """``text`` as it appears in ``message_lower`` (= ClickHouse ``lowerUTF8(message)``)."""
    # Character by character, so wildcard offsets stay valid ('İ'.lower() is two characters).
    return ["".join(_one(c.lower(), c) for c in text)]


def _one(changed: str, original: str) -> str:
    return changed if len(changed) == 1 else original


def _free_text(term: Term, sql: SqlBuilder) -> str:
    if term.wildcards:
        return _any(_free_wildcard(term, spelling, sql) for spelling in _spellings(term.value))
    return _any(_free_phrase(spelling, sql) for spelling in _spellings(term.value))


def _free_phrase(text: str, sql: SqlBuilder) -> str:
    tokens = _tokens(text)
    checks = [f"hasToken(message_lower, {sql.param(t, 'String')})" for t in dict.fromkeys(tokens)]
    if tokens != [text]:  # punctuation or several words: the tokens must also be adjacent
        checks.append(f"position(message_lower, {sql.param(text, 'String')}) > 0")
    return _all(checks)


def _free_wildcard(term: Term, text: str, sql: SqlBuilder) -> str:
    # Whole tokens (not touching a wildcard) still narrow granules through the index.
    whole: list[str] = []
    for start, end in _literal_spans(term):
        for match in _TOKEN.finditer(text[start:end]):
            touches_left = match.start() == 0 and start > 0
            touches_right = match.end() == end - start and end < len(text)
            if not touches_left and not touches_right:
                whole.append(match.group())
    checks = [f"hasToken(message_lower, {sql.param(t, 'String')})" for t in dict.fromkeys(whole)]
    pattern = "%" + _like_pattern(text, term.wildcards) + "%"
    checks.append(f"message_lower LIKE {sql.param(pattern, 'String')}")
    return _all(checks)


def _literal_spans(term: Term) -> list[tuple[int, int]]:
    spans, start = [], 0
    for w in (*term.wildcards, len(term.value)):
        if w > start:
            spans.append((start, w))
        start = w + 1
    return spans


def _like_pattern(text: str, wildcards: Sequence[int]) -> str:
    wild = set(wildcards)
    out = []
    for i, c in enumerate(text):
        if i in wild:
            out.append("%" if c == "*" else "_")
        else:
            out.append("\\" + c if c in "\\%_" else c)
    return "".join(out)


# -- field terms ---------------------------------------------------------------------------------


_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _is_number(value: str) -> bool:
    """True when ``value`` is a plain decimal number, as ``toFloat64OrNull`` reads one."""
    return _NUMBER_RE.fullmatch(value) is not None


def _has_case(value: str) -> bool:
    return value.lower() != value.upper()


def _term(term: Term, sql: SqlBuilder) -> str:
    if term.field is None:
        return _free_text(term, sql)
    expr, kind = sql.column(term.field)
    if kind == "message":
        return _free_text(term, sql)
    if kind in ("seq", "time"):
        if term.wildcards:
            raise sql.error(f"'{term.field}' does not take wildcards (at {{col}})", term.position)
        return f"{expr} = {typed_value(term.field, kind, term.value, term.position, sql)}"
    if kind == "tenant" and not term.wildcards:
        # Tenant ids are lower case; an exact compare keeps the primary key usable.
        return f"tenant = {sql.param(term.value.lower(), 'String')}"
    folded = _has_case(term.value)
    column = f"lowerUTF8({expr})" if folded else expr
    value = term.value.lower() if folded else term.value
    if term.wildcards:
        return f"{column} LIKE {sql.param(_like_pattern(value, term.wildcards), 'String')}"
    return f"{column} = {sql.param(value, 'String')}"


def typed_value(name: str, kind: Kind, value: str, position: int, sql: SqlBuilder) -> str:
    """A parameter for the seq / time columns, read from what the analyst typed."""
    if kind == "seq":
        if not value.isdigit():
            raise sql.error(f"'{name}' needs a whole number, got '{value}' (at {{col}})", position)
        return sql.param(int(value), "UInt64")
    try:
        micros = parse_time(value, sql.now)
    except QueryError as exc:
        raise sql.error(f"{exc.message} (at {{col}})", position) from None
    return micros_sql(micros, sql)


def micros_sql(micros: int, sql: SqlBuilder) -> str:
    """A DateTime64 constant the primary key and partition pruning can use."""
    return f"fromUnixTimestamp64Micro({sql.param(micros, 'Int64')}, 'UTC')"


def _compare(name: str, op: str, value: str, position: int, sql: SqlBuilder) -> str:
    expr, kind = sql.column(name)
    if kind in ("seq", "time"):
        return f"{expr} {op} {typed_value(name, kind, value, position, sql)}"
    if _is_number(value):  # both sides as numbers; rows that are not numbers drop out (NULL)
        return f"toFloat64OrNull({expr}) {op} {sql.param(float(value), 'Float64')}"
    return f"{expr} {op} {sql.param(value, 'String')}"


def _range(node: Range, sql: SqlBuilder) -> str:
    bounds = [b for b in (node.low, node.high) if b is not None]
    if not bounds:
        return _exists(node.field, sql)
    numeric = all(_is_number(b) for b in bounds)
    checks = []
    for bound, inclusive, op in ((node.low, node.include_low, ">"), (node.high, node.include_high, "<")):
        if bound is None:
            continue
        op = op + "=" if inclusive else op
        if numeric or sql.column(node.field)[1] in ("seq", "time"):
            checks.append(_compare(node.field, op, bound, node.position, sql))
        else:  # text bounds compare as text even when one of them looks like a number
            checks.append(f"{sql.column(node.field)[0]} {op} {sql.param(bound, 'String')}")
    return _all(checks)


def _exists(name: str, sql: SqlBuilder) -> str:
    expr, kind = sql.column(name)
    return "1" if kind in ("seq", "time") else f"{expr} != ''"


def _cidr(node: Cidr, sql: SqlBuilder) -> str:
    expr, kind = sql.column(node.field)
    if kind in ("seq", "time"):
        raise sql.error(f"'{node.field}' cannot hold an IP address (at {{col}})", node.position)
    # isIPAddressInRange throws on a non-IP string, and ClickHouse may evaluate it before an
    # AND's other side: feed it a harmless address for non-IP rows and drop those rows outside.
    is_ip = f"(isIPv4String({expr}) OR isIPv6String({expr}))"
    guarded = f"if({is_ip}, {expr}, '0.0.0.0')"
    return f"({is_ip} AND isIPAddressInRange({guarded}, {sql.param(node.network, 'String')}))"


def where_sql(node: Node, sql: SqlBuilder) -> str:
    if isinstance(node, MatchAll):
        return "1"
    if isinstance(node, Term):
        return _term(node, sql)
    if isinstance(node, Exists):
        return _exists(node.field, sql)
    if isinstance(node, Compare):
        return _compare(node.field, node.op, node.value, node.position, sql)
    if isinstance(node, Range):
        return _range(node, sql)
    if isinstance(node, Cidr):
        return _cidr(node, sql)
    if isinstance(node, Not):
        return f"NOT ({where_sql(node.child, sql)})"
    if isinstance(node, And):
        return _all(where_sql(c, sql) for c in node.children)
    return _any(where_sql(c, sql) for c in node.children)


def _all(parts: Iterable[str]) -> str:
    items = list(parts)
    return items[0] if len(items) == 1 else "(" + " AND ".join(items) + ")"


def _any(parts: Iterable[str]) -> str:
    items = list(parts)
    return items[0] if len(items) == 1 else "(" + " OR ".join(items) + ")"
