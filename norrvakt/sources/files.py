"""Reading log files for `norrvakt import` and `norrvakt hunt`: EVTX, JSONL and plain text.

EVTX records are read with the ``evtx`` package (pyevtx-rs) as JSON; a damaged record is
reported with its record number and the parser's reason, and reading goes on with the next
one. A file cut short (size not a whole number of 64 KiB chunks, or fewer records than the
header announces) is reported too, since the parser itself silently stops there.
JSONL and text files are read line by line (``.gz`` too); problems name the line.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from norrvakt.event import RawRecord, now_us

log = logging.getLogger(__name__)

EVTX_MAGIC = b"ElfFile\x00"
_EVTX_HEADER = 4096
_EVTX_CHUNK = 65536
MAX_LINE_BYTES = 1024 * 1024


@dataclass(slots=True)
class FileItem:
    """One record read from a file, or a problem found at a place in it."""

    record: RawRecord
    error_type: str | None = None
    error: str = ""
    progress: int = 0  # units done so far (bytes, or records for EVTX)


LOG_SUFFIXES = (".evtx", ".jsonl", ".ndjson", ".json", ".log", ".txt", ".syslog")


def is_log_file_name(name: str) -> bool:
    """Whether a file found in a directory is imported: known log suffixes (also .gz), or
    rotated logs such as ``auth.log.1``."""
    lower = name.lower().removesuffix(".gz")
    if lower.endswith(LOG_SUFFIXES):
        return True
    stem, _, last = lower.rpartition(".")
    return last.isdigit() and stem.endswith(LOG_SUFFIXES)


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(".evtx"):
        return "evtx"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return "text"
    if head == EVTX_MAGIC:
        return "evtx"
    return "jsonl" if head.lstrip()[:1] == b"{" else "text"


def progress_total(path: Path, fmt: str) -> int:
    """Units :func:`read_file` counts progress in: records for EVTX, bytes otherwise."""
    if fmt == "evtx":
        expected = _evtx_expected_records(path)
        return expected if expected is not None else 0
    return path.stat().st_size


def read_file(
    path: Path, tenant: str, source_id: str, fmt: str = "auto", timezone: str = "UTC"
) -> Iterator[FileItem]:
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "evtx":
        yield from _read_evtx(path, tenant, source_id, timezone)
    elif fmt in {"jsonl", "text"}:
        yield from _read_lines(path, tenant, source_id, "json" if fmt == "jsonl" else "text", timezone)
    else:
        raise ValueError(f"unknown file format {fmt!r}; one of auto, evtx, jsonl, text")


def file_record(tenant: str, source_id: str, peer: str, payload: bytes, fmt: str, tz: str) -> RawRecord:
    """A record read from a file (received now); ``peer`` names the file and the place in it."""
    return RawRecord(
        tenant=tenant,
        source_id=source_id,
        received_at=now_us(),
        peer=peer,
        payload=payload,
        format=fmt,
        timezone=tz,
    )


def _evtx_expected_records(path: Path) -> int | None:
    try:
        with open(path, "rb") as fh:
            header = fh.read(48)
    except OSError:
        return None
    if len(header) < 32 or header[:8] != EVTX_MAGIC:
        return None
    first = int.from_bytes(header[16:24], "little")
    nxt = int.from_bytes(header[24:32], "little")
    if nxt < first:
        return None
    return nxt - first


def _read_evtx(path: Path, tenant: str, source_id: str, tz: str) -> Iterator[FileItem]:
    import evtx

    peer_base = f"file:{path}"
    try:
        parser = evtx.PyEvtxParser(str(path))
    except (RuntimeError, OSError) as exc:
        with open(path, "rb") as fh:
            head = fh.read(64)
        yield FileItem(
            file_record(tenant, source_id, f"{peer_base}#0", head, "windows", tz),
            "evtx.bad_file",
            f"{path}: not a readable EVTX file at offset 0: {exc}",
        )
        return
    records = parser.records_json()
    done = 0
    last_id = 0
    index = 0
    while True:
        index += 1
        try:
            rec = next(records)
        except StopIteration:
            break
        except RuntimeError as exc:
            yield FileItem(
                file_record(tenant, source_id, f"{peer_base}#after-{last_id}", b"", "windows", tz),
                "evtx.bad_record",
                f"{path}: record #{index} (after EventRecordID {last_id}) is damaged: {exc}",
                done,
            )
            continue
        if rec is None:
            break
        done += 1
        last_id = int(rec.get("event_record_id") or last_id)
        data = rec["data"]
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        yield FileItem(
            file_record(tenant, source_id, f"{peer_base}#{last_id}", payload, "windows", tz), progress=done
        )
    size = path.stat().st_size
    if size > _EVTX_HEADER and (size - _EVTX_HEADER) % _EVTX_CHUNK:
        chunk_no = (size - _EVTX_HEADER) // _EVTX_CHUNK
        offset = _EVTX_HEADER + chunk_no * _EVTX_CHUNK
        yield FileItem(
            file_record(tenant, source_id, f"{peer_base}#end", b"", "windows", tz),
            "evtx.truncated",
            f"{path}: file ends inside chunk {chunk_no} "
            f"(offset {offset}, {size - offset} of {_EVTX_CHUNK} bytes); "
            f"records after EventRecordID {last_id} in that chunk are lost",
            done,
        )


def _open(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _read_lines(path: Path, tenant: str, source_id: str, fmt: str, tz: str) -> Iterator[FileItem]:
    peer_base = f"file:{path}"
    offset = 0
    with _open(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            start = offset
            offset += len(line)
            body = line.rstrip(b"\r\n")
            if not body.strip():
                continue
            if len(body) > MAX_LINE_BYTES:
                yield FileItem(
                    file_record(tenant, source_id, f"{peer_base}:{line_no}", body[:MAX_LINE_BYTES], fmt, tz),
                    "file.oversized_line",
                    f"{path}:{line_no} (byte offset {start}): "
                    f"line of {len(body)} bytes cut to {MAX_LINE_BYTES}",
                    offset,
                )
                continue
            yield FileItem(
                file_record(tenant, source_id, f"{peer_base}:{line_no}", body, fmt, tz), progress=offset
            )
