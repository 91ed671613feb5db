"""Streaming evaluation of correlation rules, per tenant, in bounded memory.

    correlator = Correlator(rules.correlations, len(rules.rules))
    for r in rules.matching_rules(event):
        if correlator.wants(r):
            matches += correlator.on_rule(r, event, rules.view(event))
    matches += correlator.tick(now_us)          # every few seconds: windows close, groups expire

Time is the events' own time (``Event.ts``). Each correlation keeps, per tenant, its groups
(the ``group-by`` values) in LRU order; a group holds a window of the hits of the referenced
rules within ``timespan`` of its newest hit:

- ``event_count`` / ``value_count`` / ``temporal`` / ``temporal_ordered`` with ``gte``/``gt``
  fire as soon as the condition holds, with the hits in the window; the group then starts over
  (a burst of 30 failures against ``gte: 10`` fires three times, each with its own events).
- ``lt``/``lte``/``eq``/``neq`` (and ``value_sum``/``value_avg``/``value_percentile``/
  ``value_median``, judged on every hit) cannot know early: counting windows start at a
  group's first hit and are judged when ``timespan`` has passed (on a later hit, on a tick,
  or at :meth:`Correlator.flush`). Groups without any hit are never judged: "fewer than N"
  means "some, but fewer than N".
- ``temporal`` with an extended condition (``failed and (good or reset)``) fires as soon as
  the rules with hits in the window make it true; with ``not`` (``failed and not reset``) it
  is a counting window, judged when ``timespan`` has passed.
- ``temporal_ordered``: the last rule's hit completes a chain when, going backwards, each
  earlier rule has a hit that arrived before the next one's and is not later in time, all
  within ``timespan``.

Bounds: at most ``max_groups`` groups per correlation and tenant (the least recently hit is
dropped and counted), windows capped (a ``gte`` threshold needs at most that many entries;
``value_count`` keeps one entry per distinct value), at most ``max_refs`` event references
per match. A hit whose group-by (or value) field is absent or empty is not counted anywhere
(``stats.ungrouped``): an event without ``source.ip`` must not join every other one.
A correlation that fires is a hit for the correlations that reference it (chains).
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from norrvakt.detect.atoms import EventView
from norrvakt.detect.correlation import CorrelationSpec
from norrvakt.detect.derived import DerivedFields
from norrvakt.event import Event

EventRef = tuple[str, int]  # (tenant, seq)
Lookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class CorrelationLimits:
    max_groups: int = 10_000  # per correlation and tenant
    max_refs: int = 64  # event references kept per match
    max_entries: int = 1_000  # window entries of value_* and temporal correlations
    max_ordered: int = 32  # recent hits kept per rule position of temporal_ordered
    # tick(now): how far event time may lag the wall clock before open windows are judged and
    # idle groups dropped anyway (a tenant that stops sending must not hold windows forever)
    grace_us: int = 15 * 60 * 1_000_000


@dataclass(frozen=True, slots=True)
class CorrelationMatch:
    """A correlation that fired."""

    spec: CorrelationSpec
    tenant: str
    group: tuple[tuple[str, str], ...]  # group-by name -> value
    refs: tuple[EventRef, ...]  # contributing events (at most ``max_refs``)
    events: int  # how many events contributed (refs may be fewer)
    event: Event  # the first contributing event of the group's run
    start: int  # event time of the first and last hit in the window (µs)
    end: int
    value: float  # what the condition was judged on (count, distinct values, sum, ...)


@dataclass
class CorrelatorStats:
    hits: int = 0
    fired: int = 0
    ungrouped: int = 0  # hits without a group-by or value field
    evicted: int = 0  # groups dropped because of max_groups
    expired: int = 0  # idle groups dropped
    truncated: int = 0  # window entries dropped because of max_entries


@dataclass(slots=True)
class _Entry:
    ts: int
    order: int  # arrival order: ties in time are broken by it
    refs: tuple[EventRef, ...]
    key: object  # value (value_count), position (temporal*), number (value_*), None


@dataclass(slots=True)
class _Group:
    first: Event
    entries: deque[_Entry] = field(default_factory=deque)
    values: Counter[object] = field(default_factory=Counter)  # key -> entries holding it
    newest: int = 0
    start: int = 0  # counting windows (lt/lte/eq/neq): when the window opened
    count: int = 0  # counting windows: hits so far
    positions: list[deque[_Entry]] = field(default_factory=list)  # temporal_ordered


class _State:
    """One correlation's groups for one tenant, least recently hit first."""

    __slots__ = ("groups",)

    def __init__(self) -> None:
        self.groups: OrderedDict[tuple[str, ...], _Group] = OrderedDict()


class Correlator:
    """The correlation rules of a rule set, evaluated over a stream of rule hits."""

    def __init__(
        self,
        specs: tuple[CorrelationSpec, ...],
        rule_count: int,
        limits: CorrelationLimits | None = None,
        derived: DerivedFields | None = None,
    ) -> None:
        self.specs = specs
        self.limits = limits or CorrelationLimits()
        self.derived = derived
        self.stats = CorrelatorStats()
        # per spec and ref position: the event fields the group-by names are read from
        self._group_fields: list[list[tuple[str, ...]]] = []
        for spec in specs:
            aliases = dict(spec.aliases)
            self._group_fields.append(
                [
                    tuple(aliases[g][p] if g in aliases else g for g in spec.group_by)
                    for p in range(len(spec.refs))
                ]
            )
        # who listens to what: rule index / correlation index -> [(spec, positions)]
        self._by_rule: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in range(rule_count)]
        self._by_spec: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in specs]
        for number, spec in enumerate(specs):
            seen: dict[tuple[str, int], list[int]] = {}
            for position, ref in enumerate(spec.refs):
                seen.setdefault(ref, []).append(position)
            for (kind, target), positions in seen.items():
                table = self._by_rule if kind == "rule" else self._by_spec
                table[target].append((number, tuple(positions)))
        self._states: dict[tuple[int, str], _State] = {}
        self._order = 0
        self._watermark: dict[str, int] = {}

    def wants(self, rule: int) -> bool:
        """Whether hits of rule ``rule`` (index into the rule set) feed any correlation."""
        return bool(self._by_rule[rule])

    def on_rule(self, rule: int, event: Event, view: EventView) -> list[CorrelationMatch]:
        """Feed one rule hit; the correlations it completes (and those chained to them)."""
        out: list[CorrelationMatch] = []
        refs = ((event.tenant, event.seq),)
        for spec_index, positions in self._by_rule[rule]:
            self._feed(spec_index, positions, event.tenant, event.ts, view.value, refs, event, out)
        return out

    def advance(self, tenant: str, ts: int) -> None:
        """The newest event time seen for ``tenant`` (events that hit no rule count too)."""
        if ts > self._watermark.get(tenant, 0):
            self._watermark[tenant] = ts

    def tick(self, now: int) -> list[CorrelationMatch]:
        """Judge the counting windows whose time has passed and drop idle groups."""
        out: list[CorrelationMatch] = []
        for (spec_index, tenant), state in list(self._states.items()):
            spec = self.specs[spec_index]
            limit = max(self._watermark.get(tenant, 0), now - self.limits.grace_us)
            self._expire(spec_index, spec, tenant, state, limit, out)
        return out

    def flush(self) -> list[CorrelationMatch]:
        """End of the stream (a hunt): judge every open counting window, forget everything."""
        out: list[CorrelationMatch] = []
        for (spec_index, tenant), state in list(self._states.items()):
            spec = self.specs[spec_index]
            if spec.windowed:
                for key, group in list(state.groups.items()):
                    self._close(spec_index, spec, tenant, key, group, out)
        self._states.clear()
        return out

    # -- feeding ---------------------------------------------------------------------------

    def _feed(
        self,
        spec_index: int,
        positions: tuple[int, ...],
        tenant: str,
        ts: int,
        lookup: Lookup,
        refs: tuple[EventRef, ...],
        first: Event,
        out: list[CorrelationMatch],
    ) -> None:
        spec = self.specs[spec_index]
        self.stats.hits += 1
        key: tuple[str, ...] | None = ()
        if spec.group_by:
            found = tuple(map(lookup, self._group_fields[spec_index][positions[0]]))
            key = tuple(v for v in found if v) if all(found) else None
        if key is None:
            self.stats.ungrouped += 1
            return
        value: object = None
        if spec.fields:
            parts = [v for v in map(lookup, spec.fields) if v]
            if len(parts) != len(spec.fields):
                self.stats.ungrouped += 1
                return
            value = parts[0] if len(parts) == 1 else tuple(parts)
            if spec.type not in ("value_count", "event_count", "temporal", "temporal_ordered"):
                number = _number(str(parts[0]))
                if number is None:
                    self.stats.ungrouped += 1
                    return
                value = number
        state = self._states.get((spec_index, tenant))
        if state is None:
            state = self._states[(spec_index, tenant)] = _State()
        group = state.groups.get(key)
        if group is None and spec.type == "temporal_ordered" and 0 not in positions:
            return  # a chain starts with the first rule: later ones alone need no state
        if group is None:
            if len(state.groups) >= self.limits.max_groups:
                state.groups.popitem(last=False)
                self.stats.evicted += 1
            group = state.groups[key] = _Group(first, start=ts, newest=ts)
        else:
            state.groups.move_to_end(key)
        self._order += 1
        if spec.windowed:
            if spec.expression is not None:  # temporal: which rules hit the window
                value = spec.refs[positions[0]]
            self._count(spec_index, spec, tenant, key, group, ts, refs, value, first, out)
            return
        if ts > group.newest:
            group.newest = ts
        if not group.entries and not group.positions:
            group.first = first
        if spec.type == "temporal_ordered":
            self._ordered(spec_index, spec, tenant, key, group, positions, ts, refs, out)
            return
        entry_key: object = spec.refs[positions[0]] if spec.type == "temporal" else value
        self._add(spec, group, _Entry(ts, self._order, refs, entry_key))
        measure = self._measure(spec, group)
        if spec.holds(measure) if spec.expression is None else spec.holds_for(group.values, measure):
            self._fire(spec_index, spec, tenant, key, group, list(group.entries), measure, out)
            del self._states[(spec_index, tenant)].groups[key]

    def _add(self, spec: CorrelationSpec, group: _Group, entry: _Entry) -> None:
        entries = group.entries
        low = group.newest - spec.timespan
        while entries and entries[0].ts < low:
            self._drop_left(group)
        if spec.type == "value_count" and entry.key in group.values:
            # One entry per distinct value (the newest): the window stays as small as the count.
            for old in list(entries):
                if old.key == entry.key:
                    entries.remove(old)
                    group.values[entry.key] -= 1
        entries.append(entry)
        group.values[entry.key] += 1
        cap = self.limits.max_entries
        if spec.type == "event_count" or spec.type == "value_count":
            cap = max(cap, int(spec.count) + 1)
        while len(entries) > cap:
            self._drop_left(group)
            self.stats.truncated += 1

    def _drop_left(self, group: _Group) -> None:
        old = group.entries.popleft()
        left = group.values[old.key] - 1
        if left:
            group.values[old.key] = left
        else:
            del group.values[old.key]

    def _measure(self, spec: CorrelationSpec, group: _Group) -> float:
        kind = spec.type
        if kind == "event_count":
            return float(len(group.entries))
        if kind in ("value_count", "temporal"):
            return float(len(group.values))
        numbers = sorted(float(e.key) for e in group.entries if isinstance(e.key, (int, float)))
        if not numbers:
            return math.nan
        if kind == "value_sum":
            return math.fsum(numbers)
        if kind == "value_avg":
            return math.fsum(numbers) / len(numbers)
        if kind == "value_median":
            return _quantile(numbers, 50)
        return _quantile(numbers, spec.percentile)

    def _ordered(
        self,
        spec_index: int,
        spec: CorrelationSpec,
        tenant: str,
        key: tuple[str, ...],
        group: _Group,
        positions: tuple[int, ...],
        ts: int,
        refs: tuple[EventRef, ...],
        out: list[CorrelationMatch],
    ) -> None:
        if not group.positions:
            group.positions = [deque(maxlen=self.limits.max_ordered) for _ in spec.refs]
        entry = _Entry(ts, self._order, refs, None)
        for p in positions:
            group.positions[p].append(entry)
        last = len(spec.refs) - 1
        if last not in positions:
            return
        chain = [entry]
        low = ts - spec.timespan
        after = entry
        for p in range(last - 1, -1, -1):
            found = None
            for candidate in reversed(group.positions[p]):
                if candidate.order < after.order and low <= candidate.ts <= after.ts:
                    found = candidate
                    break
            if found is None:
                return
            chain.append(found)
            after = found
        chain.reverse()
        self._fire(spec_index, spec, tenant, key, group, chain, float(len(chain)), out)
        del self._states[(spec_index, tenant)].groups[key]

    def _count(
        self,
        spec_index: int,
        spec: CorrelationSpec,
        tenant: str,
        key: tuple[str, ...],
        group: _Group,
        ts: int,
        refs: tuple[EventRef, ...],
        value: object,
        first: Event,
        out: list[CorrelationMatch],
    ) -> None:
        """A counting window (lt/lte/eq/neq, or an extended condition with ``not``): open at the
        first hit, judged when it has passed."""
        if group.count and ts >= group.start + spec.timespan:
            self._close(spec_index, spec, tenant, key, group, out)
            state = self._states.setdefault((spec_index, tenant), _State())
            group = state.groups[key] = _Group(first, start=ts, newest=ts)
        group.count += 1
        group.newest = max(group.newest, ts)
        if (
            spec.type in ("value_count", "temporal")
            and value not in group.values
            and len(group.values) < self.limits.max_entries
        ):
            group.values[value] = 1
        if len(group.entries) < self.limits.max_refs:
            group.entries.append(_Entry(ts, self._order, refs, value))

    def _close(
        self,
        spec_index: int,
        spec: CorrelationSpec,
        tenant: str,
        key: tuple[str, ...],
        group: _Group,
        out: list[CorrelationMatch],
    ) -> None:
        measure = float(group.count if spec.type == "event_count" else len(group.values))
        if spec.holds_for(group.values, measure):
            self._fire(
                spec_index, spec, tenant, key, group, list(group.entries), measure, out, events=group.count
            )
        state = self._states.get((spec_index, tenant))
        if state is not None:
            state.groups.pop(key, None)

    def _expire(
        self,
        spec_index: int,
        spec: CorrelationSpec,
        tenant: str,
        state: _State,
        limit: int,
        out: list[CorrelationMatch],
    ) -> None:
        counting = spec.windowed
        for key, group in list(state.groups.items()):
            if counting:
                if group.start + spec.timespan <= limit:
                    self._close(spec_index, spec, tenant, key, group, out)
                    self.stats.expired += 1
            elif group.newest + spec.timespan < limit:
                del state.groups[key]
                self.stats.expired += 1
            else:
                break  # LRU order: the rest were hit more recently
        if not state.groups:
            self._states.pop((spec_index, tenant), None)

    # -- output ----------------------------------------------------------------------------

    def _fire(
        self,
        spec_index: int,
        spec: CorrelationSpec,
        tenant: str,
        key: tuple[str, ...],
        group: _Group,
        entries: list[_Entry],
        measure: float,
        out: list[CorrelationMatch],
        events: int | None = None,
    ) -> None:
        refs: list[EventRef] = []
        total = 0
        for entry in entries:
            total += len(entry.refs)
            room = self.limits.max_refs - len(refs)
            if room > 0:
                refs.extend(entry.refs[:room])
        times = [e.ts for e in entries] or [group.newest]
        match = CorrelationMatch(
            spec=spec,
            tenant=tenant,
            group=tuple(zip(spec.group_by, key, strict=True)),
            refs=tuple(refs),
            events=events if events is not None else total,
            event=group.first,
            start=min(times),
            end=max(times),
            value=measure,
        )
        self.stats.fired += 1
        out.append(match)
        self._chain(spec_index, match, out)

    def _chain(self, spec_index: int, match: CorrelationMatch, out: list[CorrelationMatch]) -> None:
        listeners = self._by_spec[spec_index]
        if not listeners:
            return
        values = dict(match.group)
        view = EventView(match.event, self.derived)

        def lookup(name: str) -> str | None:
            value = values.get(name)
            return value if value is not None else view.value(name)

        for target, positions in listeners:
            self._feed(target, positions, match.tenant, match.end, lookup, match.refs, match.event, out)


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _quantile(numbers: list[float], percentile: int) -> float:
    """Linear interpolation between closest ranks (numbers sorted)."""
    if len(numbers) == 1:
        return numbers[0]
    rank = (len(numbers) - 1) * percentile / 100
    low = math.floor(rank)
    high = min(low + 1, len(numbers) - 1)
    return numbers[low] + (numbers[high] - numbers[low]) * (rank - low)
