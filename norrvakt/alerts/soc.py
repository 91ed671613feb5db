"""The SOC workflow wired to a running Norrvakt: the alert service, cases, notification
channels and escalation, created once per runtime (``runtime.extras["soc"]``).

    soc = await start_soc(runtime, public_url)   # norrvakt serve: notifications and escalation run
    soc.alerts.ingest(inputs)                    # detection (in a worker thread)
    # integrity-watch alerts (event.kind = alert in _norrvakt) are picked up by itself
    await stop_soc(runtime)

CLI commands without a server use :func:`soc_for` (no background tasks: nothing is sent).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.dashboard import alert_dashboard
from norrvakt.alerts.dispatcher import Dispatcher
from norrvakt.alerts.escalation import Escalator
from norrvakt.alerts.exception_expiry import ExpiryWatch
from norrvakt.alerts.intake import integrity_input
from norrvakt.alerts.journaling import JournalFromThreads, journal
from norrvakt.alerts.model import Change
from norrvakt.alerts.notify.base import Channel
from norrvakt.alerts.notify.builtin import build_channel
from norrvakt.alerts.routing import Router
from norrvakt.alerts.service import AlertService
from norrvakt.config import ChannelSettings, Settings
from norrvakt.enrich.severity import AlertContext
from norrvakt.event import SYSTEM_TENANT, Event
from norrvakt.modules import modules_for

if TYPE_CHECKING:
    from norrvakt.node.pipeline import Pipeline
    from norrvakt.node.runtime import Runtime

log = logging.getLogger(__name__)

EXTRAS_KEY = "soc"


class Soc:
    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        pipeline: Pipeline | None,
        public_url: str = "",
        notifies: Callable[[str], bool] | None = None,
    ) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.alerts = AlertService(engine, settings.alerts)
        self.context = AlertContext(engine)  # assets and directory accounts (norrvakt.enrich.severity)
        self.alerts.level_hook = self.context.adjust
        self.alerts.warm()
        self.cases = CaseService(engine, self.alerts)
        self.dispatcher = Dispatcher(
            engine,
            channels_of(settings.alerts.channels),
            Router(settings.alerts.routes),
            public_url=public_url,
            notifies=notifies,
            owner=node_owner(settings),
        )
        self.escalator = Escalator(engine, settings.alerts, self.dispatcher, on_changes=self._journal_later)
        self._thread_journal: JournalFromThreads | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.expiry = ExpiryWatch(engine, pipeline) if pipeline is not None else None
        self.started = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.pipeline is not None:
            self._thread_journal = JournalFromThreads(self.pipeline, loop)
            self.alerts.on_changes.append(self._thread_journal)
        self.alerts.on_created.append(self.dispatcher.alerts_created)
        if self.pipeline is not None:
            self.pipeline.committed_hooks.append(self._integrity_alerts)
        await self.dispatcher.start()
        self.escalator.start()
        if self.expiry is not None:
            self.expiry.start()
        self.started = True

    def _integrity_alerts(self, events: list[Event]) -> None:
        """The integrity watch's ``event.kind = alert`` events (system tenant) become alerts."""
        found = [e for e in events if e.tenant == SYSTEM_TENANT and e.ecs.get("event.kind") == "alert"]
        if not found:
            return
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self.alerts.ingest, [integrity_input(e) for e in found])
        )
        self._tasks.add(task)
        task.add_done_callback(self._ingested)

    def _ingested(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("integrity alert not ingested: %s", task.exception())

    async def stop(self) -> None:
        if self.pipeline is not None and self._integrity_alerts in self.pipeline.committed_hooks:
            self.pipeline.committed_hooks.remove(self._integrity_alerts)
        await self.escalator.stop()
        if self.expiry is not None:
            await self.expiry.stop()
        await self.dispatcher.stop()
        self.started = False

    async def journal(self, changes: Sequence[Change], peer: str = "") -> None:
        """Journal changes made for an API or CLI caller, durably, before answering."""
        if self.pipeline is not None:
            await journal(self.pipeline, changes, peer)

    def _journal_later(self, changes: list[Change]) -> None:
        if self._thread_journal is not None:
            self._thread_journal(changes)


def node_owner(settings: Settings) -> str:
    """How this node names the outbox rows it queues: host and data directory (web nodes of one
    state database each have their own)."""
    return f"{socket.gethostname()}:{settings.data_path.resolve()}"[:128]


def channels_of(settings: Sequence[ChannelSettings]) -> dict[str, tuple[Channel, ChannelSettings]]:
    return {cs.name: (build_channel(cs), cs) for cs in settings}


def soc_for(runtime: Runtime) -> Soc:
    """The runtime's SOC workflow, made on first use (without background tasks)."""
    soc: Soc | None = runtime.extras.get(EXTRAS_KEY)
    if soc is None:
        soc = Soc(runtime.state, runtime.settings, runtime.pipeline, notifies=_notifies(runtime))
        runtime.extras[EXTRAS_KEY] = soc
        runtime.extras.setdefault("alert_dashboard", alert_dashboard(runtime.state))
    return soc


def _notifies(runtime: Runtime) -> Callable[[str], bool]:
    modules = modules_for(runtime)
    return lambda tenant: modules.enabled(tenant, "soc_notification")


async def start_soc(runtime: Runtime, public_url: str = "") -> Soc:
    """For `norrvakt serve`: notifications and escalation run until :func:`stop_soc`."""
    soc = Soc(runtime.state, runtime.settings, runtime.pipeline, public_url, notifies=_notifies(runtime))
    runtime.extras[EXTRAS_KEY] = soc
    runtime.extras["alert_dashboard"] = alert_dashboard(runtime.state)
    await soc.start()
    log.info(
        "SOC workflow: %d open alert(s) indexed, %d notification channel(s), escalation after %s min",
        len(soc.alerts.index),
        len(soc.dispatcher.workers),
        runtime.settings.alerts.escalate_after_minutes or "never",
    )
    return soc


async def stop_soc(runtime: Runtime) -> None:
    soc: Any = runtime.extras.get(EXTRAS_KEY)
    if isinstance(soc, Soc) and soc.started:
        await soc.stop()
