"""Search exports and result charts on a real `norrvakt serve`: the export route (CSV, NDJSON, the
size limit's last line, the audit trail, a bad query), the CLI's --format csv through the server,
and the console in a real Chromium — a bar chart for stats, a line chart for timechart, an export
with its progress."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import browser, login, shot  # noqa: F401 - fixture
from tests.e2e.harness import Server, running_server

ROWS = 60  # Luleå's events; the export limit is 40
LIMITS = "[search]\nexport_max_rows = 40\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_server(Path(tmp_path_factory.mktemp("export")), extra_toml=LIMITS) as server:
        marker = "x" + uuid.uuid4().hex[:8]
        token = server.ingest_token("lulea", "lulea-export")
        body = "\n".join(
            json.dumps({"event": f'=HYPERLINK("http://evil") login {marker} {i}', "host": f"web{i % 3}"})
            for i in range(ROWS)
        )
        resp = httpx.post(
            f"{server.url}/services/collector/event",
            content=body,
            headers={"Authorization": f"Splunk {token}"},
        )
        assert resp.status_code == 200, resp.text
        assert server.wait_count(marker, ROWS, tenant="lulea") == ROWS
        yield {"server": server, "marker": marker}


def _export(server: Server, **params: str) -> httpx.Response:
    return server.api("GET", "/api/search/export", params=params)


def _audited(server: Server, marker: str, n: int) -> list[dict[str, str]]:
    """The export audit records naming ``marker`` (waits for ``n`` of them)."""
    deadline = time.monotonic() + 20
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = server.search(f"event.action:export {marker}", tenant="_norrvakt")["rows"]
        if len(rows) >= n:
            break
        time.sleep(0.3)
    return [r["fields"] for r in rows]


def test_csv_export_is_cut_at_the_limit_with_a_last_line_and_audited(world: dict[str, Any]) -> None:
    server, marker = world["server"], world["marker"]
    resp = _export(server, q=f"{marker} | fields host.name, message", tenant="lulea", format="csv")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.headers["content-disposition"] == 'attachment; filename="norrvakt-search-lulea.csv"'
    lines = resp.text.splitlines()
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[:-1]))))
    assert len(rows) == 40 and rows[0]["message"].startswith("'=HYPERLINK(")  # text, not a formula
    assert (
        lines[-1]
        .lstrip('"')
        .startswith("# export cut after 40 rows: the limit of 40 rows (search.export_max_rows)")
    )
    states = {r["state"]: r for r in _audited(server, marker, 2)}
    assert set(states) == {"started", "cut"}
    assert states["cut"]["rows"] == "40" and states["cut"]["tenants"] == "lulea"
    assert states["cut"]["format"] == "csv"


def test_ndjson_export_of_a_stats_result_and_a_bad_query(world: dict[str, Any]) -> None:
    server, marker = world["server"], world["marker"]
    resp = _export(server, q=f"{marker} | stats count by host.name", format="ndjson")
    assert [json.loads(line) for line in resp.text.splitlines()] == [
        {"host.name": "web0", "count": 20},
        {"host.name": "web1", "count": 20},
        {"host.name": "web2", "count": 20},
    ]
    bad = _export(server, q=f"{marker} | top 0 host.name", format="csv")
    assert bad.status_code == 400 and "'top' needs at least 1 row at column" in bad.json()["detail"]


def test_cli_exports_csv_through_the_server(world: dict[str, Any]) -> None:
    server, marker = world["server"], world["marker"]
    out = server.cli(
        "search", f"{marker} | dedup host.name | fields host.name", "--tenant", "lulea", "--format", "csv"
    )
    lines = out.splitlines()
    assert lines[0] == "@timestamp,tenant,seq,host.name"
    assert sorted(line.split(",")[-1] for line in lines[1:]) == ["web0", "web1", "web2"]


# The chart is drawn: some pixel of the canvas is not transparent
DRAWN = """() => { const c = document.querySelector('canvas[data-result-chart]');
  if (!c || !c._chart) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }"""


def test_console_draws_charts_and_exports_with_progress(browser: Any, world: dict[str, Any]) -> None:  # noqa: F811
    server, marker = world["server"], world["marker"]
    page = browser.new_page(viewport={"width": 1366, "height": 850}, locale="en-US", accept_downloads=True)
    login(page, server.url, "admin", server.admin_password())
    page.fill("#q", f"{marker} | stats count by host.name")
    page.click("#search-form button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('canvas[data-result-chart]')?._chart?.data.datasets.length === 1"
    )
    page.wait_for_function(DRAWN)
    bars = page.evaluate("() => document.querySelector('canvas[data-result-chart]')._chart.config.type")
    assert bars == "bar"
    assert "3 rows" in page.inner_text("#results h2") and "hits" not in page.inner_text("#results h2")
    assert (
        page.evaluate(
            "() => document.querySelector('canvas[data-result-chart]')._chart.data.datasets[0].label"
        )
        == "count"
    )
    page.fill("#q", f"{marker} | timechart span=1h count by host.name")
    page.click("#search-form button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('canvas[data-result-chart]')?._chart?.config.type === 'line'"
    )
    series = page.evaluate(
        "() => document.querySelector('canvas[data-result-chart]')._chart.data.datasets.map(d => d.label)"
    )
    assert sorted(series) == ["web0", "web1", "web2"]
    page.wait_for_function(DRAWN)
    assert not page.is_visible(".export [data-export-cancel]")
    shot(page, "search-timechart")
    with page.expect_download() as info:
        page.click(".export button[data-export=csv]")
    download = info.value
    page.wait_for_function("() => ['done', 'cut'].includes(document.querySelector('.export').dataset.state)")
    assert "rows so far" in page.inner_text(".export-status")
    assert download.suggested_filename.endswith(".csv")
    assert Path(download.path()).read_text().splitlines()[0] == "_time,web0,web1,web2"
    page.close()
