"""Cutting a hunt's files into pieces for worker processes, and reading one piece.

    pieces = plan_pieces(files, workers=2)         # whole files, or ranges of a big one
    for item in read_piece(piece, "hunt", "hunt"):  # what read_file yields for that range
        ...

A piece is a whole file, a range of lines of a JSON lines (or text) file, or a range of 64 KiB
chunks of an EVTX file. Reading every piece of a file in order yields exactly the items that
:func:`norrvakt.sources.files.read_file` yields for the whole file (same records, peers,
progress and messages; ``tests/detect/test_hunt_split.py`` checks it), with two exceptions the
reader of an EVTX range cannot know alone: how many records the ranges before it tried, and
their last EventRecordID. Where a message needs them the item is a :class:`Deferred` that the
parent, which merges the pieces in order and so knows both, turns into the same text.

Line ranges start at a line boundary, so their line numbers come from counting the newlines
before the cut (one read of the file, in :func:`plan_pieces`). An EVTX range is read through a
window that shows the file's header and the range's chunks; the parser numbers those chunks
from 0, so a message naming a chunk gets the file's number back. Compressed files are never cut.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from norrvakt.event import Event
from norrvakt.sources.files import (
    EVTX_MAGIC,
    MAX_LINE_BYTES,
    FileItem,
    detect_format,
    file_record,
    progress_total,
    read_file,
)

# A file is cut when it is bigger than a piece; pieces aim at a few per worker so that a slow
# piece does not leave the other workers idle, but stay big enough that starting one is cheap.
MIN_PIECE = 1 << 20
MAX_PIECE = 16 << 20
PIECES_PER_WORKER = 4
_SCAN_BLOCK = 1 << 20
# The EVTX layout: a 4 KiB file header, then chunks of 64 KiB that each parse on their own.
EVTX_HEADER = 4096
EVTX_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class Piece:
    """One unit of work: the whole file ``number`` or a range of it."""

    number: int  # the file's index in the hunt's file list
    path: Path
    fmt: str  # evtx | jsonl | text (as detect_format says)
    start: int = 0  # lines: byte offset; evtx: chunk index
    end: int | None = None  # exclusive; None: to the end of the file
    first_line: int = 1  # lines: the number of the line at ``start``
    first: bool = True  # the file's first piece
    last: bool = True  # the file's last piece

    @property
    def whole(self) -> bool:
        return self.first and self.last

    @property
    def total(self) -> int:
        """Progress units of the whole file (records for EVTX, bytes otherwise)."""
        return progress_total(self.path, self.fmt) or 1


@dataclass(frozen=True, slots=True)
class Deferred:
    """A problem of an EVTX range whose text needs what the ranges before it read.

    ``last_id`` is None when no record of this range had an EventRecordID before it."""

    kind: str  # bad_record | truncated | parse
    path: Path
    index: int = 0  # bad_record: records tried in this range, this one included
    last_id: int | None = None
    text: str = ""  # the parser's reason (bad_record, parse); the message up to the id (truncated)

    def render(self, base_index: int, base_last_id: int) -> str:
        last_id = self.last_id if self.last_id is not None else base_last_id
        if self.kind == "bad_record":
            return (
                f"{self.path}: record #{base_index + self.index} (after EventRecordID {last_id}) "
                f"is damaged: {self.text}"
            )
        if self.kind == "truncated":
            return f"{self.text}{last_id} in that chunk are lost"
        return f"file:{self.path}#{last_id}: {self.text}"


@dataclass(slots=True)
class EvtxTally:
    """What a range of an EVTX file read, for the ranges after it."""

    tried: int = 0  # records asked of the parser (damaged ones too)
    done: int = 0  # records read
    last_id: int | None = None  # the last EventRecordID read, None if none


# A peer whose record id is the previous range's last one: only a record without an
# EventRecordID that comes before any record with one in its range has it (the parent fixes it).
UNKNOWN_ID_PEER = "#\x00previous"


def line_number(event: Event) -> int | None:
    """The line an event was read from, None for EVTX: JSONL and text records carry
    ``file:<path>:<line>`` as their peer (norrvakt.sources.files), EVTX ones ``file:<path>#<id>``."""
    _, sep, tail = event.peer.rpartition(":")
    return int(tail) if sep and tail.isdigit() and "#" not in event.peer else None


def worth_workers(files: list[Path]) -> bool:
    """Whether ``files`` are enough work for worker processes: under one piece's worth, forking
    them and warming each one's rule index (its buckets and matchers, built on first use) cost
    more than they save."""
    total = 0
    for path in files:
        try:
            total += path.stat().st_size
        except OSError:
            continue
        if total >= MIN_PIECE:
            return True
    return False


def plan_pieces(files: list[Path], workers: int, piece_bytes: int | None = None) -> list[Piece]:
    """The pieces of ``files`` in hunt order. ``piece_bytes`` (tests) overrides the size."""
    sizes: list[int] = []
    for path in files:
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            sizes.append(0)  # read as a whole: the worker reports it as the one-process hunt does
    if piece_bytes is None:
        piece_bytes = min(MAX_PIECE, max(MIN_PIECE, sum(sizes) // max(1, workers * PIECES_PER_WORKER)))
    pieces: list[Piece] = []
    for number, (path, size) in enumerate(zip(files, sizes, strict=True)):
        fmt = detect_format(path)
        if size <= piece_bytes or workers < 2 or path.name.lower().endswith(".gz"):
            pieces.append(Piece(number, path, fmt))
        elif fmt == "evtx":
            pieces.extend(_evtx_pieces(number, path, size, piece_bytes))
        else:
            pieces.extend(_line_pieces(number, path, fmt, size, piece_bytes))
    return pieces


def _evtx_pieces(number: int, path: Path, size: int, piece_bytes: int) -> list[Piece]:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(8)
    except OSError:
        magic = b""
    chunks = (size - EVTX_HEADER) // EVTX_CHUNK
    step = max(1, piece_bytes // EVTX_CHUNK)
    if magic != EVTX_MAGIC or chunks <= step:
        return [Piece(number, path, "evtx")]
    starts = list(range(0, chunks, step))
    return [
        Piece(
            number,
            path,
            "evtx",
            start,
            None if i == len(starts) - 1 else start + step,
            first=i == 0,
            last=i == len(starts) - 1,
        )
        for i, start in enumerate(starts)
    ]


def _line_pieces(number: int, path: Path, fmt: str, size: int, piece_bytes: int) -> list[Piece]:
    """Cut after the first newline past every ``piece_bytes``; count the lines before each cut."""
    cuts: list[tuple[int, int]] = [(0, 1)]  # (byte offset, number of the line there)
    try:
        with open(path, "rb") as fh:
            pos = 0  # offset of block[0]
            lines = 0  # newlines before block[0]
            want = piece_bytes  # the next cut is at the first line start at or after this
            while block := fh.read(_SCAN_BLOCK):
                while want <= pos + len(block):
                    newline = block.find(b"\n", max(0, want - pos - 1))
                    if newline < 0:
                        break
                    cut = pos + newline + 1
                    if cut >= size:
                        break
                    cuts.append((cut, 1 + lines + block.count(b"\n", 0, newline + 1)))
                    want = cut + piece_bytes
                lines += block.count(b"\n")
                pos += len(block)
    except OSError:
        return [Piece(number, path, fmt)]
    return [
        Piece(
            number,
            path,
            fmt,
            start,
            cuts[i + 1][0] if i + 1 < len(cuts) else None,
            line,
            first=i == 0,
            last=i + 1 == len(cuts),
        )
        for i, (start, line) in enumerate(cuts)
    ]


def read_piece(
    piece: Piece, tenant: str, source_id: str, tally: EvtxTally | None = None
) -> Iterator[FileItem | Deferred]:
    """The items of ``piece``; for EVTX ``tally`` (if given) is filled as reading goes."""
    if piece.fmt == "evtx":
        yield from _read_evtx_range(piece, tenant, source_id, tally or EvtxTally())
    elif piece.whole:
        yield from read_file(piece.path, tenant, source_id, piece.fmt)
    else:
        yield from _read_line_range(piece, tenant, source_id)


def _read_line_range(piece: Piece, tenant: str, source_id: str) -> Iterator[FileItem]:
    """norrvakt.sources.files._read_lines for the lines from ``piece.start`` to ``piece.end``."""
    path, fmt, tz = piece.path, "json" if piece.fmt == "jsonl" else "text", "UTC"
    peer_base = f"file:{path}"
    offset = piece.start
    end = piece.end
    with open(path, "rb") as fh:
        fh.seek(offset)
        for line_no, line in enumerate(fh, start=piece.first_line):
            start = offset
            offset += len(line)
            body = line.rstrip(b"\r\n")
            if body.strip():
                if len(body) > MAX_LINE_BYTES:
                    yield FileItem(
                        file_record(
                            tenant, source_id, f"{peer_base}:{line_no}", body[:MAX_LINE_BYTES], fmt, tz
                        ),
                        "file.oversized_line",
                        f"{path}:{line_no} (byte offset {start}): "
                        f"line of {len(body)} bytes cut to {MAX_LINE_BYTES}",
                        offset,
                    )
                else:
                    yield FileItem(
                        file_record(tenant, source_id, f"{peer_base}:{line_no}", body, fmt, tz),
                        progress=offset,
                    )
            if end is not None and offset >= end:
                break


class _ChunkWindow(io.RawIOBase):
    """An EVTX file as the parser sees it for chunks [start, end): the real header, then those
    chunks (the last range: up to the real end of the file). Not the chunks before: the parser
    would read each of them whole, a file of gigabytes for every range."""

    def __init__(self, path: Path, start: int, end: int | None) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed in close()
        size = self._fh.seek(0, io.SEEK_END)
        self._skip = start * EVTX_CHUNK  # what the window leaves out after the header
        stop = size if end is None else min(size, EVTX_HEADER + end * EVTX_CHUNK)
        self._size = max(EVTX_HEADER, stop - self._skip) if stop > EVTX_HEADER else stop
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        pos = self._pos
        stop = self._size if size is None or size < 0 else min(self._size, pos + size)
        if pos >= stop:
            return b""
        parts: list[bytes] = []
        if pos < EVTX_HEADER:  # the header
            upto = min(stop, EVTX_HEADER)
            self._fh.seek(pos)
            parts.append(self._fh.read(upto - pos))
            pos = upto
        if pos < stop:  # the range's chunks
            self._fh.seek(pos + self._skip)
            parts.append(self._fh.read(stop - pos))
        data = b"".join(parts)
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._fh.close()
        super().close()


def _file_chunk_numbers(reason: str, start: int) -> str:
    """The parser numbers the chunks of a window from 0: name the file's chunk, as reading
    the whole file does ("Failed to parse chunk number 4: ...")."""
    if not start:
        return reason
    return _CHUNK_NUMBER.sub(lambda m: f"{m[1]}{int(m[2]) + start}", reason, count=1)


_CHUNK_NUMBER = re.compile(r"^(Failed to parse chunk number )(\d+)")


def _read_evtx_range(
    piece: Piece, tenant: str, source_id: str, tally: EvtxTally
) -> Iterator[FileItem | Deferred]:
    """norrvakt.sources.files._read_evtx for the chunks of ``piece``, on one thread.

    The counters start at zero; the parent adds what the earlier ranges of the file read
    (record numbers in messages, progress); chunk numbers are made the file's own."""
    import evtx

    path = piece.path
    peer_base = f"file:{path}"
    tz = "UTC"
    if piece.whole:
        source: object = str(path)
        window = None
    else:
        source = window = _ChunkWindow(path, piece.start, piece.end)
    try:
        try:
            parser = evtx.PyEvtxParser(source, number_of_threads=1)
        except (RuntimeError, OSError):
            if not piece.first:
                return  # the first range reports it, as the whole file would have once
            # The whole-file reader's message (it names the path, not the window) - and only it.
            first = next(read_file(path, tenant, source_id, "evtx"), None)
            if first is None or first.error_type != "evtx.bad_file":
                raise
            yield first
            return
        records = parser.records_json()
        while True:
            tally.tried += 1
            try:
                rec = next(records)
            except StopIteration:
                tally.tried -= 1
                break
            except RuntimeError as exc:
                if piece.first:
                    after = f"{peer_base}#after-{tally.last_id or 0}"
                    yield FileItem(
                        file_record(tenant, source_id, after, b"", "windows", tz),
                        "evtx.bad_record",
                        f"{path}: record #{tally.tried} (after EventRecordID {tally.last_id or 0}) "
                        f"is damaged: {exc}",
                        tally.done,
                    )
                else:
                    reason = _file_chunk_numbers(str(exc), piece.start)
                    yield Deferred("bad_record", path, tally.tried, tally.last_id, reason)
                continue
            if rec is None:
                tally.tried -= 1
                break
            tally.done += 1
            record_id = int(rec.get("event_record_id") or 0)
            if record_id:
                tally.last_id = record_id
            elif piece.first and tally.last_id is None:
                tally.last_id = 0
            data = rec["data"]
            payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            peer = peer_base + (UNKNOWN_ID_PEER if tally.last_id is None else f"#{tally.last_id}")
            yield FileItem(file_record(tenant, source_id, peer, payload, "windows", tz), progress=tally.done)
        if piece.last:
            size = path.stat().st_size
            if size > EVTX_HEADER and (size - EVTX_HEADER) % EVTX_CHUNK:
                chunk_no = (size - EVTX_HEADER) // EVTX_CHUNK
                offset = EVTX_HEADER + chunk_no * EVTX_CHUNK
                text = (
                    f"{path}: file ends inside chunk {chunk_no} "
                    f"(offset {offset}, {size - offset} of {EVTX_CHUNK} bytes); "
                    f"records after EventRecordID "
                )
                if piece.first or tally.last_id is not None:
                    last = tally.last_id or 0
                    yield FileItem(
                        file_record(tenant, source_id, f"{peer_base}#end", b"", "windows", tz),
                        "evtx.truncated",
                        f"{text}{last} in that chunk are lost",
                        tally.done,
                    )
                else:
                    yield Deferred("truncated", path, 0, None, text)
    finally:
        if window is not None:
            window.close()
