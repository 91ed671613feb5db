"""Web hardening (issue #11): security headers and a CSP the console lives with, /vendor serving
only the console's files, the API docs behind login, CSV exports that do not run formulas, and
/api/alerts/stats counting only the caller's tenants.

A real `norrvakt serve`, real HTTP clients, a real Chromium for the console under its CSP, the
real `norrvakt hunt` and `norrvakt tokens list` commands.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from norrvakt.config import ConfigError, load_settings
from norrvakt.state.db import open_state
from norrvakt.web.templating import vendor_dir
from tests.e2e.browser import browser, login  # noqa: F401 - fixture
from tests.e2e.harness import REPO, Server, running_server

TEMPLATES = REPO / "norrvakt" / "web" / "templates"
# What the CSP refuses: inline <script>, on*= handlers, htmx's hx-on (eval), style= attributes.
INLINE = [r"<script(?![^>]*\bsrc=)[^>]*>", r"\son[a-z]+\s*=", r"\bhx-on", r"\sstyle\s*=", "javascript:"]
FORMULA = "=2+5+cmd|' /C calc'!A0"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("web"))) as srv:
        yield srv


@pytest.fixture(scope="module")
def web_admin(server: Server) -> str:
    """An admin's password (one made with the CLI, as an operator would)."""
    return server.add_user("web.admin", "admin", "lulea")


@pytest.fixture(scope="module")
def officer(server: Server) -> dict[str, Any]:
    password = server.add_user("boden.web", "tenant_officer", "boden")
    return {"password": password, "cookies": console_login(server, "boden.web", password)}


def console_login(server: Server, username: str, password: str) -> dict[str, str]:
    return server.login_cookies(username, password)


# -- headers ---------------------------------------------------------------------------------------


def _directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@pytest.mark.parametrize(
    "path", ["/login", "/api/health", "/static/app.css", "/vendor/htmx.org/dist/htmx.min.js", "/nope"]
)
def test_every_answer_has_the_security_headers(server: Server, path: str) -> None:
    resp = httpx.get(f"{server.url}{path}", timeout=30)
    csp = _directives(resp.headers.get("content-security-policy", ""))
    assert csp.get("default-src") == ["'self'"], resp.headers
    assert csp.get("script-src") == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp.get("frame-ancestors") == ["'none'"]
    assert csp.get("object-src") == ["'none'"]
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "same-origin"
    # plain HTTP, and a forwarded "https" from an address that is no trusted proxy: no HSTS
    spoofed = httpx.get(f"{server.url}{path}", headers={"X-Forwarded-Proto": "https"}, timeout=30)
    assert "strict-transport-security" not in resp.headers
    assert "strict-transport-security" not in spoofed.headers


def test_hsts_only_over_https() -> None:
    import asyncio

    from starlette.responses import PlainTextResponse

    from norrvakt.web.headers import SecurityHeaders

    def headers_for(scheme: str) -> dict[str, str]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "scheme": scheme, "method": "GET", "path": "/", "headers": []}
        asyncio.run(SecurityHeaders(PlainTextResponse("ok"))(scope, receive, send))
        return {k.decode(): v.decode() for k, v in sent[0]["headers"]}

    assert headers_for("https")["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert "strict-transport-security" not in headers_for("http")


def test_templates_hold_no_inline_script_or_style() -> None:
    problems = []
    for path in sorted(TEMPLATES.glob("*.html")):
        text = path.read_text(encoding="utf-8")
        for pattern in INLINE:
            problems += [f"{path.name}: {m.group()!r}" for m in re.finditer(pattern, text)]
    assert problems == []


def test_the_console_works_under_its_csp(server: Server, browser: Any, web_admin: str) -> None:  # noqa: F811
    marker = "csp" + uuid.uuid4().hex[:8]
    token = server.ingest_token("lulea", "lulea-csp")
    resp = httpx.post(
        f"{server.url}/services/collector/event",
        headers={"Authorization": f"Splunk {token}"},
        content=json.dumps({"event": f"Failed password for anna {marker}", "host": "lulea-web01"}),
    )
    assert resp.status_code == 200 and server.wait_count(marker, 1, tenant="lulea") == 1
    page = browser.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: refused.append(str(e)))
    login(page, server.url, "web.admin", web_admin, next_path="/search")
    page.goto(f"{server.url}/search?q={marker}&since=24h")
    page.locator("table.events a[data-opens]").first.click()  # htmx loads the detail, app.js opens it
    page.wait_for_selector("dialog#detail[open]")
    page.goto(f"{server.url}/dashboards")
    page.select_option("#dtenant", "boden")  # submits itself (app.js, no inline onchange)
    page.wait_for_url("**/dashboards?tenant=boden")
    for path in ("/alerts", "/cases", "/rules", "/admin", "/followup"):
        page.goto(f"{server.url}{path}")
        page.wait_for_load_state("networkidle")
    page.goto(f"{server.url}/api/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)  # Swagger UI ran, from /vendor
    page.close()
    assert refused == []


def test_a_refused_live_tail_stops_in_the_console(server: Server, browser: Any, web_admin: str) -> None:  # noqa: F811
    page = browser.new_page()
    login(page, server.url, "web.admin", web_admin, next_path="/search")
    page.goto(f"{server.url}/search?q=nothing-here")
    live = page.locator("#live")
    live.click()
    page.wait_for_timeout(1500)
    assert live.get_attribute("aria-pressed") == "true"  # a tail runs
    live.click()  # and stops
    assert live.get_attribute("aria-pressed") == "false"
    # the user's two live tails are taken elsewhere: the console's is refused (429), the button off
    clients = [httpx.Client(base_url=server.url, auth=("web.admin", web_admin), timeout=30) for _ in range(2)]
    streams = [c.stream("GET", "/api/tail", params={"q": "x"}) for c in clients]
    try:
        assert all(s.__enter__().status_code == 200 for s in streams)
        live.click()
        page.wait_for_function(
            "() => document.getElementById('live').getAttribute('aria-pressed') === 'false'"
        )
    finally:
        for stream, client in zip(streams, clients, strict=True):
            stream.__exit__(None, None, None)
            client.close()
        page.close()


# -- /vendor --------------------------------------------------------------------------------------


def test_vendor_serves_only_the_files_the_pages_load(server: Server) -> None:
    wanted = set(re.findall(r'(?:src|href)="(/vendor/[^"]+)"', (TEMPLATES / "base.html").read_text()))
    wanted |= {"/vendor/swagger-ui-dist/swagger-ui-bundle.js", "/vendor/swagger-ui-dist/swagger-ui.css"}
    for path in sorted(wanted):
        assert httpx.get(f"{server.url}{path}", timeout=30).status_code == 200, path
    node_modules = vendor_dir()  # where the server finds them too (NORRVAKT_ASSETS or ./node_modules)
    assert node_modules is not None, "htmx and Chart.js are not installed (run make)"
    for path in (
        "htmx.org/package.json",
        "chart.js/package.json",
        "oidc-provider/package.json",
        ".package-lock.json",
        "swagger-ui-dist/swagger-ui-bundle.js.map",
        "swagger-ui-dist/index.html",
    ):
        assert (node_modules / path).exists(), path  # a real file the old mount served
        resp = httpx.get(f"{server.url}/vendor/{path}", timeout=30)
        assert resp.status_code == 404, f"/vendor/{path} → {resp.status_code}"


# -- API docs --------------------------------------------------------------------------------------


def test_api_docs_are_behind_login(server: Server, officer: dict[str, Any]) -> None:
    anonymous = httpx.get(f"{server.url}/api/docs", timeout=30)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/api/docs"
    assert httpx.get(f"{server.url}/api/openapi.json", timeout=30).status_code == 401
    schema = server.api("GET", "/api/openapi.json")
    assert schema.status_code == 200 and "/api/search" in schema.json()["paths"]

    page = httpx.get(f"{server.url}/api/docs", cookies=officer["cookies"], timeout=30)
    assert page.status_code == 200
    csp = _directives(page.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"]
    assert "cdn" not in page.text and "https://" not in page.text  # nothing from elsewhere
    assert not re.search(INLINE[0], page.text)
    for ref in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
        assert httpx.get(f"{server.url}{ref}", timeout=30).status_code == 200, ref


def _paths(routes: list[Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for r in routes:  # included routers keep their routes (see tests/e2e/test_isolation.py)
        if hasattr(r, "original_router"):
            out |= _paths(r.original_router.routes, prefix + r.include_context.prefix)
        elif hasattr(r, "path"):
            out.add(prefix + r.path)
    return out


def test_api_docs_setting() -> None:
    from norrvakt.web.app import create_app

    with pytest.raises(ConfigError, match=r"server\.api_docs: 'everyone' — one of login, public, off"):
        load_settings(overrides={"server.api_docs": "everyone"})
    for mode, expected in (("off", set()), ("public", {"/api/docs", "/api/openapi.json"})):
        with tempfile.TemporaryDirectory() as d:
            settings = load_settings(overrides={"data_dir": d, "server.api_docs": mode})
            state = open_state(f"sqlite:///{d}/state.db")  # the app keeps its session key there
            app = create_app(SimpleNamespace(settings=settings, extras={}, state=state))  # type: ignore[arg-type]
            state.dispose()
        paths = _paths(app.routes)
        assert paths & {"/api/docs", "/api/openapi.json", "/docs/oauth2-redirect"} == expected, mode


# -- CSV exports ------------------------------------------------------------------------------------


def test_subject_access_csv_neutralises_formulas(server: Server) -> None:
    subject = "s-" + uuid.uuid4().hex[:6]
    token = server.ingest_token("lulea", "lulea-socialsystem")
    line = (
        f"2026-11-21 08:14:02;u-1011;{FORMULA};+handlaggare;-IFO;read;{subject};"
        "none;@SUM(A1);u-1011;;10.20.4.11"
    )
    resp = httpx.post(
        f"{server.url}/services/collector/event",
        headers={"Authorization": f"Splunk {token}"},
        content=json.dumps({"event": f"<134>1 2026-11-21T07:14:02Z app01 socialsystem - - - {line}"}),
    )
    assert resp.status_code == 200
    assert server.wait_count(f'subject_id:"{subject}"', 1, tenant="lulea") == 1
    params = {
        "tenant": "lulea",
        "subject": subject,
        "since": "2026-11-01",
        "until": "2026-12-01",
        "format": "csv",
    }
    text = server.api("GET", "/api/reports/subject-access", params=params).content.decode("utf-8-sig")
    (row,) = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert row["user_name"] == "'" + FORMULA
    assert row["role"] == "'+handlaggare" and row["unit"] == "'-IFO" and row["case"] == "'@SUM(A1)"
    assert row["source_ip"] == "10.20.4.11" and row["user"] == "u-1011"  # ordinary cells as they are


HUNT = [sys.executable, "-m", "norrvakt.cli", "hunt"]
HUNT_RULE = """title: Whoami
id: 5d3b6a1e-0000-4000-8000-0000000000aa
status: test
level: high
logsource:
    category: process_creation
    product: windows
detection:
    sel:
        Image|endswith: '\\\\whoami.exe'
    condition: sel
"""


def test_hunt_csv_neutralises_formulas(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "whoami.yml").write_text(HUNT_RULE, encoding="utf-8")
    event = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "EventRecordID": 7,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": FORMULA,  # whoever wrote the log chose this
                "TimeCreated": {"#attributes": {"SystemTime": "2026-11-20T08:15:00.000000Z"}},
            },
            "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "-whoami"},
        }
    }
    logs = tmp_path / "ws01.jsonl"
    logs.write_text(json.dumps(event) + "\n", encoding="utf-8")
    out = subprocess.run(
        [*HUNT, "--rules", str(rules), str(logs), "--format", "csv", "--no-progress", "--no-cache"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (row,) = list(csv.DictReader(io.StringIO(out.stdout)))
    assert row["computer"] == "'" + FORMULA
    assert row["rule_title"] == "Whoami"


def test_tokens_list_csv_neutralises_formulas(server: Server) -> None:
    server.ingest_token("boden", "@evil-source")
    rows = list(csv.DictReader(io.StringIO(server.cli("tokens", "list"))))
    mine = [r for r in rows if "evil-source" in r["source_id"]]
    assert mine and all(r["source_id"] == "'@evil-source" for r in mine), mine


def test_users_list_csv_neutralises_formulas(server: Server) -> None:
    """An identity's issuer is whatever an admin typed into `users link`; it leads its cell."""
    server.add_user("csv.user", "soc_analyst", "lulea")
    server.cli("users", "link", "csv.user", "--issuer", "=HYPERLINK(1)", "--subject", "s1")
    rows = list(csv.DictReader(io.StringIO(server.cli("users", "list"))))
    mine = [r for r in rows if r["username"] == "csv.user"]
    assert mine and mine[0]["identities"].startswith("'="), mine


# -- /api/alerts/stats ------------------------------------------------------------------------------


def _alert(server: Server, tenant: str) -> None:
    resp = server.api(
        "POST",
        "/api/alerts",
        json={
            "tenant": tenant,
            "rule_id": "stats-" + uuid.uuid4().hex[:6],
            "level": "high",
            "event_seq": 1,
            "entities": {"host.name": f"{tenant}-host"},
        },
    )
    assert resp.status_code == 200, resp.text


def test_alert_stats_count_only_the_callers_tenants(server: Server, officer: dict[str, Any]) -> None:
    def stats() -> dict[str, Any]:
        resp = httpx.get(f"{server.url}/api/alerts/stats", cookies=officer["cookies"], timeout=30)
        assert resp.status_code == 200
        result: dict[str, Any] = resp.json()
        return result

    before = stats()
    for _ in range(3):
        _alert(server, "lulea")
    after_lulea = stats()
    assert after_lulea["intake"] == before["intake"], "Luleå's alerts show in Boden's counters"
    assert after_lulea["open_alerts_indexed"] == before["open_alerts_indexed"]
    assert after_lulea["channels"] == {}
    admin = server.api("GET", "/api/alerts/stats").json()
    assert admin["intake"]["created"] >= 3 and admin["open_alerts_indexed"] >= 3  # the SOC sees all

    _alert(server, "boden")
    mine = stats()
    assert mine["intake"]["created"] == before["intake"]["created"] + 1
    assert mine["open_alerts_indexed"] == before["open_alerts_indexed"] + 1
