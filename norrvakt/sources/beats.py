"""Beats listener: the Lumberjack v2 protocol of Winlogbeat, Filebeat, Auditbeat (``output.logstash``).

Frames, every integer a big-endian uint32 (what go-lumber's reader and client actually do; its
PROTOCOL.md differs)::

    32 57 <count>                         2W  window: the sender waits for the ACK of <count> events
    32 43 <length> <zlib bytes>           2C  compressed: inflates to further 2J/2C frames
    32 4a <seq> <length> <JSON document>  2J  one event
    32 41 <seq>                           2A  our ACK: every event up to <seq> is durable

Each ``2J`` document is a :class:`~norrvakt.event.RawRecord` of format ``json`` (the JSON parser
knows Winlogbeat's ``winlog.*``). The ACK names the sender's own sequence number of the last
event it covers, and goes out only when those events — and every event before them on the
connection — are journaled: Beats numbers each window 1..n and waits for n, pylogbeat numbers
the connection and waits for its last number; both take partial ACKs. A Beat with
``pipelining`` has several windows in flight: each gets its own ACK, in order. While records are not yet
durable, an ``ACK 0`` every few seconds tells the sender we are alive (go-lumber's keepalive), so
a slow fsync does not make it time out and resend.

There is no error frame. What is not Lumberjack v2 — another version byte (``1`` is
logstash-forwarder's Lumberjack v1), a ``2D`` key/value frame (v1's data frame; no Beat sends
it, go-lumber refuses it), an unknown frame type, a length beyond the limits, zlib that does
not inflate, a frame cut off at the end of a compressed frame or of the connection — is a
``pipeline_error`` event (``beats.*``) naming the stream offset and the bad bytes; the events
before it are ACKed once durable and the connection is then closed, as go-lumber does: the Beat
reconnects and resends what was not ACKed (halving its window when the batch was too large).
A well-framed event larger than ``max_message_bytes`` is kept (cut) as a pipeline error and
ACKed; a document that is not JSON is the JSON parser's pipeline error and ACKed too — resending
it could never succeed.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections import deque
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

# A window of Beats' default bulk_max_size (2,048 events) of large Windows events inflates to a
# few MB; the limits leave room for ten times that while bounding what one connection can make
# us hold. A Beat whose batch is refused shrinks its window and resends.
MAX_FRAME_BYTES = 16 * 1024 * 1024  # the length field of a 2J or 2C frame
MAX_INFLATED_BYTES = 64 * 1024 * 1024  # what one 2C frame may inflate to
MAX_NESTING = 4  # 2C inside 2C (go-lumber allows it; no client does it twice)
KEEPALIVE_S = 5.0
BEATS_PORT = 5044  # what output.logstash and Logstash's beats input use
_U32 = struct.Struct(">I")
_BAD_SHOWN = 32  # bytes of a bad frame shown in the error (the event's raw keeps more)


@dataclass(frozen=True)
class BeatsSourceConfig:
    """A Beats (Lumberjack v2) listener, ``protocol`` = ``tcp`` or ``tls``; the Beat's
    ``output.logstash`` points at it. ``port``: 5044 (also when the settings leave it at the
    general default). Tenant mapping, connection caps and timeouts as for syslog;
    ``max_message_bytes`` bounds one event's JSON document."""

    id: str
    protocol: str = "tcp"
    host: str = "0.0.0.0"
    port: int = BEATS_PORT
    tenant: str = ""
    networks: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 65536
    timezone: str = "UTC"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: StreamLimits = field(default_factory=StreamLimits)

    def build(self) -> BeatsSource:
        ctx = listener_context(self.protocol, self.tls_cert, self.tls_key)
        return BeatsSource(self, TenantResolver(self.tenant or None, dict(self.networks)), ctx)


@register_source("beats")
def _from_settings(src: SourceSettings, settings: Settings) -> BeatsSourceConfig:
    return BeatsSourceConfig(**listener_fields(src, settings, own_port=BEATS_PORT))


class BeatsSource(StreamListener):
    def __init__(self, config: BeatsSourceConfig, resolver: TenantResolver, ssl_context: Any) -> None:
        super().__init__(
            config.id, config.host, config.port, resolver, config.timezone, ssl_context, config.limits
        )
        self.config = config

    def make_connection(self) -> StreamConnection:
        return _BeatsConnection(self, self.config.max_message_bytes)

    def describe(self) -> str:
        return f"beats/{self.config.protocol} {self.host}:{self.port}"


# --- frames ----------------------------------------------------------------------------------


@dataclass(slots=True)
class DataFrame:
    """One ``2J`` event: the sender's sequence number, the document, the stream offset of its
    frame (for an event inside a ``2C``, the offset of that compressed frame), and which window
    it belongs to (the number of ``2W`` frames before it: each window gets its own ACK)."""

    seq: int
    payload: bytes
    offset: int
    window: int = 0


class BeatsFrameError(Exception):
    """Bytes that are not Lumberjack v2: ``error_type`` (``beats.*``), the stream offset, the
    bad bytes, and a message naming them."""

    def __init__(self, error_type: str, why: str, offset: int, bad: bytes) -> None:
        super().__init__(f"{why} at stream offset {offset}: {bad[:_BAD_SHOWN].hex(' ')}")
        self.error_type = error_type
        self.offset = offset
        self.bad = bad
        self.frames: list[DataFrame] = []  # the complete frames before the bad bytes


class LumberjackDecoder:
    """Lumberjack v2 frames from a byte stream fed in pieces. :meth:`feed` returns the events
    of every complete frame, and raises :class:`BeatsFrameError` at the first byte that is not
    v2 (the events before it are in the error's ``frames``); the decoder is of no use after."""

    def __init__(self) -> None:
        self._buf = b""
        self._base = 0  # stream offset of _buf[0]
        self.window = 0  # the last 2W count (informative: ACKs follow durability)
        self.windows = 0  # 2W frames so far

    @property
    def buffered(self) -> int:
        """Bytes of a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[DataFrame]:
        buf = self._buf + data if self._buf else data
        frames: list[DataFrame] = []
        try:
            pos = _frames(buf, 0, self._base, frames, self, False, 0)
        except BeatsFrameError as exc:
            exc.frames = frames
            self._buf = b""
            raise
        self._base += pos
        self._buf = buf[pos:]
        return frames

    def finish(self) -> None:
        """The stream ended: a frame left half-sent is an error."""
        if self._buf:
            bad, self._buf = self._buf, b""
            raise BeatsFrameError("beats.truncated", "connection closed inside a frame", self._base, bad)


def _frames(
    buf: bytes, pos: int, base: int, out: list[DataFrame], dec: LumberjackDecoder, inner: bool, depth: int
) -> int:
    """Decode frames of ``buf`` from ``pos`` into ``out``; the position after the last complete
    one. At the top (``inner`` False) ``buf`` is a stream: an incomplete frame waits for more
    bytes; inside a ``2C`` it is the whole inflated payload: an incomplete frame is an error."""
    end = len(buf)
    where = "inside the compressed frame at" if inner else "at"
    while pos < end:
        at = base if inner else base + pos
        if end - pos < 2:
            break
        version, kind = buf[pos], buf[pos + 1]
        if version != 0x32:
            why = "not a Lumberjack v2 frame (version byte is not '2')"
            if version == 0x31:
                why = "Lumberjack v1 (logstash-forwarder) is not supported"
            raise BeatsFrameError("beats.bad_version", f"{why} {where}", at, buf[pos : pos + 64])
        if kind == 0x4A:  # J
            if end - pos < 10:
                break
            seq, length = _U32.unpack_from(buf, pos + 2)[0], _U32.unpack_from(buf, pos + 6)[0]
            if length > MAX_FRAME_BYTES:
                why = f"2J frame of {length} bytes exceeds the limit of {MAX_FRAME_BYTES} {where}"
                raise BeatsFrameError("beats.oversized_frame", why, at, buf[pos : pos + 64])
            if end - pos - 10 < length:
                break
            out.append(DataFrame(seq, buf[pos + 10 : pos + 10 + length], at, dec.windows))
            pos += 10 + length
        elif kind == 0x43:  # C
            if end - pos < 6:
                break
            length = _U32.unpack_from(buf, pos + 2)[0]
            if length > MAX_FRAME_BYTES:
                why = f"2C frame of {length} bytes exceeds the limit of {MAX_FRAME_BYTES} {where}"
                raise BeatsFrameError("beats.oversized_frame", why, at, buf[pos : pos + 64])
            if depth + 1 > MAX_NESTING:
                why = f"2C frames nested more than {MAX_NESTING} deep {where}"
                raise BeatsFrameError("beats.bad_frame", why, at, buf[pos : pos + 64])
            if end - pos - 6 < length:
                break
            inflated = _inflate(buf[pos + 6 : pos + 6 + length], at)
            _frames(inflated, 0, at, out, dec, True, depth + 1)
            pos += 6 + length
        elif kind == 0x57 and not inner:  # W
            if end - pos < 6:
                break
            dec.window = _U32.unpack_from(buf, pos + 2)[0]
            dec.windows += 1
            pos += 6
        else:
            raise BeatsFrameError("beats.bad_frame", _unknown(kind, where), at, buf[pos : pos + 64])
    if inner and pos < end:
        why = f"compressed frame ends inside a frame ({end - pos} bytes left)"
        raise BeatsFrameError("beats.truncated", why, base, buf[pos : pos + 64])
    return pos


def _unknown(kind: int, where: str) -> str:
    if kind == 0x44:
        return (
            f"2D key/value data frame (Lumberjack v1 style) {where}: not supported, Beats send 2J JSON frames"
        )
    if kind == 0x57:
        return f"2W window frame {where}: a window cannot be inside a compressed frame"
    if kind == 0x41:
        return f"2A ACK frame from the sender {where}"
    return f"unknown frame type {chr(kind) if 0x20 < kind < 0x7F else hex(kind)!r} {where}"


def _inflate(data: bytes, at: int) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_INFLATED_BYTES + 1)
    except zlib.error as exc:
        raise BeatsFrameError(
            "beats.bad_compression", f"2C frame is not zlib ({exc})", at, data[:64]
        ) from None
    if len(out) > MAX_INFLATED_BYTES:
        why = f"2C frame inflates to more than {MAX_INFLATED_BYTES} bytes"
        raise BeatsFrameError("beats.oversized_frame", why, at, data[:64])
    if not d.eof:
        why = f"2C frame's zlib stream is cut off ({len(data)} bytes, no end)"
        raise BeatsFrameError("beats.bad_compression", why, at, data[-64:])
    if d.unused_data:
        why = f"2C frame has {len(d.unused_data)} bytes after the end of its zlib stream"
        raise BeatsFrameError("beats.bad_compression", why, at, d.unused_data[:64])
    return out


def ack_frame(seq: int) -> bytes:
    return b"2A" + _U32.pack(seq & 0xFFFFFFFF)


# --- a connection ----------------------------------------------------------------------------


class _BeatsConnection(StreamConnection):
    def __init__(self, listener: StreamListener, max_bytes: int) -> None:
        super().__init__(listener)
        self.max_bytes = max_bytes
        self.decoder = LumberjackDecoder()
        self._broken = False
        # ACKs go out in order, each when everything received before it is durable.
        self._acks: deque[tuple[asyncio.Future[Any] | None, int | None]] = deque()
        self._keepalive: asyncio.TimerHandle | None = None

    def on_data(self, data: bytes) -> None:
        if self._broken:
            return
        error: BeatsFrameError | None = None
        try:
            frames = self.decoder.feed(data)
        except BeatsFrameError as exc:
            error, frames = exc, exc.frames
        if frames:
            self._take(frames)
        if error is not None:
            self._protocol_error(error)

    def on_eof(self) -> None:
        if self._broken:
            return
        try:
            self.decoder.finish()
        except BeatsFrameError as exc:
            self._broken = True
            self._report(exc)

    def record(self, payload: bytes, received_at: int) -> RawRecord:
        rec = super().record(payload, received_at)
        rec.format = "json"
        return rec

    def _take(self, frames: list[DataFrame]) -> None:
        received = now_us()
        records: list[RawRecord] = []
        for i, frame in enumerate(frames):
            if i and frame.window != frames[i - 1].window:
                # A Beat with pipelining has the next window in flight: the last one's own ACK first.
                if records:
                    self.submit(records)
                    records = []
                self._enqueue(frames[i - 1].seq)
            if len(frame.payload) > self.max_bytes:
                if records:
                    self.submit(records)
                    records = []
                self.report_error(
                    frame.payload[: self.max_bytes],
                    "beats.oversized",
                    f"event seq {frame.seq} of {len(frame.payload)} bytes exceeds the limit of "
                    f"{self.max_bytes} (kept cut to the limit)",
                    offset=frame.offset,
                )
            else:
                records.append(self.record(frame.payload, received))
        if records:
            self.submit(records)
        self._enqueue(frames[-1].seq)

    def _protocol_error(self, exc: BeatsFrameError) -> None:
        self._broken = True
        self._report(exc)
        # What came before the bad bytes is ACKed once durable; then the connection ends.
        self._enqueue(None)

    def _report(self, exc: BeatsFrameError) -> None:
        self.report_error(exc.bad, exc.error_type, str(exc), offset=exc.offset)

    def _all_pending(self) -> asyncio.Future[Any] | None:
        pending = [f for f in self._pending if not f.done()]
        return asyncio.gather(*pending) if pending else None

    def _enqueue(self, seq: int | None) -> None:
        """ACK ``seq`` (None: close) once everything received so far is durable."""
        fut = self._all_pending()
        self._acks.append((fut, seq))
        if fut is not None:
            fut.add_done_callback(lambda _f: self._send_ready())
        self._send_ready()

    def _send_ready(self) -> None:
        while self._acks:
            fut, seq = self._acks[0]
            if fut is not None and not fut.done():
                self._arm_keepalive()
                return
            self._acks.popleft()
            if fut is not None and (fut.cancelled() or fut.exception() is not None):
                # Not durable: no ACK; the sender resends after reconnecting.
                self._acks.clear()
                if self.transport is not None:
                    self.transport.abort()
                return
            if self.transport is None or self.transport.is_closing():
                continue
            if seq is None:
                self.transport.close()
            else:
                self.transport.write(ack_frame(seq))
        self._disarm_keepalive()

    def _arm_keepalive(self) -> None:
        if self._keepalive is None:
            self._keepalive = asyncio.get_running_loop().call_later(KEEPALIVE_S, self._send_keepalive)

    def _disarm_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    def _send_keepalive(self) -> None:
        self._keepalive = None
        if not self._acks or self.transport is None or self.transport.is_closing():
            return
        self.transport.write(ack_frame(0))
        self._arm_keepalive()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_keepalive()
        super().connection_lost(exc)
