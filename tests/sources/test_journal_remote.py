"""The journal-remote listener in-process (norrvakt.sources.journal_remote): Debian's real
``systemd-journal-upload`` posting export-format files and a journal file made with
``systemd-journal-remote``, and bad input sent by hand — each problem a pipeline_error, the
answer as the protocol expects."""

from __future__ import annotations

import asyncio
import functools
import os
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from norrvakt.config import load_settings
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record
from norrvakt.sources.builtin import build_sources
from norrvakt.sources.journal_remote import JournalRemoteSource, JournalRemoteSourceConfig
from norrvakt.sources.tls import ensure_self_signed

UPLOAD = "/lib/systemd/systemd-journal-upload"
REMOTE = "/lib/systemd/systemd-journal-remote"
needs_upload = pytest.mark.skipif(
    not os.access(UPLOAD, os.X_OK),
    reason="Debian's systemd-journal-remote package is needed (make installs it)",
)


def run(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


class Sink:
    """A RecordSink keeping what it gets; its futures resolve at once, or — while ``hold`` —
    only when :meth:`release` says the records are durable."""

    def __init__(self) -> None:
        self.records: list[RawRecord] = []
        self.errors: list[Event] = []
        self.counted: list[tuple[str, str]] = []
        self.hold = False
        self._held: list[asyncio.Future[None]] = []

    def _future(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.hold:
            self._held.append(fut)
        else:
            fut.set_result(None)
        return fut

    def release(self) -> None:
        for fut in self._held:
            fut.set_result(None)
        self._held.clear()

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        self.records.extend(records)
        return self._future()

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]:
        self.errors.extend(events)
        return self._future()

    def transport_error(self, source_id: str, reason: str) -> None:
        self.counted.append((source_id, reason))

    def events(self) -> list[Event]:
        return [parse_record(r) for r in self.records]


@asynccontextmanager
async def listening(**kw: Any) -> AsyncIterator[tuple[JournalRemoteSource, Sink]]:
    cfg = JournalRemoteSourceConfig(id="journal-test", host="127.0.0.1", port=0, tenant="lulea", **kw)
    source = cfg.build()
    sink = Sink()
    await source.start(sink)
    try:
        yield source, sink
    finally:
        await source.stop()


def entry(**fields: str | bytes) -> bytes:
    """One export-format entry: str values as text fields, bytes values as binary fields."""
    out = b""
    for name, value in fields.items():
        if isinstance(value, bytes):
            out += name.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
        else:
            out += f"{name}={value}\n".encode()
    return out + b"\n"


async def upload(port: int, *args: str, timeout: float = 30) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        UPLOAD,
        f"--url=http://127.0.0.1:{port}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, (out + err).decode(errors="replace")


def _sshd(m: str, ts: int = 1795729418412345) -> bytes:
    return entry(
        __REALTIME_TIMESTAMP=str(ts),
        _HOSTNAME="srv01",
        SYSLOG_IDENTIFIER="sshd",
        _PID="4242",
        _UID="0",
        PRIORITY="6",
        SYSLOG_FACILITY="10",
        _SYSTEMD_UNIT="ssh.service",
        MESSAGE=f"Accepted publickey for anna from 10.1.2.3 port 51123 ssh2 {m}",
    )


@needs_upload
@run
async def test_upload_of_an_export_file(tmp_path: Path) -> None:
    m = uuid.uuid4().hex[:10]
    body = _sshd(m) + entry(
        __REALTIME_TIMESTAMP="1795729418412346",
        _HOSTNAME="srv01",
        SYSLOG_IDENTIFIER="app",
        MESSAGE=f"line one {m}\nline two".encode(),
        BLOB=b"\xff\x00\xfe",
    )
    (tmp_path / "e.export").write_bytes(body)
    async with listening() as (source, sink):
        code, out = await upload(source.port, str(tmp_path / "e.export"))
        assert code == 0, out
    assert sink.errors == [] and len(sink.records) == 2
    assert {r.tenant for r in sink.records} == {"lulea"} and sink.records[0].format == "journal"
    first, second = sink.events()
    assert first.ts == 1795729418412345 and first.ecs["host.name"] == "srv01"
    assert first.ecs["process.name"] == "sshd" and first.ecs["process.pid"] == "4242"
    assert first.ecs["user.id"] == "0" and first.fields["_SYSTEMD_UNIT"] == "ssh.service"
    assert first.ecs["log.level"] == "info" and first.ecs["log.syslog.facility.code"] == "10"
    # the syslog recognizers ran on the message: sshd's login
    assert first.ecs["user.name"] == "anna" and first.ecs["source.ip"] == "10.1.2.3"
    assert first.ecs["event.outcome"] == "success"
    assert second.message == f"line one {m}\nline two"  # a binary field, UTF-8: text
    assert second.fields["BLOB"] == "/wD+" and second.fields["_journal_base64"] == "BLOB"


@needs_upload
@run
async def test_upload_of_a_journal_file(tmp_path: Path) -> None:
    """systemd-journal-upload reading a real journal (made by systemd-journal-remote): it writes
    the export format itself, with its cursor and binary fields."""
    m = uuid.uuid4().hex[:10]
    (tmp_path / "in.export").write_bytes(
        _sshd(m) + entry(__REALTIME_TIMESTAMP="1795729418412399", MESSAGE=b"a\nb")
    )
    made = await asyncio.create_subprocess_exec(
        REMOTE,
        f"--output={tmp_path / 'kommun.journal'}",
        str(tmp_path / "in.export"),
        stderr=asyncio.subprocess.PIPE,
    )
    assert await made.wait() == 0
    async with listening() as (source, sink):
        code, out = await upload(source.port, "--follow=no", f"--file={tmp_path / 'kommun.journal'}")
        assert code == 0, out
    events = sink.events()
    assert len(events) == 2 and not sink.errors
    assert events[0].fields["__CURSOR"].startswith("s=") and "_BOOT_ID" in events[0].fields
    assert m in events[0].message and events[1].message == "a\nb"


@needs_upload
@run
async def test_answer_only_after_durable(tmp_path: Path) -> None:
    (tmp_path / "e.export").write_bytes(_sshd("held"))
    async with listening() as (source, sink):
        sink.hold = True
        task = asyncio.ensure_future(upload(source.port, str(tmp_path / "e.export")))
        deadline = time.monotonic() + 10
        while not sink.records and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        assert len(sink.records) == 1 and not task.done()  # received, not durable: no answer yet
        sink.hold = False
        sink.release()
        code, out = await task
        assert code == 0, out


@needs_upload
@run
async def test_upload_of_a_file_that_is_not_export_format(tmp_path: Path) -> None:
    (tmp_path / "bad.export").write_bytes(_sshd("ok") + b'{"MESSAGE": "this is JSON"}\n\n')
    async with listening() as (source, sink):
        code, _out = await upload(source.port, str(tmp_path / "bad.export"))
    assert code != 0  # the uploader was told
    assert len(sink.records) == 1  # what came before the bad bytes is kept
    (error,) = sink.errors
    assert error.ecs["error.type"] == "journal.not_export_format"
    assert "stream offset" in error.ecs["error.message"] and "journal-test" in error.ecs["error.message"]


async def _post(
    port: int, body: bytes, *, path: str = "/upload", ctype: str = "application/vnd.fdo.journal"
) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return answer


@pytest.mark.parametrize(
    "body,error,words",
    [
        (
            b"MESSAGE\n" + struct.pack("<Q", 100) + b"only ten b",
            "journal.truncated",
            "inside binary field MESSAGE",
        ),
        (
            b"MESSAGE\n" + struct.pack("<Q", 2**40) + b"x\n\n",
            "journal.field_too_large",
            "claims 1099511627776",
        ),
        (b"MESSAGE\n" + struct.pack("<Q", 3) + b"abcdef\n\n", "journal.bad_binary_field", "wrong length"),
        (b"GET / HTTP/1.0\r\n\r\n", "journal.not_export_format", "is not a field name"),
        (b"MESSAGE=unterminated", "journal.truncated", "inside a field"),
    ],
)
@run
async def test_bad_export_format_is_400(body: bytes, error: str, words: str) -> None:
    async with listening() as (source, sink):
        answer = await _post(source.port, _sshd("first") + body)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert len(sink.records) == 1  # the good entry before it
    (event,) = sink.errors
    assert event.ecs["error.type"] == error and words in event.ecs["error.message"], event.ecs[
        "error.message"
    ]
    assert ("journal-test", error) in sink.counted


@run
async def test_oversized_entry_is_kept_and_the_stream_goes_on() -> None:
    big = entry(MESSAGE="x" * 5000, OTHER=b"y" * 5000)
    async with listening(max_message_bytes=1024) as (source, sink):
        answer = await _post(source.port, _sshd("a") + big + _sshd("b"))
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert [m in r.payload for r, m in zip(sink.records, [b" a", b" b"], strict=True)] == [True, True]
    (event,) = sink.errors
    assert event.ecs["error.type"] == "journal.entry_too_large" and len(event.raw) <= 1024


@pytest.mark.parametrize(
    "path,ctype,status,error",
    [
        ("/upload", "application/json", 415, "journal.unsupported_content_type"),
        ("/other", "application/vnd.fdo.journal", 404, "journal.bad_request"),
    ],
)
@run
async def test_wrong_request_is_refused(path: str, ctype: str, status: int, error: str) -> None:
    async with listening() as (source, sink):
        answer = await _post(source.port, b"MESSAGE=x\n\n", path=path, ctype=ctype)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert not sink.records and sink.errors[0].ecs["error.type"] == error


@run
async def test_not_http_is_400() -> None:
    async with listening() as (source, sink):
        reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
        writer.write(b"\x16\x03\x01\x02\x00 TLS to a plain port\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(4096), 10)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert sink.errors[0].ecs["error.type"] == "journal.bad_http"


def test_built_from_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path / "d"}"\n[[sources]]\nid = "journal"\ntype = "journal-remote"\n'
        'protocol = "tcp"\nport = 19532\ntenant = "lulea"\n'
    )
    (source,) = [s for s in build_sources(load_settings(cfg)) if s.id == "journal"]
    assert isinstance(source, JournalRemoteSource) and source.port == 19532
    assert source.describe() == "journal-remote/tcp 0.0.0.0:19532"


@needs_upload
@run
async def test_upload_over_tls(tmp_path: Path) -> None:
    """Over HTTPS the uploader always presents a client certificate (--cert/--key); the listener
    asks for none, so any will do."""
    (tmp_path / "e.export").write_bytes(_sshd("tls"))
    ensure_self_signed(tmp_path / "client.crt", tmp_path / "client.key")
    async with listening(protocol="tls", tls_cert=tmp_path / "s.crt", tls_key=tmp_path / "s.key") as (
        source,
        sink,
    ):
        proc = await asyncio.create_subprocess_exec(
            UPLOAD,
            f"--url=https://127.0.0.1:{source.port}",
            "--trust=all",
            f"--cert={tmp_path / 'client.crt'}",
            f"--key={tmp_path / 'client.key'}",
            str(tmp_path / "e.export"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, (out + err).decode(errors="replace")
    assert len(sink.records) == 1 and b" tls" in sink.records[0].payload and not sink.errors


def test_without_a_port_it_listens_on_19532_and_does_not_clash_with_syslog(tmp_path: Path) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path / "d"}"\n'
        '[[sources]]\nid = "s"\ntype = "syslog"\nprotocol = "tcp"\nport = 5514\ntenant = "lulea"\n'
        '[[sources]]\nid = "journal"\ntype = "journal-remote"\ntenant = "lulea"\n'
    )
    (source,) = [s for s in build_sources(load_settings(cfg)) if s.id == "journal"]
    assert isinstance(source, JournalRemoteSource) and source.port == 19532
