"""The Fluent Forward listener in-process (norrvakt.sources.forward): fluent-logger, the real
client, in Message mode; hand-built frames for the other modes, the ack, the shared-key
handshake, TLS and bad input — each problem a pipeline_error, the connection closed only where
the stream cannot be resynchronised."""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import ssl
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from fluent import sender as fluent_sender

from norrvakt.config import load_settings
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record
from norrvakt.sources.builtin import build_sources
from norrvakt.sources.forward import ForwardSource, ForwardSourceConfig

T = 1_795_729_418
KEY = b"kommun-delad-nyckel"


def run(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


class Sink:
    """A RecordSink that keeps what it gets. With ``hold``, submitted records are "durable"
    only when :meth:`release` is called — to see that no ack goes out before."""

    def __init__(self, hold: bool = False) -> None:
        self.records: list[RawRecord] = []
        self.errors: list[Event] = []
        self.counted: list[tuple[str, str]] = []
        self.hold = hold
        self.held: list[asyncio.Future[None]] = []

    def _future(self, hold: bool) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if hold:
            self.held.append(fut)
        else:
            fut.set_result(None)
        return fut

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        self.records.extend(records)
        return self._future(self.hold)

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]:
        self.errors.extend(events)
        return self._future(False)

    def transport_error(self, source_id: str, reason: str) -> None:
        self.counted.append((source_id, reason))

    def release(self, error: Exception | None = None) -> None:
        for fut in self.held:
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        self.held.clear()

    def events(self) -> list[Event]:
        return [parse_record(r) for r in self.records]

    async def wait(self, records: int = 0, errors: int = 0, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.records) < records or len(self.errors) < errors:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.records)} records, {len(self.errors)} errors")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def listening(sink: Sink | None = None, **kw: Any) -> AsyncIterator[tuple[ForwardSource, Sink]]:
    sink = sink or Sink()
    kw.setdefault("tenant", "lulea")
    src = ForwardSourceConfig(id="fw", host="127.0.0.1", port=0, **kw).build()
    await src.start(sink)
    try:
        yield src, sink
    finally:
        await src.stop()


async def _connect(port: int, tls: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return await asyncio.open_connection("127.0.0.1", port, ssl=ctx)


async def _read_one(reader: asyncio.StreamReader, timeout: float = 5) -> Any:
    unpacker = msgpack.Unpacker(raw=False)
    while True:
        data = await asyncio.wait_for(reader.read(65536), timeout)
        if not data:
            raise ConnectionError("closed")
        unpacker.feed(data)
        for obj in unpacker:
            return obj


async def _closed(reader: asyncio.StreamReader, timeout: float = 5) -> bool:
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except ConnectionResetError:
        return True  # closed with our bytes unread
    except TimeoutError:
        return False
    return True


def _docs(sink: Sink) -> list[dict[str, Any]]:
    return [orjson.loads(r.payload) for r in sink.records]


# -- the real client ----------------------------------------------------------------------------


@run
async def test_fluent_logger_message_mode() -> None:
    async with listening() as (src, sink):
        mark = uuid.uuid4().hex[:8]

        def send() -> None:
            logger = fluent_sender.FluentSender("app", host="127.0.0.1", port=src.port)
            assert logger.emit("login", {"user": "anna", "message": f"login ok {mark}"}), logger.last_error
            exact = fluent_sender.FluentSender(
                "app", host="127.0.0.1", port=src.port, nanosecond_precision=True
            )
            assert exact.emit_with_time("login", T + 0.25, {"message": f"exact {mark}", "host": "web01"})
            logger.close()
            exact.close()

        await asyncio.to_thread(send)
        await sink.wait(records=2)
        first, second = sink.events()
        assert first.message == f"login ok {mark}" and first.fields["fluent.tag"] == "app.login"
        assert first.ecs["user.name"] == "anna" and first.tenant == "lulea"
        assert second.ts == (T * 1_000_000) + 250_000 and second.ecs["host.name"] == "web01"
        assert all(r.format == "fluent" for r in sink.records) and not sink.errors


# -- modes and the ack --------------------------------------------------------------------------


@run
async def test_forward_packed_and_compressed_modes_in_one_connection() -> None:
    async with listening() as (src, sink):
        _, writer = await _connect(src.port)
        et = msgpack.ExtType(0, struct.pack(">II", T, 1000))
        packed = msgpack.packb([T, {"log": "p1"}]) + msgpack.packb([et, {"log": "p2"}])
        frames = [
            ["fwd", [[T, {"log": "f1"}], [T, {"log": "f2"}]]],
            ["pk", packed],
            ["gz", gzip.compress(packed[:11]) + gzip.compress(packed[11:]), {"compressed": "gzip"}],
        ]
        writer.write(
            b"".join(msgpack.packb(f, use_bin_type=True) for f in frames) + b"\xc0"
        )  # nil: heartbeat
        await writer.drain()
        await sink.wait(records=6)
        assert [d["record"]["log"] for d in _docs(sink)] == ["f1", "f2", "p1", "p2", "p1", "p2"]
        assert [d["tag"] for d in _docs(sink)] == ["fwd", "fwd", "pk", "pk", "gz", "gz"]
        assert not sink.errors
        writer.close()


@run
async def test_chunk_is_acknowledged_only_once_durable() -> None:
    async with listening(Sink(hold=True)) as (src, sink):
        reader, writer = await _connect(src.port)
        writer.write(msgpack.packb(["t", [[T, {"log": "a"}]], {"chunk": "Y2h1bmstMQ==", "size": 1}]))
        await writer.drain()
        await sink.wait(records=1)
        with pytest.raises(TimeoutError):
            await _read_one(reader, timeout=0.5)  # not durable yet: no ack
        sink.release()
        assert await _read_one(reader) == {"ack": "Y2h1bmstMQ=="}
        writer.close()


@run
async def test_no_ack_when_the_journal_fails() -> None:
    async with listening(Sink(hold=True)) as (src, sink):
        reader, writer = await _connect(src.port)
        writer.write(msgpack.packb(["t", T, {"log": "a"}, {"chunk": "bm8tYWNr"}]))
        await writer.drain()
        await sink.wait(records=1)
        sink.release(OSError("disk full"))
        assert await _closed(reader)  # aborted without an ack: the sender resends
        writer.close()


@run
async def test_a_bad_entry_is_kept_and_the_chunk_still_acknowledged() -> None:
    async with listening() as (src, sink):
        reader, writer = await _connect(src.port)
        frame = ["t", [[T, {"log": "good"}], [T, "not a map"]], {"chunk": "YmFk"}]
        writer.write(msgpack.packb(frame))
        await writer.drain()
        assert await _read_one(reader) == {"ack": "YmFk"}
        assert [d["record"]["log"] for d in _docs(sink)] == ["good"]
        (err,) = sink.errors
        assert err.ecs["error.type"] == "forward.bad_entry"
        assert "fw:" in err.ecs["error.message"] and "entries[1].record" in err.ecs["error.message"]
        assert "'not a map'" in err.ecs["error.message"]
        # the connection goes on
        writer.write(msgpack.packb(["t", T, {"log": "after"}]))
        await writer.drain()
        await sink.wait(records=2)
        writer.close()


# -- bad input ----------------------------------------------------------------------------------


@run
async def test_unknown_mode_is_an_error_and_the_stream_goes_on() -> None:
    async with listening() as (src, sink):
        reader, writer = await _connect(src.port)
        writer.write(
            msgpack.packb(["t", {"what": "is this"}, {"chunk": "dW5r"}]) + msgpack.packb(["t", T, {"a": 1}])
        )
        await writer.drain()
        assert await _read_one(reader) == {"ack": "dW5r"}
        await sink.wait(records=1, errors=1)
        err = sink.errors[0]
        assert err.ecs["error.type"] == "forward.unknown_mode" and "frame[1]" in err.ecs["error.message"]
        assert msgpack.unpackb(err.raw)[1] == {"what": "is this"}  # the frame kept as it came
        assert ("fw", "forward.unknown_mode") in sink.counted
        writer.close()


@run
async def test_bad_gzip_is_an_error() -> None:
    async with listening() as (src, sink):
        _, writer = await _connect(src.port)
        writer.write(
            msgpack.packb(["t", b"\x1f\x8b\x08 not really", {"compressed": "gzip"}], use_bin_type=True)
        )
        await writer.drain()
        await sink.wait(errors=1)
        assert sink.errors[0].ecs["error.type"] == "forward.bad_gzip"
        writer.close()


@run
async def test_garbage_closes_the_connection_after_what_came_before() -> None:
    async with listening() as (src, sink):
        reader, writer = await _connect(src.port)
        good = msgpack.packb(["t", T, {"log": "before"}])
        writer.write(good + b"\xc1 this is not msgpack")
        await writer.drain()
        assert await _closed(reader)
        assert [d["record"]["log"] for d in _docs(sink)] == ["before"]
        (err,) = sink.errors
        assert err.ecs["error.type"] == "forward.bad_msgpack"
        assert f"stream offset {len(good)})" in err.ecs["error.message"]
        assert err.raw.startswith(b"\xc1 this")


@run
async def test_a_frame_msgpack_cannot_build_closes_the_connection() -> None:
    async with listening() as (src, sink):
        reader, writer = await _connect(src.port)
        writer.write(b"\x93\xa1t\x01\x81\x90\x00")  # ["t", 1, {[]: 0}]
        await writer.drain()
        assert await _closed(reader)
        (err,) = sink.errors
        assert err.ecs["error.type"] == "forward.bad_msgpack" and "TypeError" in err.ecs["error.message"]


@run
async def test_oversized_frame_closes_the_connection() -> None:
    async with listening(max_frame_bytes=64 * 1024) as (src, sink):
        reader, writer = await _connect(src.port)
        writer.write(msgpack.packb(["t", T, {"log": "x" * 200_000}]))
        await writer.drain()
        assert await _closed(reader)
        (err,) = sink.errors
        assert err.ecs["error.type"] == "forward.oversized" and "65536" in err.ecs["error.message"]


@run
async def test_truncated_frame_at_eof() -> None:
    async with listening() as (src, sink):
        reader, writer = await _connect(src.port)
        writer.write(msgpack.packb(["t", T, {"log": "cut"}])[:-2])
        writer.write_eof()
        assert await _closed(reader)
        (err,) = sink.errors
        assert err.ecs["error.type"] == "forward.truncated_frame" and not sink.records


@run
async def test_oversized_entry_is_cut_and_the_rest_flows() -> None:
    async with listening(max_message_bytes=1000) as (src, sink):
        _, writer = await _connect(src.port)
        writer.write(msgpack.packb(["t", [[T, {"log": "y" * 5000}], [T, {"log": "small"}]]]))
        await writer.drain()
        await sink.wait(records=1, errors=1)
        assert sink.errors[0].ecs["error.type"] == "forward.oversized" and len(sink.errors[0].raw) == 1000
        writer.close()


# -- the shared-key handshake -------------------------------------------------------------------


def _ping(helo: Any, key: bytes, hostname: str = "ws01.lulea.kommun.local") -> tuple[bytes, bytes]:
    nonce = helo[1]["nonce"]
    salt = b"klientens-salt-16"
    digest = hashlib.sha512(salt + hostname.encode() + nonce + key).hexdigest()
    return msgpack.packb(["PING", hostname, salt, digest, "", ""], use_bin_type=True), salt


@run
async def test_shared_key_handshake() -> None:
    async with listening(shared_key=KEY) as (src, sink):
        reader, writer = await _connect(src.port)
        helo = await _read_one(reader)
        assert helo[0] == "HELO" and len(helo[1]["nonce"]) == 16 and helo[1]["auth"] == b""
        ping, salt = _ping(helo, KEY)
        writer.write(ping)
        pong = await _read_one(reader)
        assert pong[:3] == ["PONG", True, ""]
        host = pong[3]
        assert pong[4] == hashlib.sha512(salt + host.encode() + helo[1]["nonce"] + KEY).hexdigest()
        writer.write(msgpack.packb(["t", T, {"log": "authenticated"}, {"chunk": "YXV0aA=="}]))
        assert await _read_one(reader) == {"ack": "YXV0aA=="}
        assert _docs(sink)[0]["record"]["log"] == "authenticated"
        writer.close()


@run
async def test_wrong_shared_key_is_refused_and_closed() -> None:
    async with listening(shared_key=KEY) as (src, sink):
        reader, writer = await _connect(src.port)
        helo = await _read_one(reader)
        writer.write(_ping(helo, b"fel nyckel")[0])
        pong = await _read_one(reader)
        assert pong[:2] == ["PONG", False]
        assert await _closed(reader)
        (err,) = sink.errors
        assert err.ecs["error.type"] == "forward.auth_failed"
        assert KEY.decode() not in err.ecs["error.message"]


@run
async def test_data_before_the_handshake_is_refused() -> None:
    async with listening(shared_key=KEY) as (src, sink):

        def send() -> bool:
            logger = fluent_sender.FluentSender("app", host="127.0.0.1", port=src.port)
            ok = bool(logger.emit("x", {"message": "no key"}))
            logger.close()
            return ok

        await asyncio.to_thread(send)
        await sink.wait(errors=1)
        assert not sink.records and sink.errors[0].ecs["error.type"] == "forward.auth_failed"


def test_the_key_is_never_in_the_repr_of_the_config(tmp_path: Path) -> None:
    assert KEY.decode() not in repr(ForwardSourceConfig(id="fw", shared_key=KEY))


# -- TLS and settings ---------------------------------------------------------------------------


@run
async def test_tls_with_handshake(tmp_path: Path) -> None:
    cfg = {
        "protocol": "tls",
        "tls_cert": tmp_path / "s.crt",
        "tls_key": tmp_path / "s.key",
        "shared_key": KEY,
    }
    async with listening(**cfg) as (src, sink):
        reader, writer = await _connect(src.port, tls=True)
        helo = await _read_one(reader)
        writer.write(_ping(helo, KEY)[0])
        assert (await _read_one(reader))[1] is True
        writer.write(msgpack.packb(["t", T, {"log": "over tls"}, {"chunk": "dGxz"}]))
        assert await _read_one(reader) == {"ack": "dGxz"}
        assert _docs(sink)[0]["record"]["log"] == "over tls"
        writer.close()


def test_settings_build_a_forward_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "fluent.key"
    key_file.write_text("  from-a-file\n")
    cfg = tmp_path / "n.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}"\n[[sources]]\nid = "fluent-bit"\ntype = "forward"\ntenant = "lulea"\n'
        f'shared_key_file = "{key_file}"\n[[sources]]\nid = "fb-2"\ntype = "forward"\nport = 24225\n'
        'tenant = "boden"\n'
    )
    monkeypatch.setenv("NORRVAKT_SOURCE_FB_2_SHARED_KEY", "from-the-env")
    first, second = build_sources(load_settings(cfg))
    assert isinstance(first, ForwardSource) and isinstance(second, ForwardSource)
    assert (first.port, first.config.shared_key) == (24224, b"from-a-file")
    assert (second.port, second.config.shared_key) == (24225, b"from-the-env")
    assert "from-a-file" not in first.describe()
