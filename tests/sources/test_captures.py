"""Every message in the real captures (../shared/data/syslog-captures) frames and parses cleanly."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from norrvakt.event import KIND_PIPELINE_ERROR, RawRecord
from norrvakt.parsers import parse_record
from norrvakt.sources.framing import SyslogFramer
from norrvakt.sources.http_json import split_json_objects
from tests.conftest import shared_data

STREAMS = [
    "loggen_5424_lf.bin",
    "logger_5424_tcp_lf.bin",
    "logger_5424_tcp_octet.bin",
    "rsyslog_5424_tcp_octet.bin",
    "rsyslog_5424_tls_decrypted.bin",
    "syslogng_3164_tcp_lf.bin",
    "syslogng_5424_tcp_octet.bin",
    "syslogng_5424_tls_decrypted.bin",
]
DATAGRAMS = ["logger_3164_udp.bin", "rsyslog_3164_udp.bin", "syslogng_3164_udp.bin"]


def _record(payload: bytes, fmt: str = "syslog") -> RawRecord:
    return RawRecord("lulea", "capture", 1_795_729_500_000_000, "127.0.0.1:1", payload, fmt, "UTC")


def _assert_clean(payload: bytes, fmt: str = "syslog") -> None:
    event = parse_record(_record(payload, fmt))
    assert event.kind != KIND_PIPELINE_ERROR, event.ecs.get("error.message")
    assert event.message
    assert event.raw == payload


@pytest.mark.parametrize("name", STREAMS)
def test_stream_captures(name: str) -> None:
    framer = SyslogFramer()
    frames = framer.feed(shared_data("syslog-captures", name).read_bytes()) + framer.finish()
    assert frames
    for fr in frames:
        assert fr.error is None
        _assert_clean(fr.payload.rstrip(b"\n"))


@pytest.mark.parametrize("name", DATAGRAMS)
def test_datagram_captures(name: str) -> None:
    data = shared_data("syslog-captures", name).read_bytes()
    grams = [g.strip(b"\n") for g in data.split(b"<<<END-DATAGRAM>>>") if g.strip()]
    assert grams
    for g in grams:
        _assert_clean(g)


def test_relp_capture_messages() -> None:
    data = shared_data("syslog-captures", "rsyslog_relp.bin").read_bytes()
    messages = []
    pos = 0
    while pos < len(data):
        txnr, cmd, rest = data[pos:].split(b" ", 2)
        length_text, _, _ = rest.partition(b" ") if not rest.startswith(b"0\n") else (b"0", b"", b"")
        length = int(length_text.split(b"\n")[0])
        start = pos + len(txnr) + len(cmd) + len(length_text) + 3
        if cmd == b"syslog":
            messages.append(data[start : start + length])
        pos = start + length + (1 if length else 0)
        while pos < len(data) and data[pos : pos + 1] == b"\n":
            pos += 1
    assert len(messages) == 2
    for m in messages:
        _assert_clean(m.rstrip(b"\n"))


def _http_bodies(path: Path) -> list[bytes]:
    bodies = []
    for request in path.read_bytes().split(b"=====REQUEST=====")[1:]:
        _head, _, body = request.partition(b"\r\n\r\n")
        if not body:
            _head, _, body = request.partition(b"\n\n")
        bodies.append(body.strip())
    return bodies


def test_hec_capture() -> None:
    for body in _http_bodies(shared_data("syslog-captures", "syslogng_http_splunk_hec.http")):
        parts = split_json_objects(body, 1024 * 1024)
        assert [p.problem for p in parts if p.problem] == []
        for p in parts:
            _assert_clean(p.data, "hec")


@pytest.mark.parametrize("name", ["rsyslog_omelasticsearch_bulk.http", "syslogng_http_es_bulk.http"])
def test_bulk_captures(name: str) -> None:
    for body in _http_bodies(shared_data("syslog-captures", name)):
        lines = [ln for ln in body.split(b"\n") if ln.strip()]
        for action, doc in zip(lines[::2], lines[1::2], strict=True):
            assert "index" in orjson.loads(action)
            _assert_clean(doc, "json")


def test_plain_json_capture() -> None:
    for body in _http_bodies(shared_data("syslog-captures", "syslogng_http_plain_json.http")):
        _assert_clean(body, "json")
