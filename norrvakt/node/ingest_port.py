"""A port for HTTP ingest only (``server.ingest_port``), received on every core.

The console's port (``server.port``) serves HTTP ingest too, but in the node's process: its
connections may carry console requests with sessions and state only the node has, so no worker
can take one. This port serves the ingest routes alone — Splunk HEC, ``_bulk``, ``/ingest``,
``/api/ingest`` and OTLP ``/v1/logs``, the same routers as on the console's port
(:mod:`norrvakt.sources.http`, :mod:`norrvakt.sources.otlp_http`) with the same token check, body
limits and answers; everything else is 404. So the node binds it and lends it to its workers
like a stream listener (:class:`~norrvakt.node.parse_pool.ParsePool`): each worker runs the
routes with uvicorn on the inherited socket, reads and parses the body there and sends the events
to the node over its :class:`~norrvakt.node.journal_link.JournalLink`; the node journals them and
answers after the fsync, and only then does the worker answer the sender. A second sender's
connection goes to the worker holding fewer (the accept deferral of the stream listeners), so it
gets the second core. The node serves the port itself only while no worker does.

The ingest tokens are read from the state database in each worker (SQLite under the data
directory, or ``state.url``), through the same :class:`~norrvakt.sources.http.TokenCache` and its
``state_versions`` watch as on the console's port, so a revoked token is refused by every process
within about a second.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from norrvakt.config import Settings
from norrvakt.event import Event, RawRecord
from norrvakt.node.journal_link import JournalLink
from norrvakt.parsers.records import Tally, parse_one, tally
from norrvakt.sources.accept import AdmitElsewhere, GuardedServer, bind
from norrvakt.sources.bulk_body import BulkPlan, parse_bulk_body
from norrvakt.sources.hec_body import BadPart, parse_hec_body
from norrvakt.sources.http_guard import GuardedHttpProtocol, GuardedUvicornServer, web_server
from norrvakt.sources.limits import ConnectionGuard, ConnectionSlot, descriptor_budget
from norrvakt.tasks import cancel_and_wait

log = logging.getLogger(__name__)

INGEST_PORT_ID = "http-ingest-port"  # its name in the budget, the counters and /api/stats
BACKLOG = 1024  # connections wait here while the workers take them


def ingest_routes_app(runtime: Any) -> FastAPI:
    """The ingest routes and nothing else, over ``runtime`` (what the routes read: settings,
    state, pipeline, token_cache). The console's security headers too, so an answer is the same
    on both ports."""
    from norrvakt.sources import http, otlp_http
    from norrvakt.web.headers import SecurityHeaders

    app = FastAPI(title="Norrvakt ingest", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime
    app.add_middleware(SecurityHeaders)
    app.include_router(http.router)
    app.include_router(otlp_http.router)
    return app


class LinkPipeline:
    """What the HTTP ingest routes call on the node's pipeline, in a worker: parsing here, the
    events journaled by the node through the worker's link. What a parse counted goes with the
    next commit (a route commits right after it parsed, nothing awaited between)."""

    def __init__(self, link: JournalLink) -> None:
        self.link = link
        self._counts: Tally | None = None

    def transport_error(self, source_id: str, reason: str) -> None:
        self.link.transport_error(source_id, reason)

    def _count(self, source_ids: Sequence[str], events: Sequence[Event]) -> None:
        received, errors = tally(source_ids, events)
        if self._counts is None:
            self._counts = (received, errors)
            return
        for mine, more in zip(self._counts, (received, errors), strict=True):
            for key, n in more.items():
                mine[key] = mine.get(key, 0) + n

    async def commit(self, events: Sequence[Event]) -> None:
        counts, self._counts = self._counts, None
        await self.link.commit_counted(counts, events)

    async def parse_async(self, records: Sequence[RawRecord]) -> list[Event]:
        events = [parse_one(r) for r in records]
        self._count([r.source_id for r in records], events)
        return events

    async def parse_hec(
        self, body: bytes, max_event_bytes: int, template: RawRecord
    ) -> tuple[list[Event], list[BadPart]]:
        _, events, bad = parse_hec_body(body, max_event_bytes, template)
        self._count([template.source_id] * len(events), events)
        return events, bad

    async def parse_bulk(
        self, body: bytes, max_event_bytes: int, index: str | None, template: RawRecord
    ) -> tuple[BulkPlan, list[Event]]:
        plan, events = parse_bulk_body(body, max_event_bytes, index, template)
        self._count([template.source_id] * len(events), events)
        return plan, events


@dataclass
class WorkerIngestRuntime:
    """The part of a node's Runtime the ingest routes read, in a worker process."""

    settings: Settings
    state: sa.Engine  # the node's state database (ingest tokens)
    pipeline: LinkPipeline
    token_cache: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


class _LentUvicornServer(GuardedUvicornServer):
    """The web server's uvicorn (caps, timeouts) accepting on sockets bound elsewhere."""

    def __init__(
        self,
        base: GuardedUvicornServer,
        guard: ConnectionGuard,
        sockets: list[socket.socket],
        defer: Callable[[], float] | None,
        admit_elsewhere: AdmitElsewhere | None,
        accept_batch: Callable[[], int] | None,
    ) -> None:
        super().__init__(base.config, guard, base.timeouts)
        self.lent_sockets = sockets
        self.defer = defer
        self.admit_elsewhere = admit_elsewhere
        self.accept_batch = accept_batch
        self.accepting: GuardedServer | None = None

    async def startup(self, sockets: Any = None) -> None:
        # As GuardedUvicornServer.startup, on the lent sockets.
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        config = self.config
        loop = asyncio.get_running_loop()

        def protocol(slot: ConnectionSlot) -> GuardedHttpProtocol:
            return GuardedHttpProtocol(
                config,
                self.server_state,
                self.lifespan.state,
                loop,
                slot=slot,
                guard=self.guard,
                timeouts=self.timeouts,
            )

        self.accepting = GuardedServer.on(
            self.lent_sockets, protocol, self.guard, self.defer, self.admit_elsewhere, self.accept_batch
        )
        self.servers = [self.accepting]  # type: ignore[list-item]  # uvicorn only calls close/wait_closed
        self.started = True


@dataclass(frozen=True)
class IngestPortConfig:
    """The ingest port of ``settings`` (``server.host``:``server.ingest_port``)."""

    settings: Settings
    id: str = INGEST_PORT_ID

    def build(self) -> IngestPort:
        return IngestPort(self)


class IngestPort:
    """The ingest routes on their own port: bound and, while no worker does, served by the node
    (:meth:`start`); served by a worker on the node's sockets (:meth:`adopt`)."""

    def __init__(self, config: IngestPortConfig) -> None:
        self.config = config
        self.id = config.id
        self.host = config.settings.server.host
        self.port = config.settings.server.ingest_port
        self.guard: ConnectionGuard | None = None
        self._uv: _LentUvicornServer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._state: sa.Engine | None = None  # opened here (a worker); the node's is its runtime's

    def describe(self) -> str:
        return f"http ingest {self.host}:{self.port}"

    async def start(self, runtime: Any) -> None:
        """In the node: bind, and serve over the node's own runtime (its pipeline and tokens)."""
        sockets = await bind(self.host, self.port, BACKLOG)
        await self._serve(runtime, sockets, runtime.pipeline.transport_error, None, None, None)
        if self.port == 0 and sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def adopt(
        self,
        pipeline: JournalLink,
        sockets: list[socket.socket],
        defer: Callable[[], float] | None = None,
        admit_elsewhere: AdmitElsewhere | None = None,
        accept_batch: Callable[[], int] | None = None,
    ) -> None:
        """In a worker: serve on the node's sockets, journaling through ``pipeline``."""
        from norrvakt.state.db import make_engine

        settings = self.config.settings
        self._state = make_engine(settings.state_url())  # (the node ran the migrations)
        runtime = WorkerIngestRuntime(settings, self._state, LinkPipeline(pipeline))
        await self._serve(runtime, sockets, pipeline.transport_error, defer, admit_elsewhere, accept_batch)

    async def _serve(
        self,
        runtime: Any,
        sockets: list[socket.socket],
        count: Callable[[str, str], None],
        defer: Callable[[], float] | None,
        admit_elsewhere: AdmitElsewhere | None,
        accept_batch: Callable[[], int] | None,
    ) -> None:
        settings = self.config.settings
        sv = settings.server
        base = web_server(ingest_routes_app(runtime), settings, count)
        assert isinstance(base, GuardedUvicornServer)
        # Its own caps (as configured for the web server) and counters, under its own name.
        self.guard = descriptor_budget().guard(
            self.id, sv.max_connections, sv.max_connections_per_peer, count, log
        )
        uv = _LentUvicornServer(base, self.guard, sockets, defer, admit_elsewhere, accept_batch)
        config = uv.config
        if not config.loaded:
            config.load()
        uv.lifespan = config.lifespan_class(config)
        await uv.startup()
        self._uv = uv
        # uvicorn's tick: the Date header once a second, and should_exit.
        self._loop_task = asyncio.create_task(uv.main_loop(), name=f"{self.id}-tick")

    def sockets(self) -> list[socket.socket]:
        """The listening sockets (to lend to worker processes)."""
        accepting = self._uv.accepting if self._uv is not None else None
        return accepting.sockets if accepting is not None else []

    def lend(self, lent: bool) -> None:
        """While ``lent``, worker processes accept on our sockets and this process does not."""
        if self._uv is not None and self._uv.accepting is not None:
            self._uv.accepting.hold(lent)

    @property
    def connections(self) -> set[Any]:
        """The open connections (uvicorn's protocols; each has its ``transport``)."""
        return set(self._uv.server_state.connections) if self._uv is not None else set()

    async def stop(self) -> None:
        """Accept nothing more; the requests being served finish (their answers wait for the
        journal as always), idle keep-alive connections are closed."""
        uv, self._uv = self._uv, None
        if uv is None:
            return
        uv.should_exit = True
        await cancel_and_wait(self._loop_task)
        await uv.shutdown()
        if self._state is not None:
            self._state.dispose()
            self._state = None
