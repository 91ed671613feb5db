"""Reading an HTTP ingest body: streamed, counted, decompressed bit by bit, capped.

A body is read chunk by chunk as the client sends it (``request.stream()``) and never held
beyond its limits:

- ``max_body_bytes`` — bytes on the wire (compressed). A ``Content-Length`` above it is refused
  before anything is read; a chunked body is refused as soon as the count passes it.
- ``max_decompressed_bytes`` — bytes after ``Content-Encoding: gzip`` / ``deflate``. Each chunk
  is inflated with :func:`zlib.decompressobj` asking for at most the room that is left, so a
  1 MB gzip bomb stops at the cap instead of growing into a gigabyte.

Inflating is CPU work (a bomb chunk expands a thousandfold), so it runs on a small pool of
its own threads — the event loop keeps serving other connections, and the journal's fsync
threads (asyncio's default pool) never wait behind a bomb.

When a limit is passed the reader raises :class:`BodyError` at once and reads no further;
the route answers 413 in its protocol's format. (uvicorn then discards, without buffering,
whatever the client still sends, so the client reads the 413 instead of a reset.)
"""

from __future__ import annotations

import asyncio
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from starlette.requests import Request

from norrvakt.config import ServerSettings

# Two threads: enough to inflate two bodies at once on this size of machine, and a cap on
# how much CPU HTTP decompression can take from parsing and the journal.
_INFLATE_THREADS = 2
_pool: ThreadPoolExecutor | None = None

# The refused body's first bytes are kept in its pipeline_error event, so the SOC sees what
# was sent; more is not needed to recognise a sender.
EXCERPT_BYTES = 1024


class BodyError(Exception):
    """A body that is not taken: ``status`` (413, 400, 415), a stable ``error_type`` for the
    pipeline_error event and the counters, a ``message`` naming the limit or the bad byte,
    and ``excerpt`` — the first bytes read (decompressed when they could be)."""

    def __init__(self, status: int, error_type: str, message: str, excerpt: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.excerpt = excerpt


@dataclass(frozen=True)
class BodyLimits:
    """How much one HTTP ingest body may carry (``[server]`` settings of the same names).

    ``max_body_bytes`` counts bytes as sent (compressed), ``max_decompressed_bytes`` bytes
    after ``Content-Encoding``. (``server.max_event_bytes``, one event of the body, is the
    routes' to check: see :mod:`norrvakt.sources.http_json`.)"""

    max_body_bytes: int
    max_decompressed_bytes: int

    @classmethod
    def from_settings(cls, server: ServerSettings) -> BodyLimits:
        return cls(server.max_body_bytes, server.max_decompressed_bytes)

    def build(self) -> BodyReader:
        return BodyReader(self)


class BodyReader:
    """Reads one request's body within :class:`BodyLimits` (see the module docstring)."""

    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits

    async def read(self, request: Request) -> bytes:
        limits = self.limits
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in {"identity", "", "gzip", "x-gzip", "deflate"}:
            raise BodyError(
                415,
                "http.unsupported_encoding",
                f"Content-Encoding {encoding!r} is not supported (use gzip, deflate or none)",
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise BodyError(
                413,
                "http.body_too_large",
                f"body of {int(declared)} bytes (Content-Length) is over the limit of "
                f"{limits.max_body_bytes} bytes (server.max_body_bytes); nothing was read",
            )
        inflater = None if encoding in {"identity", ""} else Inflater(encoding, limits.max_decompressed_bytes)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            if not chunk:
                continue
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise BodyError(
                    413,
                    "http.body_too_large",
                    f"body is over the limit of {limits.max_body_bytes} bytes (server.max_body_bytes); "
                    f"reading stopped after {size} bytes",
                    (inflater.excerpt() if inflater else _first(chunks, chunk)),
                )
            if inflater is None:
                if size > limits.max_decompressed_bytes:
                    raise BodyError(
                        413,
                        "http.body_too_large",
                        f"body is over the limit of {limits.max_decompressed_bytes} bytes "
                        f"(server.max_decompressed_bytes); reading stopped after {size} bytes",
                        _first(chunks, chunk),
                    )
                chunks.append(chunk)
            else:
                await asyncio.get_running_loop().run_in_executor(_inflate_pool(), inflater.feed, chunk)
        return b"".join(chunks) if inflater is None else inflater.finish()


def _first(chunks: list[bytes], chunk: bytes) -> bytes:
    return (chunks[0] if chunks else chunk)[:EXCERPT_BYTES]


def _inflate_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_INFLATE_THREADS, thread_name_prefix="http-inflate")
    return _pool


class Inflater:
    """Incremental gzip/deflate decoding with a cap on the output (one body, one thread at a time).

    gzip bodies may hold several members one after another (``gzip.decompress`` accepts that,
    and so do we); ``deflate`` is the zlib format RFC 9110 names."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding = "deflate" if encoding == "deflate" else "gzip"
        self.limit = limit
        self._wbits = zlib.MAX_WBITS if self.encoding == "deflate" else 16 + zlib.MAX_WBITS
        self._z = zlib.decompressobj(self._wbits)
        self._out: list[bytes] = []
        self.size = 0  # decompressed bytes so far
        self.fed = 0  # compressed bytes so far

    def excerpt(self) -> bytes:
        return self._out[0][:EXCERPT_BYTES] if self._out else b""

    def feed(self, data: bytes) -> None:
        start = self.fed
        self.fed += len(data)
        while data:
            room = self.limit - self.size
            try:
                # room + 1: one byte more than allowed tells "over the cap" from "exactly at it"
                piece = self._z.decompress(data, room + 1)
            except zlib.error as exc:
                raise BodyError(
                    400,
                    "http.bad_encoding",
                    f"body is not valid {self.encoding} ({exc}) in the compressed bytes {start}..{self.fed}",
                    data[:EXCERPT_BYTES],
                ) from None
            self.size += len(piece)
            if piece:
                self._out.append(piece)
            if self.size > self.limit:
                raise BodyError(
                    413,
                    "http.decompressed_too_large",
                    f"{self.encoding} body inflates to more than {self.limit} bytes "
                    f"(server.max_decompressed_bytes); stopped after {self.fed} compressed bytes",
                    self.excerpt(),
                )
            if self._z.eof:
                data = self._z.unused_data
                if data and self.encoding == "gzip":
                    self._z = zlib.decompressobj(self._wbits)  # the next gzip member
                    continue
                if data.strip(b"\0"):
                    raise BodyError(
                        400,
                        "http.bad_encoding",
                        f"{len(data)} bytes of data follow the end of the {self.encoding} stream",
                        data[:EXCERPT_BYTES],
                    )
                return
            data = self._z.unconsumed_tail

    def finish(self) -> bytes:
        if self.fed and not self._z.eof:
            raise BodyError(
                400,
                "http.bad_encoding",
                f"{self.encoding} body ends early (truncated after {self.fed} compressed bytes)",
                self.excerpt(),
            )
        return b"".join(self._out)
