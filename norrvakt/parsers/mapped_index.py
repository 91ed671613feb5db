"""Which mapping claims an event, found without trying every mapping's conditions on it.

Recognizing a mapped source used to test every condition of every mapping on every event: on
Windows events over HEC (which no mapping claims) that was 15 % of the server's CPU (issue
#12). The index reads each condition once, when the mappings are loaded, and sorts it by what
it needs to be tested:

- ``{field: F, equals: V}`` — a dict lookup of the event's lowered ``F`` value, one per field
  name however many mappings ask about it (``log.syslog.appname``, ``system``, ``source`` …);
- ``{fields_present: [A, B]}`` — looked at only when ``A`` is in the event's fields;
- ``regex``, ``contains`` and ``startswith`` on a value — tested on the value; a regex first
  checks, with ``in``, the literal text that every match of it must contain (``%ASA-``,
  ``Originator@6876``), so on most events the regex engine never runs.

Semantics are exactly those of ``Mapping.matches``: the first mapping in load order whose
condition holds and whose ``apply()`` succeeds claims the event. A condition the index cannot
prove harmless (a regex that does not compile, a field name that is not text …) would raise or
behave oddly in ``_condition``; its mapping is tried the old way, with ``matches()``, at its
place in the order, so it fails (or not) on exactly the events it failed on before.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from norrvakt.event import ECS_FIELD_SET, Event, RawRecord

# Where an event keeps a field's value, as in ``Event.get`` and ``mapped._condition``.
_ECS, _MESSAGE, _FIELDS = 0, 1, 2
_OPERATORS = ("equals", "startswith", "contains", "regex")  # _condition's order of precedence


# A value test: the mapping's position, literals of which the value must contain one (none:
# no such guard) and the test proper (None: the literal is the test, as for ``contains``).
_Scan = tuple[int, tuple[str, ...], Callable[[str], bool] | None]


class Claimer(Protocol):
    """What the index needs of a mapping (``norrvakt.parsers.mapped.Mapping``)."""

    @property
    def match_any(self) -> list[dict[str, Any]]: ...

    def matches(self, event: Event) -> bool: ...

    def apply(self, event: Event, record: RawRecord) -> bool: ...


class MappingIndex:
    """The mappings of one load, indexed; rebuilt whenever the mappings change."""

    def __init__(self, mappings: Sequence[Claimer]) -> None:
        self._mappings = list(mappings)
        equals: dict[str, dict[str, set[int]]] = {}
        present: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        scans: dict[str, list[_Scan]] = {}
        always: set[int] = set()
        barriers: set[int] = set()
        for pos, mapping in enumerate(self._mappings):
            for cond in mapping.match_any:
                kind = _classify(cond)
                if kind is None:
                    barriers.add(pos)
                elif kind[0] == "never":
                    continue
                elif kind[0] == "always":
                    always.add(pos)
                elif kind[0] == "present":
                    names: tuple[str, ...] = kind[1]
                    present.setdefault(names[0], []).append((pos, names))
                elif kind[0] == "equals":
                    table = equals.setdefault(kind[1], {})
                    for key in kind[2]:
                        table.setdefault(key, set()).add(pos)
                else:
                    scans.setdefault(kind[1], []).append((pos, kind[2], kind[3]))
        self._barriers = frozenset(barriers)
        self._always = frozenset(always | barriers)
        self._equals = [
            (name, _where(name), {key: frozenset(hits) for key, hits in table.items()})
            for name, table in equals.items()
        ]
        self._present = list(present.items())
        self._scans = [(name, _where(name), tests) for name, tests in scans.items()]

    def candidates(self, event: Event) -> list[int]:
        """Positions (in load order) of the mappings whose ``match`` holds for ``event``, plus
        those that must be tried the old way (``matches()``)."""
        ecs = event.ecs
        fields = event.fields
        hits = set(self._always)
        for name, where, table in self._equals:
            value = (
                ecs.get(name) if where == _ECS else event.message if where == _MESSAGE else fields.get(name)
            )
            if value is not None:
                found = table.get(value.lower())
                if found:
                    hits |= found
        for first, entries in self._present:
            if first in fields:
                for pos, names in entries:
                    if pos not in hits and all(n in fields for n in names):
                        hits.add(pos)
        for name, where, scans in self._scans:
            value = (
                ecs.get(name) if where == _ECS else event.message if where == _MESSAGE else fields.get(name)
            )
            if value is None:
                continue
            for pos, needles, check in scans:
                if pos in hits:
                    continue
                if needles:  # inline, not any(): this loop runs on every event
                    for needle in needles:
                        if needle in value:
                            break
                    else:
                        continue
                if check is None or check(value):
                    hits.add(pos)
        return sorted(hits)

    def recognize(self, event: Event, record: RawRecord) -> bool:
        # Every condition is read before any apply(): a mapping whose parse step finds nothing
        # returns False without touching the event, so the later ones see the same event.
        for pos in self.candidates(event):
            mapping = self._mappings[pos]
            if pos in self._barriers and not mapping.matches(event):
                continue
            if mapping.apply(event, record):
                return True
        return False


def _where(name: str) -> int:
    return _ECS if name in ECS_FIELD_SET else _MESSAGE if name == "message" else _FIELDS


def _classify(cond: dict[str, Any]) -> tuple[Any, ...] | None:
    """How to test one condition of ``_condition``, or None when only ``_condition`` itself can."""
    if "fields_present" in cond:
        names = cond["fields_present"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        return ("present", tuple(names)) if names else ("always",)
    name = cond.get("field", "")
    if not isinstance(name, str):
        return None  # unhashable names raise in _condition; leave them to it
    op = next((op for op in _OPERATORS if op in cond), None)
    if op is None:
        return ("never",)  # _condition looks the value up and answers False
    arg = cond[op]
    if op == "equals":
        wanted = arg if isinstance(arg, list) else [arg]
        return ("equals", name, {str(w).lower() for w in wanted})
    if op == "startswith":
        prefix = str(arg)
        return ("scan", name, (), lambda value: value.startswith(prefix))
    if op == "contains":
        return ("scan", name, (str(arg),), None)  # the needle is the whole test
    try:
        pattern = re.compile(str(arg))
    except re.error:
        return None  # raises on every event that reaches it, as it did
    search = pattern.search
    return ("scan", name, required_literals(pattern.pattern) or (), lambda value: search(value) is not None)


# -- the literal text a regex's every match contains --------------------------------------------

try:  # the stdlib's own regex parser (what re.compile uses); without it there are no guards
    _parser: Any = importlib.import_module("re._parser")
    _c: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - CPython 3.11+ has both
    _parser = _c = None


def required_literals(pattern: str) -> tuple[str, ...] | None:
    """Strings of which every match of ``pattern`` contains at least one, or None if unsure.

    Read from the parsed pattern: runs of literal characters in sequence, alternations whose
    every branch has such a run, repeats of at least one. A case-insensitive pattern (or part)
    has no guard, nor has anything the reader does not know.
    """
    if _parser is None:
        return None
    try:
        parsed = _parser.parse(pattern, 0)
        if parsed.state.flags & re.IGNORECASE:
            return None
        found = _sequence(list(parsed))
    except Exception:  # a parser internal we do not read: no guard, the regex decides
        return None
    return tuple(sorted(found)) if found else None


def _sequence(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
    options: list[frozenset[str]] = []
    run: list[str] = []
    for op, av in items:
        if op is _c.LITERAL:
            run.append(chr(av))
            continue
        if run:
            options.append(frozenset(["".join(run)]))
            run = []
        inner = _item(op, av)
        if inner:
            options.append(inner)
    if run:
        options.append(frozenset(["".join(run)]))
    return max(options, key=_usefulness) if options else None


def _item(op: Any, av: Any) -> frozenset[str] | None:
    if op is _c.SUBPATTERN:
        _group, add_flags, _del_flags, sub = av
        return None if add_flags & re.IGNORECASE else _sequence(list(sub))
    if op is _c.BRANCH:
        union: set[str] = set()
        for branch in av[1]:
            found = _sequence(list(branch))
            if not found:
                return None  # a branch that needs no literal: the alternation needs none
            union |= found
        return frozenset(union)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
        low, _high, sub = av
        return _sequence(list(sub)) if low >= 1 else None
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _sequence(list(av))
    return None  # classes, anchors, lookarounds, back-references: no literal to rely on


def _usefulness(option: frozenset[str]) -> tuple[int, int, int]:
    # Few needles of four or more characters beat many, and longer beats shorter after that.
    shortest = min(len(s) for s in option)
    return (min(shortest, 4), -len(option), shortest)
