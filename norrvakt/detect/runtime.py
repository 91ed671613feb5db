"""Executable tests: atoms and plan nodes turned into fast Python callables.

Two kinds of atom evaluation:

- **Bulk** (string tests on a named field - nearly all atoms of real rules): all atoms on one
  field, from every rule, are compiled into one RE2 set (:class:`FieldMatcher`). Per event the
  field's value is casefolded once, and one linear-time pass over it reports every atom that
  holds. ``CommandLine`` alone carries ~10,000 atoms in the SigmaHQ Windows rules; testing them
  one by one in Python takes ~250 µs per value, the set pass ~2 µs. What a short value hit is
  remembered (:class:`Memo`): most fields take few distinct values, and those skip the pass.
- **Lazy** (regex, CIDR, comparisons, null/exists, field references, other keyword tests): a
  small function on the event (:mod:`norrvakt.detect.atoms`), called only when a candidate
  rule needs it.

A plan node becomes a closure ``test(true_atoms, view) -> bool``; ORs and ANDs of bulk atoms
become single set operations (``isdisjoint`` / ``issubset``).

RE2 reports a failed pass (its DFA memory budget exhausted on a pathological value) as "no
match"; every set therefore carries a sentinel pattern that always matches, and a pass without
it is redone atom by atom (:func:`~norrvakt.detect.atoms.string_predicate`), so a failure can
cost time but never a detection. That fallback stays linear in the value too: literals are
``str`` methods, and wildcard values are single RE2 regexes, which finish a match with their NFA
where a set gives up - never Python's backtracking ``re`` (``*a*a*a*…*b`` takes it O(n^k)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import re2  # google-re2: linear-time multi-pattern sets

from norrvakt.detect.atoms import EventView, LazyTest, StrPredicate, lazy_test, string_predicate
from norrvakt.detect.ir import CI_STRING_OPS, CS_STRING_OPS
from norrvakt.detect.plan import AtomRow, Node
from norrvakt.detect.regex import RegexError, RegexGroup, SigmaRegex, sigma_regex

Test = Callable[[set[int], EventView], bool]

# DFA memory per set. The default (8 MiB) thrashes on the ~10,000 CommandLine atoms (30x slower);
# memory is only taken as states are built, so most sets stay far below this.
SET_MAX_MEM = 64 << 20


def _set_pattern(op: str, arg: str) -> str:
    base = op.removesuffix("_cs")
    if base == "glob":
        body = arg.removeprefix("(?s)")
        return f"(?s:^(?:{body})$)"
    lit: str = re2.escape(arg)
    return {"eq": f"^{lit}$", "prefix": f"^{lit}", "suffix": f"{lit}$", "contains": lit}[base]


class _AtomSet:
    """Atoms on one field (all casefolded, or all cased) as one RE2 set."""

    __slots__ = ("_atoms", "_ids", "_preds", "_python", "_set")

    def __init__(self, atoms: list[tuple[int, str, str]]) -> None:
        self._atoms = atoms
        self._preds: list[tuple[int, StrPredicate]] | None = None  # built on the first fallback
        self._python: list[tuple[int, StrPredicate]] = []  # atoms RE2 cannot take
        options = re2.Options()
        options.max_mem = SET_MAX_MEM
        options.log_errors = False
        self._set: Any = re2.Set.SearchSet(options)
        self._set.Add("$")  # index 0: the sentinel, present in every successful pass
        self._ids = [-1]
        for aid, op, arg in atoms:
            try:
                self._set.Add(_set_pattern(op, arg))
            except re2.error:
                self._python.append((aid, string_predicate(op, arg)))
                continue
            self._ids.append(aid)
        try:
            self._set.Compile()
        except re2.error:  # too large for one set: atom by atom, slower but exact (and linear)
            self._set = None
            self._python = []

    def run(self, text: str, out: set[int]) -> None:
        if self._set is not None:
            hits = self._set.Match(text.encode("utf-8", "surrogatepass"))
            if hits:
                out.update(map(self._ids.__getitem__, hits))
                for aid, pred in self._python:
                    if pred(text):
                        out.add(aid)
                return
        if self._preds is None:
            self._preds = [(aid, string_predicate(op, arg)) for aid, op, arg in self._atoms]
        for aid, pred in self._preds:
            if pred(text):
                out.add(aid)


class Memo:
    """What recent values of each field hit, for all the field matchers of one rule set.

    Most fields of real logs take few values (``Channel``, ``EventID``, ``Provider_Name``,
    ``User``, ``Image``, ``IntegrityLevel``...): a value seen before costs a dict lookup instead
    of a casefold and an RE2 pass (~1.5 µs each, a few per field). The answer of a pass depends
    on the value alone, so a remembered one is the same answer. Bounded: values of at most
    :data:`MEMO_VALUE_CHARS` are kept, at most ``limit`` of them over all fields; when full,
    every table starts over (a flood of distinct values costs a clear now and then, never memory).
    """

    __slots__ = ("_tables", "entries", "limit")

    def __init__(self, limit: int = 0) -> None:
        self._tables: list[dict[str, tuple[int, ...]]] = []
        self.entries = 0
        self.limit = limit or MEMO_ENTRIES

    def table(self) -> dict[str, tuple[int, ...]]:
        table: dict[str, tuple[int, ...]] = {}
        self._tables.append(table)
        return table

    def clear(self) -> None:
        for table in self._tables:
            table.clear()
        self.entries = 0


# Values remembered over all fields of a rule set (the strings and their dict entries: at most
# ~30 MB at 256 characters each), and the longest value remembered: a command line or a script
# block is rarely seen twice, and would hold the most memory.
MEMO_ENTRIES = 1 << 16
MEMO_VALUE_CHARS = 256


class FieldMatcher:
    """Every bulk atom on one field: ``match(value, out)`` adds the numbers of those that hold.

    With a :class:`Memo` (a rule set passes its own), the answers for short values are
    remembered; without one the matcher has a memo of its own. ``remember=False``: none are
    (keywords are matched over all of an event's text, which is rarely seen twice)."""

    __slots__ = ("_ci", "_cs", "_longest", "_memo", "_seen")

    def __init__(
        self, atoms: list[tuple[int, str, str]], memo: Memo | None = None, *, remember: bool = True
    ) -> None:
        ci = [a for a in atoms if a[1] in CI_STRING_OPS]
        cs = [a for a in atoms if a[1] in CS_STRING_OPS]
        self._ci = _AtomSet(ci) if ci else None
        self._cs = _AtomSet(cs) if cs else None
        self._memo = memo if memo is not None else Memo()
        self._seen = self._memo.table()
        self._longest = MEMO_VALUE_CHARS if remember else -1

    def match(self, value: str, out: set[int]) -> None:
        hit = self._seen.get(value)
        if hit is None:
            if len(value) > self._longest:
                self._run(value, out)
                return
            found: set[int] = set()
            self._run(value, found)
            memo = self._memo
            if memo.entries >= memo.limit:
                memo.clear()
            memo.entries += 1
            hit = self._seen[value] = tuple(found)
        if hit:
            out.update(hit)

    def _run(self, value: str, out: set[int]) -> None:
        if self._ci is not None:
            self._ci.run(value.casefold(), out)
        if self._cs is not None:
            self._cs.run(value, out)


# --- plan nodes -> closures -----------------------------------------------------------------


class TestBuilder:
    """Builds the closure of a plan node; lazy atom tests are shared between rules."""

    def __init__(self, atoms: tuple[AtomRow, ...], bulk: list[bool]) -> None:
        self._atoms = atoms
        self._bulk = bulk
        self._lazy: dict[int, LazyTest] = {}
        self._groups: dict[str, tuple[RegexGroup, dict[int, int]]] = {}

    def lazy(self, number: int) -> LazyTest:
        test = self._lazy.get(number)
        if test is None:
            atom = self._atoms[number]
            if atom[0] is not None and atom[1] == "re":
                test = self._regex_test(atom[0], number)
            else:
                test = lazy_test(atom)
            self._lazy[number] = test
        return test

    def _regex_test(self, name: str, number: int) -> LazyTest:
        """A ``|re`` atom on field ``name`` as a member of the field's :class:`RegexGroup`: all
        regexes on that field (of every rule) are tried in one pass per event."""
        entry = self._groups.get(name)
        if entry is None:
            regexes: list[SigmaRegex] = []
            where: dict[int, int] = {}  # atom number -> index in the group
            for i, (field, op, arg) in enumerate(self._atoms):
                if field != name or op != "re":
                    continue
                pattern, flags = cast(tuple[str, int], arg)
                try:
                    regexes.append(sigma_regex(str(pattern), int(flags)))
                except RegexError:  # not loaded (the load report says why); on its own below
                    continue
                where[i] = len(regexes) - 1
            entry = self._groups[name] = (RegexGroup(regexes), where)
        group, where = entry
        if number not in where:
            return lazy_test(self._atoms[number])  # raises the RegexError, as before
        index = where[number]
        rx = group.regexes[index]

        def regex(v: EventView) -> bool:
            hits = v.regexes(name, group)
            if hits is not None:
                return index in hits
            x = v.value(name)  # absent, or searched on its own (as lazy_test's regex does)
            return x is not None and rx.search(x)

        return regex

    def build(self, node: Node) -> Test:
        if isinstance(node, bool):
            return _always if node else _never
        if isinstance(node, int):
            if self._bulk[node]:
                a = node
                return lambda t, v: a in t
            f = self.lazy(node)
            return lambda t, v: f(v)
        op, items = _split(node)
        if op == "!":
            forbidden = self._bulk_any(items[0])
            if forbidden is not None:
                return lambda t, v: forbidden.isdisjoint(t)
            inner = self.build(items[0])
            return lambda t, v: not inner(t, v)
        bulk = frozenset(a for a in map(self._bulk_atom, items) if a is not None)
        others = [i for i in items if self._bulk_atom(i) is None]
        if op == "|":
            return _any(bulk, [self.build(i) for i in others])
        # "a and not (b or c) and not d": one issubset and one isdisjoint instead of closures.
        forbid: set[int] = set()
        rest: list[Test] = []
        for item in others:
            banned = None
            if isinstance(item, tuple):
                sub_op, sub = _split(item)
                banned = self._bulk_any(sub[0]) if sub_op == "!" else None
            if banned is not None:
                forbid |= banned
            else:
                rest.append(self.build(item))
        if forbid:
            nope = frozenset(forbid)
            rest.insert(0, lambda t, v: nope.isdisjoint(t))
        return _all(bulk, rest)

    def _bulk_atom(self, node: Node) -> int | None:
        if isinstance(node, int) and not isinstance(node, bool) and self._bulk[node]:
            return node
        return None

    def _bulk_any(self, node: Node) -> frozenset[int] | None:
        """The atoms of ``node`` when it is a bulk atom or an OR of bulk atoms, else None."""
        atom = self._bulk_atom(node)
        if atom is not None:
            return frozenset((atom,))
        if isinstance(node, tuple):
            op, items = _split(node)
            atoms = [self._bulk_atom(i) for i in items]
            if op == "|" and all(a is not None for a in atoms):
                return frozenset(a for a in atoms if a is not None)
        return None


def _split(node: tuple[str, object]) -> tuple[str, tuple[Node, ...]]:
    """A compound node as (operator, operands); NOT has one operand."""
    op, arg = node
    if op == "!":
        return op, (arg,)  # type: ignore[return-value]
    return op, arg  # type: ignore[return-value]


def _always(t: set[int], v: EventView) -> bool:
    return True


def _never(t: set[int], v: EventView) -> bool:
    return False


def _any(bulk: frozenset[int], rest: list[Test]) -> Test:
    if not rest:
        return lambda t, v: not bulk.isdisjoint(t)
    either = _either(rest)
    if not bulk:
        return either
    return lambda t, v: not bulk.isdisjoint(t) or either(t, v)


def _either(tests: list[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda t, v: a(t, v) or b(t, v)
    fs = tuple(tests)
    return lambda t, v: any(f(t, v) for f in fs)


def _all(bulk: frozenset[int], rest: list[Test]) -> Test:
    if not rest:
        return lambda t, v: bulk.issubset(t)
    both = _both(rest)
    if not bulk:
        return both
    return lambda t, v: bulk.issubset(t) and both(t, v)


def _both(tests: list[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda t, v: a(t, v) and b(t, v)
    fs = tuple(tests)
    return lambda t, v: all(f(t, v) for f in fs)
