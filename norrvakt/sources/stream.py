"""Shared machinery of stream listeners (syslog TCP/TLS, RELP).

Each connection parses what arrives, hands records to the pipeline at once (so a
connection's records keep their order in the journal) and keeps the futures that resolve when
they are durable. When the sender closes, the connection is closed only after every record it
sent is durable — the only acknowledgement plain TCP syslog has. Too many records in flight
pause reading, which pushes back on the sender instead of buffering without bound.

TLS is negotiated after accept (``start_tls``) so that a failed handshake — a scanner or a
client speaking plain text to the TLS port — is logged with the peer and counted, and kept as
a ``pipeline_error`` event, instead of disappearing inside asyncio.

Connections are accepted by :class:`~norrvakt.sources.accept.GuardedServer` within the caps of
:mod:`norrvakt.sources.limits`; one that sends nothing for ``idle_timeout_s`` is closed (after
its records are durable), and a TLS handshake must finish within ``tls_handshake_timeout_s``.
Transport problems are logged at most once per listener and kind every few seconds.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from norrvakt.event import RawRecord, now_us
from norrvakt.sources.accept import AdmitElsewhere, GuardedServer, bind
from norrvakt.sources.base import RecordSink, peer_of
from norrvakt.sources.limits import ConnectionGuard, ConnectionSlot, QuietLog, descriptor_budget
from norrvakt.sources.tenancy import TenantResolver

if TYPE_CHECKING:
    from norrvakt.config import SourceSettings

log = logging.getLogger(__name__)

# Reading a connection pauses when this many of its batches, or this many bytes of its
# records, are not yet durable. The window must cover the time a batch takes to come back from
# a parse worker and the fsync (about 0.3 s when busy): 32 batches held one loggen connection
# to 11,400 events/s, 128 let it reach 17,000–20,000/s. The bytes bound what one connection
# can hold in memory, however small its reads.
MAX_IN_FLIGHT = 128
MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024
# Connections the kernel holds for us before accept (capped by net.core.somaxconn): after a
# restart hundreds of senders reconnect at once, and asyncio's default of 100 makes the rest
# wait for SYN retransmits (1 s, 3 s, 7 s ...). Bounded, and free of descriptors until accepted.
BACKLOG = 1024


@dataclass(frozen=True)
class StreamLimits:
    """Caps and timeouts of a stream listener (the settings of the same names; 0 caps = sized
    from the descriptor budget, idle_timeout_s 0 = never)."""

    max_connections: int = 0
    max_connections_per_peer: int = 0
    idle_timeout_s: float = 300.0
    tls_handshake_timeout_s: float = 15.0

    @classmethod
    def from_settings(cls, src: SourceSettings) -> StreamLimits:
        return cls(
            src.max_connections, src.max_connections_per_peer, src.idle_timeout_s, src.tls_handshake_timeout_s
        )


class StreamListener(abc.ABC):
    """A TCP server whose connections are built by :meth:`make_connection`.

    In ``norrvakt serve`` with worker processes the node binds the listening sockets and lends
    them to its workers (:meth:`sockets`, :meth:`adopt`): every worker accepts on the same
    sockets, so a connection goes to whichever worker is free to accept it first, and the
    node accepts itself only while no worker does (:meth:`pause_accepting`)."""

    # What built it: a frozen config with build(), which a worker process builds its copy from.
    config: Any

    def __init__(
        self,
        source_id: str,
        host: str,
        port: int,
        resolver: TenantResolver,
        timezone: str,
        ssl_context: ssl.SSLContext | None,
        limits: StreamLimits | None = None,
    ) -> None:
        self.id = source_id
        self.host = host
        self.port = port
        self.resolver = resolver
        self.timezone = timezone
        self.ssl_context = ssl_context
        self.limits = limits or StreamLimits()
        self.pipeline: RecordSink | None = None
        self.guard: ConnectionGuard | None = None
        self._server: GuardedServer | None = None
        self.connections: set[StreamConnection] = set()
        self._quiet: dict[str, QuietLog] = {}

    @abc.abstractmethod
    def make_connection(self) -> StreamConnection:
        """A protocol instance for one accepted connection."""

    def _connection_for(self, slot: ConnectionSlot) -> StreamConnection:
        conn = self.make_connection()
        conn.slot = slot
        return conn

    async def start(self, pipeline: RecordSink) -> None:
        await self.adopt(pipeline, await bind(self.host, self.port, BACKLOG))

    async def adopt(
        self,
        pipeline: RecordSink,
        sockets: list[socket.socket],
        defer: Callable[[], float] | None = None,
        admit_elsewhere: AdmitElsewhere | None = None,
        accept_batch: Callable[[], int] | None = None,
    ) -> None:
        """Accept on ``sockets`` (bound and listening), handing records to ``pipeline``; with
        ``defer`` and ``admit_elsewhere``, as a copy of the node's listener in a worker (see
        GuardedServer)."""
        self.pipeline = pipeline
        lim = self.limits
        self.guard = descriptor_budget().guard(
            self.id, lim.max_connections, lim.max_connections_per_peer, pipeline.transport_error, log
        )
        self._server = GuardedServer.on(
            sockets, self._connection_for, self.guard, defer, admit_elsewhere, accept_batch
        )
        if self.port == 0 and sockets:
            self.port = sockets[0].getsockname()[1]

    def sockets(self) -> list[socket.socket]:
        """The listening sockets (to lend to worker processes)."""
        return self._server.sockets if self._server is not None else []

    def lend(self, lent: bool) -> None:
        """While ``lent``, worker processes accept on our sockets and this process does not."""
        if self._server is not None:
            self._server.hold(lent)

    def quiet(self, kind: str, level: int = logging.WARNING) -> QuietLog:
        """The rate-limited log of one kind of trouble on this listener."""
        q = self._quiet.get(kind)
        if q is None:
            q = self._quiet[kind] = QuietLog(log, level, f"{self.id}: {kind}")
        return q

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            await conn.drain()
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
        for q in self._quiet.values():
            q.close()


class StreamConnection(asyncio.Protocol):
    def __init__(self, listener: StreamListener) -> None:
        self.listener = listener
        assert listener.pipeline is not None
        self.pipeline: RecordSink = listener.pipeline
        self.transport: Any = None
        self.slot: ConnectionSlot | None = None  # our place under the listener's caps
        self.host = "unknown"
        self.peer = "unknown:0"
        self.tenant = ""
        self._pending: set[asyncio.Future[None]] = set()
        self._pending_bytes: dict[asyncio.Future[None], int] = {}
        self._in_flight_bytes = 0
        self._paused = False
        self._closing = False
        self._last_read = 0.0
        # Data asyncio hands over during start_tls, before self.transport is the TLS transport.
        self._before_tls: list[bytes] | None = None
        self._idle: asyncio.TimerHandle | None = None

    # -- transport callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        host, port = peer_of(transport)
        self.host = host
        self.peer = f"{host}:{port}"
        self.tenant = self.listener.resolver.resolve(host) or ""
        self.listener.connections.add(self)
        self._last_read = asyncio.get_running_loop().time()
        if self.listener.ssl_context is not None:
            # No plaintext may reach data_received before the handshake; start_tls resumes.
            transport.pause_reading()  # type: ignore[attr-defined]
            self._before_tls = []
            asyncio.get_running_loop().create_task(self._upgrade())
        else:
            self._arm_idle(self.listener.limits.idle_timeout_s)

    async def _upgrade(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.listener.ssl_context is not None
        timeout = self.listener.limits.tls_handshake_timeout_s
        try:
            self.transport = await loop.start_tls(
                self.transport,
                self,
                self.listener.ssl_context,
                server_side=True,
                ssl_handshake_timeout=timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = f"no handshake within {timeout:g} s"
            self.report_error(
                b"",
                "tls.handshake_failed",
                f"TLS handshake with {self.peer} failed: {reason} ({exc})",
                offset=0,
            )
            if self.transport is not None:
                self.transport.abort()
            # asyncio does not call connection_lost for a connection whose handshake failed.
            self._forget()
            return
        self._last_read = loop.time()
        self._arm_idle(self.listener.limits.idle_timeout_s)
        early, self._before_tls = self._before_tls, None
        for data in early or ():
            self.on_data(data)

    def data_received(self, data: bytes) -> None:
        self._last_read = asyncio.get_running_loop().time()
        if self._before_tls is not None:
            # asyncio's SSL protocol passes on what came with the handshake's last flight
            # before start_tls returns: an answer written now would go out on the plain
            # socket (a client sees "wrong version number"), so it waits for the upgrade.
            self._before_tls.append(data)
            return
        self.on_data(data)

    def eof_received(self) -> bool:
        self.on_eof()
        asyncio.get_running_loop().create_task(self._close_when_durable())
        # Keep a plain socket open until our records are durable (the sender's only ack).
        # asyncio's TLS transport always closes on EOF, so there the records are simply
        # journaled after the close.
        return self.listener.ssl_context is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()

    def _forget(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.listener.connections.discard(self)
        if self.slot is not None:
            self.slot.release()

    # -- idle timeout --------------------------------------------------------------------

    def _arm_idle(self, delay: float) -> None:
        if self.listener.limits.idle_timeout_s > 0:
            self._idle = asyncio.get_running_loop().call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        # One timer per connection, re-armed for the time left: cheaper than resetting a timer
        # on every read.
        self._idle = None
        if self.transport is None or self.transport.is_closing() or self._closing:
            return
        limit = self.listener.limits.idle_timeout_s
        quiet_for = asyncio.get_running_loop().time() - self._last_read
        if self._paused:  # we stopped reading (records in flight): not the sender's silence
            self._arm_idle(limit)
        elif quiet_for < limit:
            self._arm_idle(limit - quiet_for)
        else:
            if self.listener.guard is not None:
                why = f"from {self.peer}: nothing received for {limit:g} s"
                self.listener.guard.timed_out.note(self.host, why, "idle")
            self._closing = True
            self.transport.pause_reading()
            self.on_idle()

    def on_idle(self) -> None:
        """The sender was silent for idle_timeout_s: close once its records are durable."""
        if self._pending:
            asyncio.get_running_loop().create_task(self._close_when_durable())
        else:
            self.transport.close()

    # -- helpers for subclasses ----------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        """Bytes from the sender (after TLS)."""

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
        self.track(fut, sum(len(r.payload) for r in records))
        return fut

    def track(self, fut: asyncio.Future[None], size: int = 0) -> None:
        self._pending.add(fut)
        self._pending_bytes[fut] = size
        self._in_flight_bytes += size
        fut.add_done_callback(self._done)
        full = len(self._pending) >= MAX_IN_FLIGHT or self._in_flight_bytes >= MAX_IN_FLIGHT_BYTES
        if full and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _done(self, fut: asyncio.Future[None]) -> None:
        self._pending.discard(fut)
        self._in_flight_bytes -= self._pending_bytes.pop(fut, 0)
        if not fut.cancelled() and fut.exception() is not None:
            # Every connection sees the same journal failure: one line per few seconds, not each.
            self.listener.quiet("records not journaled", logging.ERROR).note(
                self.host, f"records from {self.peer} could not be journaled: {fut.exception()}"
            )
            if self.transport is not None:
                self.transport.abort()  # no ack: the sender must resend
            return
        roomy = len(self._pending) < MAX_IN_FLIGHT // 2 and self._in_flight_bytes < MAX_IN_FLIGHT_BYTES // 2
        if self._paused and roomy and self.transport is not None:
            self._paused = False
            if not self._closing:
                self.transport.resume_reading()

    def report_error(self, payload: bytes, error_type: str, message: str, *, offset: int) -> None:
        """Keep a transport-level problem as a pipeline_error event (journaled, counted)."""
        from norrvakt.node.pipeline import pipeline_error_event

        full = f"{message} (peer {self.peer}, stream offset {offset})"
        self.listener.quiet(error_type).note(self.host, full)
        self.pipeline.transport_error(self.listener.id, error_type)
        rec = self.record(payload, now_us())
        event = pipeline_error_event(rec, error_type, full, tenant=self.tenant or None)
        self.track(self.pipeline.commit_nowait([event]))

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _close_when_durable(self) -> None:
        await self.drain()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
