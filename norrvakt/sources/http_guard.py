"""The web server's connections (console, API, HTTP ingest): caps and the timeouts uvicorn lacks.

Written against uvicorn 0.54.0 with httptools 0.9.0 (the versions tested), which behave so:

- ``limit_concurrency`` counts open connections *and* running requests, and is checked only
  once a request head is complete, answering 503. Idle connections are never refused by it:
  they fill it and legitimate requests get the 503s. Not used; the caps apply at accept.
- ``timeout_keep_alive`` is armed only after a response. A connection that sends nothing,
  or a request head one byte every few seconds (slowloris), is kept for ever.
- Its listening socket is asyncio's ``create_server``, whose accept loop spins and logs on
  EMFILE (see :mod:`norrvakt.sources.accept`).

So :class:`GuardedUvicornServer` does what ``uvicorn.Server.startup`` does but listens with a
:class:`~norrvakt.sources.accept.GuardedServer`, and :class:`GuardedHttpProtocol` (a subclass
of uvicorn's ``HttpToolsProtocol``) closes a connection whose request head is not complete
within ``request_head_timeout_s`` of connecting or of the previous response, and one whose
request body stalls for ``read_timeout_s``. Both lean on uvicorn internals (``startup``, the
parser callbacks, ``timeout_keep_alive_task``): tests/security/test_connection_limits.py
breaks when an upgrade changes them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from norrvakt.config import Settings
from norrvakt.sources.accept import GuardedServer
from norrvakt.sources.limits import HTTP_ID, ConnectionGuard, ConnectionSlot, RepeatFilter, descriptor_budget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpTimeouts:
    """``server.request_head_timeout_s`` and ``server.read_timeout_s``."""

    head_s: float = 10.0
    body_s: float = 30.0


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a request-head deadline and a body read timeout."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        slot: ConnectionSlot,
        guard: ConnectionGuard,
        timeouts: HttpTimeouts,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.slot = slot
        self.guard = guard
        self.timeouts = timeouts
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_body = False
        self._last_read = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._last_read = self.loop.time()
        self._arm_head()

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        try:
            super().connection_lost(exc)
        finally:
            self.slot.release()

    # -- parser callbacks: where a request head ends and a body begins and ends ---------

    def on_headers_complete(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = None
        self._in_body = True
        self._arm_body(self.timeouts.body_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._cancel(self._body_timer)
        self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer exactly when the connection waits for a new request.
        if self.timeout_keep_alive_task is not None:
            self._arm_head()

    # -- timers ----------------------------------------------------------------------------

    def _arm_head(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = self.loop.call_later(self.timeouts.head_s, self._head_expired)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        self._expire("no complete request head", self.timeouts.head_s)

    def _arm_body(self, delay: float) -> None:
        self._body_timer = self.loop.call_later(delay, self._check_body)

    def _check_body(self) -> None:
        self._body_timer = None
        if not self._in_body or self.transport.is_closing():
            return
        quiet_for = self.loop.time() - self._last_read
        if self.flow.read_paused:  # the application has not taken the body yet: not the client
            self._arm_body(self.timeouts.body_s)
        elif quiet_for < self.timeouts.body_s:
            self._arm_body(self.timeouts.body_s - quiet_for)
        else:
            self._expire("request body stalled", self.timeouts.body_s)

    def _expire(self, what: str, seconds: float) -> None:
        host = self.client[0] if self.client else "unknown"
        self.guard.timed_out.note(host, f"from {host}: {what} within {seconds:g} s", what)
        self.transport.close()

    def _cancel_timers(self) -> None:
        self._cancel(self._head_timer)
        self._cancel(self._body_timer)
        self._head_timer = self._body_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()


class GuardedUvicornServer(uvicorn.Server):
    """uvicorn's server listening through the connection guard (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, guard: ConnectionGuard, timeouts: HttpTimeouts) -> None:
        super().__init__(config)
        self.guard = guard
        self.timeouts = timeouts

    async def startup(self, sockets: Any = None) -> None:
        # As uvicorn.Server.startup (0.54.0) for host/port, with our accept loop.
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

        try:
            server = await GuardedServer.listen(
                config.host, config.port, protocol, self.guard, backlog=config.backlog
            )
        except OSError as exc:
            log.error("web server: %s", exc)
            await self.lifespan.shutdown()
            sys.exit(STARTUP_FAILURE)
        self.servers = [server]  # type: ignore[list-item]  # uvicorn only calls close/wait_closed
        self._log_started_message(server.sockets)
        self.started = True


def web_server(app: Any, settings: Settings, count: Callable[[str, str], None]) -> uvicorn.Server:
    """The uvicorn server of ``norrvakt serve``; ``count`` is the pipeline's transport_error."""
    sv = settings.server
    config = uvicorn.Config(
        app,
        host=sv.host,
        port=sv.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="off",
        loop="none",
        server_header=False,
        http="httptools",  # GuardedHttpProtocol is built on it
        ws="none",  # no WebSocket routes; an upgrade would leave our protocol (and its slot)
        timeout_keep_alive=math.ceil(sv.idle_timeout_s),
        limit_concurrency=None,  # see the module docstring: it counts idle connections
        # X-Forwarded-For/-Proto only from the configured proxies (uvicorn trusts 127.0.0.1 by default)
        proxy_headers=bool(sv.trusted_proxies),
        forwarded_allow_ips=list(sv.trusted_proxies),
    )
    guard = descriptor_budget().guard(HTTP_ID, sv.max_connections, sv.max_connections_per_peer, count, log)
    # uvicorn logs a warning for every malformed request: one line per kind every few seconds.
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, RepeatFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(RepeatFilter())
    return GuardedUvicornServer(config, guard, HttpTimeouts(sv.request_head_timeout_s, sv.read_timeout_s))
