"""RELP listener (Reliable Event Logging Protocol, as spoken by rsyslog ``omrelp``/librelp).

Each message is acknowledged (``TXNR rsp 6 200 OK``) only after it is durably journaled, so
the sender retransmits whatever was not acknowledged when a connection or the server dies::

    1 open 86 relp_version=0\\nrelp_software=librelp,1.11.0,...\\ncommands=syslog\\n
    2 syslog 132 <36>1 2026-11-26T21:43:23.306142+00:00 rs-testhost sshd - - -  Failed ...\\n
    4 close 0\\n

Frame: ``TXNR SP COMMAND SP DATALEN [SP DATA] LF``. A frame that cannot be parsed ends the
session (``0 serverclose 0``) with the offset and bad bytes logged and kept as an event.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from norrvakt.event import RawRecord, now_us
from norrvakt.sources.base import register_source
from norrvakt.sources.listener_settings import listener_fields
from norrvakt.sources.stream import StreamConnection, StreamLimits, StreamListener
from norrvakt.sources.tenancy import TenantResolver
from norrvakt.sources.tls import listener_context

if TYPE_CHECKING:
    from norrvakt.config import Settings, SourceSettings

log = logging.getLogger(__name__)

_HEADER = re.compile(rb"(\d{1,9}) ([A-Za-z]{1,32}) (\d{1,9})(?=[ \n])")
_MAX_HEADER = 9 + 1 + 32 + 1 + 9 + 1
_OFFERS = b"relp_version=0\nrelp_software=norrvakt\ncommands=syslog"


@dataclass(frozen=True)
class RelpSourceConfig:
    """A RELP listener (``protocol`` = ``tcp`` or ``tls``); tenant mapping, connection caps and
    timeouts as for syslog. A session idle for ``limits.idle_timeout_s`` gets ``serverclose``
    once its messages are acknowledged; librelp reconnects when it has more to send."""

    id: str
    protocol: str = "tcp"
    host: str = "0.0.0.0"
    port: int = 2514
    tenant: str = ""
    networks: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 65536
    timezone: str = "UTC"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: StreamLimits = field(default_factory=StreamLimits)

    def build(self) -> RelpSource:
        ctx = listener_context(self.protocol, self.tls_cert, self.tls_key)
        return RelpSource(self, TenantResolver(self.tenant or None, dict(self.networks)), ctx)


@register_source("relp")
def _from_settings(src: SourceSettings, settings: Settings) -> RelpSourceConfig:
    return RelpSourceConfig(**listener_fields(src, settings))


class RelpSource(StreamListener):
    def __init__(self, config: RelpSourceConfig, resolver: TenantResolver, ssl_context: Any) -> None:
        super().__init__(
            config.id, config.host, config.port, resolver, config.timezone, ssl_context, config.limits
        )
        self.config = config

    def make_connection(self) -> StreamConnection:
        return _RelpConnection(self, self.config.max_message_bytes)

    def describe(self) -> str:
        return f"relp/{self.config.protocol} {self.host}:{self.port}"


class _RelpConnection(StreamConnection):
    def __init__(self, listener: StreamListener, max_bytes: int) -> None:
        super().__init__(listener)
        self.max_bytes = max_bytes
        self._buf = b""
        self._base = 0
        self._broken = False
        # Responses must go out in txnr order even though commits complete asynchronously.
        self._responses: list[tuple[asyncio.Future[None] | None, bytes]] = []

    def on_data(self, data: bytes) -> None:
        if self._broken:
            return
        buf = self._buf + data
        pos = 0
        received = now_us()
        records: list[RawRecord] = []
        txnrs: list[bytes] = []
        while True:
            m = _HEADER.match(buf, pos)
            if m is None:
                rest = buf[pos : pos + _MAX_HEADER]
                if len(rest) >= _MAX_HEADER or b"\n" in rest:
                    self._protocol_error(rest, pos)
                    return
                break
            txnr, command, datalen = m.group(1), m.group(2).lower(), int(m.group(3))
            data_start = m.end() + 1 if datalen > 0 else m.end()
            end = data_start + datalen
            if end >= len(buf):
                if datalen > self.max_bytes + 1024 * 1024:
                    self._protocol_error(buf[pos : pos + 64], pos, f"DATALEN {datalen} is absurdly large")
                    return
                break
            if datalen > 0 and buf[m.end() : m.end() + 1] != b" ":
                self._protocol_error(buf[pos : m.end() + 16], pos, "missing space before DATA")
                return
            if buf[end : end + 1] != b"\n":
                self._protocol_error(buf[pos : end + 1][-64:], self._base + end, "frame not terminated by LF")
                return
            payload = buf[data_start:end]
            frame_offset = self._base + pos
            pos = end + 1
            if command == b"syslog":
                if len(payload) > self.max_bytes:
                    self._flush(records, txnrs)
                    records, txnrs = [], []
                    self.report_error(
                        payload[: self.max_bytes],
                        "relp.oversized",
                        f"message of {len(payload)} bytes exceeds the limit of {self.max_bytes}",
                        offset=frame_offset,
                    )
                    self._queue(self._all_pending(), txnr + b" rsp 6 200 OK\n")
                    continue
                records.append(self.record(payload.rstrip(b"\n"), received))
                txnrs.append(txnr)
            elif command == b"open":
                self._flush(records, txnrs)
                records, txnrs = [], []
                self._queue(None, txnr + b" rsp %d 200 OK\n" % (len(_OFFERS) + 7) + _OFFERS + b"\n")
            elif command == b"close":
                self._flush(records, txnrs)
                records, txnrs = [], []
                self._queue(self._all_pending(), txnr + b" rsp 0\n", close=True)
            else:
                self._flush(records, txnrs)
                records, txnrs = [], []
                self._queue(None, txnr + b" rsp 20 500 unknown command\n")
        self._flush(records, txnrs)
        self._base += pos
        self._buf = buf[pos:]

    def _flush(self, records: list[RawRecord], txnrs: list[bytes]) -> None:
        if not records:
            return
        fut = self.submit(records)
        self._queue(fut, b"".join(t + b" rsp 6 200 OK\n" for t in txnrs))

    def _all_pending(self) -> asyncio.Future[Any] | None:
        pending = [f for f in self._pending if not f.done()]
        if not pending:
            return None
        return asyncio.gather(*pending)

    def _queue(self, fut: asyncio.Future[Any] | None, response: bytes, close: bool = False) -> None:
        self._responses.append((fut, response + (b"\x00CLOSE" if close else b"")))
        self._send_ready()
        if fut is not None:
            fut.add_done_callback(lambda _f: self._send_ready())

    def _send_ready(self) -> None:
        while self._responses:
            fut, response = self._responses[0]
            if fut is not None and not fut.done():
                return
            self._responses.pop(0)
            if fut is not None and (fut.cancelled() or fut.exception() is not None):
                # Not durable: no positive ack; the sender will retransmit after reconnecting.
                if self.transport is not None:
                    self.transport.abort()
                self._responses.clear()
                return
            close = response.endswith(b"\x00CLOSE")
            if close:
                response = response[: -len(b"\x00CLOSE")]
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(response)
                if close:
                    self.transport.close()

    def on_idle(self) -> None:
        self._broken = True  # whatever still arrives is not answered: librelp resends it
        self._queue(self._all_pending(), b"0 serverclose 0\n", close=True)

    def _protocol_error(self, bad: bytes, offset: int, why: str = "not a RELP frame header") -> None:
        self._broken = True
        self.report_error(bad, "relp.bad_frame", f"{why}: {bad[:64]!r}", offset=self._base + offset)
        if self.transport is not None:
            self._queue(self._all_pending(), b"0 serverclose 0\n", close=True)
