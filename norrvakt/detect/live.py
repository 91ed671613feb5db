"""Detection while the server runs: every stored event passes the active rules.

The indexer hands each stored batch to :meth:`LiveDetection.on_stored`; detections become
alert inputs for the SOC's alert service (which deduplicates, groups and notifies). A clock
tick judges closed correlation windows, reports silent sources and reloads changed intel
lists. Matching runs in a worker thread, one engine, batches in order — the engine's state
(correlation windows, source health) is never touched by two threads at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from norrvakt.alerts.intake import input_from_event
from norrvakt.alerts.model import AlertInput
from norrvakt.detect.content.store import ContentStore
from norrvakt.detect.derived import DerivedFields, WorkingHours
from norrvakt.detect.detection import Detection, DetectionEngine, builtin_rules_dir
from norrvakt.detect.health import HealthConfig
from norrvakt.detect.improper import ImproperUse
from norrvakt.detect.live_policy import SIGMA_PACKS, LivePolicy, LivePolicyConfig, LiveSet
from norrvakt.detect.logsource import load_pipeline
from norrvakt.detect.placeholders import with_placeholders
from norrvakt.event import Event, now_us
from norrvakt.modules import modules_for
from norrvakt.state import rules as rule_rows
from norrvakt.tasks import cancel_and_wait

if TYPE_CHECKING:
    import sqlalchemy as sa

    from norrvakt.config import Settings
    from norrvakt.node.runtime import Runtime

log = logging.getLogger(__name__)

TICK_S = 5.0
QUEUED_BATCHES = 4  # up to 20,000 events each (the indexer's batch): enough to overlap, bounded memory
STOP_DRAIN_S = 30.0


def derived_fields(settings: Settings) -> DerivedFields:
    """The derived fields (working hours in the configured zone) live detection evaluates with."""
    d = settings.detection
    return DerivedFields(
        WorkingHours(zone=settings.timezone, start_hour=d.work_start_hour, end_hour=d.work_end_hour)
    )


def sigma_rule_dirs(settings: Settings) -> list[Path]:
    """The rule folders beside the built-in rules: the installed SigmaHQ content version in use
    (``norrvakt rules update`` / ``import``) and ``detection.rule_dirs``."""
    data = str(settings.data_path)
    installed = ContentStore(settings.data_path).rule_dirs()
    return installed + [Path(p.replace("{data_dir}", data)) for p in settings.detection.rule_dirs]


def live_policy(settings: Settings) -> LivePolicy:
    """The live-set policy of ``settings`` (``detection.live_*``)."""
    return LivePolicyConfig.from_settings(settings.detection, builtin_rules_dir()).build()


def load_engine(
    settings: Settings, overrides: Iterable[Mapping[str, Any]] = ()
) -> tuple[DetectionEngine, Any]:
    """The detection engine of ``settings``' rule folders (the built-in rules, the installed
    SigmaHQ content, ``detection.rule_dirs``) with its load report — for the server's live
    detection and a cluster's detection workers. Only the live set runs: the policy of
    ``detection.live_*`` and the rule settings ``overrides`` (rows of ``rule_settings``)."""
    d = settings.detection
    data = str(settings.data_path)
    intel = Path(d.intel_dir.replace("{data_dir}", data))
    intel.mkdir(parents=True, exist_ok=True)
    policy = live_policy(settings)
    engine, report = DetectionEngine.load(
        sigma_rule_dirs(settings),
        builtin=d.builtin,
        pipeline=with_placeholders(load_pipeline(), d.placeholders, settings.tenants),
        cache_dir=settings.data_path / "cache",
        derived=derived_fields(settings),
        intel_dir=intel,
        health=HealthConfig() if d.source_health else None,
    )
    engine.use_live_set(
        policy.live_set(engine.rules.rules, engine.rules.correlations, overrides, settings.tenants)
    )
    return engine, report


def rule_overrides(state: sa.Engine) -> list[dict[str, Any]]:
    """The rule settings (per rule and tenant on/off) of the state database the live set obeys."""
    with state.connect() as conn:
        return [{k: r[k] for k in ("rule_id", "tenant", "enabled")} for r in rule_rows.all_settings(conn)]


def live_summary(live: LiveSet) -> str:
    """One line for the log and the banner: how many rules run live, how many of them SigmaHQ's."""
    total = live.count()
    sigma = live.count(SIGMA_PACKS)
    text = f"{total} rules live ({live.policy.describe()})"
    if sigma:
        return f"{text}, {sigma} of them SigmaHQ rules"
    return (
        f"{text}; no SigmaHQ rules live — none installed: `norrvakt rules update` fetches them, "
        "`norrvakt rules import ZIP|DIR` takes an offline bundle"
        if not any(p in SIGMA_PACKS for p in live.rule_packs)
        else f"{text}; no SigmaHQ rules live: the installed ones are all outside the policy"
    )


class LiveDetection:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.engine: DetectionEngine | None = None
        self.improper: ImproperUse | None = None  # baselines and lookups (built-in, with the rules)
        self.report: Any = None
        self.overrides: list[dict[str, Any]] = []  # the rule settings the live set was built with
        self.hits: Counter[str] = Counter()  # rule id → detections since start
        self.tenant_hits: Counter[tuple[str, str]] = Counter()  # (tenant, rule id) → the same, per tenant
        self.skipped_tenants: set[str] = set()  # tenants that do not subscribe to detection
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        # Stored batches wait here for the worker, so the indexer goes on storing while the
        # rules run (chDB inserts and matching overlap instead of taking turns); bounded, so
        # a slow engine holds the indexer back rather than piling up memory.
        self._queue: asyncio.Queue[list[Event]] | None = None
        self._worker: asyncio.Task[None] | None = None

    def load(self) -> None:
        s = self.runtime.settings
        d = s.detection
        self.overrides = self._read_overrides()
        self.engine, self.report = load_engine(s, self.overrides)
        if d.builtin:
            self.improper = ImproperUse(
                self.runtime.store,
                self.runtime.state,
                zone=s.timezone,
                work_start_hour=d.work_start_hour,
                work_end_hour=d.work_end_hour,
                baseline_days=d.baseline_days,
                after_hours_min=d.after_hours_accesses,
            )
            self.report.entries.extend(self.improper.statuses())
        log.info("detection: %s", self.report.summary())
        if self.engine.live is not None:
            log.info("detection: %s", live_summary(self.engine.live))
        for entry in getattr(self.report, "entries", []):
            if getattr(entry, "loaded", True) is False:
                log.warning("rule not loaded: %s", entry)

    def _read_overrides(self) -> list[dict[str, Any]]:
        state = getattr(self.runtime, "state", None)
        return rule_overrides(state) if state is not None else []

    def refresh_live_set(self) -> bool:
        """Rebuild the live set when the rule settings changed (in the worker thread, under the
        lock); True when it did."""
        overrides = self._read_overrides()
        if self.engine is None or overrides == self.overrides:
            return False
        s = self.runtime.settings
        engine = self.engine
        engine.use_live_set(
            live_policy(s).live_set(engine.rules.rules, engine.rules.correlations, overrides, s.tenants)
        )
        self.overrides = overrides
        if engine.live is not None:
            log.info("detection: rule settings changed: %s", live_summary(engine.live))
        return True

    def live_state(self, rule_id: str, tenants: Iterable[str]) -> dict[str, Any]:
        """For the rules page: the tenants of ``tenants`` the rule runs live for, and why not for
        the others (one reason when it is the same for all)."""
        live = self.engine.live if self.engine is not None else None
        if live is None:
            return {"live": True, "live_tenants": list(tenants), "not_live": ""}
        on: list[str] = []
        off: dict[str, str] = {}
        for tenant in tenants:
            why = live.why_not(tenant, rule_id)
            if why:
                off[tenant] = why
            else:
                on.append(tenant)
        reasons = sorted(set(off.values()))
        text = reasons[0] if len(reasons) == 1 else "; ".join(f"{t}: {w}" for t, w in sorted(off.items()))
        return {"live": bool(on), "live_tenants": on, "not_live": text}

    async def start(self) -> None:
        await asyncio.to_thread(self.load)
        self.runtime.indexer.hooks.append(self.on_stored)
        self.runtime.extras["ruleset_tags"] = self.rule_tags
        self._queue = asyncio.Queue(QUEUED_BATCHES)
        self._worker = asyncio.create_task(self._work(self._queue), name="detection")
        self._task = asyncio.create_task(self._ticks(), name="detection-tick")

    async def stop(self) -> None:
        queue, self._queue = self._queue, None  # batches stored from now on are matched inline
        if queue is not None:
            try:
                await asyncio.wait_for(queue.join(), STOP_DRAIN_S)
            except TimeoutError:
                log.warning("detection stopped with %d stored batch(es) not matched", queue.qsize())
        await cancel_and_wait(self._worker)
        await cancel_and_wait(self._task)

    @property
    def backlog(self) -> int:
        """Stored batches waiting for the rules."""
        return self._queue.qsize() if self._queue is not None else 0

    def rule_tags(self) -> list[list[str]]:
        return [list(r.tags) for r in self.engine.rules.rules] if self.engine is not None else []

    # -- the stream ------------------------------------------------------------------------

    async def on_stored(self, events: Sequence[Event]) -> None:
        if self.engine is None:
            return
        subscribed = {t for t in {e.tenant for e in events} if self._subscribes(t)}  # once per tenant
        wanted = [e for e in events if e.tenant in subscribed]
        if not wanted:
            return
        if self._queue is not None:
            await self._queue.put(wanted)  # waits while the queue is full
        else:
            await self._detect(wanted)

    async def _work(self, queue: asyncio.Queue[list[Event]]) -> None:
        while True:
            batch = await queue.get()
            try:
                await self._detect(batch)
            except Exception:  # one bad batch must not stop detection; the traceback says why
                log.exception("detection failed on a batch of %d events", len(batch))
            finally:
                queue.task_done()

    async def _detect(self, events: list[Event]) -> None:
        assert self.engine is not None
        async with self._lock:
            detections = await asyncio.to_thread(self._process, self.engine, events)
        await self._raise(detections)

    def _process(self, engine: DetectionEngine, events: list[Event]) -> list[Detection]:
        """The rules, then the improper-use baselines on the same batch (in the worker thread)."""
        detections = engine.process(events)
        if self.improper is not None:
            try:
                detections.extend(self.improper.process(events))
            except Exception:  # the store or state DB failed: the rules' detections still count
                log.exception("improper-use detection failed on a batch of %d events", len(events))
        return detections

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if self.engine is None:
                continue
            try:
                async with self._lock:
                    detections = await asyncio.to_thread(self.engine.tick, now_us())
                    await asyncio.to_thread(self.refresh_live_set)
                await self._raise(detections)
            except Exception:  # a failed tick must not stop the next ones; the traceback says why
                log.exception("detection tick failed")

    async def _raise(self, detections: list[Detection]) -> None:
        if not detections:
            return
        inputs = [i for i in (self.as_input(d) for d in detections) if i is not None]
        for d in detections:
            self.hits[d.rule_id] += 1
            self.tenant_hits[(d.tenant, d.rule_id)] += 1
        soc = self.runtime.extras.get("soc")
        if soc is None or not inputs:
            return
        await asyncio.to_thread(soc.alerts.ingest, inputs)

    def _subscribes(self, tenant: str) -> bool:
        if modules_for(self.runtime).enabled(tenant, "detection"):
            self.skipped_tenants.discard(tenant)
            return True
        self.skipped_tenants.add(tenant)
        return False

    @staticmethod
    def as_input(d: Detection) -> AlertInput | None:
        suppress = dict(getattr(d.rule, "custom", ()) or ()).get("suppress_by")
        key_fields = [f.strip() for f in str(suppress).split(",")] if suppress else None
        if d.event is not None:
            alert = input_from_event(
                d.event,
                d.rule_id,
                d.title,
                d.level,
                list(d.tags),
                dedupe_key_fields=key_fields,
                source=d.kind,
            )
        else:
            alert = AlertInput(
                tenant=d.tenant,
                rule_id=d.rule_id,
                rule_title=d.title,
                level=d.level,
                tags=list(d.tags),
                event_seq=d.refs[0][1] if d.refs else 0,
                event_ts=d.ts or now_us(),
                entities={},
                dedupe_key_fields=key_fields,
                source=d.kind,
            )
        alert.related_seqs = tuple(
            seq for tenant, seq in d.refs if tenant == alert.tenant and seq != alert.event_seq
        )
        for name, value in d.group:  # correlation group-by values, the intel indicator, the silent source
            alert.entities.setdefault(name, value)
        if d.detail:
            alert.entities.setdefault("norrvakt.detail", d.detail[:200])
        return alert
