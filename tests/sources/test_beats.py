"""The Beats (Lumberjack v2) listener: frames, ACKs after durable, and bad input.

The frames are written here by hand from the protocol (go-lumber's reader and client code); the
good path is also driven by the real client, pylogbeat, against a listener on a real journal.
"""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pylogbeat
import pytest

from norrvakt.event import Event, RawRecord
from norrvakt.journal.log import JournalConfig
from norrvakt.node.pipeline import Pipeline
from norrvakt.sources.beats import (
    MAX_FRAME_BYTES,
    BeatsFrameError,
    BeatsSource,
    BeatsSourceConfig,
    LumberjackDecoder,
    ack_frame,
)


def window(n: int) -> bytes:
    return b"2W" + struct.pack(">I", n)


def jframe(seq: int, doc: Any) -> bytes:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return b"2J" + struct.pack(">II", seq, len(body)) + body


def cframe(inner: bytes, raw: bytes | None = None) -> bytes:
    body = zlib.compress(inner) if raw is None else raw
    return b"2C" + struct.pack(">I", len(body)) + body


# --- the decoder ---------------------------------------------------------------------------------


def test_window_and_json_frames_byte_by_byte() -> None:
    stream = window(2) + jframe(1, {"message": "a"}) + jframe(2, {"message": "b"})
    dec = LumberjackDecoder()
    frames = [f for i in range(len(stream)) for f in dec.feed(stream[i : i + 1])]
    assert [(f.seq, json.loads(f.payload)["message"]) for f in frames] == [(1, "a"), (2, "b")]
    assert frames[1].offset == 6 + len(jframe(1, {"message": "a"}))
    assert dec.window == 2 and dec.buffered == 0


def test_compressed_frame_holds_json_frames_and_another_compressed_one() -> None:
    inner = jframe(1, {"n": 1}) + cframe(jframe(2, {"n": 2}))
    frames = LumberjackDecoder().feed(window(2) + cframe(inner))
    assert [f.seq for f in frames] == [1, 2]
    assert all(f.offset == 6 for f in frames)  # inside a 2C: the compressed frame's offset


def test_an_empty_window_is_nothing() -> None:
    assert LumberjackDecoder().feed(window(0)) == []


@pytest.mark.parametrize(
    ("stream", "error_type", "words"),
    [
        (b"2D" + struct.pack(">II", 1, 1) + b"\x00\x00\x00\x01k\x00\x00\x00\x01v", "beats.bad_frame", "2D"),
        (b"1W" + struct.pack(">I", 1), "beats.bad_version", "Lumberjack v1"),
        (b"GET / HTTP/1.1\r\n", "beats.bad_version", "version byte"),
        (b"2X\x00\x00", "beats.bad_frame", "unknown frame type 'X'"),
        (b"2A\x00\x00\x00\x01", "beats.bad_frame", "ACK frame from the sender"),
        (cframe(b"", raw=b"not zlib at all"), "beats.bad_compression", "not zlib"),
        (cframe(b"", raw=zlib.compress(jframe(1, {}))[:-6]), "beats.bad_compression", "cut off"),
        (cframe(b"", raw=zlib.compress(jframe(1, {})) + b"junk"), "beats.bad_compression", "4 bytes after"),
        (cframe(jframe(1, {"a": 1})[:-3]), "beats.truncated", "ends inside a frame"),
        (cframe(window(1)), "beats.bad_frame", "window cannot be inside"),
        (b"2J" + struct.pack(">II", 1, MAX_FRAME_BYTES + 1), "beats.oversized_frame", "exceeds"),
        (b"2C" + struct.pack(">I", MAX_FRAME_BYTES + 1), "beats.oversized_frame", "exceeds"),
    ],
)
def test_bad_frames_name_the_offset_and_the_bytes(stream: bytes, error_type: str, words: str) -> None:
    good = window(2) + jframe(1, {"ok": True})
    with pytest.raises(BeatsFrameError) as info:
        LumberjackDecoder().feed(good + stream)
    err = info.value
    assert err.error_type == error_type
    assert words in str(err)
    assert err.offset == len(good)
    assert f"stream offset {len(good)}" in str(err)
    assert err.bad and str(err).endswith(err.bad[:32].hex(" "))
    assert [f.seq for f in err.frames] == [1]  # the good frame before it is not lost


def test_compressed_frames_nested_too_deep() -> None:
    inner = jframe(1, {})
    for _ in range(5):
        inner = cframe(inner)
    with pytest.raises(BeatsFrameError, match="nested more than 4"):
        LumberjackDecoder().feed(inner)


def test_a_frame_cut_off_by_the_end_of_the_stream() -> None:
    dec = LumberjackDecoder()
    assert dec.feed(window(1) + jframe(1, {"a": 1})[:7]) == []
    with pytest.raises(BeatsFrameError) as info:
        dec.finish()
    assert info.value.error_type == "beats.truncated" and info.value.offset == 6


def test_ack_frame() -> None:
    assert ack_frame(3) == b"2A\x00\x00\x00\x03"


# --- the listener on a real journal --------------------------------------------------------------


class Journaled:
    """A real pipeline on a journal in tmp_path, and the events it committed."""

    def __init__(self, tmp_path: Path) -> None:
        self.journal = JournalConfig(directory=tmp_path / "journal").build()
        self.pipeline = Pipeline(self.journal)
        self.events: list[Event] = []
        self.pipeline.committed_hooks.append(self.events.extend)


class HeldSink:
    """A RecordSink whose futures resolve only when the test says the records are durable."""

    def __init__(self, inner: Pipeline) -> None:
        self.inner = inner
        self.held: list[tuple[asyncio.Future[None], asyncio.Future[None]]] = []

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        return self._hold(self.inner.submit_nowait(records))

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]:
        return self._hold(self.inner.commit_nowait(events))

    def transport_error(self, source_id: str, reason: str) -> None:
        self.inner.transport_error(source_id, reason)

    def _hold(self, real: asyncio.Future[None]) -> asyncio.Future[None]:
        outer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held.append((real, outer))
        return outer

    async def release(self) -> None:
        for real, outer in self.held:
            await real
            outer.set_result(None)
        self.held.clear()


@asynccontextmanager
async def listening(sink: Any, max_message_bytes: int = 65536) -> AsyncIterator[BeatsSource]:
    config = BeatsSourceConfig(id="beats", host="127.0.0.1", port=0, tenant="lulea",
                               max_message_bytes=max_message_bytes)  # fmt: skip
    source = config.build()
    await source.start(sink)
    try:
        yield source
    finally:
        await asyncio.wait_for(source.stop(), 10)  # a held future never released must not hang


async def _run(tmp_path: Path, body: Any) -> Journaled:
    j = Journaled(tmp_path)
    await j.pipeline.start()
    try:
        await body(j)
    finally:
        await j.pipeline.stop()
        j.journal.close()
    return j


def test_pylogbeat_windows_are_acked_and_journaled_in_order(tmp_path: Path) -> None:
    docs = [{"message": f"event {i}", "host": {"name": "web01"}} for i in range(250)]

    async def body(j: Journaled) -> None:
        async with listening(j.pipeline) as source:

            def send() -> None:
                with pylogbeat.PyLogBeatClient("127.0.0.1", source.port, timeout=10) as client:
                    for start in range(0, len(docs), 100):  # three windows, seq 1..250 over them
                        client.send(docs[start : start + 100])

            await asyncio.to_thread(send)

    j = asyncio.run(_run(tmp_path, body))
    assert [e.message for e in j.events] == [d["message"] for d in docs]
    assert {(e.tenant, e.source, e.ecs.get("host.name"), e.kind) for e in j.events} == {
        ("lulea", "beats", "web01", "event")
    }


def test_the_ack_waits_until_the_records_are_durable(tmp_path: Path) -> None:
    async def body(j: Journaled) -> None:
        sink = HeldSink(j.pipeline)
        async with listening(sink) as source:
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            writer.write(window(2) + cframe(jframe(1, {"message": "x"}) + jframe(2, {"message": "y"})))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.readexactly(6), 0.5)
            assert sink.held  # journaled, but not yet said to be durable: no ACK
            await sink.release()
            assert await asyncio.wait_for(reader.readexactly(6), 5) == ack_frame(2)
            assert [e.message for e in j.events] == ["x", "y"]
            writer.close()

    asyncio.run(_run(tmp_path, body))


def test_pipelined_windows_each_get_their_own_ack(tmp_path: Path) -> None:
    """Beats' default pipelining sends the next window before the ACK; seqs restart per window."""
    first = window(2) + cframe(jframe(1, {"message": "w1a"}) + jframe(2, {"message": "w1b"}))
    second = (
        window(3)
        + jframe(1, {"message": "w2a"})
        + jframe(2, {"message": "w2b"})
        + jframe(3, {"message": "w2c"})
    )

    async def body(j: Journaled) -> None:
        async with listening(j.pipeline) as source:
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            writer.write(first + second)  # one write: most likely one read
            assert await asyncio.wait_for(reader.readexactly(12), 5) == ack_frame(2) + ack_frame(3)
            writer.close()

    j = asyncio.run(_run(tmp_path, body))
    assert [e.message for e in j.events] == ["w1a", "w1b", "w2a", "w2b", "w2c"]


def test_a_slow_journal_gets_keepalive_acks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("norrvakt.sources.beats.KEEPALIVE_S", 0.2)

    async def body(j: Journaled) -> None:
        sink = HeldSink(j.pipeline)
        async with listening(sink) as source:
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            writer.write(window(1) + jframe(7, {"message": "slow"}))
            assert await asyncio.wait_for(reader.readexactly(6), 5) == ack_frame(0)
            await sink.release()
            acks = [await asyncio.wait_for(reader.readexactly(6), 5)]
            while acks[-1] == ack_frame(0):
                acks.append(await asyncio.wait_for(reader.readexactly(6), 5))
            assert acks[-1] == ack_frame(7)
            writer.close()

    asyncio.run(_run(tmp_path, body))


async def _send_and_read(port: int, data: bytes, eof: bool = False) -> bytes:
    """Send ``data`` (and half-close), read until the server closes; what it answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    if eof:
        writer.write_eof()
    got = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return got


def test_a_2d_frame_acks_what_came_before_keeps_an_error_and_closes(tmp_path: Path) -> None:
    good = window(3) + jframe(1, {"message": "before"})
    bad = b"2D" + struct.pack(">II", 2, 1) + b"\x00\x00\x00\x01k\x00\x00\x00\x01v"

    async def body(j: Journaled) -> None:
        async with listening(j.pipeline) as source:
            got = await _send_and_read(source.port, good + bad + jframe(3, {"message": "after"}))
            assert got == ack_frame(1)  # then EOF: the connection is closed

    j = asyncio.run(_run(tmp_path, body))
    assert [e.message for e in j.events if e.kind == "event"] == ["before"]
    (err,) = [e for e in j.events if e.kind == "pipeline_error"]
    assert err.ecs["error.type"] == "beats.bad_frame"
    assert f"stream offset {len(good)}" in err.ecs["error.message"]
    assert "2D key/value data frame" in err.ecs["error.message"]
    assert err.raw.startswith(b"2D")
    assert err.tenant == "lulea" and err.source == "beats"


def test_bad_zlib_is_an_error_and_the_connection_closes(tmp_path: Path) -> None:
    async def body(j: Journaled) -> None:
        async with listening(j.pipeline) as source:
            assert await _send_and_read(source.port, window(1) + cframe(b"", raw=b"\x78\x9cnope")) == b""

    j = asyncio.run(_run(tmp_path, body))
    (err,) = j.events
    assert err.ecs["error.type"] == "beats.bad_compression"
    assert "stream offset 6" in err.ecs["error.message"] and "78 9c" in err.ecs["error.message"]


def test_a_truncated_frame_at_the_end_of_the_connection(tmp_path: Path) -> None:
    async def body(j: Journaled) -> None:
        async with listening(j.pipeline) as source:
            got = await _send_and_read(
                source.port, window(2) + jframe(1, {"message": "whole"}) + b"2J\x00\x00", eof=True
            )
            assert got == ack_frame(1)

    j = asyncio.run(_run(tmp_path, body))
    assert [e.kind for e in j.events] == ["event", "pipeline_error"]
    assert j.events[1].ecs["error.type"] == "beats.truncated"


def test_an_oversized_event_is_kept_cut_and_acked(tmp_path: Path) -> None:
    big = {"message": "x" * 5000}

    async def body(j: Journaled) -> None:
        async with listening(j.pipeline, max_message_bytes=1024) as source:
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            writer.write(
                window(3) + cframe(jframe(1, {"message": "a"}) + jframe(2, big) + jframe(3, {"message": "c"}))
            )
            assert await asyncio.wait_for(reader.readexactly(6), 5) == ack_frame(3)
            writer.close()

    j = asyncio.run(_run(tmp_path, body))
    assert [e.kind for e in j.events] == ["event", "pipeline_error", "event"]
    err = j.events[1]
    assert err.ecs["error.type"] == "beats.oversized"
    assert "seq 2" in err.ecs["error.message"] and len(err.raw) == 1024


def test_a_document_that_is_not_json_is_a_parser_error_and_acked(tmp_path: Path) -> None:
    async def body(j: Journaled) -> None:
        async with listening(j.pipeline) as source:
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            writer.write(window(2) + jframe(1, b'{"message": "broken') + jframe(2, {"message": "fine"}))
            assert await asyncio.wait_for(reader.readexactly(6), 5) == ack_frame(2)
            writer.close()

    j = asyncio.run(_run(tmp_path, body))
    assert [e.kind for e in j.events] == ["pipeline_error", "event"]
    assert j.events[0].ecs["error.type"] == "json.malformed_json"
    assert "byte offset" in j.events[0].ecs["error.message"]
    assert j.events[0].raw == b'{"message": "broken'
