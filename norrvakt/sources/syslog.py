"""Syslog listeners: UDP, TCP and TLS (RFC 5424/5425/5426, RFC 3164, RFC 6587 framing).

Senders seen here: rsyslog 8.2302 (``omfwd`` tcp/udp, octet-counted or LF, gtls), syslog-ng
3.38, util-linux ``logger`` and ``loggen``::

    132 <36>1 2026-11-26T21:43:23.306142+00:00 rs-testhost sshd - - -  Failed password for ...
    <36>Nov 26 21:43:59 vm sshd: Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2

TCP framing is detected per frame (octet counting or LF). UDP datagrams are one message each,
with or without a trailing LF. The tenant comes from the listener and the sender's network.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from norrvakt.event import RawRecord, now_us
from norrvakt.sources.base import register_source
from norrvakt.sources.framing import SyslogFramer
from norrvakt.sources.listener_settings import listener_fields
from norrvakt.sources.stream import StreamConnection, StreamLimits, StreamListener
from norrvakt.sources.tenancy import TenantResolver
from norrvakt.sources.tls import listener_context
from norrvakt.sources.udp import bind_udp

if TYPE_CHECKING:
    from norrvakt.config import Settings, SourceSettings
    from norrvakt.sources.base import RecordSink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyslogSourceConfig:
    """A syslog listener.

    ``protocol``: ``udp``, ``tcp`` (LF or octet-counted framing, detected per frame) or
    ``tls`` (RFC 5425; a self-signed certificate is generated under the data directory when
    ``tls_cert``/``tls_key`` are not given). ``tenant``: tenant for senders not matched by
    ``networks`` (CIDR → tenant). ``max_message_bytes``: longer messages are cut and kept as
    ``pipeline_error`` events. ``timezone``: assumed for timestamps without a zone.
    ``limits``: connection caps and idle/handshake timeouts of tcp and tls (not udp).
    """

    id: str
    protocol: str = "tcp"
    host: str = "0.0.0.0"
    port: int = 5514
    tenant: str = ""
    networks: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 65536
    timezone: str = "UTC"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: StreamLimits = field(default_factory=StreamLimits)

    def build(self) -> SyslogUdpSource | SyslogStreamSource:
        resolver = TenantResolver(self.tenant or None, dict(self.networks))
        if self.protocol == "udp":
            return SyslogUdpSource(self, resolver)
        ctx = listener_context(self.protocol, self.tls_cert, self.tls_key)
        return SyslogStreamSource(self, resolver, ctx)


@register_source("syslog")
def _from_settings(src: SourceSettings, settings: Settings) -> SyslogSourceConfig:
    return SyslogSourceConfig(**listener_fields(src, settings))


class SyslogStreamSource(StreamListener):
    def __init__(self, config: SyslogSourceConfig, resolver: TenantResolver, ssl_context: Any) -> None:
        super().__init__(
            config.id, config.host, config.port, resolver, config.timezone, ssl_context, config.limits
        )
        self.config = config

    def make_connection(self) -> StreamConnection:
        return _SyslogConnection(self, self.config.max_message_bytes)

    def describe(self) -> str:
        return f"syslog/{self.config.protocol} {self.host}:{self.port}"


class _SyslogConnection(StreamConnection):
    def __init__(self, listener: StreamListener, max_bytes: int) -> None:
        super().__init__(listener)
        self.framer = SyslogFramer(max_bytes)

    def on_data(self, data: bytes) -> None:
        self._handle(self.framer.feed(data))

    def on_eof(self) -> None:
        self._handle(self.framer.finish())

    def _handle(self, frames: list[Any]) -> None:
        if not frames:
            return
        received = now_us()
        records = []
        for fr in frames:
            if fr.error is None:
                records.append(self.record(fr.payload, received))
            else:
                self.report_error(fr.payload, f"syslog.{fr.error}", fr.detail, offset=fr.offset)
        if records:
            self.submit(records)


class SyslogUdpSource:
    """UDP has no acknowledgement; records are journaled as soon as they arrive."""

    def __init__(self, config: SyslogSourceConfig, resolver: TenantResolver) -> None:
        self.id = config.id
        self.config = config
        self.resolver = resolver
        self.port = config.port
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: set[asyncio.Future[None]] = set()

    def describe(self) -> str:
        return f"syslog/udp {self.config.host}:{self.port}"

    async def start(self, pipeline: RecordSink) -> None:
        self._transport, _, self.port = await bind_udp(
            lambda: _UdpProtocol(self, pipeline), self.config.host, self.config.port
        )

    async def stop(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self._transport is not None:
            self._transport.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, source: SyslogUdpSource, pipeline: RecordSink) -> None:
        self.source = source
        self.pipeline = pipeline
        self._batch: list[RawRecord] = []
        self._scheduled = False

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        host, port = str(addr[0]), int(addr[1])
        cfg = self.source.config
        record = RawRecord(
            tenant=self.source.resolver.resolve(host) or "",
            source_id=cfg.id,
            received_at=now_us(),
            peer=f"{host}:{port}",
            payload=data.rstrip(b"\r\n\x00"),
            format="syslog",
            timezone=cfg.timezone,
        )
        if len(data) > cfg.max_message_bytes:
            from norrvakt.node.pipeline import pipeline_error_event

            msg = (
                f"datagram of {len(data)} bytes exceeds the limit of {cfg.max_message_bytes} "
                f"(peer {host}:{port}, offset 0)"
            )
            log.warning("%s: %s", cfg.id, msg)
            self.pipeline.transport_error(cfg.id, "syslog.oversized")
            record.payload = record.payload[: cfg.max_message_bytes]
            fut = self.pipeline.commit_nowait([pipeline_error_event(record, "syslog.oversized", msg)])
            self._track(fut)
            return
        # Datagrams arrive one by one; batch those of one loop iteration into one commit.
        self._batch.append(record)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._batch = self._batch, []
        if batch:
            self._track(self.pipeline.submit_nowait(batch))

    def _track(self, fut: asyncio.Future[None]) -> None:
        self.source._pending.add(fut)
        fut.add_done_callback(self.source._pending.discard)
