"""GELF listeners in-process (norrvakt.sources.gelf): graypy, the real client, over UDP (chunked),
TCP and TLS, and bad input sent by hand — each problem a pipeline_error, the rest flowing."""

from __future__ import annotations

import asyncio
import functools
import gzip
import logging
import os
import socket
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import graypy
import orjson
import pytest

from norrvakt.config import ConfigError, load_settings
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record
from norrvakt.sources.builtin import build_sources
from norrvakt.sources.gelf import GelfSourceConfig, GelfStreamSource, GelfUdpSource
from norrvakt.sources.gelf_chunks import MAGIC


def run(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """The test as a plain function running its coroutine (no asyncio plugin here)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


class Sink:
    """A RecordSink that keeps what it gets (every future resolves at once: "durable")."""

    def __init__(self) -> None:
        self.records: list[RawRecord] = []
        self.errors: list[Event] = []
        self.counted: list[tuple[str, str]] = []

    def _done(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        self.records.extend(records)
        return self._done()

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]:
        self.errors.extend(events)
        return self._done()

    def transport_error(self, source_id: str, reason: str) -> None:
        self.counted.append((source_id, reason))

    def events(self) -> list[Event]:
        return [parse_record(r) for r in self.records]

    async def wait(self, records: int = 0, errors: int = 0, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.records) < records or len(self.errors) < errors:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.records)} records, {len(self.errors)} errors")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def listening(tmp: Path | None = None, **kw: Any) -> AsyncIterator[tuple[Any, Sink]]:
    if tmp is not None:
        kw.update(tls_cert=tmp / "s.crt", tls_key=tmp / "s.key")
    cfg = GelfSourceConfig(id="gelf-test", host="127.0.0.1", port=0, tenant="lulea", **kw)
    source = cfg.build()
    sink = Sink()
    await source.start(sink)
    try:
        yield source, sink
    finally:
        await source.stop()


def _graypy_logger(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger("gelf-test-" + uuid.uuid4().hex[:8])
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log


def _udp(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", port))


async def _tcp(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    await reader.read()  # the listener closes once the records are durable
    writer.close()


def _chunks(data: bytes, size: int, msg_id: bytes) -> list[bytes]:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return [MAGIC + msg_id + bytes([i, len(parts)]) + p for i, p in enumerate(parts)]


def _gelf(**extra: Any) -> bytes:
    return orjson.dumps({"version": "1.1", "host": "web01", "short_message": "hello", **extra})


# --- graypy ------------------------------------------------------------------------------


@run
async def test_graypy_udp_chunked_message_arrives_whole() -> None:
    async with listening() as (source, sink):
        assert isinstance(source, GelfUdpSource)
        handler = graypy.GELFUDPHandler("127.0.0.1", source.port)  # WAN chunks of 1420 bytes
        log = _graypy_logger(handler)
        big = os.urandom(6000).hex()  # zlib leaves ~6.5 kB: 5 chunks of 1420 bytes
        extra = {"detail": big, "client_ip": "10.1.2.3"}
        await asyncio.to_thread(log.warning, "login failed for anna", extra=extra)
        await asyncio.to_thread(log.info, "small one")
        await sink.wait(records=2)
        handler.close()
        assert not sink.errors
        events = {e.message: e for e in sink.events()}
        ev = events["login failed for anna"]
        assert ev.fields["detail"] == big
        assert len(zlib.compress(ev.raw)) > 3 * 1420  # what graypy sent (zlib of this JSON): chunked
        assert ev.fields["client_ip"] == "10.1.2.3"
        assert ev.ecs["host.name"] == socket.gethostname()
        assert ev.ecs["log.level"] == "warning" and ev.ecs["log.syslog.severity.code"] == "4"
        assert abs(ev.ts / 1e6 - time.time()) < 30 and ev.ts % 1_000_000 != 0  # seconds with a fraction
        assert ev.tenant == "lulea" and ev.source == "gelf-test"
        assert events["small one"].ecs["log.level"] == "info"


@run
async def test_graypy_tcp_nul_delimited() -> None:
    async with listening(protocol="tcp") as (source, sink):
        assert isinstance(source, GelfStreamSource)
        handler = graypy.GELFTCPHandler("127.0.0.1", source.port)
        log = _graypy_logger(handler)

        def send() -> None:  # graypy blocks: in a thread, so the listener's loop runs
            for i in range(50):
                log.error("disk full %d", i, extra={"volume": "/var"})

        await asyncio.to_thread(send)
        await sink.wait(records=50)
        handler.close()
        events = sink.events()
        assert [e.message for e in events] == [f"disk full {i}" for i in range(50)]
        assert all(e.fields["volume"] == "/var" and e.ecs["log.level"] == "err" for e in events)
        assert not sink.errors


@run
async def test_graypy_tls(tmp_path: Path) -> None:
    async with listening(tmp_path, protocol="tls") as (source, sink):
        handler = graypy.GELFTLSHandler("127.0.0.1", source.port, validate=False)
        log = _graypy_logger(handler)
        await asyncio.to_thread(log.critical, "certificate expires tomorrow")
        await sink.wait(records=1)
        handler.close()
        (ev,) = sink.events()
        assert ev.message == "certificate expires tomorrow" and ev.ecs["log.level"] == "crit"


# --- UDP bad input -----------------------------------------------------------------------


@run
async def test_udp_gzip_and_plain_datagrams() -> None:
    async with listening() as (source, sink):
        _udp(source.port, gzip.compress(_gelf(_n="gz")), _gelf(_n="plain"), zlib.compress(_gelf(_n="zl")))
        await sink.wait(records=3)
        assert sorted(e.fields["n"] for e in sink.events()) == ["gz", "plain", "zl"]


@run
async def test_udp_bad_input_each_a_pipeline_error_and_the_rest_flows() -> None:
    async with listening(chunk_timeout_s=0.3) as (source, sink):
        good = zlib.compress(_gelf(_n="after"))
        missing = _chunks(zlib.compress(_gelf(_pad=os.urandom(2000).hex())), 500, b"\xaa" * 8)
        dup = _chunks(_gelf(_n="dup"), 40, b"\xbb" * 8)
        _udp(
            source.port,
            zlib.compress(_gelf())[:2] + b"\xff\xfe" * 10,  # bad zlib
            MAGIC + b"\xcc" * 8 + bytes([0, 130]) + b"x",  # 130 chunks
            *[c for i, c in enumerate(missing) if i != 2],  # chunk 2 never comes
            dup[0],
            dup[0],
            *dup[1:],
            b"this is not json",
            good,
        )
        await sink.wait(records=3, errors=4, timeout=5)
        kinds = sorted(e.ecs["error.type"] for e in sink.errors)
        assert kinds == ["gelf.bad_chunk_header", "gelf.bad_zlib", "gelf.duplicate_chunk", "gelf.incomplete"]
        by_kind = {e.ecs["error.type"]: e for e in sink.errors}
        incomplete = by_kind["gelf.incomplete"].ecs["error.message"]
        assert incomplete.startswith("gelf-test: ") and "aaaaaaaaaaaaaaaa" in incomplete
        assert f"chunks 0-1, 3-{len(missing) - 1} of {len(missing)} arrived" in incomplete
        assert "missing 2" in incomplete and "127.0.0.1:" in incomplete
        assert "sequence count 130 exceeds 128" in by_kind["gelf.bad_chunk_header"].ecs["error.message"]
        assert all(e.tenant == "lulea" for e in sink.errors)
        assert ("gelf-test", "gelf.bad_zlib") in sink.counted
        events = sink.events()
        not_json = [e for e in events if e.ecs.get("error.type") == "gelf.malformed_json"]
        assert len(not_json) == 1 and "byte offset 0" in not_json[0].ecs["error.message"]
        assert not_json[0].raw == b"this is not json"
        assert {e.fields.get("n") for e in events} >= {"dup", "after"}


@run
async def test_udp_oversized_after_inflating() -> None:
    async with listening(max_message_bytes=1024) as (source, sink):
        _udp(source.port, zlib.compress(_gelf(_pad="x" * 5000)), _gelf(_n="ok"))
        await sink.wait(records=1, errors=1)
        (err,) = sink.errors
        assert err.ecs["error.type"] == "gelf.oversized" and "inflates to more than 1024" in err.message
        assert sink.events()[0].fields["n"] == "ok"


@run
async def test_udp_pending_chunks_are_given_up_at_stop() -> None:
    async with listening() as (source, sink):
        _udp(source.port, _chunks(_gelf(), 10, b"\x01" * 8)[0])
        await asyncio.sleep(0.2)
    (err,) = sink.errors
    assert err.ecs["error.type"] == "gelf.incomplete" and "the listener stopped" in err.message


# --- TCP bad input -----------------------------------------------------------------------


@run
async def test_tcp_oversized_truncated_and_missing_fields() -> None:
    async with listening(protocol="tcp", max_message_bytes=1024) as (source, sink):
        stream = (
            _gelf(_n="first")
            + b"\x00"
            + _gelf(_pad="y" * 3000)
            + b"\x00"
            + b'{"short_message":"no version, no host"}\x00'
            + _gelf(_n="last")
            + b"\x00"
            + b'{"version":"1.1","host":"cut'
        )
        await _tcp(source.port, stream)
        await sink.wait(records=3, errors=2)
        kinds = [e.ecs["error.type"] for e in sink.errors]
        assert kinds == ["gelf.oversized", "gelf.truncated"]
        oversized = sink.errors[0].ecs["error.message"]
        assert "gelf-test" in oversized and "stream offset " in oversized and "limit of 1024" in oversized
        offset = len(_gelf(_n="first")) + 1
        assert f"stream offset {offset}" in oversized
        events = sink.events()
        assert [e.fields.get("n") for e in events] == ["first", None, "last"]
        assert events[1].fields["_gelf_missing"] == "version, host"
        assert events[1].message == "no version, no host"


@run
async def test_tcp_lf_ended_json_lines_are_messages_too() -> None:
    async with listening(protocol="tcp") as (source, sink):
        await _tcp(source.port, _gelf(_n="a") + b"\n" + _gelf(_n="b") + b"\r\n")
        await sink.wait(records=2)
        assert [e.fields["n"] for e in sink.events()] == ["a", "b"]


@run
async def test_tcp_message_split_across_reads() -> None:
    async with listening(protocol="tcp") as (source, sink):
        _reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
        data = _gelf(_n="split") + b"\x00"
        for i in range(0, len(data), 7):
            writer.write(data[i : i + 7])
            await writer.drain()
            await asyncio.sleep(0.001)
        await sink.wait(records=1)
        writer.close()
        assert sink.events()[0].fields["n"] == "split"


# --- settings ----------------------------------------------------------------------------


def test_settings_build_gelf_listeners(tmp_path: Path) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}"\n'
        '[[sources]]\nid = "g-udp"\ntype = "gelf"\nprotocol = "udp"\ntenant = "lulea"\n'
        "gelf_chunk_timeout_s = 2.5\n"
        '[[sources]]\nid = "g-tcp"\ntype = "gelf"\nprotocol = "tcp"\nport = 12222\ntenant = "lulea"\n'
    )
    udp, tcp = build_sources(load_settings(cfg))
    assert isinstance(udp, GelfUdpSource) and udp.port == 12201  # Graylog's, not syslog's 5514
    assert udp.config.chunk_timeout_s == 2.5
    assert isinstance(tcp, GelfStreamSource) and tcp.port == 12222


def test_settings_refuse_a_bad_chunk_timeout(tmp_path: Path) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text('[[sources]]\nid = "g"\ntype = "gelf"\nprotocol = "udp"\ngelf_chunk_timeout_s = 0\n')
    with pytest.raises(ConfigError, match="gelf_chunk_timeout_s"):
        load_settings(cfg)


def test_a_gelf_source_without_a_port_does_not_clash_with_syslog_on_5514(tmp_path: Path) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text(
        '[[sources]]\nid = "s"\ntype = "syslog"\nprotocol = "udp"\nport = 5514\n'
        '[[sources]]\nid = "g"\ntype = "gelf"\nprotocol = "udp"\n'
        '[[sources]]\nid = "g2"\ntype = "gelf"\nprotocol = "udp"\nport = 12201\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert [k for k, _ in info.value.problems] == ["sources[2].port"]  # g2 clashes with g's 12201
