"""The rule engine: a loaded rule set and the streaming match of events against it.

    rules, report = RuleSet.load([Path("rules/windows")], cache_dir=Path("var/cache"))
    for match in rules.match(event):
        print(match.rule.id, match.rule.title, match.rule.level, match.rule.tags)

How an event meets only the rules that can match it:

1. **Index.** The values of the index fields (``Channel``, ``EventID``, ``Provider_Name`` for
   the Windows mapping) select a *bucket*: the rule branches whose log source and literal
   conditions admit those values. Buckets are built on first use and memoised, so an event
   costs one tuple lookup here.
2. **Bulk atoms.** For each field the bucket's rules test, one RE2 pass over the casefolded
   value finds every string atom that holds (:mod:`norrvakt.detect.runtime`).
3. **Guards.** Only branches whose guard atom was found (plus the few without a guard) are
   evaluated, each as a compiled closure.

The engine works on :class:`~norrvakt.event.Event` objects only: no store, no web.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from norrvakt.detect.atoms import EventView, is_plain, value_getter
from norrvakt.detect.cache import CompiledSet, default_cache_dir
from norrvakt.detect.correlation import CorrelationSpec
from norrvakt.detect.derived import DerivedFields
from norrvakt.detect.ir import RuleInfo
from norrvakt.detect.loader import compile_files, load_rules
from norrvakt.detect.logsource import Pipeline, load_pipeline
from norrvakt.detect.plan import KEYWORDS, Node, Plan, bulk_field, is_bulk
from norrvakt.detect.report import LoadReport
from norrvakt.detect.runtime import FieldMatcher, Memo, Test, TestBuilder
from norrvakt.event import Event

# Distinct index keys kept; beyond this the memo starts over (a flood of odd EventIDs must not
# grow memory without bound).
MAX_BUCKETS = 50_000


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that fired on an event."""

    rule: RuleInfo
    event: Event


@dataclass(slots=True)
class EngineStats:
    events: int = 0
    tested: int = 0  # branch tests run (after index and guards)
    matches: int = 0
    buckets: int = 0


@dataclass(slots=True)
class _Bucket:
    unguarded: tuple[int, ...]
    by_atom: dict[int, tuple[int, ...]]
    plain: tuple[tuple[str, FieldMatcher], ...]  # fields read from Event.fields
    other: tuple[tuple[str, FieldMatcher], ...]  # ECS names and message
    keywords: FieldMatcher | None  # keyword substrings, over all of the event's text
    empty: bool = field(default=False)


class RuleSet:
    """Compiled Sigma rules, ready to match events. Build with :meth:`load`."""

    def __init__(
        self,
        plan: Plan,
        correlations: tuple[CorrelationSpec, ...] = (),
        derived: DerivedFields | None = None,
        active: frozenset[int] | None = None,
    ) -> None:
        """``active``: the rule numbers whose branches are matched (None: all) — the live set
        policy leaves the rules that run for no tenant out, so they cost nothing per event."""
        self.plan = plan
        self.active = active
        self.rules: tuple[RuleInfo, ...] = plan.rules
        self.correlations = correlations
        self.derived = derived or DerivedFields()
        self.stats = EngineStats()
        atoms = plan.atoms
        self._bulk = [is_bulk(a) for a in atoms]
        self._builder = TestBuilder(atoms, self._bulk)
        self._tests: list[Test | None] = [None] * len(plan.branches)
        self._branch_rule = [b.rule for b in plan.branches]
        self._key = _key_function(plan.index_fields, self.derived)
        self._buckets: dict[tuple[str | None, ...], _Bucket] = {}
        self._matchers: dict[str, FieldMatcher] = {}
        self._memo = Memo()  # what recent field values hit, shared by the matchers
        self._branches = [
            b for b, branch in enumerate(plan.branches) if active is None or branch.rule in active
        ]
        used = None if active is None else _atoms_of(plan.branches[b].node for b in self._branches)
        self._field_atoms: dict[str, list[tuple[int, str, str]]] = {}
        for number, atom in enumerate(atoms):
            if self._bulk[number] and (used is None or number in used):
                self._field_atoms.setdefault(bulk_field(atom), []).append((number, atom[1], str(atom[2])))
        # Branches by their constraint on the first index field: a bucket starts from those.
        self._by_first: dict[str | None, list[int]] = {}
        for number in self._branches:
            branch = plan.branches[number]
            first = branch.keys[0] if branch.keys else None
            for value in first if first is not None else (None,):
                self._by_first.setdefault(value, []).append(number)

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        paths: list[Path],
        *,
        pipeline: Pipeline | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        derived: DerivedFields | None = None,
    ) -> tuple[RuleSet, LoadReport]:
        """Rules (and correlation rules) from files and directories (``*.yml``), with the
        per-rule load report.

        ``cache_dir`` defaults to ``~/.cache/norrvakt``; ``use_cache=False`` compiles afresh
        and writes nothing.
        """
        pipeline = pipeline or load_pipeline()
        directory = (cache_dir or default_cache_dir()) if use_cache else None
        compiled, report = load_rules(paths, pipeline, directory)
        return cls(compiled.plan, compiled.correlations, derived), report

    @classmethod
    def from_yaml(
        cls, *texts: str, pipeline: Pipeline | None = None, derived: DerivedFields | None = None
    ) -> tuple[RuleSet, LoadReport]:
        """Rules from YAML text (tests, one-off checks); no cache."""
        pipeline = pipeline or load_pipeline()
        files = [(f"<rule {i}>", t.encode("utf-8")) for i, t in enumerate(texts, start=1)]
        compiled: CompiledSet = compile_files(files, pipeline)
        report = LoadReport(entries=list(compiled.statuses), files=len(files), pipeline=pipeline.source)
        return cls(compiled.plan, compiled.correlations, derived), report

    def restricted(self, active: frozenset[int] | None) -> RuleSet:
        """The same rules with only ``active`` matched (rule numbers stay the same)."""
        return RuleSet(self.plan, self.correlations, self.derived, active)

    def view(self, event: Event) -> EventView:
        """``event`` as the rules of this set see it (with its derived fields)."""
        return EventView(event, self.derived)

    def __len__(self) -> int:
        return len(self.rules)

    # -- matching --------------------------------------------------------------------------

    def match(self, event: Event) -> list[Match]:
        """Every rule that fires on ``event``, in rule order."""
        return [Match(self.rules[r], event) for r in self.matching_rules(event)]

    def match_many(self, events: Iterable[Event]) -> Iterator[Match]:
        """Matches for a batch or stream of events, in event order."""
        rules = self.rules
        for event in events:
            for r in self.matching_rules(event):
                yield Match(rules[r], event)

    def matching_rules(self, event: Event) -> list[int]:
        """Indexes (into :attr:`rules`) of the rules that fire on ``event``."""
        self.stats.events += 1
        fields = event.fields
        key = self._key(event)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._bucket(key)
        if bucket.empty:
            return []
        true: set[int] = set()
        for name, matcher in bucket.plain:
            value = fields.get(name)
            if value is not None:
                matcher.match(value, true)
        view = EventView(event, self.derived)
        for name, matcher in bucket.other:
            value = view.value(name)
            if value is not None:
                matcher.match(value, true)
        if bucket.keywords is not None:
            bucket.keywords.match(view.text(), true)
        by_atom = bucket.by_atom
        guarded: set[int] = set()
        for atom in true:
            hit = by_atom.get(atom)
            if hit is not None:
                guarded.update(hit)
        if not guarded and not bucket.unguarded:
            return []
        matched: set[int] = set()
        tests = self._tests
        branch_rule = self._branch_rule
        tested = 0
        for b in chain(bucket.unguarded, guarded):
            rule = branch_rule[b]
            if rule in matched:
                continue
            test = tests[b]
            if test is None:
                test = tests[b] = self._builder.build(self.plan.branches[b].node)
            tested += 1
            if test(true, view):
                matched.add(rule)
        self.stats.tested += tested
        self.stats.matches += len(matched)
        return sorted(matched)

    # -- the index -------------------------------------------------------------------------

    def _bucket(self, key: tuple[str | None, ...]) -> _Bucket:
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()
        folded = [v.casefold() if v is not None else None for v in key]
        if folded:
            start = self._by_first.get(folded[0], []) if folded[0] is not None else []
            candidates = chain(start, self._by_first.get(None, []))
        else:
            candidates = chain(self._branches)
        unguarded: list[int] = []
        by_atom: dict[int, list[int]] = {}
        names: set[str] = set()
        branches = self.plan.branches
        for b in candidates:
            branch = branches[b]
            if not _admits(branch.keys, folded):
                continue
            if branch.guard is None:
                unguarded.append(b)
            elif not branch.guard:
                continue  # can never match
            else:
                for atom in branch.guard:
                    by_atom.setdefault(atom, []).append(b)
            names.update(branch.fields)
        keywords = self._matcher(KEYWORDS) if KEYWORDS in names else None
        names.discard(KEYWORDS)
        plain = tuple((n, self._matcher(n)) for n in sorted(names) if is_plain(n, self.derived))
        other = tuple((n, self._matcher(n)) for n in sorted(names) if not is_plain(n, self.derived))
        bucket = _Bucket(
            tuple(unguarded),
            {a: tuple(bs) for a, bs in by_atom.items()},
            plain,
            other,
            keywords,
            empty=not unguarded and not by_atom,
        )
        self._buckets[key] = bucket
        self.stats.buckets += 1
        return bucket

    def _matcher(self, name: str) -> FieldMatcher:
        matcher = self._matchers.get(name)
        if matcher is None:
            atoms = self._field_atoms.get(name, [])
            matcher = self._matchers[name] = FieldMatcher(atoms, self._memo, remember=name != KEYWORDS)
        return matcher


def _key_function(
    index_fields: tuple[str, ...], derived: DerivedFields
) -> Callable[[Event], tuple[str | None, ...]]:
    """The index key of an event. Source fields come first in the mappings (``Channel``,
    ``EventID``...), so they are read with one ``map`` and only the rest one by one."""
    plain: list[str] = []
    for name in index_fields:
        if not is_plain(name, derived):
            break
        plain.append(name)
    rest = [value_getter(n, derived) for n in index_fields[len(plain) :]]
    names = tuple(plain)
    if not rest:
        return lambda e: tuple(map(e.fields.get, names))
    if len(rest) == 1:
        last = rest[0]
        return lambda e: (*map(e.fields.get, names), last(e))
    return lambda e: (*map(e.fields.get, names), *(g(e) for g in rest))


def _atoms_of(nodes: Iterable[Node]) -> set[int]:
    """The atom numbers in plan nodes."""
    out: set[int] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, bool):
            continue
        if isinstance(node, int):
            out.add(node)
            continue
        op, arg = node
        if op == "!":
            stack.append(arg)  # type: ignore[arg-type]
        else:
            stack.extend(arg)  # type: ignore[arg-type]
    return out


def _admits(keys: tuple[frozenset[str] | None, ...], folded: list[str | None]) -> bool:
    for allowed, value in zip(keys, folded, strict=False):
        if allowed is not None and (value is None or value not in allowed):
            return False
    return True
