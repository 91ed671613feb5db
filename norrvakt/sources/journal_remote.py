"""The journal-remote protocol: what ``systemd-journal-upload`` sends (port 19532 by default).

    POST /upload HTTP/1.1
    Content-Type: application/vnd.fdo.journal
    Transfer-Encoding: chunked
    Expect: 100-continue

    __REALTIME_TIMESTAMP=1795729418412345\\n_HOSTNAME=srv01\\nMESSAGE=...\\n\\n ...

The body is a stream of Journal Export Format entries (:mod:`norrvakt.parsers.journal_export`),
each one record of format ``journal``, handed to the pipeline as soon as it is whole. The
answer (``200 OK.``) goes out only when the request is complete and every entry of it is
durable; the uploader saves its cursor only then (``--save-state``), so what is not
acknowledged is sent again.

systemd-journal-upload can send no header of its own choosing (only a TLS client
certificate), so there is no token: this is a listener of its own, and the tenant comes from
the listener's ``tenant`` and ``networks`` as for syslog. ``protocol = "tls"`` serves HTTPS
(the uploader's ``--trust`` must accept the certificate).

HTTP/1.1 is read with httptools (the parser uvicorn uses), on a
:class:`~norrvakt.sources.stream.StreamListener`, so connections are accepted and parsed in
the parse-worker processes like syslog's. Problems, each also a ``pipeline_error`` event:

- not ``POST /upload`` → 404/405; another ``Content-Type`` or a ``Content-Encoding`` → 415;
  HTTP that cannot be parsed → 400. The connection is then closed.
- an entry over ``max_message_bytes`` is kept (its first bytes) as a pipeline error and the
  stream goes on; the answer is still 200, so the uploader does not send it for ever.
- a stream that is not export format, a binary field's length that is too large or not
  followed by its newline, or a body that ends inside an entry: what came before is kept,
  the answer is 400 naming the offset, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httptools

from norrvakt.event import RawRecord, now_us
from norrvakt.parsers.journal_export import Item, JournalExportReader
from norrvakt.sources.base import register_source
from norrvakt.sources.listener_settings import listener_fields
from norrvakt.sources.stream import StreamConnection, StreamLimits, StreamListener
from norrvakt.sources.tenancy import TenantResolver
from norrvakt.sources.tls import listener_context

if TYPE_CHECKING:
    from norrvakt.config import Settings, SourceSettings

log = logging.getLogger(__name__)

CONTENT_TYPE = b"application/vnd.fdo.journal"
DEFAULT_PORT = 19532
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    415: "Unsupported Media Type",
}


@dataclass(frozen=True)
class JournalRemoteSourceConfig:
    """A journal-remote listener for ``systemd-journal-upload`` (``protocol`` = ``tcp`` or
    ``tls``); tenant mapping, connection caps and timeouts as for syslog;
    ``max_message_bytes`` bounds one journal entry."""

    id: str
    protocol: str = "tcp"
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    tenant: str = ""
    networks: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 65536
    timezone: str = "UTC"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: StreamLimits = field(default_factory=StreamLimits)

    def build(self) -> JournalRemoteSource:
        ctx = listener_context(self.protocol, self.tls_cert, self.tls_key)
        return JournalRemoteSource(self, TenantResolver(self.tenant or None, dict(self.networks)), ctx)


@register_source("journal-remote")
def _from_settings(src: SourceSettings, settings: Settings) -> JournalRemoteSourceConfig:
    return JournalRemoteSourceConfig(**listener_fields(src, settings, own_port=DEFAULT_PORT))


class JournalRemoteSource(StreamListener):
    def __init__(self, config: JournalRemoteSourceConfig, resolver: TenantResolver, ssl_context: Any) -> None:
        super().__init__(
            config.id, config.host, config.port, resolver, config.timezone, ssl_context, config.limits
        )
        self.config = config

    def make_connection(self) -> StreamConnection:
        return _JournalConnection(self, self.config.max_message_bytes)

    def describe(self) -> str:
        return f"journal-remote/{self.config.protocol} {self.host}:{self.port}"


class _JournalConnection(StreamConnection):
    """One HTTP/1.1 connection; requests one after another (keep-alive), answered in order."""

    def __init__(self, listener: StreamListener, max_bytes: int) -> None:
        super().__init__(listener)
        self.max_bytes = max_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._reader: JournalExportReader | None = None
        self._refused = False  # this request is answered with an error; its body is not read
        self._responses: list[tuple[asyncio.Future[Any] | None, bytes, bool]] = []
        self._offset = 0  # bytes of this connection received so far
        self._answered_close = False  # answered with Connection: close; nothing more is read

    # -- bytes in ----------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        if self._answered_close:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "journal.bad_http", "HTTP upgrade is not supported", data[:256])
        except httptools.HttpParserError as exc:
            if not self._answered_close:
                self._refuse(400, "journal.bad_http", f"not HTTP/1.1: {exc}", data[:256])
        self._offset += len(data)

    def on_eof(self) -> None:
        if self._reader is not None and not self._answered_close:
            self._stream_items(self._reader.finish())  # the sender went away inside a request

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._reader = None
        self._refused = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        method = self._parser.get_method()
        path = self._url.split(b"?", 1)[0]
        ctype = self._headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        encoding = self._headers.get(b"content-encoding", b"identity").strip().lower()
        what = f"{method.decode('latin-1')} {self._url[:100].decode('latin-1')}"
        if path != b"/upload":
            self._refuse(404, "journal.bad_request", f"{what}: the only resource is /upload")
        elif method != b"POST":
            self._refuse(405, "journal.bad_request", f"{what}: use POST")
        elif ctype != CONTENT_TYPE:
            self._refuse(
                415,
                "journal.unsupported_content_type",
                f"{what} with Content-Type {ctype[:80].decode('latin-1')!r}: "
                f"{CONTENT_TYPE.decode()} (Journal Export Format) is required",
            )
        elif encoding not in (b"identity", b""):
            self._refuse(
                415, "journal.unsupported_encoding", f"Content-Encoding {encoding[:40]!r} is not supported"
            )
        else:
            self._reader = JournalExportReader(self.max_bytes)
            if self._headers.get(b"expect", b"").lower() == b"100-continue":
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._reader is not None and not self._answered_close:
            self._stream_items(self._reader.feed(body))

    def on_message_complete(self) -> None:
        if self._refused or self._answered_close:
            return
        if self._reader is not None:
            self._stream_items(self._reader.finish())
            self._reader = None
        if not self._answered_close:
            self._respond(self._durable(), 200, "OK.", close=not self._parser.should_keep_alive())

    # -- entries ----------------------------------------------------------------------------

    def record(self, payload: bytes, received_at: int) -> RawRecord:
        rec = super().record(payload, received_at)
        rec.format = "journal"
        return rec

    def _stream_items(self, items: list[Item]) -> None:
        received = now_us()
        records: list[RawRecord] = []
        for item in items:
            if item.error is None:
                records.append(self.record(item.data, received))
                continue
            if records:
                self.submit(records)
                records = []
            self.report_error(item.data, item.error, item.detail, offset=item.offset)
            if item.fatal:
                # What came before is kept; nothing after a broken frame can be trusted.
                self._respond(self._durable(), 400, item.detail, close=True)
                return
        if records:
            self.submit(records)

    # -- answers ----------------------------------------------------------------------------

    def _durable(self) -> asyncio.Future[Any] | None:
        """Resolves when everything this connection handed on so far is durable."""
        pending = [f for f in self._pending if not f.done()]
        return asyncio.gather(*pending) if pending else None

    def _refuse(self, status: int, error_type: str, why: str, excerpt: bytes = b"") -> None:
        self._refused = True
        self.report_error(excerpt, error_type, why, offset=self._offset)
        self._respond(self._durable(), status, why, close=True)

    def _respond(self, after: asyncio.Future[Any] | None, status: int, text: str, close: bool) -> None:
        body = (text + "\n").encode("utf-8", "replace")
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
        head += f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
        if close:
            self._answered_close = True
            if self.transport is not None:
                self.transport.pause_reading()
        self._responses.append((after, head.encode("ascii") + body, close))
        self._send_ready()
        if after is not None:
            after.add_done_callback(lambda _f: self._send_ready())

    def _send_ready(self) -> None:
        while self._responses:
            fut, data, close = self._responses[0]
            if fut is not None and not fut.done():
                return
            self._responses.pop(0)
            if fut is not None and (fut.cancelled() or fut.exception() is not None):
                # Not durable: no answer at all; the uploader sends the entries again.
                if self.transport is not None:
                    self.transport.abort()
                self._responses.clear()
                return
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(data)
                if close:
                    self.transport.close()
