"""The tree a search query parses into, and the error raised when it cannot be read.

:func:`norrvakt.store.query_parse.parse_query` builds it; :mod:`norrvakt.store.query`
compiles it to SQL. ``position`` (0-based offset in the query text) is carried for error
messages but does not take part in equality, so tests can compare trees by shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from typing import Literal, TypeAlias


class QueryError(ValueError):
    """A query (or a time) that cannot be read; ``position`` is the 0-based offset in ``query``."""

    def __init__(self, message: str, position: int | None = None, query: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.query = query

    @property
    def column(self) -> int | None:
        return None if self.position is None else self.position + 1

    def excerpt(self) -> str:
        """The query with a caret under the bad spot, for terminals and <pre> blocks."""
        if self.position is None or not self.query:
            return self.message
        return f"{self.message}\n  {self.query}\n  {' ' * self.position}^"


@dataclass(frozen=True)
class MatchAll:
    """An empty query or a bare ``*``."""


@dataclass(frozen=True)
class Term:
    """``field:value`` (equality, case-insensitive) or free text when ``field`` is None.

    ``wildcards`` are offsets in ``value`` of unescaped ``*`` / ``?``.
    """

    field: str | None
    value: str
    wildcards: tuple[int, ...] = ()
    quoted: bool = False
    position: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class Exists:
    """``field:*`` — the field is present and not empty."""

    field: str
    position: int = _field(default=0, compare=False)


CompareOp: TypeAlias = Literal[">", ">=", "<", "<="]
COMPARE_OPS: dict[str, CompareOp] = {">": ">", ">=": ">=", "<": "<", "<=": "<="}


@dataclass(frozen=True)
class Compare:
    field: str
    op: CompareOp
    value: str
    position: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class Range:
    """``field:[low TO high]``; ``[``/``]`` include the bound, ``{``/``}`` exclude it; None = open."""

    field: str
    low: str | None
    high: str | None
    include_low: bool = True
    include_high: bool = True
    position: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class Cidr:
    field: str
    network: str  # normalized by ipaddress, e.g. "10.0.0.0/8"
    position: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node: TypeAlias = MatchAll | Term | Exists | Compare | Range | Cidr | Not | And | Or


@dataclass(frozen=True)
class Stats:
    function: Literal["count"]
    by: tuple[str, ...] = ()


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False
    position: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class Query:
    where: Node
    stats: Stats | None = None
    sort: tuple[SortKey, ...] = ()
    head: int | None = None
    fields: tuple[str, ...] = ()
    text: str = _field(default="", compare=False)
