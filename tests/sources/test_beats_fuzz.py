"""Property tests of Beats: the Lumberjack decoder on any bytes in any pieces, and Beats-shaped
JSON documents (Filebeat, Auditbeat, Winlogbeat keys with any values) through the parser."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from norrvakt.sources.beats import BeatsFrameError, DataFrame, LumberjackDecoder
from tests.parsers.test_fuzz import _JSON, _JSON_SCALAR, FUZZ, _check


def _feed(data: bytes, cuts: list[int]) -> tuple[list[DataFrame], BeatsFrameError | None]:
    dec = LumberjackDecoder()
    frames: list[DataFrame] = []
    pos = 0
    try:
        for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
            frames += dec.feed(data[pos:cut])
            pos = cut
        dec.finish()
    except BeatsFrameError as exc:
        return frames + exc.frames, exc
    return frames, None


_FRAME_START = st.sampled_from([b"2W", b"2J", b"2C", b"2D", b"2A", b"1W", b"2", b""])


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(_FRAME_START, st.binary(max_size=40)), max_size=8),
    st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_random_bytes_are_frames_or_a_frame_error(parts: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    data = b"".join(a + b for a, b in parts)
    frames, error = _feed(data, cuts)
    assert sum(len(f.payload) for f in frames) <= len(data)
    if error is not None:
        assert error.error_type.startswith("beats.") and 0 <= error.offset <= len(data)
        assert f"stream offset {error.offset}" in str(error)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, bytes]]]:
    """A valid stream: windows of JSON frames, some compressed (once or twice), and the events."""
    out = b""
    events: list[tuple[int, bytes]] = []
    seq = 0
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        docs = draw(
            st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3), max_size=5)
        )
        body = b""
        for doc in docs:
            seq += 1
            payload = json.dumps(doc).encode()
            body += b"2J" + struct.pack(">II", seq, len(payload)) + payload
            events.append((seq, payload))
        for _ in range(draw(st.integers(min_value=0, max_value=2))):
            packed = zlib.compress(body, draw(st.integers(min_value=0, max_value=9)))
            body = b"2C" + struct.pack(">I", len(packed)) + packed
        out += b"2W" + struct.pack(">I", len(docs)) + body
    return out, events


@settings(max_examples=300, deadline=None)
@given(_streams(), st.lists(st.integers(min_value=0, max_value=3000), max_size=10))
def test_any_chunking_gives_the_same_events(
    stream: tuple[bytes, list[tuple[int, bytes]]], cuts: list[int]
) -> None:
    data, events = stream
    frames, error = _feed(data, cuts)
    assert error is None
    assert [(f.seq, f.payload) for f in frames] == events


@st.composite
def _beats_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A Filebeat, Auditbeat or Winlogbeat document with any values where the shapes look."""
    keys = ["message", "agent", "agent.type", "log", "log.file.path", "host", "event", "event.module",
            "process", "process.args", "user", "auditd", "winlog", "@timestamp"]  # fmt: skip
    doc: dict[str, Any] = {k: draw(_JSON) for k in draw(st.lists(st.sampled_from(keys), max_size=6))}
    kind = draw(st.sampled_from(["filebeat", "auditd", "none"]))
    if kind == "filebeat":
        doc["agent"] = {"type": "filebeat"}
        line = draw(
            st.sampled_from(["Dec  2 11:15:01 web01 sshd[2211]: ", "2026-12-02T11:19:59+01:00 db01 x: ", ""])
        )
        doc["message"] = line + draw(st.text(max_size=40))
    elif kind == "auditd":
        doc["event"] = {"module": "auditd", "action": draw(_JSON_SCALAR)}
        doc["process"] = {"args": draw(_JSON), "title": draw(_JSON_SCALAR)}
        doc["auditd"] = {"result": draw(_JSON_SCALAR), "summary": {"actor": {"primary": draw(_JSON)}}}
    return doc


@FUZZ
@given(doc=_beats_docs())
def test_random_beats_documents(doc: dict[str, Any]) -> None:
    _check(orjson.dumps(doc), "json")
