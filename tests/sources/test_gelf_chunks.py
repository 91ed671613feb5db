"""GELF chunk reassembly and decompression (norrvakt.sources.gelf_chunks), without sockets."""

from __future__ import annotations

import gzip
import os
import zlib

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from norrvakt.sources.gelf_chunks import MAGIC, ChunkAssembler, decompress

PEER = "10.1.2.3:40000"
MESSAGE = orjson.dumps(
    {"version": "1.1", "host": "web01", "short_message": "login failed", "_detail": "x" * 3000}
)


def _chunks(data: bytes, size: int, msg_id: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08") -> list[bytes]:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return [MAGIC + msg_id + bytes([i, len(parts)]) + p for i, p in enumerate(parts)]


def _feed(asm: ChunkAssembler, datagrams: list[bytes], now: float = 0.0) -> list[bytes]:
    done = []
    for d in datagrams:
        got = asm.add(d, "10.1.2.3", PEER, now)
        assert not got.problems, got.problems
        if got.message is not None:
            done.append(got.message)
    return done


def test_a_whole_datagram_is_a_message_at_once() -> None:
    got = ChunkAssembler().add(MESSAGE, "10.1.2.3", PEER, 0.0)
    assert got.message == MESSAGE and not got.problems


def test_chunks_in_any_order_make_the_message() -> None:
    packed = zlib.compress(MESSAGE + os.urandom(400).hex().encode())
    chunks = _chunks(packed, 100)
    assert len(chunks) > 3
    asm = ChunkAssembler()
    order = chunks[2:] + chunks[:2][::-1]
    assert _feed(asm, order) == [packed]
    assert len(asm) == 0 and asm.pending_bytes == 0


def test_two_senders_may_use_the_same_message_id() -> None:
    asm = ChunkAssembler()
    a, b = _chunks(b"A" * 20, 10), _chunks(b"B" * 20, 10)
    assert asm.add(a[0], "10.0.0.1", "10.0.0.1:1", 0).message is None
    assert asm.add(b[0], "10.0.0.2", "10.0.0.2:1", 0).message is None
    assert asm.add(a[1], "10.0.0.1", "10.0.0.1:1", 0).message == b"A" * 20
    assert asm.add(b[1], "10.0.0.2", "10.0.0.2:1", 0).message == b"B" * 20


def test_128_chunks_are_allowed_129_are_not() -> None:
    asm = ChunkAssembler()
    data = os.urandom(128 * 10)
    assert _feed(asm, _chunks(data, 10)) == [data]
    bad = MAGIC + b"\x09" * 8 + bytes([0, 129]) + b"x"
    (problem,) = asm.add(bad, "10.1.2.3", PEER, 0).problems
    assert problem.kind == "bad_chunk_header"
    assert "sequence count 129 exceeds 128" in problem.detail and "0909090909090909" in problem.detail
    assert problem.data == bad


def test_a_sequence_number_beyond_the_count_is_refused() -> None:
    (problem,) = ChunkAssembler().add(MAGIC + b"\x00" * 8 + bytes([3, 3]) + b"x", "h", PEER, 0).problems
    assert problem.kind == "bad_chunk_header" and "sequence number 3" in problem.detail


def test_a_chunk_shorter_than_its_header() -> None:
    (problem,) = ChunkAssembler().add(MAGIC + b"\x00\x01", "h", PEER, 0).problems
    assert problem.kind == "truncated_chunk" and "shorter than the 12-byte chunk header" in problem.detail


def test_a_duplicate_chunk_is_reported_and_the_first_kept() -> None:
    asm = ChunkAssembler()
    c = _chunks(b"0123456789abcdefghij", 10)
    asm.add(c[0], "h", PEER, 0)
    forged = c[0][:12] + b"XXXXXXXXXX"
    (problem,) = asm.add(forged, "h", PEER, 0).problems
    assert problem.kind == "duplicate_chunk"
    assert "chunk 0 of 2 of message 0102030405060708" in problem.detail and "other data" in problem.detail
    assert asm.add(c[1], "h", PEER, 0).message == b"0123456789abcdefghij"


def test_a_changed_sequence_count_is_refused() -> None:
    asm = ChunkAssembler()
    asm.add(MAGIC + b"\x01" * 8 + bytes([0, 3]) + b"a", "h", PEER, 0)
    (problem,) = asm.add(MAGIC + b"\x01" * 8 + bytes([1, 4]) + b"b", "h", PEER, 0).problems
    assert problem.kind == "bad_chunk_header" and "sequence count of 4, its first chunk 3" in problem.detail


def test_missing_chunks_at_the_timeout_name_the_message_and_what_came() -> None:
    asm = ChunkAssembler(timeout_s=5.0)
    c = _chunks(bytes(range(60)), 10)  # 6 chunks
    for i in (0, 1, 2, 4):
        asm.add(c[i], "10.1.2.3", PEER, 1.0)
    assert asm.expire(5.9) == []
    (problem,) = asm.expire(6.0)
    assert problem.kind == "incomplete"
    assert "message 0102030405060708 from 10.1.2.3:40000" in problem.detail
    assert "chunks 0-2, 4 of 6 arrived (40 bytes), missing 3, 5" in problem.detail
    assert problem.data == bytes(range(30)) + bytes(range(40, 50))
    assert problem.peer == PEER
    assert len(asm) == 0 and asm.pending_bytes == 0


def test_pending_messages_are_bounded_the_oldest_given_up() -> None:
    asm = ChunkAssembler(max_pending_messages=3)
    problems = []
    for n in range(5):
        first = _chunks(b"x" * 20, 10, msg_id=bytes([n]) * 8)[0]
        problems += asm.add(first, "h", PEER, float(n)).problems
    assert len(asm) == 3
    assert [p.kind for p in problems] == ["incomplete", "incomplete"]
    assert "message 0000000000000000" in problems[0].detail and "3 pending messages" in problems[0].detail


def test_pending_bytes_are_bounded() -> None:
    asm = ChunkAssembler(max_pending_bytes=1000)
    problems = []
    for n in range(4):
        first = _chunks(b"y" * 800, 400, msg_id=bytes([n]) * 8)[0]
        problems += asm.add(first, "h", PEER, 0).problems
    assert asm.pending_bytes == 800 and len(asm) == 2 and len(problems) == 2


def test_a_chunked_message_past_the_size_limit_is_given_up_at_once() -> None:
    asm = ChunkAssembler(max_message_bytes=25)
    c = _chunks(b"z" * 40, 10)
    asm.add(c[0], "h", PEER, 0)
    asm.add(c[1], "h", PEER, 0)
    (problem,) = asm.add(c[2], "h", PEER, 0).problems
    assert problem.kind == "oversized" and "passes 25 bytes at chunk 2 of 4" in problem.detail
    assert len(asm) == 0


def test_flush_gives_up_everything_pending() -> None:
    asm = ChunkAssembler()
    asm.add(_chunks(b"q" * 20, 10)[0], "h", PEER, 0)
    (problem,) = asm.flush()
    assert "the listener stopped" in problem.detail and len(asm) == 0


# --- decompression ------------------------------------------------------------------------


def test_zlib_gzip_and_plain_give_the_json() -> None:
    assert decompress(zlib.compress(MESSAGE), 65536, PEER) == MESSAGE
    assert decompress(gzip.compress(MESSAGE), 65536, PEER) == MESSAGE
    assert decompress(MESSAGE, 65536, PEER) == MESSAGE
    assert decompress(zlib.compress(MESSAGE, 1), 65536, PEER) == MESSAGE  # 78 01


def test_bad_zlib_names_the_codec_and_the_bytes() -> None:
    bad = zlib.compress(MESSAGE)[:2] + b"\xff" * 20
    problem = decompress(bad, 65536, PEER)
    assert not isinstance(problem, bytes)
    assert (
        problem.kind == "bad_zlib" and "does not inflate" in problem.detail and "78 9c ff" in problem.detail
    )
    assert problem.data == bad


def test_truncated_gzip_is_reported() -> None:
    cut = gzip.compress(MESSAGE)[:40]
    problem = decompress(cut, 65536, PEER)
    assert not isinstance(problem, bytes)
    assert problem.kind == "bad_gzip" and "ends before its end marker" in problem.detail


def test_a_compression_bomb_stops_at_the_limit() -> None:
    bomb = zlib.compress(b"{" + b" " * 50_000_000)
    problem = decompress(bomb, 65536, PEER)
    assert not isinstance(problem, bytes)
    assert problem.kind == "oversized" and "inflates to more than 65536 bytes" in problem.detail
    assert len(problem.data) == 65536


def test_a_plain_message_past_the_limit_is_oversized() -> None:
    problem = decompress(b"{" + b" " * 70000 + b"}", 65536, PEER)
    assert not isinstance(problem, bytes) and problem.kind == "oversized"


# --- random datagrams ---------------------------------------------------------------------

_HEADERS = st.builds(
    lambda mid, seq, count, data: MAGIC + bytes([mid]) * 8 + bytes([seq, count]) + data,
    st.integers(0, 3),
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3, 128, 129, 255]),
    st.binary(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(
    datagrams=st.lists(st.one_of(st.binary(max_size=60), _HEADERS), max_size=40),
    times=st.lists(st.floats(0, 20), min_size=40, max_size=40),
)
def test_random_datagrams_never_raise_and_stay_bounded(datagrams: list[bytes], times: list[float]) -> None:
    asm = ChunkAssembler(timeout_s=5.0, max_pending_bytes=200, max_pending_messages=2, max_message_bytes=100)
    now = 0.0
    for datagram, step in zip(datagrams, times, strict=False):
        now += step
        got = asm.add(datagram, "h", PEER, now)
        for problem in got.problems:
            assert problem.kind and problem.detail
        if got.message is not None:
            result = decompress(got.message, 1000, PEER)
            assert isinstance(result, bytes) or result.kind.startswith(("bad_", "oversized"))
        asm.expire(now)
        assert len(asm) <= 2 and asm.pending_bytes <= 200 + 100
    asm.flush()
    assert len(asm) == 0 and asm.pending_bytes == 0
