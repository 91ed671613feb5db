"""The audisp listener in-process (norrvakt.sources.audisp): the managed header and its ACK, the
event assembly, ACKs only after the spool (and the journal) made records durable, bad input kept
as pipeline_error events, and the spool of a listener that died journaled by the next one. The
real client, audisp-remote, is in tests/e2e/test_audisp_remote.py."""

from __future__ import annotations

import asyncio
import functools
import os
import struct
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from norrvakt.config import ConfigError, load_settings
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record
from norrvakt.sources.audisp import AudispSource, AudispSourceConfig
from norrvakt.sources.audisp_wire import (
    HEADER_SIZE,
    MAGIC,
    TYPE_ACK,
    TYPE_HEARTBEAT,
    Assembler,
    pack_message,
    pack_reply,
    unpack_header,
)
from norrvakt.sources.builtin import build_sources


def run(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


class Sink:
    """A RecordSink that keeps what it gets; with ``hold``, records become durable only when
    :meth:`release` says so (errors always at once)."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.records: list[RawRecord] = []
        self.errors: list[Event] = []
        self.counted: list[tuple[str, str]] = []
        self.held: list[asyncio.Future[None]] = []

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        self.records.extend(records)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.hold:
            self.held.append(fut)
        else:
            fut.set_result(None)
        return fut

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]:
        self.errors.extend(events)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def transport_error(self, source_id: str, reason: str) -> None:
        self.counted.append((source_id, reason))

    def release(self) -> None:
        for fut in self.held:
            if not fut.done():
                fut.set_result(None)
        self.held.clear()

    def events(self) -> list[Event]:
        return [parse_record(r) for r in self.records]

    async def wait(self, records: int = 0, errors: int = 0, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.records) < records or len(self.errors) < errors:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.records)} records, {len(self.errors)} errors")
            await asyncio.sleep(0.01)


@asynccontextmanager
async def listening(
    spool_dir: Path, sink: Sink | None = None, **kw: Any
) -> AsyncIterator[tuple[AudispSource, Sink]]:
    sink = sink or Sink()
    src = AudispSourceConfig(
        id="audisp", spool_dir=spool_dir, host="127.0.0.1", port=0, tenant="lulea", **kw
    ).build()
    await src.start(sink)
    try:
        yield src, sink
    finally:
        await src.stop()


def _line(serial: int, rtype: str, body: str) -> bytes:
    return f"node=web1 type={rtype} msg=audit(1764680000.{serial % 1000:03d}:{serial}): {body}".encode()


def _exec_lines(serial: int, argv0: str = "id") -> list[bytes]:
    return [
        _line(
            serial,
            "SYSCALL",
            f'arch=c000003e syscall=59 success=yes exit=0 auid=1000 uid=0 comm="{argv0}" '
            f'exe="/usr/bin/{argv0}"',
        ),
        _line(serial, "EXECVE", f'argc=1 a0="{argv0}"'),
        _line(serial, "CWD", 'cwd="/root"'),
        _line(serial, "PATH", f'item=0 name="/usr/bin/{argv0}" nametype=NORMAL'),
        _line(serial, "PROCTITLE", f"proctitle={argv0.encode().hex().upper()}"),
    ]


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _ack(reader: asyncio.StreamReader, timeout: float = 5) -> tuple[int, int, bytes]:
    head = await asyncio.wait_for(reader.readexactly(HEADER_SIZE), timeout)
    h = unpack_header(head)
    text = await reader.readexactly(h.length) if h.length else b""
    assert h.magic == MAGIC
    return h.type, h.sequence, text


# -- the wire ---------------------------------------------------------------------------------


def test_header_layout_is_little_endian_with_the_magic_first() -> None:
    msg = pack_message(7, b"type=EOE msg=audit(1.0:1): \n")
    assert msg[:4] == b"\xfe\x00\x00\xff" and msg[4:6] == b"\x00\x00"
    assert struct.unpack_from("<IHI", msg, 6) == (0, 28, 7)
    h = unpack_header(pack_reply(7))
    assert (h.type, h.length, h.sequence) == (TYPE_ACK, 0, 7)


def test_assembler_groups_records_by_serial() -> None:
    asm = Assembler()
    closed = [ev for line in _exec_lines(1) + _exec_lines(2) for ev in asm.add(line, 0)[0]]
    assert [len(ev.lines) for ev in closed] == [5]  # the second is still open
    assert closed[0].key == b"web1/1764680000.001:1"
    assert [len(ev.lines) for ev in asm.add(_line(2, "EOE", ""), 0)[0]] == [5]
    assert asm.open is None


def test_assembler_lets_a_line_that_is_no_record_stand_alone() -> None:
    asm = Assembler()
    asm.add(_exec_lines(1)[0], 0)
    closed, joined = asm.add(b"garbage", 0)
    assert not joined and [ev.lines for ev in closed] == [[_exec_lines(1)[0]], [b"garbage"]]


def test_assembler_bounds_an_event() -> None:
    asm = Assembler(max_records=3)
    closed = [ev for i in range(7) for ev in asm.add(_line(1, "PATH", f"item={i}"), 0)[0]]
    assert [len(ev.lines) for ev in closed] == [3, 3] and asm.open is not None


# -- managed format ---------------------------------------------------------------------------


@run
async def test_managed_records_are_acked_after_spooling_and_journaled_as_one_event(tmp_path: Path) -> None:
    sink = Sink(hold=True)
    async with listening(tmp_path, sink) as (src, _):
        reader, writer = await _connect(src.port)
        for i, line in enumerate(_exec_lines(11), start=2):
            writer.write(pack_message(i, line + b"\n"))
            assert await _ack(reader) == (TYPE_ACK, i, b"")
        # All five acknowledged, none journaled yet: they are in the event's spool file.
        assert sink.records == []
        [spooled] = list(tmp_path.glob("audisp.*.spool"))
        lines = spooled.read_bytes().split(b"\n")
        assert orjson.loads(lines[0])["tenant"] == "lulea" and lines[1:6] == _exec_lines(11)
        writer.write(pack_message(7, _exec_lines(12)[0] + b"\n"))  # a new serial ends the event
        assert (await _ack(reader))[1] == 7
        await sink.wait(records=1)
        assert spooled.exists()  # not durable in the journal yet
        sink.release()
        await asyncio.sleep(0.05)
        assert not spooled.exists()
        [event] = sink.events()
        assert event.fields["auditd.types"] == "SYSCALL EXECVE CWD PATH PROCTITLE" and event.tenant == "lulea"
        writer.close()
        await sink.wait(records=2)  # the open event of serial 12, journaled at the close
        sink.release()
        await asyncio.sleep(0.05)
        assert list(tmp_path.glob("audisp.*.spool")) == [] and not src.connections


@run
async def test_the_reply_steps_end_with_the_connection(tmp_path: Path) -> None:
    async with listening(tmp_path) as (src, _):
        reader, writer = await _connect(src.port)
        writer.write(pack_message(2, _exec_lines(15)[0]))
        await _ack(reader)
        [conn] = list(src.connections)
        writer.close()
        await asyncio.sleep(0.1)
        assert conn._worker is not None and conn._worker.done()  # no task left per closed connection


@run
async def test_heartbeat_is_acked(tmp_path: Path) -> None:
    async with listening(tmp_path) as (src, _):
        assert src.describe() == f"audisp/tcp 127.0.0.1:{src.port}"
        reader, writer = await _connect(src.port)
        writer.write(pack_message(41, b"", TYPE_HEARTBEAT))
        assert await _ack(reader) == (TYPE_ACK, 41, b"")
        writer.close()


@run
async def test_bad_magic_is_a_pipeline_error_and_ends_the_connection(tmp_path: Path) -> None:
    async with listening(tmp_path) as (src, sink):
        reader, writer = await _connect(src.port)
        writer.write(pack_message(2, _exec_lines(20)[0] + b"\n"))
        assert (await _ack(reader))[1] == 2
        bad = bytearray(pack_message(3, b"x"))
        bad[0:4] = b"\xfe\x00\x01\xff"
        writer.write(bytes(bad))
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no ACK
        await sink.wait(records=1, errors=1)
        [err] = sink.errors
        msg = err.ecs["error.message"]
        assert err.ecs["error.type"] == "audisp.bad_frame" and "bad magic 0xff0100fe" in msg
        assert f"stream offset {HEADER_SIZE + len(_exec_lines(20)[0]) + 1}" in msg and "audisp" in msg
        assert sink.records[0].payload == _exec_lines(20)[0]  # what was acked is journaled
        assert sink.counted == [("audisp", "audisp.bad_frame")]


@run
async def test_bad_header_version_is_a_pipeline_error(tmp_path: Path) -> None:
    async with listening(tmp_path) as (src, sink):
        reader, writer = await _connect(src.port)
        bad = bytearray(pack_message(2, b"x"))
        bad[4] = 9
        writer.write(bytes(bad))
        assert await asyncio.wait_for(reader.read(), 5) == b""
        await sink.wait(errors=1)
        assert "header version 9" in sink.errors[0].ecs["error.message"]


@run
async def test_too_long_message_is_kept_cut_and_acked(tmp_path: Path) -> None:
    async with listening(tmp_path, max_message_bytes=100) as (src, sink):
        reader, writer = await _connect(src.port)
        long = _line(30, "USER_CMD", "cmd=" + "41" * 200)
        writer.write(pack_message(2, long))
        assert (await _ack(reader))[1] == 2  # after the pipeline_error is durable
        [err] = sink.errors
        assert err.ecs["error.type"] == "audisp.oversized" and err.raw == long[:100]
        assert f"message length {len(long)} exceeds the limit of 100" in err.ecs["error.message"]
        writer.write(pack_message(3, _exec_lines(31)[0]))  # and the stream goes on
        assert (await _ack(reader))[1] == 3
        writer.close()


@run
async def test_stream_ending_inside_a_message_is_kept_as_truncated(tmp_path: Path) -> None:
    async with listening(tmp_path) as (src, sink):
        _, writer = await _connect(src.port)
        writer.write(pack_message(2, _exec_lines(40)[0])[:30])
        writer.write_eof()
        await sink.wait(errors=1)
        err = sink.errors[0]
        assert err.ecs["error.type"] == "audisp.truncated" and "stream offset 0" in err.ecs["error.message"]
        assert err.raw == pack_message(2, _exec_lines(40)[0])[:30]
        writer.close()


# -- ascii format -----------------------------------------------------------------------------


@run
async def test_ascii_lines_become_events_and_the_close_waits_for_the_journal(tmp_path: Path) -> None:
    sink = Sink(hold=True)
    async with listening(tmp_path, sink) as (src, _):
        reader, writer = await _connect(src.port)
        writer.write(b"\n".join(_exec_lines(50) + _exec_lines(51, "wget")) + b"\n")
        writer.write_eof()
        await sink.wait(records=2)
        with pytest.raises(asyncio.TimeoutError):  # not closed before durable
            await asyncio.wait_for(reader.read(), 0.3)
        sink.release()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert [e.ecs["process.name"] for e in sink.events()] == ["id", "wget"]
        assert list(tmp_path.glob("*.spool")) == []  # ascii has no ACK to give: no spool
        writer.close()


@run
async def test_ascii_open_event_ends_after_the_assembly_timeout(tmp_path: Path) -> None:
    async with listening(tmp_path, assemble_timeout_s=0.2) as (src, sink):
        _, writer = await _connect(src.port)
        writer.write(b"\n".join(_exec_lines(60)) + b"\n")
        await sink.wait(records=1, timeout=3)
        assert len(sink.records[0].payload.split(b"\n")) == 5
        writer.close()


@run
async def test_ascii_line_too_long_is_a_pipeline_error_and_the_rest_flows(tmp_path: Path) -> None:
    async with listening(tmp_path, max_message_bytes=200) as (src, sink):
        _, writer = await _connect(src.port)
        writer.write(
            b"type=USER_CMD msg=audit(1.0:1): cmd=" + b"A" * 500 + b"\n" + b"\n".join(_exec_lines(70)) + b"\n"
        )
        writer.write_eof()
        await sink.wait(records=1, errors=1)
        assert sink.errors[0].ecs["error.type"] == "audisp.oversized" and len(sink.errors[0].raw) == 200
        assert sink.events()[0].fields["auditd.types"] == "SYSCALL EXECVE CWD PATH PROCTITLE"
        writer.close()


@run
async def test_a_line_that_is_no_audit_record_is_kept_as_a_parser_error(tmp_path: Path) -> None:
    async with listening(tmp_path) as (src, sink):
        _, writer = await _connect(src.port)
        writer.write(b"hello there\n" + b"\n".join(_exec_lines(80)) + b"\n")
        writer.write_eof()
        await sink.wait(records=2)
        kinds = [(e.kind, e.ecs.get("error.type")) for e in sink.events()]
        assert kinds == [("pipeline_error", "auditd.bad_record"), ("event", None)]
        writer.close()


# -- the spool of a listener that died ----------------------------------------------------


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


@run
async def test_spool_of_a_dead_listener_is_journaled_at_start(tmp_path: Path) -> None:
    header = orjson.dumps({"peer": "192.0.2.7:40000", "tenant": "boden", "received_at": 5})
    lines = _exec_lines(90)
    orphan = tmp_path / f"audisp.{_dead_pid()}.1.spool"
    orphan.write_bytes(header + b"\n" + b"\n".join(lines) + b"\ntype=SYSC")  # a torn last record
    live = tmp_path / f"audisp.{os.getppid()}.1.spool"  # a live process's: left alone
    live.write_bytes(header + b"\n" + lines[0] + b"\n")
    async with listening(tmp_path) as (_, sink):
        await sink.wait(records=1)
        await asyncio.sleep(0.05)
        [rec] = sink.records
        assert rec.tenant == "boden" and rec.peer == "192.0.2.7:40000" and rec.payload == b"\n".join(lines)
        assert sink.events()[0].fields["_recovered"] == "1"
        assert not orphan.exists() and list(tmp_path.glob("audisp.*.spool")) == [live]


# -- settings -------------------------------------------------------------------------------


def test_settings_build_an_audisp_listener_on_6060(tmp_path: Path) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}"\n'
        '[[sources]]\nid = "s"\ntype = "syslog"\nprotocol = "tcp"\n'  # 5514: no clash
        '[[sources]]\nid = "aud"\ntype = "audisp"\ntenant = "lulea"\n'
    )
    _, src = build_sources(load_settings(cfg))
    assert isinstance(src, AudispSource) and src.port == 6060
    assert src.config.spool_dir == tmp_path / "spool" / "audisp"


def test_settings_refuse_tls_for_audisp(tmp_path: Path) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text('[[sources]]\nid = "aud"\ntype = "audisp"\nprotocol = "tls"\n')
    with pytest.raises(ConfigError, match=r"sources\[0\].protocol"):
        load_settings(cfg)
