"""``| where`` conditions and the names in pipeline commands: text → :data:`Condition`, with errors
that say where (grammar in :mod:`norrvakt.store.query_pipe`).

    | where source.port > 1024 AND NOT (user.name = "root" OR user.name = user.target.name)
    | stats dc(user.name) by source.ip | where dc(user.name) > 3
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from norrvakt.store.query_ast import Comparison, CondBool, Condition, CondNot, Operand, WhereOp

if TYPE_CHECKING:
    from norrvakt.store.query_parse import _Parser

# A field name: ECS dotted names, Windows names (EventID), @timestamp, non-ASCII names (Åtkomst).
FIELD_RE = re.compile(r"[^\W\d][\w.@-]*|@[\w.@-]+")
_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_OPS: tuple[tuple[str, WhereOp], ...] = (
    ("==", "="), ("!=", "!="), ("<=", "<="), (">=", ">="), ("=", "="), ("<", "<"), (">", ">"),
)  # fmt: skip
_KEYWORD_RE = re.compile(r"(AND|OR|NOT)\b", re.IGNORECASE)


def read_ident(parser: _Parser, what: str) -> str:
    parser.skip_space()
    match = FIELD_RE.match(parser.text, parser.pos)
    if not match:
        found = parser.peek() or "end of query"
        raise parser.error(f"expected {what} at {{col}}, found '{found}'", parser.pos)
    parser.pos = match.end()
    return match.group()


def read_name(parser: _Parser, what: str) -> str:
    """A field or result column: ``user.name``, ``count``, ``count()``, ``dc(user.name)``."""
    name = read_ident(parser, what)
    if parser.peek() != "(":
        return name
    parser.pos += 1
    parser.skip_space()
    inner = "" if parser.peek() == ")" else read_ident(parser, "a field name")
    parser.skip_space()
    if parser.peek() != ")":
        raise parser.error(f"missing ')' after '{name}(' at {{col}}", parser.pos)
    parser.pos += 1
    return f"{name}({inner})" if inner else name


def parse_condition(parser: _Parser) -> Condition:
    children = [_cond_and(parser)]
    while _keyword(parser, "OR"):
        children.append(_cond_and(parser))
    return children[0] if len(children) == 1 else CondBool("OR", tuple(children))


def _keyword(parser: _Parser, word: str) -> bool:
    parser.skip_space()
    match = _KEYWORD_RE.match(parser.text, parser.pos)
    if match and match.group(1).upper() == word:
        parser.pos = match.end()
        return True
    return False


def _cond_and(parser: _Parser) -> Condition:
    children = [_cond_not(parser)]
    while _keyword(parser, "AND"):
        children.append(_cond_not(parser))
    return children[0] if len(children) == 1 else CondBool("AND", tuple(children))


def _cond_not(parser: _Parser) -> Condition:
    parser.skip_space()
    start = parser.pos
    if _keyword(parser, "NOT"):
        parser.descend(start)
        child = _cond_not(parser)
        parser.depth -= 1
        return CondNot(child)
    if parser.peek() == "(":
        parser.descend(start)
        parser.pos += 1
        cond = parse_condition(parser)
        parser.skip_space()
        if parser.peek() != ")":
            raise parser.error("missing ')' for the '(' at {col}", start)
        parser.pos += 1
        parser.depth -= 1
        return cond
    left = _operand(parser)
    parser.skip_space()
    op = next(((text, op) for text, op in _OPS if parser.text.startswith(text, parser.pos)), None)
    if op is None:
        found = parser.peek() or "end of query"
        raise parser.error(f"expected a comparison (= != < <= > >=) at {{col}}, found '{found}'", parser.pos)
    parser.pos += len(op[0])
    right = _operand(parser)
    if left.kind != "field" and right.kind != "field":
        raise parser.error("'where' compares a field with a value or another field (at {col})", start)
    return Comparison(left, op[1], right, start)


def _operand(parser: _Parser) -> Operand:
    parser.skip_space()
    start, c = parser.pos, parser.peek()
    if c == '"':
        return Operand("string", parser.read_quoted(), start)
    number = _NUMBER_RE.match(parser.text, parser.pos)
    if number and (c.isdigit() or c in "-."):
        parser.pos = number.end()
        return Operand("number", number.group(), start)
    if c == "" or c in "|)":
        found = c or "end of query"
        raise parser.error(f"expected a field, number or \"text\" at {{col}}, found '{found}'", start)
    return Operand("field", read_name(parser, 'a field, number or "text"'), start)
