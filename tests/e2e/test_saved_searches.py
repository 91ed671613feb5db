"""Saved and scheduled searches on a real `norrvakt serve`: who sees, runs and changes what; the
answers to bad input at save time; a scheduled search that fires through the server's own
scheduler into the alert queue and shows on the rules page; the CLI; and in headless Chromium,
saving and pinning from the search page and a dashboard whose panels are not mostly empty."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from norrvakt.cli.main import main
from tests.e2e.browser import browser as browser
from tests.e2e.browser import login, shot
from tests.e2e.harness import Server, running_server

# The scheduler looks every second; a run may read at most 7 stored events (Luleå's 6 fit, a
# region-wide rule over them and Boden's 3 is too big to save).
SETTINGS = """
[search_rules]
check_every_s = 1
max_scan_events = 7
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_server(Path(tmp_path_factory.mktemp("saved")), extra_toml=SETTINGS) as server:
        marker = "sv" + uuid.uuid4().hex[:8]
        for tenant, host, n in (("lulea", "lul-dc1", 6), ("boden", "bod-dc1", 3)):
            made = server.api("POST", "/api/admin/tokens", json={"tenant": tenant, "source": f"{tenant}-hec"})
            assert made.status_code == 200, made.text
            lines = "\n".join(
                json.dumps({"event": f"failed logon {marker} {i}", "host": host}) for i in range(n)
            )
            resp = httpx.post(
                f"{server.url}/services/collector/event",
                headers={"Authorization": f"Splunk {made.json()['token']}"},
                content=lines,
            )
            assert resp.status_code == 200, resp.text
        for tenant, n in (("lulea", 6), ("boden", 3)):
            assert server.wait_count(marker, n, tenant=tenant) == n
        users = {}
        for name, tenant in (("anna.lulea", "lulea"), ("bo.lulea", "lulea"), ("cia.boden", "boden")):
            users[name] = "pw-" + uuid.uuid4().hex
            body = {"username": name, "role": "tenant_officer", "tenants": [tenant], "password": users[name]}
            assert server.api("POST", "/api/admin/users", json=body).status_code == 200
        clients = {name: server.login(name, pw) for name, pw in users.items()}
        yield {"server": server, "marker": marker, "clients": clients, "passwords": users}
        for c in clients.values():
            c.close()


def _save(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/api/saved-searches", json={"since": "1h", **body})


def test_private_shared_and_region_searches_are_seen_by_whom_they_are_for(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    anna, bo, cia = (world["clients"][n] for n in ("anna.lulea", "bo.lulea", "cia.boden"))
    marker = world["marker"]
    private = _save(anna, name="my logons", query=f'"failed logon {marker}"')
    shared = _save(anna, name="Luleå logons", query=f'"failed logon {marker}"', visibility="tenant")
    assert private.status_code == 200 and shared.status_code == 200, (private.text, shared.text)
    pid, sid = private.json()["id"], shared.json()["id"]
    assert private.json()["tenant"] == "lulea"  # an officer's only tenant is the default

    assert {s["id"] for s in bo.get("/api/saved-searches").json()["searches"]} >= {sid}
    assert pid not in {s["id"] for s in bo.get("/api/saved-searches").json()["searches"]}
    assert bo.get(f"/api/saved-searches/{pid}").status_code == 404
    ran = bo.post(f"/api/saved-searches/{sid}/run", json={"limit": 3})
    assert ran.status_code == 200 and ran.json()["total"] == 6 and len(ran.json()["rows"]) == 3
    assert bo.patch(f"/api/saved-searches/{sid}", json={"name": "bo's now"}).status_code == 403
    assert anna.patch(f"/api/saved-searches/{sid}", json={"description": "6 a day"}).status_code == 200
    for probe in (f"/api/saved-searches/{sid}", f"/api/saved-searches/{pid}"):
        assert cia.get(probe).status_code == 404
    region = _save(anna, name="region", query="x", visibility="region")
    assert region.status_code == 403 and "SOC" in region.text
    made = server.api("POST", "/api/saved-searches", json={"name": "R", "query": "x", "visibility": "region"})
    assert made.status_code == 200 and made.json()["tenant"] == "*"
    assert made.json()["id"] not in {s["id"] for s in anna.get("/api/saved-searches").json()["searches"]}

    for action, q in (
        ("saved-search-create", f"saved_search:{sid}"),
        ("saved-search-change", f"saved_search:{sid}"),
        ("search", f"saved_search:{sid} user.name:bo.lulea"),
    ):
        assert server.wait_count(f"event.action:{action} {q}", 1, tenant="_norrvakt") == 1, action


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"query": "host.name:(a OR", "visibility": "tenant"}, "query:"),
        ({"query": "x | count > 5 in 10m", "visibility": "tenant"}, "give a schedule"),
        ({"query": "x", "schedule": "5m", "visibility": "tenant"}, "needs a rule step"),
        (
            {"query": "x | count > 5 in 10m", "schedule": "hourly", "visibility": "tenant"},
            "a duration such as",
        ),
        (
            {"query": "x | count > 5 in 10m", "schedule": "30m", "visibility": "tenant"},
            "longer than the rule",
        ),
        ({"query": "x | count > 5 in 10m", "schedule": "20s", "visibility": "tenant"}, "at least every 60 s"),
        ({"query": "x | count > 5 in 10m", "schedule": "5m"}, "share it"),
        ({"query": "x | count > 5 in 10m by 9", "schedule": "5m", "visibility": "tenant"}, "not a field"),
        ({"query": "x", "since": "yesterday-ish"}, "cannot read time"),
    ],
)
def test_bad_input_at_save_time_gets_a_clear_answer(
    world: dict[str, Any], body: dict[str, Any], expected: str
) -> None:
    resp = _save(world["clients"]["anna.lulea"], name="bad", **body)
    assert resp.status_code == 400 and expected in resp.json()["detail"], resp.text


def test_a_rule_that_would_scan_too_much_is_refused_at_save_time(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    body = {"name": "all", "query": "failed | count > 5 in 1h", "visibility": "region", "schedule": "5m"}
    resp = server.api("POST", "/api/saved-searches", json=body)
    assert resp.status_code == 400 and "more than search_rules.max_scan_events (7)" in resp.text, resp.text


def test_a_scheduled_search_fires_through_the_server_and_shows_on_the_rules_page(
    world: dict[str, Any],
) -> None:
    server: Server = world["server"]
    anna = world["clients"]["anna.lulea"]
    made = _save(
        anna,
        name=f"Brute force {world['marker']}",
        query=f'"failed logon {world["marker"]}" | count > 5 in 10m by host.name',
        visibility="tenant",
        schedule="1m",
        level="high",
    )
    assert made.status_code == 200, made.text
    rule = made.json()["rule_id"]
    deadline = time.monotonic() + 15
    alerts: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not alerts:
        alerts = anna.get("/api/alerts", params={"rule": rule}).json()["alerts"]
        time.sleep(0.2)
    assert len(alerts) == 1, alerts
    assert alerts[0]["key_values"] == {"host.name": "lul-dc1"} and alerts[0]["level"] == "high"
    assert alerts[0]["case_id"] is not None  # grouped into a case like any alert
    page = anna.get("/rules")
    assert page.status_code == 200 and f"Brute force {world['marker']}" in page.text
    assert "fired" in page.text and "host.name=lul-dc1: 6" in page.text
    assert server.wait_count(f"event.action:search mode:search-rule rule:{rule}", 1, tenant="_norrvakt") >= 1
    off = anna.patch(f"/api/saved-searches/{made.json()['id']}", json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False and off.json()["scheduled"] is True
    assert f'data-search-rule="{made.json()["id"]}"' in anna.get("/rules").text
    assert (
        world["clients"]["bo.lulea"]
        .patch(f"/api/saved-searches/{made.json()['id']}", json={"enabled": True})
        .status_code
        == 403
    )


def test_the_cli_runs_a_saved_search_by_name(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    made = server.api(
        "POST",
        "/api/saved-searches",
        json={
            "name": "cli run",
            "query": f'"failed logon {world["marker"]}"',
            "tenant": "lulea",
            "since": "1h",
        },
    )
    assert made.status_code == 200, made.text
    # in-process (a CLI process would spend seconds importing): the command finds the running
    # server through the data directory and calls its API with the local CLI token
    ran = CliRunner().invoke(
        main, ["--data-dir", str(server.data_dir), "saved", "run", "cli run", "--format", "json"]
    )
    assert ran.exit_code == 0, ran.output
    result = json.loads(ran.stdout)
    assert result["total"] == 6 and result["saved_search"]["name"] == "cli run"


def test_a_search_saved_and_pinned_in_the_console_is_a_dashboard_panel(
    world: dict[str, Any], browser: Any
) -> None:
    server: Server = world["server"]
    for rule in ("brute-force", "new-admin", "usb"):  # Boden's alert tiles have something to show
        body = {"tenant": "boden", "rule_id": rule, "level": "high", "entities": {"host.name": "bod-dc1"}}
        assert server.api("POST", "/api/alerts", json=body).status_code == 200
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    login(page, server.url, "cia.boden", world["passwords"]["cia.boden"])
    q = f'"failed logon {world["marker"]}" | stats count by host.name'
    page.goto(f"{server.url}/search?q={q}&since=1h")
    page.fill("form[data-save-search] input[name=name]", "Boden logons by host")
    page.click("form[data-save-search] button[type=submit]")
    row = page.locator("#saved tr", has_text="Boden logons by host")
    row.wait_for()
    row.locator("button", has_text="Pin").click()
    page.locator("#saved tr", has_text="Boden logons by host").locator("button", has_text="Unpin").wait_for()
    page.locator("#saved").scroll_into_view_if_needed()
    shot(page, "search-saved")
    page.goto(f"{server.url}/dashboards")
    panel = page.locator("section.pinned", has_text="Boden logons by host")
    panel.wait_for()
    chart = json.loads(panel.locator("canvas").get_attribute("data-chart") or "{}")
    assert chart["data"]["labels"] == ["bod-dc1"] and chart["data"]["datasets"][0]["data"] == [3]
    page.wait_for_function("document.querySelectorAll('canvas[data-chart]').length > 0")
    shot(page, "dashboard-pinned")
    # No panel is mostly empty space: in every row of tiles, each tile's content fills at least
    # half of the tile's height (the severity chart was a tall chart beside two short lists).
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('.tiles > .tile')).map(t => {
             const r = t.getBoundingClientRect();
             const inner = Array.from(t.children).reduce((h, c) => h + c.getBoundingClientRect().height, 0);
             return {height: r.height, content: inner, text: t.innerText.slice(0, 40)};
           })"""
    )
    assert len(boxes) >= 5, boxes
    for b in boxes:
        assert b["content"] >= 0.5 * b["height"], f"mostly empty: {b}"
    page.close()
