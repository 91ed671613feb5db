"""GELF listeners (Graylog Extended Log Format 1.1): UDP with chunking, TCP and TLS.

Senders: ``graypy`` (Python logging), NXLog CE (``xm_gelf`` with ``om_udp``/``om_tcp``,
``OutputType GELF_UDP``/``GELF_TCP``), Docker's ``gelf`` log driver, Fluent Bit, Logstash::

    UDP:  1e 0f 5a c4 19 7b 22 0e 91 3d 00 0b | 78 9c ed 5a 6d 73 ...   (chunk 0 of 11, zlib)
    UDP:  78 9c 4d 8e 41 0b c2 30 ...                                     (one whole zlib message)
    TCP:  {"version":"1.1","host":"web01","short_message":"login failed","level":4}\\0

UDP datagrams are whole messages or chunks (reassembled by
:mod:`norrvakt.sources.gelf_chunks`, zlib/gzip/plain); TCP carries uncompressed JSON, each
message ended by a NUL byte (a LF is taken as the end too: JSON never holds a raw one, and
it lets NXLog's ``to_json()`` lines in). Each message becomes a record of format ``gelf``
(:mod:`norrvakt.parsers.gelf`). UDP has no acknowledgement; on TCP, as for syslog, the
connection is closed only after its records are durable. Bad input (bad compression, a bad
chunk header, a duplicate chunk, a message incomplete at the timeout, an oversized message)
is kept as a ``pipeline_error`` event naming the source, the sender and the offset or chunk.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from norrvakt.event import RawRecord, now_us
from norrvakt.sources.base import register_source
from norrvakt.sources.gelf_chunks import ChunkAssembler, GelfProblem, decompress
from norrvakt.sources.limits import QuietLog
from norrvakt.sources.listener_settings import listener_fields
from norrvakt.sources.stream import StreamConnection, StreamLimits, StreamListener
from norrvakt.sources.tenancy import TenantResolver
from norrvakt.sources.tls import listener_context
from norrvakt.sources.udp import bind_udp

if TYPE_CHECKING:
    from norrvakt.config import Settings, SourceSettings
    from norrvakt.sources.base import RecordSink

log = logging.getLogger(__name__)

GELF_PORT = 12201  # Graylog's; a [[sources]] table without a port listens here
# GELF allows 128 chunks; 8192 bytes each is the largest chunk Graylog takes.
_MAX_CHUNKED_BYTES = 128 * 8192


@dataclass(frozen=True)
class GelfSourceConfig:
    """A GELF listener.

    ``protocol``: ``udp`` (chunked or not; zlib, gzip or plain), ``tcp`` (NUL-delimited,
    uncompressed) or ``tls`` (the same inside TLS; a self-signed certificate is generated under
    the data directory when ``tls_cert``/``tls_key`` are not given). ``port``: 12201, Graylog's
    (graypy's own default is 12202: point it here). ``tenant``/``networks``: tenant by sender
    network, as for syslog. ``max_message_bytes``: the largest message after decompression.
    ``chunk_timeout_s``: a chunked message must be complete this long after its first chunk
    (Graylog: 5 s). ``max_pending_bytes``/``max_pending_messages``: chunks held for incomplete
    messages at most; beyond, the oldest message is given up and reported.
    """

    id: str
    protocol: str = "udp"
    host: str = "0.0.0.0"
    port: int = GELF_PORT
    tenant: str = ""
    networks: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 65536
    timezone: str = "UTC"
    chunk_timeout_s: float = 5.0
    max_pending_bytes: int = 64 * 1024 * 1024
    max_pending_messages: int = 10_000
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: StreamLimits = field(default_factory=StreamLimits)

    def build(self) -> GelfUdpSource | GelfStreamSource:
        resolver = TenantResolver(self.tenant or None, dict(self.networks))
        if self.protocol == "udp":
            return GelfUdpSource(self, resolver)
        ctx = listener_context(self.protocol, self.tls_cert, self.tls_key)
        return GelfStreamSource(self, resolver, ctx)


@register_source("gelf")
def _from_settings(src: SourceSettings, settings: Settings) -> GelfSourceConfig:
    return GelfSourceConfig(
        **listener_fields(src, settings, own_port=GELF_PORT),
        chunk_timeout_s=src.gelf_chunk_timeout_s,
        max_pending_bytes=src.gelf_max_pending_bytes,
    )


def gelf_record(config: GelfSourceConfig, tenant: str, peer: str, payload: bytes) -> RawRecord:
    return RawRecord(
        tenant=tenant,
        source_id=config.id,
        received_at=now_us(),
        peer=peer,
        payload=payload,
        format="gelf",
        timezone=config.timezone,
    )


# --- UDP ----------------------------------------------------------------------------------


class GelfUdpSource:
    """Datagrams in; whole messages are journaled as soon as they are complete."""

    def __init__(self, config: GelfSourceConfig, resolver: TenantResolver) -> None:
        self.id = config.id
        self.config = config
        self.resolver = resolver
        self.port = config.port
        self.assembler = ChunkAssembler(
            config.chunk_timeout_s,
            config.max_pending_bytes,
            config.max_pending_messages,
            max(config.max_message_bytes, _MAX_CHUNKED_BYTES),
        )
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _GelfUdpProtocol | None = None
        self._pending: set[asyncio.Future[None]] = set()
        # A flood of bad datagrams is one log line every few seconds (each is still an event).
        self._quiet: dict[str, QuietLog] = {}

    def quiet(self, kind: str) -> QuietLog:
        q = self._quiet.get(kind)
        if q is None:
            q = self._quiet[kind] = QuietLog(log, logging.WARNING, f"{self.id}: {kind}")
        return q

    def describe(self) -> str:
        return f"gelf/udp {self.config.host}:{self.port}"

    async def start(self, pipeline: RecordSink) -> None:
        self._transport, self._protocol, self.port = await bind_udp(
            lambda: _GelfUdpProtocol(self, pipeline), self.config.host, self.config.port
        )

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._protocol is not None:
            self._protocol.give_up_all()
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        for q in self._quiet.values():
            q.close()


class _GelfUdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, source: GelfUdpSource, pipeline: RecordSink) -> None:
        self.source = source
        self.pipeline = pipeline
        self._batch: list[RawRecord] = []
        self._scheduled = False
        self._expiry: asyncio.TimerHandle | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        host, port = str(addr[0]), int(addr[1])
        peer = f"{host}:{port}"
        tenant = self.source.resolver.resolve(host) or ""
        loop = asyncio.get_running_loop()
        got = self.source.assembler.add(data, host, peer, loop.time())
        for problem in got.problems:
            self._report(problem, tenant, peer)
        if got.message is not None:
            payload = decompress(got.message, self.source.config.max_message_bytes, peer)
            if isinstance(payload, GelfProblem):
                self._report(payload, tenant, peer)
            else:
                self._batch.append(gelf_record(self.source.config, tenant, peer, payload))
                if not self._scheduled:  # one commit for the datagrams of one loop iteration
                    self._scheduled = True
                    loop.call_soon(self._flush)
        if len(self.source.assembler) and self._expiry is None:
            self._expiry = loop.call_later(self._tick(), self._expire)

    def _tick(self) -> float:
        return max(0.05, min(1.0, self.source.config.chunk_timeout_s / 5))

    def _expire(self) -> None:
        self._expiry = None
        now = asyncio.get_running_loop().time()
        for problem in self.source.assembler.expire(now):
            self._report_given_up(problem)
        if len(self.source.assembler):
            self._expiry = asyncio.get_running_loop().call_later(self._tick(), self._expire)

    def give_up_all(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._flush()
        for problem in self.source.assembler.flush():
            self._report_given_up(problem)

    def _report_given_up(self, problem: GelfProblem) -> None:
        host = problem.peer.rsplit(":", 1)[0]
        self._report(problem, self.source.resolver.resolve(host) or "", problem.peer or "unknown:0")

    def _report(self, problem: GelfProblem, tenant: str, peer: str) -> None:
        from norrvakt.node.pipeline import pipeline_error_event

        cfg = self.source.config
        error_type = f"gelf.{problem.kind}"
        self.source.quiet(error_type).note(peer.rsplit(":", 1)[0], problem.detail)
        self.pipeline.transport_error(cfg.id, error_type)
        record = gelf_record(cfg, tenant, peer, problem.data[: cfg.max_message_bytes])
        event = pipeline_error_event(record, error_type, problem.detail, tenant=tenant or None)
        self._track(self.pipeline.commit_nowait([event]))

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._batch = self._batch, []
        if batch:
            self._track(self.pipeline.submit_nowait(batch))

    def _track(self, fut: asyncio.Future[None]) -> None:
        self.source._pending.add(fut)
        fut.add_done_callback(self.source._pending.discard)


# --- TCP and TLS --------------------------------------------------------------------------


class GelfStreamSource(StreamListener):
    def __init__(self, config: GelfSourceConfig, resolver: TenantResolver, ssl_context: Any) -> None:
        super().__init__(
            config.id, config.host, config.port, resolver, config.timezone, ssl_context, config.limits
        )
        self.config = config

    def make_connection(self) -> StreamConnection:
        return _GelfConnection(self, self.config.max_message_bytes)

    def describe(self) -> str:
        return f"gelf/{self.config.protocol} {self.host}:{self.port}"


class _GelfConnection(StreamConnection):
    """NUL- (or LF-) ended JSON messages; an oversized one is cut, reported and skipped to its end."""

    def __init__(self, listener: StreamListener, max_bytes: int) -> None:
        super().__init__(listener)
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._skipping = False  # inside an oversized message, until its end

    def record(self, payload: bytes, received_at: int) -> RawRecord:
        rec = super().record(payload, received_at)
        rec.format = "gelf"
        return rec

    def on_data(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        received = now_us()
        records: list[RawRecord] = []
        pos = 0
        while True:
            end = _frame_end(buf, pos)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            else:
                frame = bytes(buf[pos:end]).strip(b" \t\r")
                if len(frame) > self.max_bytes:
                    self._oversized(records, frame, pos, end - pos)
                elif frame:
                    records.append(self.record(frame, received))
            pos = end + 1
        del buf[:pos]
        self._base += pos
        if not self._skipping and len(buf) > self.max_bytes:
            self._oversized(records, bytes(buf), 0, len(buf), open_ended=True)
            self._base += len(buf)
            buf.clear()
            self._skipping = True
        elif self._skipping:
            self._base += len(buf)
            buf.clear()
        if records:
            self.submit(records)

    def _oversized(
        self, records: list[RawRecord], frame: bytes, pos: int, size: int, open_ended: bool = False
    ) -> None:
        if records:
            self.submit(list(records))
            records.clear()
        more = "more than " if open_ended else ""
        self.report_error(
            frame[: self.max_bytes],
            "gelf.oversized",
            f"message of {more}{size} bytes exceeds the limit of {self.max_bytes}; skipped to its end",
            offset=self._base + pos,
        )

    def on_eof(self) -> None:
        rest = bytes(self._buf).strip(b" \t\r\n")
        if rest and not self._skipping:
            self.report_error(
                rest,
                "gelf.truncated",
                f"stream ended inside a message ({len(rest)} bytes after the last NUL, none ending it)",
                offset=self._base,
            )
        self._buf.clear()


def _frame_end(buf: bytearray, pos: int) -> int:
    nul = buf.find(b"\x00", pos)
    lf = buf.find(b"\n", pos, nul if nul >= 0 else len(buf))
    return lf if lf >= 0 else nul
