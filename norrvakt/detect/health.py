"""Source health: a log source that goes silent beyond its normal gap raises a health match.

    health = SourceHealth()
    health.observe(event)                  # every event (cheap: two dict updates)
    for silent in health.tick(now_us):     # the server calls this every few seconds
        silent.tenant, silent.kind, silent.name, silent.silent_for, silent.expected_gap

A *source* is, per tenant, a host (``host.name``) and a dataset (``event.dataset``; the
event's ``source`` id when it has none) — the door-lock gateway, the social-services audit
log, a domain controller. For each, the gaps between arrivals (``Event.ingested``: silence is
about what reaches Norrvakt, not about log time) are learned: the last ``window`` gaps of at
least ``resolution`` (a burst is one arrival). The *expected gap* is their ``quantile``, never
below ``floor``. A source is silent when nothing arrived for ``factor`` x its expected gap, and
it is only judged once it has ``min_gaps`` gaps or has been seen for ``learn_for``. Each
silence is reported once; the next event ends it.

State is bounded: at most ``max_sources`` sources (the longest silent are forgotten first,
counted), and a source silent for ``forget_after`` is dropped after being reported.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from norrvakt.event import Event

SECOND = 1_000_000


@dataclass(frozen=True, slots=True)
class HealthConfig:
    factor: float = 5.0
    quantile: float = 0.9
    floor: int = 5 * 60 * SECOND  # µs: no source is expected more often than this
    resolution: int = SECOND  # gaps shorter than this are one burst, not a gap
    window: int = 32  # gaps remembered per source
    min_gaps: int = 12
    learn_for: int = 6 * 3600 * SECOND  # or judged after being seen this long
    max_sources: int = 20_000
    forget_after: int = 7 * 24 * 3600 * SECOND
    keys: tuple[str, ...] = ("host", "dataset")  # host | dataset | source
    level: str = "medium"


@dataclass(frozen=True, slots=True)
class Silence:
    tenant: str
    kind: str  # host | dataset | source
    name: str
    last_seen: int  # µs (ingest time of the last event)
    silent_for: int  # µs
    expected_gap: int  # µs
    events: int  # events seen from it before it went silent


@dataclass(slots=True)
class _Source:
    first: int
    last: int
    gaps: deque[int] = field(default_factory=deque)
    events: int = 0
    reported: bool = False


@dataclass
class HealthStats:
    sources: int = 0
    reported: int = 0
    forgotten: int = 0  # dropped because of max_sources or forget_after


class SourceHealth:
    """Learns each source's rhythm and reports silences; one per engine (thread)."""

    def __init__(self, config: HealthConfig | None = None) -> None:
        self.config = config or HealthConfig()
        bad = set(self.config.keys) - {"host", "dataset", "source"}
        if bad:
            raise ValueError(f"health keys {sorted(bad)}: expected host, dataset or source")
        if not 0 < self.config.quantile <= 1 or self.config.factor <= 1:
            raise ValueError("health quantile must be in (0, 1] and factor above 1")
        self.stats = HealthStats()
        # least recently heard from first: a tick only looks at the front
        self._sources: OrderedDict[tuple[str, str, str], _Source] = OrderedDict()

    def observe(self, event: Event) -> None:
        at = event.ingested
        for kind in self.config.keys:
            if kind == "host":
                name = event.ecs.get("host.name")
            elif kind == "dataset":
                name = event.ecs.get("event.dataset") or event.source
            else:
                name = event.source
            if name:
                self._seen((event.tenant, kind, name), at)

    def _seen(self, key: tuple[str, str, str], at: int) -> None:
        sources = self._sources
        src = sources.get(key)
        if src is None:
            if len(sources) >= self.config.max_sources:
                sources.popitem(last=False)
                self.stats.forgotten += 1
            sources[key] = _Source(at, at, deque(maxlen=self.config.window), 1)
            self.stats.sources += 1
            return
        gap = at - src.last
        if gap >= self.config.resolution:
            src.gaps.append(gap)
        if at > src.last:
            src.last = at
        src.events += 1
        src.reported = False
        sources.move_to_end(key)

    def expected_gap(self, key: tuple[str, str, str]) -> int | None:
        """The learned gap of a source (None while it is still learning)."""
        src = self._sources.get(key)
        return None if src is None else self._expected(src)

    def _expected(self, src: _Source) -> int | None:
        cfg = self.config
        if len(src.gaps) < cfg.min_gaps and src.last - src.first < cfg.learn_for:
            return None
        if not src.gaps:
            return cfg.floor
        ordered = sorted(src.gaps)
        q = ordered[min(len(ordered) - 1, int(cfg.quantile * len(ordered)))]
        return max(cfg.floor, q)

    def tick(self, now: int) -> list[Silence]:
        """Sources silent for longer than ``factor`` x their expected gap (each once)."""
        cfg = self.config
        out: list[Silence] = []
        # No source is judged before factor x floor of silence, and the dict is ordered by the
        # last arrival: the scan stops at the first source heard from more recently than that.
        shortest = int(cfg.factor * cfg.floor)
        for key, src in list(self._sources.items()):
            silent = now - src.last
            if silent < shortest:
                break
            if silent >= cfg.forget_after and src.reported:
                del self._sources[key]
                self.stats.forgotten += 1
                continue
            if src.reported:
                continue
            expected = self._expected(src)
            if expected is None or silent < cfg.factor * expected:
                continue
            src.reported = True
            self.stats.reported += 1
            out.append(Silence(key[0], key[1], key[2], src.last, silent, expected, src.events))
        return out
