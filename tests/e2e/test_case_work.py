"""Cases that guide the work, through a real `norrvakt serve`: a template's tasks on a case
(state, assignee, time to done, on the timeline and in the audit trail), the case's
observables from its evidence events with a working "search for this", the SOC's pivot to
the other municipalities (refused to a tenant officer), and STIX 2.1 / MISP exports."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import httpx
import pytest
import stix2

from tests.e2e.browser import browser, login, shot  # noqa: F401 - fixture
from tests.e2e.harness import Server

C2 = "185.220.101.77"
SHA256 = "3b7d1c0e5f2a4b6c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"


def _ingest(server: Server, tenant: str, docs: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    made = server.api("POST", "/api/admin/tokens", json={"tenant": tenant, "source": f"{tenant}-edr"})
    token = made.json()["token"]
    body = "\n".join(json.dumps(d) for d in docs)
    resp = httpx.post(f"{server.url}/ingest", content=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    assert server.wait_count(marker, len(docs), tenant=tenant) == len(docs)
    return sorted(server.search(marker, tenant=tenant)["rows"], key=lambda r: r["seq"])


def _alert(
    server: Server, tenant: str, rule: str, seq: int, entities: dict[str, str], tags: tuple[str, ...] = ()
) -> dict[str, Any]:
    body = {"tenant": tenant, "rule_id": rule, "level": "high", "event_seq": seq, "entities": entities}
    resp = server.api("POST", "/api/alerts", json={**body, "tags": list(tags)})
    assert resp.status_code == 200, resp.text
    alert: dict[str, Any] = resp.json()["alerts"][0]
    return alert


def _user(server: Server, name: str, role: str, tenants: list[str]) -> tuple[httpx.Client, str]:
    """A user made through the admin API with a chosen password (no CLI process), logged in."""
    password = "pw-" + secrets.token_urlsafe(15)
    made = server.api(
        "POST",
        "/api/admin/users",
        json={"username": name, "role": role, "tenants": tenants, "password": password},
    )
    assert made.status_code == 200, made.text
    return server.login(name, password), password


@pytest.fixture(scope="module")
def world(server: Server) -> dict[str, Any]:
    m = "cw" + uuid.uuid4().hex[:8]
    lulea = _ingest(
        server,
        "lulea",
        [
            {
                "message": f"download {m}",
                "host.name": f"lulea-pc-{m}",
                "user.name": "anna.berg",
                "url.full": "http://evil-cdn.example.net/x.exe",
                "url.domain": "evil-cdn.example.net",
                "file.hash.sha256": SHA256,
            },
            {"message": f"beacon {m}", "host.name": f"lulea-pc-{m}", "destination.ip": C2},
        ],
        m,
    )
    host = f"lulea-pc-{m}"
    first = _alert(server, "lulea", "cw-download", lulea[0]["seq"], {"host.name": host})
    second = _alert(
        server,
        "lulea",
        "cw-beacon",
        lulea[1]["seq"],
        {"host.name": host, "destination.ip": C2},
        tags=("attack.command-and-control", "attack.t1071.001"),
    )
    assert first["case_id"] == second["case_id"] is not None  # one host: one case
    (boden,) = _ingest(server, "boden", [{"message": f"boden beacon {m}", "destination.ip": C2}], m)
    boden_alert = _alert(server, "boden", "cw-beacon", boden["seq"], {"destination.ip": C2})
    made = server.api(
        "POST", f"/api/cases/{boden_alert['case_id']}/template", json={"template": "ransomware"}
    )
    assert made.status_code == 201, made.text
    officer, officer_password = _user(server, f"lulea.{m}", "tenant_officer", ["lulea"])
    admin, _ = _user(server, f"soc.{m}", "soc_analyst", [])  # a region-wide role: the pivot's user
    return {
        "case": first["case_id"],
        "officer": officer,
        "officer_login": (f"lulea.{m}", officer_password),
        "admin": admin,
        "host": host,
        "marker": m,
    }


def _csrf(client: httpx.Client) -> dict[str, str]:
    page = client.get("/search").text
    return {"X-CSRF-Token": page.split('name="csrf_token" value="')[1].split('"')[0]}


def test_a_template_gives_tasks_whose_changes_are_on_the_timeline(
    server: Server, world: dict[str, Any]
) -> None:
    case = world["case"]
    templates = server.api("GET", "/api/case-templates").json()["templates"]
    assert {t["id"] for t in templates} >= {"malware_host", "ransomware", "account_compromise"}
    officer: httpx.Client = world["officer"]
    before = officer.get(f"/ui/cases/{case}/work").text  # the alerts' tags suggest malware on a host
    first_option = before.split('<select id="template" name="template">')[1].split("</option>")[0]
    assert 'value="malware_host"' in first_option and "föreslås av larmen" in first_option
    assert before.count("föreslås av larmen") == 1
    headers = _csrf(officer)
    applied = officer.post(f"/api/cases/{case}/template", json={"template": "malware_host"}, headers=headers)
    assert applied.status_code == 201, applied.text
    tasks = applied.json()["tasks"]
    assert tasks[0]["key"] == "isolate_host" and tasks[0]["state"] == "open"
    again = officer.post(f"/api/cases/{case}/template", json={"template": "malware_host"}, headers=headers)
    assert again.status_code == 409
    done = officer.patch(
        f"/api/cases/{case}/tasks/{tasks[0]['id']}", json={"state": "done", "assignee": "bo"}, headers=headers
    )
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "done" and done.json()["time_to_done_s"] is not None
    bad = officer.patch(f"/api/cases/{case}/tasks/{tasks[1]['id']}", json={"state": "half"}, headers=headers)
    assert bad.status_code == 400
    history = server.api("GET", f"/api/cases/{case}/history").json()["history"]
    assert ("task-state", f"task:{tasks[0]['id']}", "open", "done") in [
        (h["action"], h["field"], h["old"], h["new"]) for h in history
    ]
    # journaled before the answer; the store indexes it a moment later
    assert server.wait_count(f"event.action:case-task-state case:{case}", 1, tenant="_norrvakt") >= 1
    mttr = server.api("GET", "/api/case-tasks/mttr", params={"tenant": "lulea"}).json()["tasks"]
    isolate = next(r for r in mttr if r["template"] == "malware_host" and r["key"] == "isolate_host")
    assert isolate["done"] == 1 and isolate["mttr_s"] is not None
    mine = officer.get("/api/case-tasks/mttr").json()["tasks"]  # Boden's ransomware tasks are not Luleå's
    assert mine and all(r["tenants"] == ["lulea"] for r in mine)
    assert not any(r["template"] == "ransomware" for r in mine)
    assert officer.get("/api/case-tasks/mttr", params={"tenant": "boden"}).status_code == 403
    page = officer.get(f"/ui/cases/{case}/work")
    assert page.status_code == 200 and "Isolera datorn från nätverket" in page.text
    assert officer.get(f"/cases/{case}").text.count(f"/ui/cases/{case}/work") == 1


def test_observables_search_for_this_and_the_soc_pivot(server: Server, world: dict[str, Any]) -> None:
    case = world["case"]
    officer: httpx.Client = world["officer"]
    got = officer.get(f"/api/cases/{case}/observables").json()
    by = {(o["kind"], o["value"]): o for o in got["observables"]}
    assert {("ip", C2), ("sha256", SHA256), ("host", world["host"]), ("user", "anna.berg")} <= set(by)
    assert ("domain", "evil-cdn.example.net") in by and ("url", "http://evil-cdn.example.net/x.exe") in by
    assert all("pivot" not in o for o in got["observables"])  # a tenant officer has no pivot
    found = officer.get("/api/search", params={"q": by[("ip", C2)]["query"], "since": "30d"}).json()
    assert {r["tenant"] for r in found["rows"]} == {"lulea"} and found["total"] >= 1
    assert by[("ip", C2)]["search_url"].startswith("/search?q=")
    refused = officer.get(f"/api/cases/{case}/observables/pivot", params={"kind": "ip", "value": C2})
    assert refused.status_code == 403
    assert "/pivot" not in officer.get(f"/ui/cases/{case}/work").text

    soc = server.api("GET", f"/api/cases/{case}/observables").json()
    pivot_url = next(o["pivot"] for o in soc["observables"] if o["value"] == C2)
    seen = server.api("GET", pivot_url).json()
    assert [(t["tenant"], t["events"], t["alerts"]) for t in seen["tenants"]] == [("boden", 1, 1)]
    nowhere = server.api(
        "GET", f"/api/cases/{case}/observables/pivot", params={"kind": "sha256", "value": SHA256}
    ).json()
    assert nowhere["tenants"] == []
    unknown = server.api(
        "GET", f"/api/cases/{case}/observables/pivot", params={"kind": "ip", "value": "192.0.2.1"}
    )
    assert unknown.status_code == 404  # not an observable of this case: no free cross-tenant look-up
    admin: httpx.Client = world["admin"]
    html = admin.get(f"/ui/cases/{case}/pivot", params={"kind": "ip", "value": C2}).text
    assert "Boden" in html


def test_exports_are_stix_and_misp_and_audited(server: Server, world: dict[str, Any]) -> None:
    case = world["case"]
    officer: httpx.Client = world["officer"]
    resp = officer.get(f"/api/cases/{case}/export/stix")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/stix+json")
    bundle = stix2.parse(resp.text, allow_custom=False, version="2.1")
    patterns = {o.pattern for o in bundle.objects if o.type == "indicator"}
    assert f"[ipv4-addr:value = '{C2}']" in patterns and f"[file:hashes.'SHA-256' = '{SHA256}']" in patterns
    assert not any("account_login" in p for p in patterns)  # people are shared only when asked for
    assert any(o.id == stix2.TLP_AMBER.id for o in bundle.objects)
    with_users = officer.get(f"/api/cases/{case}/export/stix", params={"include": "user,ip"}).text
    assert "anna.berg" in with_users and SHA256 not in with_users
    misp = officer.get(f"/api/cases/{case}/export/misp").json()["Event"]
    assert {(a["type"], a["value"]) for a in misp["Attribute"]} >= {("ip-dst", C2), ("sha256", SHA256)}
    assert misp["Tag"] == [{"name": "tlp:amber"}] and world["host"] not in json.dumps(misp)
    assert officer.get(f"/api/cases/{case}/export/misp", params={"include": "phone"}).status_code == 400
    query = f'event.action:export "indicators of case {case}"'
    assert server.wait_count(query, 3, tenant="_norrvakt") >= 3  # stix twice, misp once; the refused one not


def test_the_case_page_shows_tasks_and_observables_and_changes_a_task(
    server: Server,
    world: dict[str, Any],
    browser: Any,  # noqa: F811 - the fixture
) -> None:
    """In Chromium: the case page loads its tasks and observables (htmx, under the console's
    CSP), and a task's state is changed through its form."""
    case = world["case"]
    applied = server.api("POST", f"/api/cases/{case}/template", json={"template": "malware_host"})
    assert applied.status_code in (201, 409)  # 409: the first test applied it already
    page = browser.new_page()
    try:
        login(page, server.url, *world["officer_login"], next_path=f"/cases/{case}")
        page.wait_for_selector("#case-tasks tbody tr")
        rows = page.locator("#case-tasks tbody tr")
        assert rows.count() == 9 and "(malware_host)" in rows.nth(0).inner_text()
        second = rows.nth(1)
        second.locator("select[name=state]").select_option("in_progress")
        with page.expect_navigation():
            second.locator("form[data-method=PATCH]").first.locator("button").click()
        page.wait_for_selector("#case-tasks tr.task-in_progress")
        assert page.locator(f"#case-observables code:text-is('{C2}')").count() == 1
        assert page.locator("#case-observables a[hx-get*='/pivot']").count() == 0  # no pivot for an officer
        page.locator("#case-tasks").scroll_into_view_if_needed()
        shot(page, "case-tasks")
    finally:
        page.close()
