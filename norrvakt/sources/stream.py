"""Shared machinery of stream listeners (syslog TCP/TLS, RELP).

Each connection parses what arrives, hands records to the pipeline at once (so a
connection's records keep their order in the journal) and keeps the futures that resolve when
they are durable. When the sender closes, the connection is closed only after every record it
sent is durable — the only acknowledgement plain TCP syslog has. Too many records in flight
pause reading, which pushes back on the sender instead of buffering without bound.

TLS is negotiated after accept (``start_tls``) so that a failed handshake — a scanner or a
client speaking plain text to the TLS port — is logged with the peer and counted, and kept as
a ``pipeline_error`` event, instead of disappearing inside asyncio.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from norrvakt.event import RawRecord, now_us
from norrvakt.sources.base import peer_of
from norrvakt.sources.tenancy import TenantResolver

if TYPE_CHECKING:
    from norrvakt.pipeline import Pipeline

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 32  # commit batches per connection before reading pauses


class StreamListener(abc.ABC):
    """A TCP server whose connections are built by :meth:`make_connection`."""

    def __init__(
        self,
        source_id: str,
        host: str,
        port: int,
        resolver: TenantResolver,
        timezone: str,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.id = source_id
        self.host = host
        self.port = port
        self.resolver = resolver
        self.timezone = timezone
        self.ssl_context = ssl_context
        self.pipeline: Pipeline | None = None
        self._server: asyncio.AbstractServer | None = None
        self.connections: set[StreamConnection] = set()

    @abc.abstractmethod
    def make_connection(self) -> StreamConnection:
        """A protocol instance for one accepted connection."""

    async def start(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.make_connection, self.host, self.port, reuse_address=True
        )
        if self.port == 0 and self._server.sockets:
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            await conn.drain()
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            await self._server.wait_closed()


class StreamConnection(asyncio.Protocol):
    def __init__(self, listener: StreamListener) -> None:
        self.listener = listener
        assert listener.pipeline is not None
        self.pipeline: Pipeline = listener.pipeline
        self.transport: Any = None
        self.peer = "unknown:0"
        self.tenant = ""
        self._pending: set[asyncio.Future[None]] = set()
        self._paused = False
        self._closing = False

    # -- transport callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        host, port = peer_of(transport)
        self.peer = f"{host}:{port}"
        self.tenant = self.listener.resolver.resolve(host) or ""
        self.listener.connections.add(self)
        if self.listener.ssl_context is not None:
            # No plaintext may reach data_received before the handshake; start_tls resumes.
            transport.pause_reading()  # type: ignore[attr-defined]
            asyncio.get_running_loop().create_task(self._upgrade())

    async def _upgrade(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.listener.ssl_context is not None
        try:
            self.transport = await loop.start_tls(
                self.transport, self, self.listener.ssl_context, server_side=True, ssl_handshake_timeout=15
            )
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            self.report_error(
                b"",
                "tls.handshake_failed",
                f"TLS handshake with {self.peer} failed: {reason} ({exc})",
                offset=0,
            )
            if self.transport is not None:
                self.transport.abort()
            self.listener.connections.discard(self)

    def eof_received(self) -> bool:
        self.on_eof()
        asyncio.get_running_loop().create_task(self._close_when_durable())
        # Keep a plain socket open until our records are durable (the sender's only ack).
        # asyncio's TLS transport always closes on EOF, so there the records are simply
        # journaled after the close.
        return self.listener.ssl_context is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connections.discard(self)

    # -- helpers for subclasses ----------------------------------------------------------

    def on_eof(self) -> None:
        """Called when the sender half-closes; flush partial input."""

    def record(self, payload: bytes, received_at: int) -> RawRecord:
        return RawRecord(
            tenant=self.tenant,
            source_id=self.listener.id,
            received_at=received_at,
            peer=self.peer,
            payload=payload,
            format="syslog",
            timezone=self.listener.timezone,
        )

    def submit(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        fut = self.pipeline.submit_nowait(records)
        self.track(fut)
        return fut

    def track(self, fut: asyncio.Future[None]) -> None:
        self._pending.add(fut)
        fut.add_done_callback(self._done)
        if len(self._pending) >= MAX_IN_FLIGHT and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _done(self, fut: asyncio.Future[None]) -> None:
        self._pending.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error(
                "%s: records from %s could not be journaled: %s", self.listener.id, self.peer, fut.exception()
            )
            if self.transport is not None:
                self.transport.abort()  # no ack: the sender must resend
            return
        if self._paused and len(self._pending) < MAX_IN_FLIGHT // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def report_error(self, payload: bytes, error_type: str, message: str, *, offset: int) -> None:
        """Keep a transport-level problem as a pipeline_error event (journaled, counted)."""
        from norrvakt.pipeline import pipeline_error_event

        full = f"{message} (peer {self.peer}, stream offset {offset})"
        log.warning("%s: %s", self.listener.id, full)
        self.pipeline.transport_error(self.listener.id, error_type)
        rec = self.record(payload, now_us())
        event = pipeline_error_event(rec, error_type, full, tenant=self.tenant or None)
        self.track(self.pipeline.commit_nowait([event]))

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _close_when_durable(self) -> None:
        await self.drain()
        if self.transport is not None and not self._closing:
            self._closing = True
            self.transport.close()
