"""The detection engine as the server and the hunt use it: one call per batch, one per tick.

    engine, report = DetectionEngine.load([Path("rules/")], cache_dir=data / "cache",
                                          intel_dir=data / "intel", health=HealthConfig())
    print(report.summary())
    for d in engine.process(events):     # after the journal assigned seq
        d.kind, d.rule_id, d.title, d.level, d.tenant, d.refs, d.group
    for d in engine.tick(now_us()):      # every few seconds
        ...

A :class:`Detection` is one of four kinds:

- ``rule``: a Sigma rule fired on an event (rules used only by correlations with
  ``generate: false`` do not report on their own, as Sigma says);
- ``correlation``: a correlation rule fired; ``refs`` are the contributing events;
- ``intel``: an event names an indicator of a threat intel list (``rule.id`` ``intel:<list>``);
- ``health``: a log source went silent (``rule.id`` ``health:silence``; no event).

One engine per worker thread: rule buckets, windows and caches are not locked.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from norrvakt.detect.correlate import CorrelationLimits, CorrelationMatch, Correlator
from norrvakt.detect.derived import DerivedFields
from norrvakt.detect.engine import RuleSet
from norrvakt.detect.health import HealthConfig, Silence, SourceHealth
from norrvakt.detect.intel import IntelHit, IntelStore
from norrvakt.detect.ir import RuleInfo
from norrvakt.detect.live_policy import LiveSet
from norrvakt.detect.loader import quiet_refs
from norrvakt.detect.logsource import Pipeline
from norrvakt.detect.report import LoadReport
from norrvakt.event import Event

EventRef = tuple[str, int]

# Intel lists are checked for changes at most this often (a stat per file).
INTEL_CHECK_US = 10_000_000


def builtin_rules_dir() -> Path:
    """``norrvakt/detect/rules``: the built-in rules (docs/rules.md lists them)."""
    return Path(str(resources.files("norrvakt.detect").joinpath("rules")))


@dataclass(frozen=True, slots=True)
class Detection:
    kind: str  # rule | correlation | intel | health
    rule: RuleInfo
    tenant: str
    refs: tuple[EventRef, ...]  # (tenant, seq) of the events it is about (capped for correlations)
    group: tuple[tuple[str, str], ...] = ()  # group-by values; intel: indicator; health: the source
    event: Event | None = None  # the (first) event; None for health
    ts: int = 0  # µs: event time (correlations: the last hit; health: the tick)
    events: int = 0  # how many events it covers (refs may be fewer)
    detail: str = ""  # one line for a person: "30 events gte 10 within 300 s per source.ip"

    @property
    def rule_id(self) -> str:
        return self.rule.id

    @property
    def title(self) -> str:
        return self.rule.title

    @property
    def level(self) -> str:
        return self.rule.level

    @property
    def tags(self) -> tuple[str, ...]:
        return self.rule.tags


@dataclass
class DetectionStats:
    events: int = 0
    rule: int = 0
    correlation: int = 0
    intel: int = 0
    health: int = 0
    seconds: float = 0.0  # in process()


class DetectionEngine:
    """Rules, correlations, threat intel and source health behind two calls."""

    def __init__(
        self,
        rules: RuleSet,
        correlations: Correlator | None = None,
        intel: IntelStore | None = None,
        health: SourceHealth | None = None,
        *,
        quiet: bool = True,
    ) -> None:
        """``quiet=False``: rules used only by correlations with ``generate: false`` report
        their own matches too (a rule test asks what a rule matches, not only what alerts)."""
        self.rules = rules
        self.correlations = correlations or Correlator(
            rules.correlations, len(rules.rules), derived=rules.derived
        )
        self.intel = intel
        self.health = health
        self.stats = DetectionStats()
        # Which rules raise detections for which tenant (norrvakt.detect.live_policy.LiveSet);
        # None: every rule, for every tenant (hunt, rule tests).
        self.live: LiveSet | None = None
        silent = quiet_refs(rules.correlations) if quiet else set()
        self._quiet_rules = frozenset(n for kind, n in silent if kind == "rule")
        self._quiet_specs = frozenset(n for kind, n in silent if kind == "correlation")
        self._spec_index = {id(s): i for i, s in enumerate(rules.correlations)}
        self._wants = [self.correlations.wants(r) for r in range(len(rules.rules))]
        self._intel_rules: dict[tuple[str, str, tuple[str, ...], str], RuleInfo] = {}
        self._intel_checked = 0
        self._health_rule = RuleInfo(
            id="health:silence",
            title="Log source went silent",
            level=health.config.level if health else "medium",
            tags=("norrvakt.health",),
            description="Nothing arrived from this source for several times its normal gap.",
        )

    @classmethod
    def load(
        cls,
        rule_paths: list[Path],
        *,
        builtin: bool = True,
        pipeline: Pipeline | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        derived: DerivedFields | None = None,
        intel_dir: Path | None = None,
        health: HealthConfig | None = None,
        limits: CorrelationLimits | None = None,
    ) -> tuple[DetectionEngine, LoadReport]:
        """Rules from ``rule_paths`` (plus the built-in rules unless ``builtin=False``), intel
        lists from ``intel_dir``, source health when ``health`` is given; one report."""
        paths = ([builtin_rules_dir()] if builtin else []) + list(rule_paths)
        rules, report = RuleSet.load(
            paths, pipeline=pipeline, cache_dir=cache_dir, use_cache=use_cache, derived=derived
        )
        intel = None
        if intel_dir is not None:
            intel = IntelStore(intel_dir)
            report.entries.extend(intel.load())
        correlator = Correlator(rules.correlations, len(rules.rules), limits, rules.derived)
        engine = cls(rules, correlator, intel, SourceHealth(health) if health is not None else None)
        return engine, report

    def use_live_set(self, live: LiveSet | None) -> None:
        """Raise detections only for the rules ``live`` (a
        :class:`~norrvakt.detect.live_policy.LiveSet` over these rules) puts live per tenant, and
        match only the rules it needs. Same thread as :meth:`process` (or between calls)."""
        active = live.active if live is not None else None
        if active != self.rules.active:
            self.rules = self.rules.restricted(active)
        self.live = live

    # -- the stream ------------------------------------------------------------------------

    def process(self, events: Iterable[Event]) -> list[Detection]:
        """Detections for a batch of events, in event order (correlations right after the event
        that completed them)."""
        start = time.perf_counter()
        out: list[Detection] = []
        rules = self.rules
        correlator = self.correlations
        intel = self.intel
        health = self.health
        newest: dict[str, int] = {}
        n = 0
        for event in events:
            n += 1
            tenant = event.tenant
            if event.ts > newest.get(tenant, 0):
                newest[tenant] = event.ts
            if health is not None:
                health.observe(event)
            hits = rules.matching_rules(event)
            found = intel.match(event) if intel is not None else None
            if hits or found:
                self._detected(event, hits, found, out)
        for tenant, ts in newest.items():
            correlator.advance(tenant, ts)
        self.stats.events += n
        self.stats.seconds += time.perf_counter() - start
        for d in out:
            self._count(d)
        return out

    # -- the same stream in two halves (norrvakt hunt's worker processes) -------------------

    def match(self, event: Event) -> tuple[list[int], list[IntelHit]]:
        """The half of :meth:`process` that keeps no state between events: the rules (indexes
        into ``rules.rules``) and the intel indicators ``event`` meets. A hunt worker process
        runs it; the parent hands the result to :meth:`process_matched`."""
        hits = self.rules.matching_rules(event)
        found = self.intel.match(event) if self.intel is not None else []
        return hits, found

    def process_matched(self, event: Event, hits: list[int], found: list[IntelHit]) -> list[Detection]:
        """:meth:`process` of the single event ``event`` whose :meth:`match` (possibly run in
        another process, on a copy of this engine) gave ``hits`` and ``found``: the same
        detections in the same order, the correlation state advanced the same way. Source
        health is not observed (a hunt has none)."""
        out: list[Detection] = []
        if hits or found:
            self._detected(event, hits, found, out)
        self.correlations.advance(event.tenant, event.ts)
        self.stats.events += 1
        for d in out:
            self._count(d)
        return out

    def _detected(
        self, event: Event, hits: list[int], found: list[IntelHit] | None, out: list[Detection]
    ) -> None:
        """The detections of one event that met rules or indicators, in the order
        :meth:`process` promises: each rule, the correlations it completed, then intel."""
        tenant = event.tenant
        if hits:
            rules = self.rules
            ref = ((tenant, event.seq),)
            view = None
            live = self.live
            for r in hits:
                if r not in self._quiet_rules and (live is None or live.rule_on(tenant, r)):
                    out.append(Detection("rule", rules.rules[r], tenant, ref, (), event, event.ts, 1))
                if self._wants[r]:
                    view = view or rules.view(event)
                    for match in self.correlations.on_rule(r, event, view):
                        self._add_correlation(match, out)
        if found:
            self._add_intel(event, found, out)

    def tick(self, now: int) -> list[Detection]:
        """Every few seconds (``now`` in µs): silent sources, correlation windows that closed,
        intel lists reloaded when a file changed (at most every 10 s)."""
        out: list[Detection] = []
        for match in self.correlations.tick(now):
            self._add_correlation(match, out)
        if self.health is not None:
            for silence in self.health.tick(now):
                out.append(self._health(silence, now))
        if self.intel is not None and now - self._intel_checked >= INTEL_CHECK_US:
            self._intel_checked = now
            self.intel.reload_if_changed()
        for d in out:
            self._count(d)
        return out

    def flush(self) -> list[Detection]:
        """End of a finite stream (``hunt``): judge open correlation windows."""
        out: list[Detection] = []
        for match in self.correlations.flush():
            self._add_correlation(match, out)
        for d in out:
            self._count(d)
        return out

    # -- building detections ---------------------------------------------------------------

    def _add_correlation(self, match: CorrelationMatch, out: list[Detection]) -> None:
        number = self._spec_index.get(id(match.spec))
        if number in self._quiet_specs:
            return
        if self.live is not None and number is not None and not self.live.spec_on(match.tenant, number):
            return
        spec = match.spec
        detail = f"{match.value:g} {spec.describe()}"
        out.append(
            Detection(
                "correlation",
                spec.info,
                match.tenant,
                match.refs,
                match.group,
                match.event,
                match.end,
                match.events,
                detail,
            )
        )

    def _add_intel(self, event: Event, hits: list[IntelHit], out: list[Detection]) -> None:
        ref = ((event.tenant, event.seq),)
        done: set[tuple[str, str, str]] = set()
        for hit in hits:
            ind = hit.indicator
            key = (ind.list, ind.kind, ind.value)
            if key in done:  # source.ip and IpAddress hold the same address
                continue
            done.add(key)
            out.append(
                Detection(
                    "intel",
                    self._intel_rule(ind.list, ind.level, ind.tags, ind.kind),
                    event.tenant,
                    ref,
                    (
                        ("indicator", ind.value),
                        ("type", ind.kind),
                        ("field", hit.field),
                        ("value", hit.value),
                    ),
                    event,
                    event.ts,
                    1,
                    " — ".join(x for x in (ind.description, ind.source, ind.where) if x),
                )
            )

    def _intel_rule(self, name: str, level: str, tags: tuple[str, ...], kind: str) -> RuleInfo:
        key = (name, level, tags, kind)
        info = self._intel_rules.get(key)
        if info is None:
            if len(self._intel_rules) > 10_000:
                self._intel_rules.clear()
            default = self.intel.default_level if self.intel is not None else "high"
            info = self._intel_rules[key] = RuleInfo(
                id=f"intel:{name}",
                title=f"Threat intel match: {kind} on list {name}",
                level=level or default,
                tags=("norrvakt.intel", *tags),
                description=f"An event names an indicator ({kind}) of the threat intel list {name!r}.",
            )
        return info

    def _health(self, silence: Silence, now: int) -> Detection:
        minutes = silence.silent_for / 60e6
        expected = silence.expected_gap / 60e6
        return Detection(
            "health",
            self._health_rule,
            silence.tenant,
            (),
            (
                (silence.kind, silence.name),
                ("silent_minutes", f"{minutes:.0f}"),
                ("expected_gap_minutes", f"{expected:.1f}"),
            ),
            None,
            now,
            0,
            f"no events from {silence.kind} {silence.name} for {minutes:.0f} min "
            f"(normally every {expected:.1f} min; {silence.events} events before)",
        )

    def _count(self, d: Detection) -> None:
        setattr(self.stats, d.kind, getattr(self.stats, d.kind) + 1)
