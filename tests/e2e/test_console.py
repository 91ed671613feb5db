"""The console in a real browser: log in, search, open an event, dashboards — and a Boden
officer sees nothing of Luleå's anywhere."""

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


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_server(Path(tmp_path_factory.mktemp("console"))) as server:
        marker = "c" + uuid.uuid4().hex[:8]
        for tenant in ("lulea", "boden"):
            token = server.ingest_token(tenant, f"{tenant}-test")
            body = "\n".join(
                json.dumps(
                    {
                        "event": {
                            "message": f"Failed password for anna from 10.9.8.{i} port 22 "
                            f"ssh2 {tenant}-{marker}",
                            "program": "sshd",
                        },
                        "host": f"{tenant}-web01",
                    }
                )
                for i in range(5)
            )
            resp = httpx.post(
                f"{server.url}/services/collector/event",
                content=body,
                headers={"Authorization": f"Splunk {token}"},
            )
            assert resp.status_code == 200
            assert server.wait_count(f"{tenant}-{marker}", 5, tenant=tenant) == 5
        password = server.add_user("boden.officer", "tenant_officer", "boden")
        admin_pw = server.admin_password()
        yield {"server": server, "marker": marker, "officer_pw": password, "admin_pw": admin_pw}


def test_login_search_and_event_detail(browser: Any, console: dict[str, Any]) -> None:  # noqa: F811
    server: Server = console["server"]
    page = browser.new_page(viewport={"width": 1366, "height": 850}, locale="sv-SE")
    login(page, server.url, "admin", console["admin_pw"])
    page.fill("#q", f'"failed password" lulea-{console["marker"]}')
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("table.events tbody tr")
    assert page.locator("table.events tbody tr").count() == 5
    assert "träffar" in page.inner_text("#results")
    shot(page, "search")
    page.click("table.events tbody tr >> nth=0 >> a")
    page.wait_for_selector("dialog[open] pre.raw")
    assert console["marker"] in page.inner_text("dialog[open] pre.raw")
    shot(page, "event")
    page.keyboard.press("Escape")
    page.goto(f"{server.url}/dashboards")
    page.wait_for_selector("table.health")
    shot(page, "dashboards")
    page.close()


def test_a_boden_officer_sees_nothing_of_lulea(browser: Any, console: dict[str, Any]) -> None:  # noqa: F811
    server: Server = console["server"]
    page = browser.new_page(viewport={"width": 1366, "height": 850})
    login(page, server.url, "boden.officer", console["officer_pw"])
    page.fill("#q", console["marker"])
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("table.events tbody tr")
    text = page.inner_text("#results")
    assert "Boden" in text and "Luleå" not in text and "lulea-" not in text
    options = page.locator("#tenant option").all_inner_texts()
    assert "Luleå" not in options and "Boden" in options
    resp = page.goto(f"{server.url}/search?q={console['marker']}&tenant=lulea")
    assert resp is not None and "lulea-" not in page.content()
    lulea_seq = server.search(f"lulea-{console['marker']}", tenant="lulea")["rows"][0]["seq"]
    resp = page.goto(f"{server.url}/events/lulea/{lulea_seq}")
    assert resp is not None and resp.status == 403
    page.goto(f"{server.url}/dashboards")
    assert "Luleå" not in page.inner_text("main")
    resp = page.request.get(f"{server.url}/api/search?q=&tenant=lulea")
    assert resp.status == 403
    resp = page.request.get(f"{server.url}/api/integrity/proof?tenant=lulea&seq={lulea_seq}")
    assert resp.status == 403
    page.close()


def test_csrf_and_lockout(console: dict[str, Any]) -> None:
    server: Server = console["server"]
    with httpx.Client(base_url=server.url) as client:
        form = client.get("/login").text  # the login form's own CSRF token
        csrf = {"csrf_token": form.split('name="csrf_token" value="')[1].split('"')[0]}
        for _ in range(5):
            r = client.post("/login", data={**csrf, "username": "boden.officer", "password": "wrong"})
            assert r.status_code == 401
        r = client.post(
            "/login", data={**csrf, "username": "boden.officer", "password": console["officer_pw"]}
        )
        assert r.status_code == 401 and "locked" in r.text  # locked after five failures
        r = client.post("/login", data={**csrf, "username": "admin", "password": console["admin_pw"]})
        assert r.status_code == 303
        # A state-changing request with the session cookie but without the CSRF token is refused.
        r = client.post("/api/integrity/keys/rotate")
        assert r.status_code == 403 and "CSRF" in r.text
    assert server.wait_count("event.action:login event.outcome:failure", 6, tenant="_norrvakt") >= 6


def test_alert_queue_acknowledge_and_case_view(browser: Any, console: dict[str, Any]) -> None:  # noqa: F811
    server: Server = console["server"]
    marker = console["marker"]
    created = server.api(
        "POST",
        "/api/alerts",
        json={
            "alerts": [
                {
                    "tenant": "lulea",
                    "rule_id": f"test-spray-{marker}",
                    "rule_title": f"Password spraying {marker}",
                    "level": "high",
                    "tags": ["attack.t1110.003"],
                    "entities": {"source.ip": "185.220.101.45"},
                },
                {
                    "tenant": "boden",
                    "rule_id": f"test-clear-{marker}",
                    "rule_title": f"Audit log cleared {marker}",
                    "level": "critical",
                    "entities": {"host.name": "boden-dc01"},
                },
            ]
        },
    ).json()
    assert created["created"] == 2
    page = browser.new_page(viewport={"width": 1366, "height": 850}, locale="sv-SE")
    login(page, server.url, "admin", console["admin_pw"], next_path="/alerts")
    rows = page.locator("table.alerts tbody tr")
    texts = rows.all_inner_texts()
    mine = [t for t in texts if marker in t]
    assert len(mine) == 2 and "critical" in mine[0]  # most severe first
    shot(page, "alerts")
    page.check(f"tr:has-text('Password spraying {marker}') input[name=alert]")
    with page.expect_navigation():  # the page reloads once the acknowledgement is saved
        page.click("#bulk-ack")
    page.goto(f"{server.url}/alerts?status=acknowledged")
    assert f"Password spraying {marker}" in page.inner_text("table.alerts")
    case_id = next((a["case_id"] for a in created["alerts"] if a["case_id"]), None)
    if case_id is None:  # no automatic case: make one from the alert, as an analyst would
        case_id = server.api(
            "POST",
            "/api/cases",
            json={
                "tenant": "boden",
                "title": f"Logs cleared {marker}",
                "alert_ids": [created["alerts"][1]["id"]],
            },
        ).json()["id"]
    page.goto(f"{server.url}/cases/{case_id}")
    page.fill("#comment", "Checked with Boden IT: not a planned action.")
    page.click("form[data-api-form$='/comments'] button[type=submit]")
    page.wait_for_selector("blockquote")
    assert "not a planned action" in page.inner_text("blockquote")
    page.select_option("#status", "investigating")
    page.click("form[data-api-form$='/status'] button[type=submit]")
    page.wait_for_function("() => document.getElementById('case-status').textContent === 'investigating'")
    shot(page, "case")
    page.close()


def test_admin_sets_a_tenants_modules_in_the_page(browser: Any, console: dict[str, Any]) -> None:  # noqa: F811
    server: Server = console["server"]
    page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="sv-SE")
    login(page, server.url, "admin", console["admin_pw"], next_path="/admin")
    row = page.locator("#modules-boden")
    row.locator("select[name=detection]").select_option("false")
    row.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('#modules-boden output').textContent.length > 0")
    assert row.locator("output").inner_text() == "✓"
    assert "Användare" in page.inner_text("main") or "Users" in page.inner_text("main")
    shot(page, "admin")
    page.close()
    table = server.api("GET", "/api/admin/modules").json()["tenants"]
    assert table["boden"]["detection"] is False and table["lulea"]["detection"] is True
    server.api("PUT", "/api/admin/modules/boden", json={"detection": True})


def _keyword_rule(word: str) -> str:
    return (
        f"title: Keyword {word}\nid: 6a0c3f5e-2d11-4a7b-8c3e-1f2e00000003\nlogsource:\n  product: any\n"
        f"detection:\n  keywords:\n    - {word}\n  condition: keywords\nlevel: medium\n"
    )


def test_rules_page_switches_a_rule_and_tests_one(browser: Any, console: dict[str, Any]) -> None:  # noqa: F811
    server: Server = console["server"]
    marker = console["marker"]
    page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="sv-SE")
    login(page, server.url, "admin", console["admin_pw"], next_path="/rules?q=spraying")
    assert "laddade" in page.inner_text("main")
    row = page.locator("table.rules tbody tr", has_text="Password spraying").first
    form = row.locator("form[data-rule-switch]")
    form.locator("select[name=tenant]").select_option("boden")
    form.locator("select[name=enabled]").select_option("false")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    row = page.locator("table.rules tbody tr", has_text="Password spraying").first
    assert "Boden" in row.inner_text()  # "Avstängd för: Boden"
    settings = server.api("GET", "/api/alerts/rules").json()["rules"]
    assert any(s["tenant"] == "boden" and not s["enabled"] for s in settings)

    # a rule pasted as YAML, run over the stored events of every tenant
    page.fill("textarea[name=rule]", _keyword_rule(f"lulea-{marker}"))
    page.click("form[data-rule-test] button[type=submit]")
    page.wait_for_selector("#test-result .test-summary")
    assert "5 träffar" in page.inner_text("#test-result")
    assert page.locator("#test-result table.matches tbody tr, #test-result table.matches tr").count() >= 5
    shot(page, "rules")
    # a broken rule: the reason and its line, as an alert for screen readers
    page.fill("textarea[name=rule]", "title: x\ndetection:\n  sel: [a\n  condition: sel\n")
    page.click("form[data-rule-test] button[type=submit]")
    page.wait_for_selector("#test-result [role=alert]")
    assert "line" in page.inner_text("#test-result [role=alert]")
    page.close()
    server.api("PUT", "/api/alerts/rules/d9ccd722-755c-4f41-b0c4-ff4b12abee75", json={"tenant": "boden"})

    # A Boden officer runs the same test: Luleå's events are not in it. (Not boden.officer,
    # whom test_csrf_and_lockout locks out.)
    made = server.api(
        "POST",
        "/api/admin/users",
        # a password that is not temporary: this test is about rules, not the first login
        json={
            "username": "boden.rules",
            "role": "tenant_officer",
            "tenants": ["boden"],
            "must_change_password": False,
        },
    )
    assert made.status_code == 200, made.text
    officer = browser.new_page(viewport={"width": 1366, "height": 900})
    login(officer, server.url, "boden.rules", made.json()["password"], next_path="/rules")
    officer.fill("textarea[name=rule]", _keyword_rule(f"lulea-{marker}"))
    officer.click("form[data-rule-test] button[type=submit]")
    officer.wait_for_selector("#test-result .test-summary")
    assert "0 matched" in officer.inner_text("#test-result")  # English: no locale set
    officer.close()


def test_rule_test_api(console: dict[str, Any]) -> None:
    server: Server = console["server"]
    marker = console["marker"]
    r = server.api("POST", "/api/rules/test", json={"rule": _keyword_rule(f"boden-{marker}"), "since": "1h"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["matched"] == 5 and {m["tenant"] for m in body["matches"]} == {"boden"}
    assert body["scanned"] >= 10 and body["rules"][0]["matched"] == 5
    # by id, a loaded building block (no alerts of its own, but it matches failed logins)
    r = server.api(
        "POST",
        "/api/rules/test",
        json={"rule_id": "bc38af30-8b6b-4893-888d-c0fef0bb500c", "tenant": "lulea", "since": "1h"},
    )
    assert r.status_code == 200 and r.json()["matched"] >= 5, r.text
    bad = server.api("POST", "/api/rules/test", json={"rule": "title: x\nlogsource: {product: any}\n"})
    assert bad.status_code == 400 and "detection" in bad.json()["detail"]
    both = server.api("POST", "/api/rules/test", json={"rule": "x", "rule_id": "y"})
    assert both.status_code == 400
    missing = server.api("POST", "/api/rules/test", json={"rule_id": "no-such-rule"})
    assert missing.status_code == 404
    listing = server.api("GET", "/api/rules", params={"q": "kerberoast"}).json()
    assert listing["running"] and listing["total"] >= 1 and listing["summary"]["loaded"] >= 25
    assert server.wait_count("event.action:rule-test", 3, tenant="_norrvakt") >= 3


# -- search exports and result charts (issue 16) --------------------------------------------------

# The chart is drawn: some pixel of its canvas is not transparent
DRAWN = """() => { const c = document.querySelector('canvas[data-result-chart]');
  if (!c || !c._chart) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }"""


def _export_audits(server: Server, marker: str, n: int) -> list[dict[str, str]]:
    """The export audit records naming ``marker`` (waits for ``n`` of them)."""
    deadline = time.monotonic() + 20
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = server.search(f"event.action:export {marker}", tenant="_norrvakt")["rows"]
        if len(rows) >= n:
            break
        time.sleep(0.3)
    return [r["fields"] for r in rows]


def test_search_export_route_and_cli(console: dict[str, Any]) -> None:
    server: Server = console["server"]
    marker = console["marker"]
    q = f"lulea-{marker} | fields host.name, message"
    resp = server.api("GET", "/api/search/export", params={"q": q, "tenant": "lulea", "format": "csv"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-disposition"] == 'attachment; filename="norrvakt-search-lulea.csv"'
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == 5 and {r["host.name"] for r in rows} == {"lulea-web01"}  # complete: no cut line
    states = {r["state"]: r for r in _export_audits(server, f"lulea-{marker}", 2)}
    assert set(states) == {"started", "complete"} and states["complete"]["rows"] == "5"
    stats = server.api(
        "GET", "/api/search/export", params={"q": f"{marker} | stats count by host.name", "format": "ndjson"}
    )
    assert [json.loads(line) for line in stats.text.splitlines()] == [
        {"host.name": "boden-web01", "count": 5},
        {"host.name": "lulea-web01", "count": 5},
    ]
    bad = server.api("GET", "/api/search/export", params={"q": f"{marker} | top 0 host.name"})
    assert bad.status_code == 400 and "'top' needs at least 1 row at column" in bad.json()["detail"]
    out = server.cli("search", f"{marker} | fields host.name", "--tenant", "boden", "--format", "csv")
    assert out.splitlines()[0] == "@timestamp,tenant,seq,host.name" and len(out.splitlines()) == 6


def test_console_result_charts_and_an_export_with_progress(browser: Any, console: dict[str, Any]) -> None:  # noqa: F811
    server: Server = console["server"]
    marker = console["marker"]
    page = browser.new_page(viewport={"width": 1366, "height": 850}, locale="en-US", accept_downloads=True)
    login(page, server.url, "admin", console["admin_pw"])
    page.fill("#q", f"{marker} | stats count by host.name")
    page.click("#search-form button[type=submit]")
    page.wait_for_function(DRAWN)
    chart = "document.querySelector('canvas[data-result-chart]')._chart"
    assert page.evaluate(f"() => {chart}.config.type") == "bar"
    assert page.evaluate(f"() => {chart}.data.datasets[0].label") == "count"
    heading = page.inner_text("#results h2")
    assert "2 rows" in heading and "hits" not in heading
    page.fill("#q", f"{marker} | timechart span=1h count by host.name")
    page.click("#search-form button[type=submit]")
    page.wait_for_function(f"() => {chart.replace('._chart', '')}?._chart?.config.type === 'line'")
    page.wait_for_function(DRAWN)
    assert sorted(page.evaluate(f"() => {chart}.data.datasets.map(d => d.label)")) == [
        "boden-web01",
        "lulea-web01",
    ]
    assert not page.is_visible(".export [data-export-cancel]")
    shot(page, "search-timechart")
    with page.expect_download() as info:
        page.click(".export button[data-export=csv]")
    download = info.value
    page.wait_for_function("() => document.querySelector('.export').dataset.state === 'done'")
    assert "rows so far" in page.inner_text(".export-status")
    assert Path(download.path()).read_text().splitlines()[0] == "_time,boden-web01,lulea-web01"
    page.close()
