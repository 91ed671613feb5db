"""GELF over UDP: chunk reassembly and decompression (GELF 1.1), free of sockets and clocks.

A datagram is one whole message, or one chunk of a message too big for one datagram::

    1e 0f | message id (8 bytes) | sequence number (1 byte, from 0) | sequence count (1 byte) | data

A message has at most 128 chunks, and all of them must arrive within a few seconds (5 in
Graylog). The message, whole or reassembled, is zlib (``78 ..``), gzip (``1f 8b``) or plain
JSON. Every way this goes wrong is a :class:`GelfProblem` naming what and where — the caller
keeps it as a ``pipeline_error`` event — and pending chunks are bounded in count and bytes:
beyond the bounds the oldest message is given up (and reported), not the memory.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

MAGIC = b"\x1e\x0f"
HEADER = 12
MAX_CHUNKS = 128
_GZIP = b"\x1f\x8b"


@dataclass(slots=True)
class GelfProblem:
    """Bad input: ``kind`` (``gelf.<kind>`` is the error type), what went wrong and where
    (``detail``), and the bytes to keep as the event's raw data."""

    kind: str
    detail: str
    data: bytes
    peer: str = ""  # host:port of the sender, for a message given up later


@dataclass(slots=True)
class _Pending:
    count: int
    first_seen: float
    peer: str
    chunks: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


@dataclass(slots=True)
class Assembled:
    """What one datagram gave: a whole (still compressed) message, problems, or neither yet."""

    message: bytes | None = None
    problems: list[GelfProblem] = field(default_factory=list)


class ChunkAssembler:
    """Pending chunked messages, keyed by sender address and message id (one sender cannot
    complete or spoil another's message)."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        max_pending_bytes: int = 64 * 1024 * 1024,
        max_pending_messages: int = 10_000,
        max_message_bytes: int = 1024 * 1024,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_pending_bytes = max_pending_bytes
        self.max_pending_messages = max_pending_messages
        self.max_message_bytes = max_message_bytes
        self._pending: OrderedDict[tuple[str, bytes], _Pending] = OrderedDict()
        self.pending_bytes = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, datagram: bytes, host: str, peer: str, now: float) -> Assembled:
        """Take one datagram from ``host`` (``peer`` = host:port, for messages)."""
        if not datagram.startswith(MAGIC):
            return Assembled(message=datagram)
        out = Assembled()
        if len(datagram) < HEADER:
            out.problems.append(
                GelfProblem(
                    "truncated_chunk",
                    f"chunk of {len(datagram)} bytes from {peer} is shorter than the 12-byte chunk "
                    f"header (offset 0: {datagram.hex(' ')})",
                    datagram,
                )
            )
            return out
        msg_id, seq, count = datagram[2:10], datagram[10], datagram[11]
        mid = msg_id.hex()
        if count == 0 or count > MAX_CHUNKS or seq >= count:
            why = f"sequence count {count} exceeds {MAX_CHUNKS}" if count > MAX_CHUNKS else ""
            why = why or f"sequence number {seq} is not below the sequence count {count}"
            out.problems.append(
                GelfProblem(
                    "bad_chunk_header",
                    f"chunk of message {mid} from {peer}: {why} (header bytes 10-11 at offset 10)",
                    datagram,
                )
            )
            return out
        key = (host, msg_id)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(count, now, peer)
        elif pending.count != count:
            out.problems.append(
                GelfProblem(
                    "bad_chunk_header",
                    f"chunk {seq} of message {mid} from {peer} gives a sequence count of {count}, "
                    f"its first chunk {pending.count} (offset 11)",
                    datagram,
                )
            )
            return out
        if seq in pending.chunks:
            same = "the same data" if pending.chunks[seq] == datagram[HEADER:] else "other data"
            out.problems.append(
                GelfProblem(
                    "duplicate_chunk",
                    f"chunk {seq} of {count} of message {mid} from {peer} arrived twice ({same}); "
                    "the first is kept",
                    datagram,
                )
            )
            return out
        data = datagram[HEADER:]
        pending.chunks[seq] = data
        pending.size += len(data)
        self.pending_bytes += len(data)
        if pending.size > self.max_message_bytes:
            self._drop(key)
            out.problems.append(
                GelfProblem(
                    "oversized",
                    f"chunked message {mid} from {peer} passes {self.max_message_bytes} bytes at chunk "
                    f"{seq} of {count} ({pending.size} bytes in {len(pending.chunks)} chunks); given up",
                    _joined(pending),
                )
            )
            return out
        if len(pending.chunks) == count:
            self._drop(key)
            out.message = _joined(pending)
            return out
        out.problems.extend(self._bound(key))
        return out

    def expire(self, now: float) -> list[GelfProblem]:
        """Give up the messages whose first chunk is older than the timeout."""
        out: list[GelfProblem] = []
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if now - pending.first_seen < self.timeout_s:
                break
            self._drop(key)
            out.append(_incomplete(key[1], pending, f"not complete after {self.timeout_s:g} s"))
        return out

    def flush(self) -> list[GelfProblem]:
        """Every pending message, given up (the listener stops)."""
        out = [_incomplete(k[1], p, "the listener stopped") for k, p in self._pending.items()]
        self._pending.clear()
        self.pending_bytes = 0
        return out

    def _bound(self, keep: tuple[str, bytes]) -> list[GelfProblem]:
        out: list[GelfProblem] = []
        while (
            len(self._pending) > self.max_pending_messages or self.pending_bytes > self.max_pending_bytes
        ) and len(self._pending) > 1:
            key = next(k for k in self._pending if k != keep)  # the oldest other one
            pending = self._pending[key]
            self._drop(key)
            why = (
                f"given up to stay within {self.max_pending_messages} pending messages and "
                f"{self.max_pending_bytes} pending bytes"
            )
            out.append(_incomplete(key[1], pending, why))
        return out

    def _drop(self, key: tuple[str, bytes]) -> None:
        pending = self._pending.pop(key)
        self.pending_bytes -= pending.size


def _joined(pending: _Pending) -> bytes:
    return b"".join(pending.chunks[i] for i in sorted(pending.chunks))


def _incomplete(msg_id: bytes, pending: _Pending, why: str) -> GelfProblem:
    have = sorted(pending.chunks)
    lacking = [i for i in range(pending.count) if i not in pending.chunks]
    return GelfProblem(
        "incomplete",
        f"chunked message {msg_id.hex()} from {pending.peer}: {why}; chunks {_ranges(have)} of "
        f"{pending.count} arrived ({pending.size} bytes), missing {_ranges(lacking)}",
        _joined(pending),
        pending.peer,
    )


def _ranges(numbers: list[int]) -> str:
    """``0-3, 5, 7-9``."""
    parts: list[str] = []
    start = prev = -2
    for n in [*numbers, -2]:
        if n == prev + 1:
            prev = n
            continue
        if start >= 0:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    return ", ".join(parts) or "none"


def decompress(message: bytes, limit: int, peer: str) -> bytes | GelfProblem:
    """The JSON of a whole message (zlib, gzip or plain), or why not; at most ``limit`` bytes
    are inflated, so a small bomb cannot fill memory."""
    if message.startswith(_GZIP):
        codec, wbits = "gzip", 16 + zlib.MAX_WBITS
    elif len(message) >= 2 and message[0] & 0x0F == 8 and (message[0] << 8 | message[1]) % 31 == 0:
        codec, wbits = "zlib", zlib.MAX_WBITS
    else:
        if len(message) > limit:
            return GelfProblem(
                "oversized", f"message of {len(message)} bytes from {peer} exceeds {limit}", message[:limit]
            )
        return message
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(message, limit + 1)
    except zlib.error as exc:
        return GelfProblem(
            f"bad_{codec}",
            f"{codec} data of {len(message)} bytes from {peer} does not inflate: {exc} "
            f"(first bytes {message[:8].hex(' ')})",
            message,
        )
    if len(out) > limit:
        return GelfProblem(
            "oversized",
            f"{codec} message from {peer} inflates to more than {limit} bytes ({len(message)} compressed)",
            out[:limit],
        )
    if not inflater.eof:
        return GelfProblem(
            f"bad_{codec}",
            f"{codec} data of {len(message)} bytes from {peer} ends before its end marker "
            f"(truncated after {len(out)} inflated bytes)",
            message,
        )
    return out
