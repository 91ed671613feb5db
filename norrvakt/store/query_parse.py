"""The search language: text → :class:`Query` (an AST), with errors that say where.

Sample queries it reads::

    user.name:anna AND event.code:4625
    "failed password" -host.name:*-dc? source.ip:10.0.0.0/8
    event.code:(4624 OR 4625) source.port:>1024 | stats count by source.ip | head 5
    EventID:4688 process.command_line:*mimikatz* | sort -@timestamp | fields host.name, user.name

Grammar (keywords are upper case; lower-case ``and`` is just a word)::

    query    = [ or ] { "|" command }
    or       = and { "OR" and }
    and      = not { [ "AND" ] not }              (adjacent terms: implicit AND)
    not      = ( "NOT" | "-" ) not | primary
    primary  = "(" or ")" | term
    term     = [ field ":" ] value
    value    = phrase | word | ( ">" | ">=" | "<" | "<=" ) ( phrase | word )
             | ( "[" | "{" ) bound "TO" bound ( "]" | "}" ) | "(" or ")"    (field only)
    command  = stats | timechart | top | rare | where | dedup | sort | head | fields
               (grammar and order rules in :mod:`norrvakt.store.query_pipe`)

Words may hold ``*`` / ``?`` wildcards; ``\\`` escapes a special character in a word
(``adm\\*``). Inside ``"..."`` nothing is a wildcard and only ``\\"`` is an escape, so Windows
paths can be pasted as they are. A word after ``field:`` that is an IP network
(``10.0.0.0/8``, ``2001:db8::/32``) is a CIDR match; ``field:*`` means the field is present.
A word with a ``:`` is always ``field:value``: quote it (``"privilege::debug"``) to search text.
An aggregation (``stats``, ``timechart``, ``top``, ``rare``) comes first, after ``where``
filters only; ``sort`` and ``head`` apply to the whole result, so ``| head 5 | sort x`` is the
same as ``| sort x | head 5``.

Limits: a query longer than ``max_length`` characters, or nesting parentheses and ``NOT`` /
``-`` deeper than ``max_depth``, is refused with a :class:`QueryError` naming the column. The
parser (and the SQL compiler after it) recurse once per level, so without a depth limit a few
hundred ``(`` end in a RecursionError; a very long query becomes SQL beyond ClickHouse's
``max_query_size``. The defaults here are hard caps that keep the process safe for every
caller; the server's ``[search]`` settings can only tighten them.
"""

from __future__ import annotations

import ipaddress
import re

from norrvakt.store.query_ast import (
    COMPARE_OPS,
    And,
    Cidr,
    Compare,
    Exists,
    MatchAll,
    Node,
    Not,
    Or,
    Query,
    QueryError,
    Range,
    Term,
)
from norrvakt.store.query_pipe import DEFAULT_HEAD, parse_pipeline

__all__ = ["DEFAULT_HEAD", "MAX_QUERY_DEPTH", "MAX_QUERY_LENGTH", "parse_query"]
# Hard caps (see the module docstring): 100 levels stay far below Python's recursion limit
# (about 5 frames per level here, 3 in the SQL compiler), and ClickHouse's AST depth limit.
MAX_QUERY_LENGTH = 100_000
MAX_QUERY_DEPTH = 100

# A field name and its colon: ECS dotted names, Windows names (EventID), @timestamp, non-ASCII names.
_FIELD_COLON_RE = re.compile(r"(?:[^\W\d][\w.@-]*|@[\w.@-]+):")
_WORD_END = ' \t\r\n()"|'
_ESCAPABLE = set(' \t()"|*?:\\[]{}<>-')


def parse_query(text: str, *, max_length: int = MAX_QUERY_LENGTH, max_depth: int = MAX_QUERY_DEPTH) -> Query:
    """Parse ``text`` into a :class:`Query`; raises :class:`QueryError` naming the column.

    ``max_length`` (characters) and ``max_depth`` (nested groups and negations) can only be
    lowered below the hard caps :data:`MAX_QUERY_LENGTH` and :data:`MAX_QUERY_DEPTH`."""
    max_length = min(max_length, MAX_QUERY_LENGTH)
    if len(text) > max_length:
        raise QueryError(
            f"query too long: {len(text):,} characters, at most {max_length:,} "
            f"(column {max_length + 1} is past the limit)",
            max_length,
            text[: max_length + 40],
        )
    return _Parser(text, min(max_depth, MAX_QUERY_DEPTH)).parse()


class _Parser:
    def __init__(self, text: str, max_depth: int = MAX_QUERY_DEPTH) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0
        self.max_depth = max_depth

    # -- helpers ---------------------------------------------------------------------------

    def error(self, message: str, position: int) -> QueryError:
        return QueryError(message.replace("{col}", f"column {position + 1}"), position, self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def descend(self, start: int) -> None:
        """One more level of ``(`` or ``NOT`` (undone by ``self.depth -= 1`` on the way out)."""
        self.depth += 1
        if self.depth > self.max_depth:
            raise self.error(
                f"query nested too deeply at {{col}}: more than {self.max_depth} levels of "
                "parentheses and NOT",
                start,
            )

    def at_keyword(self, *words: str) -> str | None:
        for word in words:
            end = self.pos + len(word)
            if self.text.startswith(word, self.pos) and self.text[end : end + 1] in ("", *_WORD_END):
                return word
        return None

    # -- search expression -----------------------------------------------------------------

    def parse(self) -> Query:
        self.skip_space()
        where: Node = MatchAll() if self.peek() in ("", "|") else self.parse_or(None)
        self.skip_space()
        if self.peek() == ")":
            raise self.error("unexpected ')' at {col}", self.pos)
        query = Query(where=where, text=self.text)
        if self.peek() == "|":
            query = parse_pipeline(self, query)
        return query

    def parse_or(self, default_field: str | None) -> Node:
        children = [self.parse_and(default_field)]
        while True:
            self.skip_space()
            if not self.at_keyword("OR"):
                break
            self.pos += 2
            children.append(self.parse_and(default_field))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self, default_field: str | None) -> Node:
        children = [self.parse_not(default_field)]
        while True:
            self.skip_space()
            if self.peek() in ("", ")", "|") or self.at_keyword("OR"):
                break
            if self.at_keyword("AND"):
                self.pos += 3
            children.append(self.parse_not(default_field))
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_not(self, default_field: str | None) -> Node:
        self.skip_space()
        start = self.pos
        nxt = self.text[self.pos + 1 : self.pos + 2]
        if self.at_keyword("NOT"):
            self.pos += 3
        elif self.peek() == "-" and nxt and nxt not in " \t\r\n)|":
            self.pos += 1
        else:
            return self.parse_primary(default_field)
        self.descend(start)
        child = self.parse_not(default_field)
        self.depth -= 1
        return Not(child)

    def parse_primary(self, default_field: str | None) -> Node:
        self.skip_space()
        start, c = self.pos, self.peek()
        if c == "":
            raise self.error("expected a search term at {col} (end of query)", start)
        if c in ")|":
            raise self.error(f"expected a search term at {{col}}, found '{c}'", start)
        keyword = self.at_keyword("AND", "OR")
        if keyword:
            raise self.error(f"unexpected '{keyword}' at {{col}}", start)
        if c == "(":
            return self.parse_group(default_field)
        if c == '"':
            return Term(default_field, self.read_quoted(), (), True, start)
        match = _FIELD_COLON_RE.match(self.text, self.pos) if default_field is None else None
        if match:
            self.pos = match.end()
            return self.parse_value(match.group()[:-1], start)
        value, wildcards = self.read_word()
        if default_field is None and value == "*" and wildcards:
            return MatchAll()
        return self.word_term(default_field, value, wildcards, start)

    def parse_group(self, default_field: str | None) -> Node:
        start = self.pos
        self.descend(start)
        self.pos += 1
        self.skip_space()
        if self.peek() == ")":
            raise self.error("empty parentheses at {col}", start)
        node = self.parse_or(default_field)
        self.skip_space()
        if self.peek() != ")":
            raise self.error("missing ')' for the '(' at {col}", start)
        self.pos += 1
        self.depth -= 1
        return node

    def parse_value(self, name: str, start: int) -> Node:
        c = self.peek()
        if c == "" or c.isspace() or c in ")|":
            raise self.error(f"missing value after '{name}:' at {{col}}", self.pos)
        if c == '"':
            return Term(name, self.read_quoted(), (), True, start)
        if c == "(":
            return self.parse_group(name)
        if c in "[{":
            return self.parse_range(name, start)
        if c in "<>":
            op = COMPARE_OPS[c + "=" if self.text.startswith("=", self.pos + 1) else c]
            self.pos += len(op)
            if self.peek() == '"':
                value = self.read_quoted()
            else:
                value, wildcards = self.read_word()
                if wildcards:
                    raise self.error(f"wildcards cannot be compared with '{op}' at {{col}}", start)
            if not value:
                raise self.error(f"missing value after '{op}' at {{col}}", self.pos)
            return Compare(name, op, value, start)
        value, wildcards = self.read_word()
        if value == "*" and wildcards:
            return Exists(name, start)
        return self.word_term(name, value, wildcards, start)

    def word_term(self, name: str | None, value: str, wildcards: tuple[int, ...], start: int) -> Node:
        if name is not None and not wildcards and "/" in value:
            try:
                return Cidr(name, str(ipaddress.ip_network(value, strict=False)), start)
            except ValueError:
                pass  # not a network: an ordinary value that happens to contain '/'
        return Term(name, value, wildcards, False, start)

    def parse_range(self, name: str, start: int) -> Node:
        opening = self.peek()
        end = next((i for i in range(self.pos + 1, len(self.text)) if self.text[i] in "]}"), -1)
        if end < 0:
            raise self.error("unterminated range starting at {col} (missing ']' or '}')", self.pos)
        parts = self.text[self.pos + 1 : end].split()
        if len(parts) != 3 or parts[1].upper() != "TO":
            raise self.error("a range is written [low TO high] (at {col})", self.pos)
        self.pos = end + 1
        low, high = (None if p == "*" else p for p in (parts[0], parts[2]))
        return Range(name, low, high, opening == "[", self.text[end] == "]", start)

    def read_quoted(self) -> str:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\" and self.text.startswith('"', self.pos + 1):
                out.append('"')
                self.pos += 2
                continue
            self.pos += 1
            if c == '"':
                return "".join(out)
            out.append(c)
        raise self.error("unterminated quote starting at {col}", start)

    def read_word(self) -> tuple[str, tuple[int, ...]]:
        """A bare word up to a space, paren, quote or pipe; returns it and its wildcard offsets."""
        out: list[str] = []
        wildcards: list[int] = []
        while self.pos < len(self.text) and self.text[self.pos] not in _WORD_END:
            c = self.text[self.pos]
            if c == "\\":
                nxt = self.text[self.pos + 1 : self.pos + 2]
                if nxt == "":
                    raise self.error("nothing to escape after '\\' at {col}", self.pos)
                if nxt in _ESCAPABLE:
                    out.append(nxt)
                    self.pos += 2
                    continue
            elif c in "*?":
                wildcards.append(len(out))
            out.append(c)
            self.pos += 1
        return "".join(out), tuple(wildcards)
