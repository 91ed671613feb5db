"""Cluster detection: tenants' streams through the rules, alerts into the shared state database.

A detection worker process holds, per tenant, a lease (``NV-DETECT-LEASES``; norrvakt/cluster/
lease.py) and matches the tenant's stream only while it holds it — so a tenant's correlation
state (its windows, its counts) lives in one worker at a time, and a standby takes the tenant
over when the holder dies. Several workers share the tenants between them: each tries for
every tenant it is given and matches those it gets.

Exactly once, across workers and restarts, without keeping anything in memory that matters:
the alerts of a batch of envelopes and the tenant's position past them are written in one
PostgreSQL transaction, the position by compare-and-set (norrvakt/state/detect_positions.py).
A worker killed at any point starts again after the last committed batch; a repeat raises no
alert twice and counts no event twice, and a worker whose lease lapsed unnoticed cannot commit
over the one that took the tenant. Alert dedupe and suppression are in the database too: a
worker that takes a tenant loads its open alerts (``AlertService.warm``) and, every tick, the
statuses the SOC changed on any web node (``changed_since``), so a closed alert's repeat starts
a new one.

What a taken-over tenant does not get back is the correlation state of the envelopes before the
position: the new holder re-reads the last ``warmup_envelopes`` of them through the rules with
their detections dropped (they were raised already), so a window that was open at the crash
goes on with its earlier events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from norrvakt.alerts.model import AlertInput
from norrvakt.alerts.service import AlertService
from norrvakt.cluster import envelope
from norrvakt.cluster.integrator import IntegrationError
from norrvakt.cluster.lease import DETECT_LEASES, Lease
from norrvakt.cluster.position import Position, follow, subscribe_after
from norrvakt.cluster.progress import ProgressReporter
from norrvakt.cluster.status import collect
from norrvakt.cluster.watch import Problem, WatchConfig, problems
from norrvakt.detect.detection import Detection, DetectionEngine
from norrvakt.detect.live import LiveDetection
from norrvakt.event import Event, now_us
from norrvakt.state import alerts as alert_rows
from norrvakt.state import detect_positions
from norrvakt.state.detect_positions import PositionMoved, Spot

log = logging.getLogger(__name__)

LEASE_BUCKET = DETECT_LEASES
WATCH_KEY = "_watch"  # the cluster watch's lease (no tenant: tenant ids begin with a letter)


@dataclass(frozen=True)
class DetectWorkerConfig:
    """One worker process: ``holder`` names it in leases and positions."""

    tenants: tuple[str, ...]
    holder: str
    lease_ttl_s: float = 10.0
    fetch_batch: int = 50  # envelopes per fetch (≤ 500 events each)
    fetch_timeout_s: float = 0.5
    tick_s: float = 5.0
    warmup_envelopes: int = 100
    watch: WatchConfig | None = field(default_factory=WatchConfig)  # run by the "_watch" holder

    def build(self, js: JetStreamContext, alerts: AlertService, engine: DetectionEngine) -> DetectWorker:
        return DetectWorker(self, js, alerts, engine)


@dataclass
class TenantStats:
    envelopes: int = 0
    events: int = 0
    detections: int = 0
    batches: int = 0  # committed with their position
    refused: int = 0  # batches refused because another worker had moved the position
    takeovers: int = 0
    position: Spot = (0, 0)


@dataclass
class DetectWorker:
    config: DetectWorkerConfig
    js: JetStreamContext
    alerts: AlertService
    engine: DetectionEngine
    stats: dict[str, TenantStats] = field(default_factory=dict)
    _leases: dict[str, Lease] = field(default_factory=dict)
    _matching: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _engine_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one engine, one batch at a time
    _since: int = 0  # updated_at of the newest alert change seen (refresh from the SOC's side)
    progress: ProgressReporter | None = None  # where the cluster sees how far it is
    watching: Lease | None = None  # held by the one worker that runs the cluster watch
    watched: list[Problem] = field(default_factory=list)  # the problems of the last watch

    @property
    def state(self) -> sa.Engine:
        return self.alerts.engine

    def held(self) -> list[str]:
        return [t for t, lease in self._leases.items() if lease.held]

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        for tenant in cfg.tenants:
            self._leases[tenant] = await Lease.open(
                self.js, tenant, cfg.holder, cfg.lease_ttl_s, bucket=LEASE_BUCKET, what="detection"
            )
            self.stats[tenant] = TenantStats()
        if cfg.watch is not None:
            self.watching = await Lease.open(
                self.js, WATCH_KEY, cfg.holder, cfg.lease_ttl_s, bucket=LEASE_BUCKET, what="cluster watch"
            )
        self._since = now_us()
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + cfg.tick_s
        try:
            while not stop.is_set():
                try:
                    for tenant, lease in self._leases.items():
                        await self._keep(tenant, lease, stop)
                    if self.watching is not None:
                        await self.watching.keep()
                except Exception as exc:  # a worker must outlive any trouble of the cluster's; say why
                    log.error("detection leases not kept this round: %s: %s", type(exc).__name__, exc)
                if loop.time() >= next_tick:
                    next_tick = loop.time() + cfg.tick_s
                    await self._tick()
                try:
                    await asyncio.wait_for(stop.wait(), min(cfg.lease_ttl_s / 3, cfg.tick_s))
                except TimeoutError:
                    pass
        finally:
            for task in self._matching.values():
                task.cancel()
            await asyncio.gather(*self._matching.values(), return_exceptions=True)
            for lease in [*self._leases.values(), *([self.watching] if self.watching else [])]:
                await lease.release()

    async def _keep(self, tenant: str, lease: Lease, stop: asyncio.Event) -> None:
        held = await lease.keep()
        task = self._matching.get(tenant)
        if held and (task is None or task.done()):
            if task is not None and not task.cancelled() and task.exception() is not None:
                log.error("%s: detection stopped: %s", tenant, task.exception())
            self._matching[tenant] = asyncio.create_task(self._match(tenant, stop), name=f"detect-{tenant}")
        elif not held and task is not None and not task.done():
            log.warning("%s: detection lease lost by %s; matching stops", tenant, self.config.holder)
            task.cancel()

    # -- one tenant ------------------------------------------------------------------------

    async def _match(self, tenant: str, stop: asyncio.Event) -> None:
        stats = self.stats[tenant]
        stats.takeovers += 1
        await asyncio.to_thread(self.alerts.warm)  # open alerts as the database has them now
        with self.state.connect() as conn:
            spot = detect_positions.load(conn, tenant)
        stats.position = spot
        await self._warm_up(tenant, spot)
        log.info("%s: detection by %s from envelope %d (seq %d)", tenant, self.config.holder, *spot)
        try:
            await follow(
                self.js,
                tenant,
                lambda: Position(*stats.position),
                lambda sub: self._consume(tenant, sub, stop),
                stop,
                what="detection",
                fatal=(IntegrationError, PositionMoved),
            )
        except PositionMoved as exc:
            stats.refused += 1
            log.warning("%s", exc)  # the lease keeper starts again from the database's position

    async def _warm_up(self, tenant: str, spot: Spot) -> None:
        """The envelopes just before ``spot`` through the rules, their detections dropped: the
        correlation windows open at the previous holder's end are open here too."""
        first = max(1, spot[0] - self.config.warmup_envelopes + 1)
        if spot[0] == 0 or self.config.warmup_envelopes <= 0:
            return
        sub = await subscribe_after(self.js, tenant, Position(first - 1, 0))
        parts: list[list[Event]] = []
        try:
            taken = first - 1
            while taken < spot[0]:
                msgs = await sub.fetch(min(self.config.fetch_batch, spot[0] - taken), timeout=2.0)
                for m in msgs:
                    seq = m.metadata.sequence.stream
                    if seq <= taken or seq > spot[0]:
                        continue
                    parts.append(envelope.unpack(m.data)[2])
                    taken = seq
        except (NatsTimeoutError, TimeoutError):
            log.warning(
                "%s: detection warm-up read %d of %d envelopes", tenant, len(parts), spot[0] - first + 1
            )
        finally:
            await sub.unsubscribe()
        seq = spot[1] - sum(len(p) for p in parts)  # the seqs end where the position says
        events: list[Event] = []
        for part in parts:
            for e in part:
                seq += 1
                e.seq = seq
            events += part
        if events:
            async with self._engine_lock:
                await asyncio.to_thread(self.engine.process, events)

    async def _consume(
        self, tenant: str, sub: JetStreamContext.PullSubscription, stop: asyncio.Event
    ) -> None:
        stats = self.stats[tenant]
        while not stop.is_set():
            if self.progress is not None:
                await self.progress.report(tenant, Position(*stats.position))
            try:
                msgs = await sub.fetch(self.config.fetch_batch, timeout=self.config.fetch_timeout_s)
            except (NatsTimeoutError, TimeoutError):
                continue
            was = stats.position
            now = was
            events: list[Event] = []
            for m in msgs:
                seq = m.metadata.sequence.stream
                if seq <= now[0]:
                    continue
                if seq != now[0] + 1:
                    raise IntegrationError(f"{tenant}: the stream skips from envelope {now[0]} to {seq}")
                _tenant, _origin, part = envelope.unpack(m.data)
                for i, e in enumerate(part, now[1] + 1):
                    e.seq = i
                events += part
                now = (seq, now[1] + len(part))
            if now == was:
                continue
            async with self._engine_lock:
                detections = await asyncio.to_thread(self.engine.process, events)
            inputs = self._inputs(detections)

            def move(conn: sa.Connection, was: Spot = was, now: Spot = now) -> None:
                detect_positions.advance(conn, tenant, was, now, self.config.holder)

            await asyncio.to_thread(self.alerts.ingest, inputs, within=move)
            stats.position = now
            stats.envelopes += now[0] - was[0]
            stats.events += len(events)
            stats.detections += len(detections)
            stats.batches += 1

    # -- every tick --------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Closed correlation windows and silent sources of the tenants held; the SOC's changes."""
        held = set(self.held())
        try:
            await asyncio.to_thread(self._refresh, held)
            async with self._engine_lock:
                detections = await asyncio.to_thread(self.engine.tick, now_us())
            mine = [d for d in detections if d.tenant in held]
            if mine:
                await asyncio.to_thread(self.alerts.ingest, self._inputs(mine))
        except Exception as exc:  # a failed tick must not stop the next ones; say why
            log.error("detection tick failed: %s: %s", type(exc).__name__, exc)
        if self.watching is not None and self.watching.held and self.config.watch is not None:
            try:
                self.watched = problems(await collect(self.js), self.config.watch)
                if self.watched:
                    now = now_us()
                    await asyncio.to_thread(self.alerts.ingest, [p.as_input(now) for p in self.watched])
            except Exception as exc:  # the cluster half away: the next tick tries again
                log.error("cluster watch failed: %s: %s", type(exc).__name__, exc)

    def _refresh(self, tenants: Iterable[str]) -> None:
        """What the SOC changed on any web node: rules switched off or given other dedupe
        settings, alert statuses (a closed alert's repeats start a new one)."""
        wanted = sorted(tenants)
        if not wanted:
            return
        self.alerts.reload_rules()
        with self.state.connect() as conn:
            rows = alert_rows.changed_since(conn, wanted, self._since)
        if rows:
            self._since = max(int(str(r["updated_at"])) for r in rows)
            self.alerts.refresh(rows)

    @staticmethod
    def _inputs(detections: list[Detection]) -> list[AlertInput]:
        return [i for i in (LiveDetection.as_input(d) for d in detections) if i is not None]
