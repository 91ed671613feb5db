"""Fluent Forward listener (protocol v1, as spoken by Fluent Bit and fluentd ``out_forward`` and
the fluent-logger libraries), TCP or TLS, port 24224 by default.

The stream is a sequence of msgpack arrays, read with an incremental unpacker that never holds
more than ``max_frame_bytes`` of one frame (:mod:`norrvakt.sources.forward_frames` decodes the
four modes). Every entry is one ``fluent`` RawRecord (parsed by :mod:`norrvakt.parsers.fluent`).
A frame with the ``chunk`` option is answered ``{"ack": chunk}`` only once its records — and the
pipeline_error events of its bad entries — are durable; a sender that gets no ack resends::

    ["syslog.auth", 1795729418, {"host": "web01", "message": "Failed password ..."}, {"chunk": "p8n9..."}]
    -> {"ack": "p8n9..."}

With a shared key (``shared_key_file``, or the environment variable
``NORRVAKT_SOURCE_<ID>_SHARED_KEY``) the connection starts with the handshake: the server sends
``["HELO", {"nonce": .., "auth": "", "keepalive": true}]``, the client must answer ``PING`` with
``sha512_hex(salt + client_hostname + nonce + key)`` and gets ``PONG`` with the server's digest
(user/password authorization is not offered: ``auth`` is empty). A wrong digest gets
``PONG false`` and the connection is closed; the key itself is never logged.

Errors: a frame that is not msgpack, too large, or cut off at EOF cannot be resynchronised —
it is kept as a pipeline_error event and the connection is closed once what came before is
durable. A frame that decodes but is not a Forward frame (wrong types, unknown mode, bad gzip)
and single bad entries are kept as pipeline_error events and the connection goes on; the
frame's ``chunk`` is acknowledged once those events are durable (resending would not help).
A msgpack ``nil`` is a heartbeat and is ignored, as the spec says.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from norrvakt.event import RawRecord, now_us
from norrvakt.sources.base import register_source
from norrvakt.sources.forward_frames import (
    UNPACK_ERRORS,
    FrameError,
    decode_frame,
    msgpack_why,
    short,
    unpacker,
)
from norrvakt.sources.listener_settings import listener_fields
from norrvakt.sources.stream import StreamConnection, StreamLimits, StreamListener
from norrvakt.sources.tenancy import TenantResolver
from norrvakt.sources.tls import listener_context

if TYPE_CHECKING:
    from norrvakt.config import Settings, SourceSettings

log = logging.getLogger(__name__)

DEFAULT_PORT = 24224
# Fluent Bit flushes chunks of about 2 MB by default and fluentd's buffer chunks are 8 MB at
# most: 16 MB holds either with room. Inflated CompressedPackedForward entries may be larger.
MAX_FRAME_BYTES = 16 * 1024 * 1024
MAX_INFLATED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ForwardSourceConfig:
    """A Fluent Forward listener (``protocol`` = ``tcp`` or ``tls``); tenant mapping, connection
    caps and timeouts as for syslog. ``max_message_bytes`` bounds one entry (its JSON),
    ``max_frame_bytes`` one msgpack frame on the wire. ``shared_key`` (read from
    ``shared_key_file`` or the environment) turns on the HELO/PING/PONG handshake."""

    id: str
    protocol: str = "tcp"
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    tenant: str = ""
    networks: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 65536
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_inflated_bytes: int = MAX_INFLATED_BYTES
    timezone: str = "UTC"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    shared_key: bytes = field(default=b"", repr=False)
    server_hostname: str = ""
    limits: StreamLimits = field(default_factory=StreamLimits)

    def build(self) -> ForwardSource:
        if self.protocol not in ("tcp", "tls"):
            raise ValueError(f"source {self.id}: forward protocol must be tcp or tls, not {self.protocol!r}")
        ctx = listener_context(self.protocol, self.tls_cert, self.tls_key)
        return ForwardSource(self, TenantResolver(self.tenant or None, dict(self.networks)), ctx)


def shared_key_of(source_id: str, key_file: str) -> bytes:
    """The shared key: the file's content (surrounding whitespace removed), else the environment
    variable ``NORRVAKT_SOURCE_<ID>_SHARED_KEY``; empty = no handshake."""
    if key_file:
        return Path(key_file).read_bytes().strip()
    env = "NORRVAKT_SOURCE_" + re.sub(r"[^A-Z0-9]", "_", source_id.upper()) + "_SHARED_KEY"
    return os.environ.get(env, "").encode()


@register_source("forward")
def _from_settings(src: SourceSettings, settings: Settings) -> ForwardSourceConfig:
    return ForwardSourceConfig(
        **listener_fields(src, settings, own_port=DEFAULT_PORT),
        shared_key=shared_key_of(src.id, src.shared_key_file),
    )


class ForwardSource(StreamListener):
    def __init__(self, config: ForwardSourceConfig, resolver: TenantResolver, ssl_context: Any) -> None:
        super().__init__(
            config.id, config.host, config.port, resolver, config.timezone, ssl_context, config.limits
        )
        self.config = config
        self.server_hostname = config.server_hostname or socket.gethostname()

    def make_connection(self) -> StreamConnection:
        return _ForwardConnection(self)

    def describe(self) -> str:
        auth = ", shared key" if self.config.shared_key else ""
        return f"forward/{self.config.protocol} {self.host}:{self.port}{auth}"


class _ForwardConnection(StreamConnection):
    listener: ForwardSource

    def __init__(self, listener: ForwardSource) -> None:
        super().__init__(listener)
        cfg = listener.config
        self.cfg = cfg
        self._reader = unpacker(cfg.max_frame_bytes)
        # A copy of the bytes not yet consumed, so a bad frame can be kept as it arrived.
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._broken = False
        self._nonce = b""
        self._authenticated = not cfg.shared_key
        self._frame_futs: list[asyncio.Future[None]] | None = None

    # -- handshake ---------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.listener.ssl_context is None:
            self._helo()

    async def _upgrade(self) -> None:
        await super()._upgrade()
        if self.transport is not None and not self.transport.is_closing():
            self._helo()

    def _helo(self) -> None:
        if self._authenticated:
            return
        self._nonce = secrets.token_bytes(16)
        helo = ["HELO", {"nonce": self._nonce, "auth": b"", "keepalive": True}]
        self.transport.write(msgpack.packb(helo, use_bin_type=True))

    def _ping(self, frame: list[Any], offset: int, raw: bytes) -> None:
        key = self.cfg.shared_key
        ok = (
            len(frame) == 6
            and all(isinstance(v, bytes) for v in frame[1:4])
            and hmac.compare_digest(frame[3], _digest(frame[2], frame[1], self._nonce, key).encode())
        )
        if not ok:
            why = "shared key digest does not match" if len(frame) == 6 else f"PING of {len(frame)} elements"
            self.transport.write(msgpack.packb(["PONG", False, why, self.listener.server_hostname, ""]))
            self._fail(raw, "forward.auth_failed", f"handshake refused: {why}", offset)
            return
        self._authenticated = True
        host = self.listener.server_hostname
        digest = _digest(frame[2], host.encode(), self._nonce, key)
        self.transport.write(msgpack.packb(["PONG", True, "", host, digest]))

    # -- the stream ---------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        if self._broken:
            return
        try:
            self._reader.feed(data)
        except msgpack.BufferFull:
            self._buf += data[:4096]
            self._fail(
                bytes(self._buf[:4096]),
                "forward.oversized",
                f"frame exceeds the limit of {self.cfg.max_frame_bytes} bytes",
                self._base,
            )
            return
        self._buf += data
        received = now_us()
        records: list[RawRecord] = []
        while not self._broken:
            start = self._reader.tell()
            try:
                frame = self._reader.unpack()
            except msgpack.OutOfData:
                break
            except UNPACK_ERRORS as exc:
                bad = bytes(self._buf[start - self._base :])
                self._flush(records)
                why = f"not msgpack ({msgpack_why(exc)}): {short(bad[:16])}"
                self._fail(bad, "forward.bad_msgpack", why, start)
                return
            end = self._reader.tell()
            if frame is None:
                continue  # a heartbeat
            raw = bytes(self._buf[start - self._base : end - self._base])
            if not self._authenticated:
                self._flush(records)
                self._handshake(frame, start, raw)
                continue
            records = self._frame(frame, start, raw, records, received)
        self._flush(records)
        consumed = self._reader.tell()
        del self._buf[: consumed - self._base]
        self._base = consumed

    def _handshake(self, frame: Any, offset: int, raw: bytes) -> None:
        if isinstance(frame, list) and frame and frame[0] == b"PING":
            self._ping(frame, offset, raw)
        else:
            self.transport.write(
                msgpack.packb(["PONG", False, "PING expected", self.listener.server_hostname, ""])
            )
            self._fail(raw, "forward.auth_failed", f"data before the handshake: {short(frame)}", offset)

    def _frame(
        self, frame: Any, offset: int, raw: bytes, records: list[RawRecord], received: int
    ) -> list[RawRecord]:
        """Decode one frame; records without a chunk pile up to be submitted in one batch."""
        try:
            decoded = decode_frame(frame, self.cfg.max_message_bytes, self.cfg.max_inflated_bytes)
        except FrameError as err:
            self._flush(records)
            self._frame_futs = []
            self._error(raw, err, offset)
            self._ack(_chunk_of(frame))
            return []
        new = [self._record(p, received) for p in decoded.payloads]
        if decoded.chunk is None and not decoded.errors:
            records.extend(new)
            return records
        self._flush(records)
        self._frame_futs = []
        if new:
            self.submit(new)
        for payload, bad in decoded.errors:
            self._error(payload, bad, offset, f"{decoded.mode} frame, tag {decoded.tag!r}, ")
        self._ack(decoded.chunk)
        return []

    def _record(self, payload: bytes, received: int) -> RawRecord:
        return RawRecord(
            tenant=self.tenant,
            source_id=self.listener.id,
            received_at=received,
            peer=self.peer,
            payload=payload,
            format="fluent",
            timezone=self.listener.timezone,
        )

    def _flush(self, records: list[RawRecord]) -> None:
        if records:
            self.submit(list(records))
            records.clear()

    def track(self, fut: asyncio.Future[None], size: int = 0) -> None:
        super().track(fut, size)
        if self._frame_futs is not None:
            self._frame_futs.append(fut)

    def _ack(self, chunk: Any) -> None:
        """Answer ``{"ack": chunk}`` once everything this frame produced is durable."""
        futs, self._frame_futs = self._frame_futs or [], None
        if chunk is None:
            return
        answer = msgpack.packb({"ack": chunk}, use_bin_type=False)
        done = asyncio.gather(*futs) if futs else None

        def send(_f: Any = None) -> None:
            if done is not None and (done.cancelled() or done.exception() is not None):
                return  # not durable: _done aborted the connection and the sender resends
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(answer)

        if done is None:
            send()
        else:
            done.add_done_callback(send)

    def _error(self, payload: bytes, err: FrameError, offset: int, context: str = "") -> None:
        self.report_error(payload, err.error_type, f"forward {context}{err.where}: {err.why}", offset=offset)

    def _fail(self, payload: bytes, error_type: str, why: str, offset: int) -> None:
        """The stream cannot go on: keep the bad bytes, close once the rest is durable."""
        self._broken = True
        self.report_error(
            payload, error_type, f"forward frame at stream offset {offset}: {why}", offset=offset
        )
        self.transport.pause_reading()
        asyncio.get_running_loop().create_task(self._close_when_durable())

    def on_eof(self) -> None:
        left = len(self._buf) - (self._reader.tell() - self._base)
        if left > 0 and not self._broken:
            self._broken = True
            offset = self._reader.tell()
            bad = bytes(self._buf[offset - self._base :])
            self.report_error(
                bad,
                "forward.truncated_frame",
                f"forward frame cut off by the end of the stream ({left} bytes received): {short(bad[:16])}",
                offset=offset,
            )


def _chunk_of(frame: Any) -> Any:
    """The chunk option of a frame that did not decode, if one can be found."""
    if isinstance(frame, list) and len(frame) >= 3 and isinstance(frame[-1], dict):
        for key, value in frame[-1].items():
            if key == b"chunk":
                return value
    return None


def _digest(salt: bytes, hostname: bytes, nonce: bytes, key: bytes) -> str:
    return hashlib.sha512(salt + hostname + nonce + key).hexdigest()
