"""Pieces of a hunt's files: reading every piece of a file in order gives what reading the
whole file gives (norrvakt.sources.files.read_file), for JSON lines and for EVTX."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from norrvakt.detect.hunt_split import (
    EVTX_CHUNK,
    MIN_PIECE,
    Deferred,
    EvtxTally,
    Piece,
    plan_pieces,
    read_piece,
    worth_workers,
)
from norrvakt.sources.files import MAX_LINE_BYTES, FileItem, read_file
from tests.conftest import shared_data

from .hunt_corpus import chunks, write_evtx

Item = tuple[str, bytes, str | None, str, int]


def _items(items: list[FileItem]) -> list[Item]:
    """What a reader says about each record (not when it read it)."""
    return [(i.record.peer, i.record.payload, i.error_type, i.error, i.progress) for i in items]


def _pieces_read(pieces: list[Piece]) -> list[Item]:
    out: list[Item] = []
    done = 0  # EVTX: records read by the pieces before
    for piece in pieces:
        tally = EvtxTally()
        for item in read_piece(piece, "hunt", "hunt", tally):
            assert not isinstance(item, Deferred), item  # clean files: nothing needs the earlier pieces
            progress = item.progress + (done if piece.fmt == "evtx" else 0)
            out.append((item.record.peer, item.record.payload, item.error_type, item.error, progress))
        done += tally.done
    return out


def _lines_file(path: Path) -> Path:
    lines = [b'{"n": %d, "pad": "%s"}' % (i, b"x" * (i % 97)) for i in range(400)]
    lines[17] = b""  # blank lines are skipped but counted
    lines[18] = b"   "
    lines[40] = lines[40] + b"\r"  # CRLF
    lines[200] = b'{"big": "' + b"y" * (MAX_LINE_BYTES + 10) + b'"}'  # cut and named
    path.write_bytes(b"\n".join(lines))  # no newline after the last line
    return path


@pytest.mark.parametrize("piece_bytes", [1, 50, 999, 4096, 1 << 20])
def test_line_pieces_read_like_the_whole_file(tmp_path: Path, piece_bytes: int) -> None:
    path = _lines_file(tmp_path / "events.jsonl")
    pieces = plan_pieces([path], workers=2, piece_bytes=piece_bytes)
    assert pieces[0].first and pieces[-1].last and all(p.number == 0 for p in pieces)
    if piece_bytes < 4096:
        assert len(pieces) > 10
    assert _pieces_read(pieces) == _items(list(read_file(path, "hunt", "hunt")))


def test_line_pieces_start_at_a_line_with_its_number(tmp_path: Path) -> None:
    path = _lines_file(tmp_path / "events.jsonl")
    data = path.read_bytes()
    pieces = plan_pieces([path], workers=2, piece_bytes=3000)
    for before, piece in itertools.pairwise(pieces):
        assert before.end == piece.start and data[piece.start - 1 : piece.start] == b"\n"
        assert piece.first_line == data[: piece.start].count(b"\n") + 1
    assert pieces[-1].end is None


def test_compressed_and_small_files_are_not_cut(tmp_path: Path) -> None:
    path = _lines_file(tmp_path / "events.jsonl")
    packed = tmp_path / "packed.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    small = tmp_path / "small.jsonl"
    small.write_bytes(b'{"a": 1}\n')
    pieces = plan_pieces([packed, small, path], workers=2, piece_bytes=1000)
    assert [p.number for p in pieces[:2]] == [0, 1] and pieces[0].whole and pieces[1].whole
    assert len(pieces) > 3 and {p.number for p in pieces[2:]} == {2}
    assert plan_pieces([path], workers=1, piece_bytes=1000) == [Piece(0, path, "jsonl")]


def test_piece_size_follows_the_corpus(tmp_path: Path) -> None:
    line = b'{"pad": "' + b"z" * 1000 + b'"}\n'
    big = tmp_path / "big.jsonl"
    big.write_bytes(line * 3 * 1024)  # 3 MiB: a few pieces of at least MIN_PIECE
    small = tmp_path / "small.jsonl"
    small.write_bytes(line * 900)  # under MIN_PIECE: never cut
    pieces = plan_pieces([small, big], workers=2)
    assert pieces[0].whole and len(pieces) == 1 + 3
    assert all(MIN_PIECE <= p.end - p.start < MIN_PIECE + len(line) for p in pieces[1:-1] if p.end)


def test_evtx_pieces_read_like_the_whole_file() -> None:
    samples = shared_data("evtx-attack-samples")
    multi = [p for p in sorted(samples.rglob("*.evtx")) if p.stat().st_size > 4096 + EVTX_CHUNK]
    assert len(multi) >= 10
    for path in multi:
        pieces = plan_pieces([path], workers=2, piece_bytes=EVTX_CHUNK)
        assert len(pieces) == (path.stat().st_size - 4096) // EVTX_CHUNK
        assert _pieces_read(pieces) == _items(list(read_file(path, "hunt", "hunt"))), path


def test_a_big_evtx_file_of_many_chunks(tmp_path: Path) -> None:
    samples = shared_data("evtx-attack-samples")
    files = sorted(samples.rglob("*.evtx"))[:60]
    big = tmp_path / "big.evtx"
    count = write_evtx(big, files[0], chunks(files))
    pieces = plan_pieces([big], workers=2, piece_bytes=7 * EVTX_CHUNK)
    assert len(pieces) == -(-count // 7)
    whole = _items(list(read_file(big, "hunt", "hunt")))
    assert len(whole) > 1000 and not [i for i in whole if i[2]]
    assert _pieces_read(pieces) == whole


def test_a_small_corpus_is_not_worth_workers(tmp_path: Path) -> None:
    files = []
    for i in range(5):
        files.append(tmp_path / f"f{i}.jsonl")
        files[-1].write_bytes(b'{"a": 1}\n' * 20_000)  # 180 KB each
    assert not worth_workers(files) and not worth_workers([])
    files.append(tmp_path / "more.jsonl")
    files[-1].write_bytes(b'{"a": 1}\n' * 20_000)
    assert worth_workers(files)  # 1.08 MB: at least a piece
