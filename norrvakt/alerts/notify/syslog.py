"""Syslog forwarding (RFC 5424) to another system — a SIEM upstream, the municipality's own
log server — with the notice as CEF or JSON. UDP: one datagram; TCP: octet-counted framing
(RFC 6587), one connection per message (rate limits keep that cheap)."""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlsplit

import orjson

from norrvakt.alerts.notify.base import DeliveryError, register_channel
from norrvakt.alerts.notify.message import Notice, as_json, cef
from norrvakt.config import ChannelSettings

FACILITY_LOCAL4 = 20
SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "informational": 6}


def syslog_line(notice: Notice, fmt: str, hostname: str) -> bytes:
    pri = FACILITY_LOCAL4 * 8 + SEVERITY.get(notice.level, 4)
    stamp = (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(notice.at / 1e6)) + f".{notice.at % 1_000_000:06d}Z"
    )
    body = cef(notice) if fmt == "cef" else orjson.dumps(as_json(notice)).decode("utf-8")
    return f"<{pri}>1 {stamp} {hostname} norrvakt - {notice.kind} - {body}".encode()


@register_channel("syslog")
class SyslogChannel:
    def __init__(self, settings: ChannelSettings) -> None:
        url = urlsplit(settings.url)
        self.name = settings.name
        self.protocol = url.scheme
        self.host = url.hostname or "localhost"
        self.port = url.port or 514
        self.format = settings.format
        self.timeout = settings.timeout_s
        self.hostname = socket.gethostname() or "norrvakt"

    async def send(self, notice: Notice) -> str:
        line = syslog_line(notice, self.format, self.hostname)
        where = f"syslog {self.name} ({self.protocol}://{self.host}:{self.port})"
        try:
            if self.protocol == "udp":
                await asyncio.to_thread(self._udp, line)
            else:
                await asyncio.wait_for(self._tcp(line), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}") from exc
        return f"{len(line)} bytes"

    def _udp(self, line: bytes) -> None:
        with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(line, (self.host, self.port))

    async def _tcp(self, line: bytes) -> None:
        _reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(b"%d " % len(line) + line)
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
