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


# -- pipeline commands ---------------------------------------------------------------------------

AggFunction: TypeAlias = Literal["count", "dc", "sum", "avg", "min", "max"]
AGG_FUNCTIONS: tuple[AggFunction, ...] = ("count", "dc", "sum", "avg", "min", "max")


@dataclass(frozen=True)
class Agg:
    """One aggregation: ``count``, ``dc(user.name)``, ``avg(bytes) as mean``.

    ``name`` is its result column: the ``as`` alias, else ``count`` or ``fn(field)``."""

    function: AggFunction
    field: str | None = None
    alias: str = ""
    position: int = _field(default=0, compare=False)

    @property
    def name(self) -> str:
        if self.alias:
            return self.alias
        return self.function if self.field is None else f"{self.function}({self.field})"


COUNT = Agg("count")


@dataclass(frozen=True)
class Stats:
    """``| stats count, dc(user.name) by source.ip``: one row per group."""

    aggs: tuple[Agg, ...] = (COUNT,)
    by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Top:
    """``| top 5 user.name by host.name`` (``rare`` = least common first): value, count, percent."""

    fields: tuple[str, ...]
    by: tuple[str, ...] = ()
    limit: int = 10
    rare: bool = False


@dataclass(frozen=True)
class Timechart:
    """``| timechart span=1h count by host.name``: one row per time bucket, a column per series.

    ``span_us`` None = chosen from the time range; ``limit`` = most series (the rest: OTHER)."""

    aggs: tuple[Agg, ...] = (COUNT,)
    by: str | None = None
    span_us: int | None = None
    limit: int = 10
    position: int = _field(default=0, compare=False)


Aggregate: TypeAlias = Stats | Top | Timechart


@dataclass(frozen=True)
class Operand:
    """A side of a ``| where`` comparison: a field (or result column), a number or a string."""

    kind: Literal["field", "number", "string"]
    value: str
    position: int = _field(default=0, compare=False)


WhereOp: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True)
class Comparison:
    left: Operand
    op: WhereOp
    right: Operand
    position: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class CondNot:
    child: Condition


@dataclass(frozen=True)
class CondBool:
    op: Literal["AND", "OR"]
    children: tuple[Condition, ...]


Condition: TypeAlias = Comparison | CondNot | CondBool


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False
    position: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class Query:
    """A parsed query. ``filters`` are ``| where`` conditions on events (before an aggregation),
    ``having`` those on an aggregation's rows (after it); ``fields`` keeps, ``drop`` removes
    columns; ``dedup`` keeps the first event of each combination of those fields' values."""

    where: Node
    aggregate: Aggregate | None = None
    sort: tuple[SortKey, ...] = ()
    head: int | None = None
    fields: tuple[str, ...] = ()
    text: str = _field(default="", compare=False)
    drop: tuple[str, ...] = ()
    dedup: tuple[str, ...] = ()
    filters: tuple[Condition, ...] = ()
    having: tuple[Condition, ...] = ()

    @property
    def stats(self) -> Stats | None:
        return self.aggregate if isinstance(self.aggregate, Stats) else None
