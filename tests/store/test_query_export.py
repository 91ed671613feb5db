"""Exports of a search (CSV / NDJSON) from real chDB: what they hold, CSV cells that stay text,
the size limits and their trailer line, memory that stays bounded over a big export, and a
download cancelled halfway through the real Starlette response (stream closed, slot freed,
audited as cancelled)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from norrvakt.search import compile_export
from norrvakt.store.clickhouse import ClickHouseStore, StoreConfig
from norrvakt.store.query_export import ENGINE_SETTINGS, ExportLimits, ExportProgress, export_chunks
from norrvakt.web.api.export_stream import ExportResponse, ExportStream
from norrvakt.web.limits import UserLimiter
from tests.store.test_query_store import EVENTS, _ev

FORMULA_USER = '=HYPERLINK("http://evil","x")'
BIG = 20_000  # rows of ~12 KB (message + raw) for the memory checks: ~240 MB


@pytest.fixture(scope="module")
def store(chdb_path: Path) -> Iterator[ClickHouseStore]:
    database = f"test_export_{os.getpid()}"
    s = StoreConfig(dsn=f"chdb://{chdb_path}", database=database, retention_days=0).build()
    s.insert_events([*EVENTS, _ev(40, "+cmd|' /C calc'!A0 logged on", user_name=FORMULA_USER)])
    # Boden's big export, written by ClickHouse itself (30,000 Python events would take ~10 s)
    s.command(
        "INSERT INTO events (tenant, seq, ts, ingested, source, peer, user_name, fields, message, raw) "
        "SELECT 'boden', number, fromUnixTimestamp64Micro(toInt64(1741593600000000 + number * 1000)), "
        "now64(6), 'hec', 'p', concat('u', toString(number % 97)), map('k', 'v'), "
        "concat('bulk row ', toString(number), ' ', repeat('x', 4000)), repeat('r', 8000) "
        f"FROM numbers({BIG})"
    )
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{database}`")
    s.close()


def export(
    store: ClickHouseStore, q: str, fmt: Any, rows: int = 1000, size: int = 10**9, tenant: str = "lulea"
) -> tuple[bytes, ExportProgress]:
    progress = ExportProgress()
    compiled = compile_export([tenant], q, since=None, until=None, max_rows=rows)
    return b"".join(export_chunks(store, compiled, fmt, ExportLimits(rows, size), progress)), progress


def test_csv_holds_every_column_and_cells_stay_text(store: ClickHouseStore) -> None:
    out, progress = export(store, "logged", "csv")
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    assert progress.rows == len(rows) == 2 and not progress.cut
    mine = next(r for r in rows if r["seq"] == "40")
    assert mine["user.name"] == "'" + FORMULA_USER  # a spreadsheet shows it, does not run it
    assert mine["message"].startswith("'+cmd")
    assert mine["tenant"] == "lulea" and mine["@timestamp"].endswith("Z")
    other = next(r for r in rows if r["seq"] == "5")
    assert json.loads(other["fields"])["EventID"] == "4624"


def test_ndjson_rows_are_the_search_apis(store: ClickHouseStore) -> None:
    out, _ = export(store, "failed password | fields user.name, source.ip | head 3", "ndjson")
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["seq"] for d in docs] == [34, 33, 32]
    assert set(docs[0]) == {"@timestamp", "tenant", "seq", "user.name", "source.ip"}


def test_a_stats_result_exports_too(store: ClickHouseStore) -> None:
    out, _ = export(store, "| top 2 host.name", "csv")
    assert out.decode().splitlines() == ["host.name,count,percent", "srv-web2,22,78.57", "lul-dc1,2,7.14"]


def test_the_row_limit_cuts_with_a_last_line_saying_so(store: ClickHouseStore) -> None:
    out, progress = export(store, "failed", "ndjson", rows=5)
    lines = out.splitlines()
    assert len(lines) == 6 and progress.rows == 5
    trailer = json.loads(lines[-1])["_export"]
    assert trailer["cut"] is True and trailer["rows"] == 5
    assert "5 rows (search.export_max_rows)" in trailer["reason"]
    exact, progress = export(store, "event.code:4625", "ndjson", rows=2)  # exactly the limit: not cut
    assert len(exact.splitlines()) == 2 and not progress.cut


def test_the_byte_limit_cuts_csv_with_a_last_row_saying_so(store: ClickHouseStore) -> None:
    out, progress = export(store, "failed | fields user.name", "csv", size=300)
    lines = out.decode().splitlines()
    assert lines[-1].startswith("# export cut after 5 rows: the limit of 300 bytes (search.export_max_bytes)")
    assert progress.bytes <= 300 and len(lines) == 1 + 5 + 1


def _python_peak(store: ClickHouseStore, rows: int) -> tuple[int, int]:
    """(bytes written, peak of Python's traced allocations) of an export of ``rows`` big rows."""
    compiled = compile_export(["boden"], f"bulk seq:<{rows}", since=None, until=None, max_rows=BIG)
    progress = ExportProgress()
    written = 0
    tracemalloc.start()
    try:
        for chunk in export_chunks(store, compiled, "csv", ExportLimits(BIG, 2**40), progress):
            written += len(chunk)  # the chunks go nowhere, as to a socket
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert progress.rows == rows
    return written, peak


def test_python_holds_one_block_of_a_big_export(store: ClickHouseStore) -> None:
    small_out, small_peak = _python_peak(store, 1100)
    big_out, big_peak = _python_peak(store, 3300)
    assert big_out > 2.9 * small_out  # three times the rows (~38 MB) ...
    # ... and not more memory: a block of 1,024 rows (~12 MB as bytes from the store and again
    # as text for the CSV) is what is held, whatever the size of the result
    assert big_peak < 1.3 * small_peak, f"{small_peak / 2**20:.0f} → {big_peak / 2**20:.0f} MiB"


def test_clickhouse_streams_a_big_export_without_holding_it(store: ClickHouseStore) -> None:
    """The export's query, read in the table's order, passes under a memory cap far below the
    ~240 MB its rows hold, and hands on blocks of 1,024 rows — also when the export will be cut
    (a LIMIT below the matches made ClickHouse answer in one block of LIMIT rows)."""
    settings = {**ENGINE_SETTINGS, "max_memory_usage": 100 * 2**20}
    for max_rows in (BIG, BIG // 2):
        compiled = compile_export(["boden"], "bulk", since=None, until=None, max_rows=max_rows)
        rows = text = biggest = 0
        with store.stream_columns(compiled.sql, compiled.parameters, settings) as (names, blocks):
            message = names.index("message")
            for block in blocks:
                rows += len(block)
                biggest = max(biggest, len(block))
                text += sum(len(r[message]) for r in block)
                if rows > max_rows:  # as export_chunks stops reading
                    break
        assert rows >= min(BIG, max_rows) and text * 3 > 0.45 * max_rows * 12_000
        assert biggest <= 1024


class _Audit:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, outcome: str, **details: Any) -> None:
        self.calls.append((outcome, details))


def test_a_download_cancelled_halfway_closes_everything_and_is_audited(store: ClickHouseStore) -> None:
    limiter = UserLimiter({"search": 1})
    audit = _Audit()
    compiled = compile_export(["boden"], "bulk", since=None, until=None, max_rows=BIG)
    progress = ExportProgress()
    sent: list[dict[str, Any]] = []
    first_body = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await first_body.wait()  # the client reads one chunk, then goes away
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            first_body.set()

    async def download() -> None:
        slot = limiter.slot("search", "anna")
        chunks = export_chunks(store, compiled, "csv", ExportLimits(BIG, 2**40), progress)
        stream = ExportStream(chunks, progress, audit)
        await stream.start()
        scope = {"type": "http", "method": "GET", "path": "/api/search/export", "headers": [], "asgi": {}}
        await ExportResponse(stream, slot, "text/csv", "x.csv")(scope, receive, send)

    asyncio.run(download())
    assert 0 < progress.rows < BIG
    assert audit.calls == [
        (
            "failure",
            {
                "state": "cancelled",
                "rows": progress.rows,
                "bytes": progress.bytes,
                "cut": "",
                "reason": f"cancelled by the client after {progress.rows:,} rows",
            },
        )
    ]
    limiter.slot("search", "anna").release()  # the slot was freed: anna may export again
    assert (
        sent[0]["headers"] and (b"content-disposition", b'attachment; filename="x.csv"') in sent[0]["headers"]
    )
