"""Bigger hunt corpora made from real EVTX files: their chunks in one big EVTX file, their
records as JSON lines. Used by the hunt worker tests and by bench/hunt.py's large-corpus mode.

EVTX chunks parse on their own (each has its string and template tables), so the chunks of many
files put one after another behind one file header make a valid file; the records keep their
own EventRecordIDs.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

HEADER = 4096
CHUNK = 65536
CHUNK_MAGIC = b"ElfChnk\x00"


def chunks(files: Iterable[Path]) -> Iterator[bytes]:
    """The used chunks of ``files`` (a preallocated, empty chunk is skipped)."""
    for path in files:
        with open(path, "rb") as fh:
            fh.seek(HEADER)
            while chunk := fh.read(CHUNK):
                if len(chunk) == CHUNK and chunk.startswith(CHUNK_MAGIC):
                    yield chunk


def chunk_records(chunk: bytes) -> int:
    """How many records a chunk's header says it holds."""
    first = int.from_bytes(chunk[8:16], "little")
    last = int.from_bytes(chunk[16:24], "little")
    return last - first + 1 if last >= first else 0


def write_evtx(path: Path, header_from: Path, body: Iterable[bytes]) -> int:
    """``body`` (chunks) behind the header of ``header_from``, its chunk count and next record
    number set to match (for a reader's progress); returns the number of chunks."""
    header = bytearray(header_from.read_bytes()[:HEADER])
    count = records = 0
    with open(path, "wb") as fh:
        fh.write(bytes(HEADER))
        for chunk in body:
            fh.write(chunk)
            count += 1
            records += chunk_records(chunk)
        header[8:16] = (0).to_bytes(8, "little")  # first chunk number
        header[16:24] = (max(count - 1, 0)).to_bytes(8, "little")  # last chunk number
        header[24:32] = (records + 1).to_bytes(8, "little")  # next record number
        header[42:44] = min(count, 0xFFFF).to_bytes(2, "little")
        header[124:128] = zlib.crc32(bytes(header[:120])).to_bytes(4, "little")
        fh.seek(0)
        fh.write(header)
    return count


def evtx_json_lines(files: Iterable[Path]) -> Iterator[bytes]:
    """Each record of ``files`` as one compact JSON line (the evtx package's JSON of it)."""
    import evtx

    for path in files:
        for record in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json():
            yield orjson.dumps(orjson.loads(record["data"])) + b"\n"
