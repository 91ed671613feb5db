"""A search result as CSV or NDJSON, streamed: the rows go out block by block as chDB reads them.

    >>> progress = ExportProgress()
    >>> for chunk in export_chunks(store, compiled, "csv", ExportLimits(1_000_000, 2**30), progress):
    ...     out.write(chunk)                      # progress.rows / .bytes so far, .cut if a limit hit

Nothing holds the whole result: events come from :meth:`ClickHouseStore.stream_columns`, one
block of :data:`BLOCK_ROWS` rows at a time, read in the table's key order (by tenant, newest
first: :func:`norrvakt.search.compile_export`) so ClickHouse streams them instead of sorting
the result first; a ``| sort`` of the analyst's own is sorted by ClickHouse, on disk beyond
:data:`SORT_BYTES`. Chunks of about :data:`CHUNK_BYTES` are handed on. A limit (rows or bytes) ends the
export with a last line that says so — a CSV row starting ``# export cut`` or an NDJSON object
``{"_export": {"cut": true, ...}}`` — never silently; a complete export has no such line.
Every CSV cell goes through :mod:`norrvakt.csv_safe`, so a user name like ``=HYPERLINK(...)``
stays text in a spreadsheet.

Events are exported with ``| sort`` / ``| head`` / ``| dedup`` / ``| fields`` applied; the CSV
columns of whole events are ``@timestamp, tenant, seq,
ingested, source, peer``, every ECS field, ``fields`` (JSON), ``message``, ``raw``.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from norrvakt.csv_safe import safe_row
from norrvakt.event import ECS_FIELDS
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.query import CompiledQuery, event_result, run_query
from norrvakt.store.query_time import iso_time

Format = Literal["csv", "ndjson"]
FORMATS: tuple[Format, ...] = ("csv", "ndjson")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
BLOCK_ROWS = 1024  # rows per block from ClickHouse (its default, 65,409, can be 500 MB of events)
SORT_BYTES = 64 * 2**20  # ClickHouse sorts on disk beyond this (ORDER BY of a big export)
CHUNK_BYTES = 256 * 2**10
# One reading thread: an export goes as fast as its reader downloads, and each thread holds
# granules of its own (measured over 12 KB rows: ~68 MB at several threads, ~45 MB at one).
ENGINE_SETTINGS: dict[str, Any] = {
    "max_block_size": BLOCK_ROWS,
    "max_bytes_before_external_sort": SORT_BYTES,
    "max_threads": 1,
}
_BASE = ["@timestamp", "tenant", "seq", "ingested", "source", "peer"]
EVENT_CSV_COLUMNS = [*_BASE, *ECS_FIELDS, "fields", "message", "raw"]


@dataclass(frozen=True)
class ExportLimits:
    """Most rows and bytes one export may hold (``search.export_max_rows`` / ``_bytes``)."""

    max_rows: int
    max_bytes: int


@dataclass
class ExportProgress:
    """How far an export got; ``cut`` names the limit that ended it ("" = not cut)."""

    rows: int = 0
    bytes: int = 0
    cut: str = ""


def export_chunks(
    store: ClickHouseStore,
    compiled: CompiledQuery,
    fmt: Format,
    limits: ExportLimits,
    progress: ExportProgress,
    settings: dict[str, Any] | None = None,
) -> Iterator[bytes]:
    """The export of ``compiled`` (compiled with ``stream`` and a ``limit`` above
    ``limits.max_rows``: :func:`norrvakt.search.compile_export`) as byte chunks.

    ``progress`` is updated as rows go out; ``settings`` are ClickHouse settings added to the
    query's (a tighter ``max_memory_usage``, say). Closing the generator early (a cancelled
    download) closes the store's stream too."""
    writer = _Writer(fmt, limits, progress)
    if compiled.plan is not None:  # an aggregation: a few thousand rows at most
        result = run_query(store, compiled)
        yield from writer.rows(result.columns, result.rows)
    else:
        yield from _events(store, compiled, writer, {**ENGINE_SETTINGS, **(settings or {})})
    trailer = writer.finish()
    if trailer:
        yield trailer


def _events(
    store: ClickHouseStore, compiled: CompiledQuery, writer: _Writer, settings: dict[str, Any]
) -> Iterator[bytes]:
    columns = (
        compiled.columns if compiled.projected else [c for c in EVENT_CSV_COLUMNS if c not in compiled.drop]
    )
    with store.stream_columns(compiled.sql, compiled.parameters, settings) as (names, blocks):
        rows = itertools.islice((r for block in blocks for r in block), compiled.stream_limit)
        docs = (
            _flat(event_result(compiled, dict(zip(names, r, strict=True))), compiled.projected) for r in rows
        )
        yield from writer.rows(columns, docs)


def _flat(doc: dict[str, Any], projected: bool) -> dict[str, Any]:
    """An event row for CSV: ECS fields as columns, ``fields`` as JSON, times as ISO text."""
    if projected:
        return doc
    flat = {k: v for k, v in doc.items() if k not in ("ecs", "fields", "ts", "ingested")}
    flat["ingested"] = iso_time(int(doc["ingested"])) if "ingested" in doc else ""
    flat.update(doc.get("ecs") or {})
    if "fields" in doc:
        flat["fields"] = json.dumps(doc["fields"], ensure_ascii=False, sort_keys=True)
    flat["_doc"] = doc  # NDJSON writes the row as the search API answers it
    return flat


class _LastLine:
    """A file for csv.writer that keeps the line it wrote last (one write() per row)."""

    text = ""

    def write(self, text: str) -> int:
        self.text = text
        return len(text)


class _Writer:
    def __init__(self, fmt: Format, limits: ExportLimits, progress: ExportProgress) -> None:
        self.fmt = fmt
        self.limits = limits
        self.progress = progress
        self._line_out = _LastLine()
        self._csv = csv.writer(self._line_out, lineterminator="\r\n")

    def _csv_line(self, values: Iterable[Any], safe: bool = True) -> bytes:
        self._csv.writerow(safe_row(values) if safe else list(values))
        return self._line_out.text.encode("utf-8")

    def _line(self, columns: list[str], row: dict[str, Any]) -> bytes:
        if self.fmt == "ndjson":
            doc = row.get("_doc", row)
            return json.dumps(doc, ensure_ascii=False, default=str).encode("utf-8") + b"\n"
        return self._csv_line("" if row.get(c) is None else row.get(c, "") for c in columns)

    def rows(self, columns: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
        buffer = bytearray()
        if self.fmt == "csv":
            # Column names are ours or the analyst's own (``| fields``), not log data: as they are
            buffer += self._csv_line(columns, safe=False)
            self.progress.bytes += len(buffer)
        for row in rows:
            if self.progress.rows >= self.limits.max_rows:
                self.progress.cut = f"{self.limits.max_rows:,} rows (search.export_max_rows)"
                break
            line = self._line(columns, row)
            if self.progress.bytes + len(line) > self.limits.max_bytes:
                self.progress.cut = f"{self.limits.max_bytes:,} bytes (search.export_max_bytes)"
                break
            buffer += line
            self.progress.rows += 1
            self.progress.bytes += len(line)
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer)
                buffer.clear()
        if buffer:
            yield bytes(buffer)

    def finish(self) -> bytes:
        """The trailer of a cut export (b"" for a complete one)."""
        if not self.progress.cut:
            return b""
        message = (
            f"export cut after {self.progress.rows:,} rows: the limit of {self.progress.cut} was reached; "
            "narrow the search or the time range"
        )
        if self.fmt == "ndjson":
            trailer = {"_export": {"cut": True, "rows": self.progress.rows, "reason": message}}
            return json.dumps(trailer).encode() + b"\n"
        return self._csv_line([f"# {message}"])
