"""Decoding Fluent Forward frames: the four modes, both time forms, bad frames and entries."""

from __future__ import annotations

import gzip
import struct
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from norrvakt.sources.forward_frames import DecodedFrame, FrameError, decode_frame, gunzip, unpacker

T = 1_795_729_418


def _event_time(seconds: int, nanos: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanos))


def _decode(frame: bytes, max_entry: int = 65536, max_inflated: int = 1 << 20) -> DecodedFrame:
    reader = unpacker(1 << 22)
    reader.feed(frame)
    return decode_frame(reader.unpack(), max_entry, max_inflated)


def _docs(decoded: DecodedFrame) -> list[dict[str, Any]]:
    return [orjson.loads(p) for p in decoded.payloads]


def test_message_mode_with_integer_time() -> None:
    d = _decode(msgpack.packb(["app.web", T, {"log": "GET / 200", "host": "web01"}]))
    assert d.mode == "message" and d.chunk is None and not d.errors
    assert _docs(d) == [{"tag": "app.web", "time": T, "record": {"log": "GET / 200", "host": "web01"}}]


def test_message_mode_with_event_time_and_chunk() -> None:
    frame = msgpack.packb(["app.web", _event_time(T, 412345678), {"log": "x"}, {"chunk": "p8n9gmxTQVC8"}])
    d = _decode(frame)
    assert d.chunk == b"p8n9gmxTQVC8"
    assert _docs(d)[0]["time"] == T and _docs(d)[0]["nanos"] == 412345678


def test_event_time_as_ext8_is_read_too() -> None:
    # The spec allows ext 8 with length 8 instead of fixext 8: C7 08 00 <seconds> <nanos>.
    stamp = b"\xc7\x08\x00" + struct.pack(">II", T, 5)
    frame = b"\x93" + msgpack.packb("t") + stamp + msgpack.packb({"a": 1})
    assert _docs(_decode(frame))[0] == {"tag": "t", "time": T, "nanos": 5, "record": {"a": 1}}


def test_forward_mode() -> None:
    frame = msgpack.packb(["k8s.app", [[T, {"log": "a"}], [T + 1, {"log": "b"}]], {"size": 2}])
    d = _decode(frame)
    assert d.mode == "forward"
    assert [x["record"]["log"] for x in _docs(d)] == ["a", "b"]


def test_packed_forward_as_bin_and_as_str() -> None:
    entries = msgpack.packb([T, {"log": "a"}]) + msgpack.packb([_event_time(T, 7), {"log": "b"}])
    as_bin = msgpack.packb(["t", entries], use_bin_type=True)
    # old fluentd: the entries as msgpack str (0xdb / 0xda / 0xd9), not valid UTF-8
    as_str = b"\x92" + msgpack.packb("t") + b"\xda" + struct.pack(">H", len(entries)) + entries
    for frame in (as_bin, as_str):
        d = _decode(frame)
        assert d.mode == "packed" and not d.errors
        assert [x["record"]["log"] for x in _docs(d)] == ["a", "b"]


def test_compressed_packed_forward_with_two_gzip_members() -> None:
    one = msgpack.packb([T, {"log": "a"}])
    two = msgpack.packb([T, {"log": "b"}]) + msgpack.packb([T, {"log": "c"}])
    frame = msgpack.packb(["t", gzip.compress(one) + gzip.compress(two), {"compressed": "gzip"}])
    d = _decode(frame)
    assert d.mode == "compressed"
    assert [x["record"]["log"] for x in _docs(d)] == ["a", "b", "c"]


def test_fluent_bit_metadata_in_the_time_slot() -> None:
    frame = msgpack.packb(["t", [[[_event_time(T, 0), {"otlp": {"severity": 9}}], {"log": "a"}]]])
    doc = _docs(_decode(frame))[0]
    assert doc["metadata"] == {"otlp": {"severity": 9}} and doc["time"] == T


def test_bin_and_invalid_utf8_values_are_kept_readable() -> None:
    frame = msgpack.packb(["t", T, {"blob": b"\xff\x00ok", "k\xe5": "v"}], use_bin_type=True)
    assert _docs(_decode(frame))[0]["record"] == {"blob": "\\xff\x00ok", "kå": "v"}


@pytest.mark.parametrize(
    ("frame", "error_type", "where"),
    [
        ({"not": "an array"}, "forward.bad_frame", "frame"),
        ([1, T, {}], "forward.bad_frame", "frame[0] (tag)"),
        (["t", {"a": 1}], "forward.unknown_mode", "frame[1]"),
        (["t", True, {}], "forward.unknown_mode", "frame[1]"),
        (["t", T], "forward.bad_frame", "frame"),
        (["t", [], "option"], "forward.bad_option", "frame[2] (option)"),
        (["t", b"x", {"compressed": "zstd"}], "forward.bad_option", "option.compressed"),
        (["t", b"not gzip", {"compressed": "gzip"}], "forward.bad_gzip", "entries gzip member 0"),
    ],
)
def test_bad_frames(frame: Any, error_type: str, where: str) -> None:
    with pytest.raises(FrameError) as exc:
        _decode(msgpack.packb(frame, use_bin_type=True))
    assert (exc.value.error_type, exc.value.where) == (error_type, where)


def test_truncated_gzip() -> None:
    data = gzip.compress(msgpack.packb([T, {"log": "a" * 100}]))
    with pytest.raises(FrameError, match="truncated"):
        gunzip(data[:-9], 1 << 20)


def test_gzip_bomb_is_stopped_at_the_limit() -> None:
    bomb = gzip.compress(b"\x00" * (4 << 20))
    with pytest.raises(FrameError) as exc:
        gunzip(bomb, 1 << 20)
    assert exc.value.error_type == "forward.oversized"


def test_bad_entries_are_errors_and_the_good_ones_stay() -> None:
    entries = [[T, {"log": "ok"}], [T, "not a map"], ["yesterday", {"log": "x"}], [T], [True, {}]]
    d = _decode(msgpack.packb(["t", entries]))
    assert [x["record"]["log"] for x in _docs(d)] == ["ok"]
    got = [(e.error_type, e.where) for _, e in d.errors]
    assert got == [
        ("forward.bad_entry", "entries[1].record"),
        ("forward.bad_time", "entries[2].time"),
        ("forward.bad_entry", "entries[3]"),
        ("forward.bad_time", "entries[4].time"),
    ]


def test_ext_type_other_than_event_time_is_a_bad_time() -> None:
    d = _decode(msgpack.packb(["t", [[msgpack.ExtType(5, b"abc"), {}]]]))
    ((_, err),) = d.errors
    assert err.error_type == "forward.bad_time" and "ext type 5" in err.why


def test_packed_entries_cut_off_keep_what_came_before() -> None:
    entries = msgpack.packb([T, {"log": "a"}]) + msgpack.packb([T, {"log": "b"}])[:-2]
    d = _decode(msgpack.packb(["t", entries], use_bin_type=True))
    assert [x["record"]["log"] for x in _docs(d)] == ["a"]
    ((raw, err),) = d.errors
    assert (
        err.error_type == "forward.truncated_entry"
        and raw == entries[len(msgpack.packb([T, {"log": "a"}])) :]
    )


def test_packed_entries_with_garbage() -> None:
    good = msgpack.packb([T, {"log": "a"}])
    d = _decode(msgpack.packb(["t", good + b"\xc1\xc1\xc1"], use_bin_type=True))
    ((_, err),) = d.errors
    assert err.error_type == "forward.bad_msgpack" and err.where == f"packed entries byte {len(good)}"
    assert "\\xc1" in err.why


def test_oversized_entry_is_cut_and_reported() -> None:
    d = _decode(msgpack.packb(["t", T, {"log": "x" * 5000}]), max_entry=1000)
    ((raw, err),) = d.errors
    assert err.error_type == "forward.oversized" and len(raw) == 1000 and not d.payloads


def test_unpacker_refuses_a_frame_beyond_its_buffer() -> None:
    reader = unpacker(1024)
    with pytest.raises(msgpack.BufferFull):
        reader.feed(msgpack.packb(["t", T, {"log": "x" * 2000}]))


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.binary(max_size=12),
    st.text(max_size=8), st.builds(msgpack.ExtType, st.integers(0, 3), st.binary(max_size=9)),
)  # fmt: skip
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_SCALAR.filter(_hashable), inner, max_size=4)
    ),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tag=st.one_of(st.binary(max_size=8), _SCALAR),
    body=st.one_of(_VALUE, st.binary(max_size=64), st.lists(st.lists(_VALUE, max_size=3), max_size=4)),
    option=st.one_of(
        st.none(), st.dictionaries(st.sampled_from([b"chunk", b"compressed", b"size", 1]), _VALUE)
    ),
    extra=st.lists(_VALUE, max_size=2),
)
def test_any_frame_decodes_or_is_a_frame_error(tag: Any, body: Any, option: Any, extra: list[Any]) -> None:
    frame = [tag, body, *([option] if option is not None else []), *extra]
    try:
        d = decode_frame(frame, 4096, 1 << 16)
    except FrameError:
        return
    for payload in d.payloads:
        assert isinstance(orjson.loads(payload)["record"], dict)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_packed_bytes_decode_or_are_entry_errors(data: bytes) -> None:
    d = decode_frame([b"t", data], 4096, 1 << 16)
    assert all(isinstance(e, FrameError) for _, e in d.errors)


def test_a_map_keyed_by_an_array_is_bad_msgpack() -> None:
    # {[]: 0}: msgpack cannot hash the key (it raises TypeError, not a msgpack error)
    d = _decode(msgpack.packb(["t", msgpack.packb([T, {"log": "a"}]) + b"\x81\x90\x00"], use_bin_type=True))
    ((raw, err),) = d.errors
    assert err.error_type == "forward.bad_msgpack" and raw == b"\x81\x90\x00" and len(d.payloads) == 1
