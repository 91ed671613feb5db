"""A rule tested against stored events: what it would have detected, before it goes live.

    tested = RulesUnderTest.from_yaml(text, derived=DerivedFields())    # Sigma YAML, or
    tested = RulesUnderTest.from_loaded(engine.rules, "d9ccd722-…")     # a rule already loaded
    result = backtest(tested, scan.batches())                           # Event batches, oldest first
    result.scanned, result.matched, result.matches, result.per_rule

The rule is compiled exactly as live detection compiles it (pySigma with the same log source
pipeline and derived fields) and runs in a fresh :class:`DetectionEngine`: correlation windows
start empty and nothing of the live engine is touched. At the end of the events open
correlation windows are judged (as ``hunt`` does). Rules used only by correlations with
``generate: false`` report their own matches here — a test asks what a rule matches.

YAML text is compiled together with the built-in rules, so a correlation in it may reference
their building blocks (``norrvakt_auth_failure``); only the text's own rules are reported. A
text that does not load raises :class:`RuleTestError` with its report rows (line numbers and
reasons).

A test can be stopped: ``backtest(tested, batches, stop=RuleTestStop(30.0))`` looks at the
clock and at :meth:`RuleTestStop.cancel` before every event and before every RE2 call
(:func:`~norrvakt.detect.regex.interruptible`), and ends early with what it scanned so far
(``result.stopped`` says why). An RE2 call is linear in the value, so a stop waits for one
call at most, however many slow patterns the rule holds; the event it interrupts is not counted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from norrvakt.detect.derived import DerivedFields
from norrvakt.detect.detection import Detection, DetectionEngine, builtin_rules_dir
from norrvakt.detect.engine import RuleSet
from norrvakt.detect.ir import RuleInfo
from norrvakt.detect.loader import RULE_SUFFIXES, compile_files
from norrvakt.detect.logsource import load_pipeline
from norrvakt.detect.regex import MatchInterrupted, interruptible
from norrvakt.detect.report import RuleStatus
from norrvakt.event import Event

TEXT_PATH = "<tested rule>"
KEEP = 50  # matches returned in full; the rest are counted


class RuleTestError(ValueError):
    """The rule text cannot be tested: it is not a rule, or pySigma or the engine rejects it.
    ``problems`` are its load-report rows, each with the line and the reason."""

    def __init__(self, message: str, problems: Sequence[RuleStatus] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class RulesUnderTest:
    rules: RuleSet
    tested: frozenset[RuleInfo]  # the rules whose detections count
    statuses: tuple[RuleStatus, ...]  # their load-report rows (notes included)

    @classmethod
    def from_yaml(cls, text: str, derived: DerivedFields | None = None) -> RulesUnderTest:
        context = [
            (str(p), p.read_bytes())
            for p in sorted(builtin_rules_dir().iterdir())
            if p.suffix.lower() in RULE_SUFFIXES
        ]
        pipeline = load_pipeline()
        try:
            compiled = compile_files([*context, (TEXT_PATH, text.encode("utf-8"))], pipeline)
        except Exception as exc:
            # pySigma raises plain Python errors on some malformed rules (``id: 1`` is an
            # AttributeError); the author of the text must get them as an answer, not a 500.
            raise RuleTestError(f"pySigma cannot read the rule: {type(exc).__name__}: {exc}") from exc
        own = tuple(s for s in compiled.statuses if s.path == TEXT_PATH)
        problems = [s for s in own if not s.loaded]
        if problems:
            raise RuleTestError("; ".join(_where(s) for s in problems), problems)
        rules = RuleSet(compiled.plan, compiled.correlations, derived)
        tested = frozenset(
            info
            for info in (*rules.rules, *(spec.info for spec in rules.correlations))
            if info.path == TEXT_PATH
        )
        if not tested:
            raise RuleTestError(
                "no Sigma rule in the text (a rule needs title, logsource and detection, "
                "or a correlation: section)"
            )
        return cls(rules, tested, own)

    @classmethod
    def from_loaded(
        cls, loaded: RuleSet, rule_id: str, statuses: Sequence[RuleStatus] = ()
    ) -> RulesUnderTest:
        """The loaded rule (or correlation) ``rule_id`` with everything it references, over
        the loaded rule set's compiled plan (nothing is compiled again); a fresh engine state.
        Raises ``LookupError`` when no loaded rule has that id."""
        rules = RuleSet(loaded.plan, loaded.correlations, DerivedFields(loaded.derived.hours))
        tested = frozenset(
            info for info in (*rules.rules, *(spec.info for spec in rules.correlations)) if info.id == rule_id
        )
        if not tested:
            raise LookupError(f"no loaded rule with id {rule_id!r}")
        return cls(rules, tested, tuple(s for s in statuses if s.id == rule_id))


class RuleTestStop:
    """When a rule test ends early: after ``seconds`` of wall-clock time (None: never), or
    when :meth:`cancel` is called - from any thread (the client went away, the server stops)."""

    def __init__(self, seconds: float | None = None) -> None:
        self._deadline = time.monotonic() + seconds if seconds is not None else None
        self._cancelled = threading.Event()
        self._why = ""

    def cancel(self, why: str = "cancelled") -> None:
        if not self._cancelled.is_set():
            self._why = why
            self._cancelled.set()

    def reason(self) -> str:
        """Why the test must stop now: ``""`` (it need not), ``"time"``, or what :meth:`cancel` said."""
        if self._cancelled.is_set():
            return self._why
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return "time"
        return ""


@dataclass
class BacktestResult:
    scanned: int = 0
    matched: int = 0
    seconds: float = 0.0
    matches: list[Detection] = field(default_factory=list)  # the first KEEP
    per_rule: Counter[RuleInfo] = field(default_factory=Counter)
    stopped: str = ""  # "" ran to the end; "time" (budget spent), "cancelled", ... (RuleTestStop)


def backtest(
    tested: RulesUnderTest,
    batches: Iterable[Sequence[Event]],
    keep: int = KEEP,
    stop: RuleTestStop | None = None,
) -> BacktestResult:
    """Run the events (oldest first) through the rules; count and keep what the tested rules
    detect. With ``stop``, end early (before an event or an RE2 call) when it says so."""
    start = time.perf_counter()
    engine = DetectionEngine(tested.rules, quiet=False)
    result = BacktestResult(per_rule=Counter({info: 0 for info in tested.tested}))
    check = stop.reason if stop is not None else _never

    def take(detections: list[Detection]) -> None:
        for d in detections:
            if d.rule in tested.tested:
                result.matched += 1
                result.per_rule[d.rule] += 1
                if len(result.matches) < keep:
                    result.matches.append(d)

    try:
        with interruptible(check):
            for batch in batches:
                for event in batch:  # one by one: an interrupted event leaves no trace in the engine
                    result.stopped = check()
                    if result.stopped:
                        break
                    take(engine.process((event,)))
                    result.scanned += 1
                if result.stopped:
                    break
    except MatchInterrupted as exc:
        result.stopped = exc.reason
    if result.stopped in ("", "time"):  # judge open correlation windows over what was scanned
        take(engine.flush())
    result.seconds = time.perf_counter() - start
    return result


def _never() -> str:
    return ""


def match_dict(d: Detection) -> dict[str, Any]:
    """One detection as the API answers it: the rule, and the (first) event it is about."""
    from norrvakt.store.query import iso_time

    event = d.event
    return {
        "rule_id": d.rule_id,
        "title": d.title,
        "kind": d.kind,
        "level": d.level,
        "tenant": d.tenant,
        "seq": event.seq if event is not None else (d.refs[0][1] if d.refs else 0),
        "@timestamp": iso_time(event.ts if event is not None else d.ts),
        "message": event.message[:2000] if event is not None else "",
        "events": d.events,
        "detail": d.detail,
    }


def _where(status: RuleStatus) -> str:
    """``rule 'x' (line 1): Unknown modifier 'foo' (line 3)``; ``bad YAML: … (line 2, column 6)``."""
    at = f" (line {status.line})" if status.line else ""
    if status.title:
        return f"{status.kind} {status.title!r}{at}: {status.reason}"
    if "(line " in status.reason or not status.line:
        return status.reason
    return f"line {status.line}: {status.reason}"
