"""Rule exceptions end to end, against a real `norrvakt serve` running a local rule live: an
alert → an exception made from it (prefilled from the alert on the console) → the next matching
events raise no alert, the exception's hit count moves and the suppressed matches are listed
with their events; an exception past its expiry no longer applies and is listed as expired;
Boden's officer can neither see nor make exceptions for Luleå; every change is audited."""

from __future__ import annotations

import datetime as dt
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import browser, login, shot  # noqa: F401 - fixture
from tests.e2e.harness import Server, running_server

RULE_ID = "3a5e0c1f-7d2b-4e8a-9c6f-e5c0ffee0015"
RULE = f"""title: Nightly backup job started (exceptions test)
id: {RULE_ID}
status: test
level: high
tags:
  - attack.execution
  - attack.t1059
logsource:
  product: any
detection:
  keywords:
    - 'exctest backup job started'
  condition: keywords
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = Path(tmp_path_factory.mktemp("exceptions"))
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "backup.yml").write_text(RULE)
    toml = f'[detection]\nrule_dirs = ["{rules}"]\n'
    with running_server(tmp, extra_toml=toml) as srv:
        yield srv


def _send(server: Server, *hosts: str) -> str:
    """One matching syslog line per host, over one TCP connection (journaled in this order)."""
    marker = "m" + uuid.uuid4().hex[:10]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = "".join(f"<134>1 {stamp} {h} backup 42 - - exctest backup job started {marker}\n" for h in hosts)
    with socket.create_connection(("127.0.0.1", server.ports["tcp"])) as s:
        s.sendall(lines.encode())
    assert server.wait_count(marker, len(hosts), tenant="lulea") == len(hosts)
    return marker


def _until(what: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def _alerts(server: Server) -> list[dict[str, Any]]:
    resp = server.api("GET", "/api/alerts", params={"rule": RULE_ID, "tenant": "lulea", "status": ""})
    resp.raise_for_status()
    return list(resp.json()["alerts"])


def _by_host(server: Server, host: str) -> dict[str, Any] | None:
    return next((a for a in _alerts(server) if a["entities"].get("host.name") == host), None)


def _exception(server: Server, exception_id: int) -> dict[str, Any]:
    resp = server.api("GET", f"/api/exceptions/{exception_id}")
    assert resp.status_code == 200, resp.text
    found: dict[str, Any] = resp.json()
    return found


def _audited(server: Server, action: str, exception_id: int) -> int:
    return server.wait_count(f"event.action:{action} exception:{exception_id}", 1, tenant="_norrvakt")


def test_an_exception_made_from_an_alert_suppresses_the_next_matches_visibly(server: Server) -> None:
    _send(server, "lulea-bk01")
    alert = _until(lambda: _by_host(server, "lulea-bk01"))
    assert alert is not None and alert["count"] == 1

    admin = server.login("admin", server.admin_password())
    try:
        form = admin.get(f"/exceptions?alert={alert['id']}")
        assert form.status_code == 200
        assert "host.name=lulea-bk01" in form.text and RULE_ID in form.text  # prefilled from the alert
        assert "# log.syslog.appname=backup" in form.text  # its first event's fields, to uncomment
        made = admin.post(
            "/api/exceptions",
            json={
                "alert_id": alert["id"],
                "match": "host.name=LULEA-BK01",  # any case, as Sigma compares
                "reason": "the nightly backup job, change CHG-2211",
                "days": 30,
            },
        )
        assert made.status_code == 200, made.text
        exc = made.json()
        assert exc["tenant"] == "lulea" and exc["rule_id"] == RULE_ID and exc["author"] == "admin"
        assert exc["state"] == "active" and exc["hits"] == 0 and exc["alert_id"] == alert["id"]

        time.sleep(1.5)  # the intake's version watch looks once a second
        marker = _send(server, "lulea-bk01", "lulea-bk01", "lulea-other")
        other = _until(lambda: _by_host(server, "lulea-other"))  # the line after the suppressed two
        assert other is not None
        seen = _until(lambda: _exception(server, exc["id"])["hits"] >= 2 and _exception(server, exc["id"]))
        assert seen["hits"] == 2 and seen["last_hit"]
        assert _by_host(server, "lulea-bk01")["count"] == 1  # type: ignore[index]  # no new alert, no count
        seqs = {r["seq"] for r in server.search(f"{marker} host.name:lulea-bk01", tenant="lulea")["rows"]}
        assert {m["event_seq"] for m in seen["matches"]} == seqs and len(seqs) == 2
        assert {m["rule_id"] for m in seen["matches"]} == {RULE_ID}

        page = admin.get(f"/exceptions/{exc['id']}")
        assert all(f"/events/lulea/{s}" in page.text for s in seqs)  # the suppressed events, linked
        rules = admin.get("/rules")
        assert f'id="exception-{exc["id"]}"' in rules.text and 'data-hits="2"' in rules.text
        stats = server.api("GET", "/api/alerts/stats").json()["intake"]
        assert stats["suppressed"] >= 2
        assert _audited(server, "exception-create", exc["id"]) == 1
        changed = admin.patch(
            f"/api/exceptions/{exc['id']}", json={"reason": "backup job, CHG-2211 and CHG-2240"}
        )
        assert changed.status_code == 200 and changed.json()["reason"].endswith("CHG-2240")
        assert _audited(server, "exception-change", exc["id"]) == 1

        off = admin.post(f"/api/exceptions/{exc['id']}/disable")
        assert off.status_code == 200 and off.json()["state"] == "disabled"
        assert _audited(server, "exception-disable", exc["id"]) == 1
        time.sleep(1.5)
        _send(server, "lulea-bk01")
        assert _until(lambda: _by_host(server, "lulea-bk01")["count"] == 2)  # type: ignore[index]
        listed = server.api("GET", "/api/exceptions", params={"state": "disabled"}).json()["exceptions"]
        assert exc["id"] in {e["id"] for e in listed}
    finally:
        admin.close()


def test_make_an_exception_from_the_alert_queue_in_a_browser(browser: Any, server: Server) -> None:  # noqa: F811
    _send(server, "lulea-bk05")
    alert = _until(lambda: _by_host(server, "lulea-bk05"))
    page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="sv-SE")
    try:
        login(page, server.url, "admin", server.admin_password(), next_path="/alerts?status=")
        page.click(f"a[href='/exceptions?alert={alert['id']}#new']")
        page.wait_for_url("**/exceptions?alert=*")
        assert "host.name=lulea-bk05" in page.input_value("textarea[name=match]")
        page.fill("input[name=reason]", "test host lulea-bk05, decommissioned in March")
        shot(page, "exception-from-alert")
        page.click("form[data-api-form='/api/exceptions'] button[type=submit]")
        page.wait_for_selector("tr[data-state=active] >> text=decommissioned in March")
    finally:
        page.close()
    (made,) = [
        e
        for e in server.api("GET", "/api/exceptions").json()["exceptions"]
        if e["reason"].endswith("decommissioned in March")
    ]
    assert made["alert_id"] == alert["id"] and made["rule_id"] == RULE_ID and made["state"] == "active"
    assert made["conditions"] == {"host.name": ["lulea-bk05"]}  # the '# …' suggestions left out


def test_an_expired_exception_no_longer_applies_and_is_listed_as_expired(server: Server) -> None:
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=12)
    made = server.api(
        "POST",
        "/api/exceptions",
        json={
            "tenant": "lulea",
            "rule_id": RULE_ID,
            "conditions": {"host.name": ["lulea-bk02"]},
            "reason": "a short test window",
            "expires": ends.isoformat(),
        },
    )
    assert made.status_code == 200, made.text
    exc = made.json()
    time.sleep(1.5)
    _send(server, "lulea-bk02")
    assert _until(lambda: _exception(server, exc["id"])["hits"] == 1)
    assert _by_host(server, "lulea-bk02") is None
    time.sleep(max(0.0, (ends - dt.datetime.now(dt.UTC)).total_seconds()) + 0.5)
    _send(server, "lulea-bk02")
    alert = _until(lambda: _by_host(server, "lulea-bk02"))
    assert alert is not None and alert["count"] == 1
    assert _exception(server, exc["id"])["hits"] == 1
    expired = server.api("GET", "/api/exceptions", params={"state": "expired"}).json()["exceptions"]
    assert exc["id"] in {e["id"] for e in expired}
    assert (
        server.wait_count(f"event.action:exception-expired exception:{exc['id']}", 1, tenant="_norrvakt") == 1
    )


def test_a_boden_officer_can_neither_see_nor_make_exceptions_for_lulea(server: Server) -> None:
    lulea = server.api(
        "POST",
        "/api/exceptions",
        json={
            "tenant": "lulea",
            "rule_id": RULE_ID,
            "conditions": {"host.name": ["lulea-secret-host"]},
            "reason": "lulea only",
            "days": 1,
        },
    ).json()
    alert = _until(lambda: _alerts(server))[0]
    password = server.add_user("boden.exc", "tenant_officer", "boden")
    officer = server.login("boden.exc", password)
    try:
        listed = officer.get("/api/exceptions")
        assert listed.status_code == 200 and "lulea-secret-host" not in listed.text
        assert officer.get(f"/api/exceptions/{lulea['id']}").status_code == 404
        assert officer.get(f"/exceptions/{lulea['id']}").status_code == 404
        assert "lulea-secret-host" not in officer.get("/exceptions").text
        assert "lulea-secret-host" not in officer.get("/rules").text
        assert officer.get(f"/exceptions?alert={alert['id']}").status_code == 404
        body = {"rule_id": RULE_ID, "conditions": {"host.name": ["x"]}, "reason": "r", "days": 1}
        assert officer.post("/api/exceptions", json={**body, "tenant": "lulea"}).status_code == 403
        assert officer.post("/api/exceptions", json={**body, "tenant": "*"}).status_code == 403
        assert officer.post("/api/exceptions", json={**body, "alert_id": alert["id"]}).status_code == 404
        assert officer.post(f"/api/exceptions/{lulea['id']}/disable").status_code == 404
        assert officer.patch(f"/api/exceptions/{lulea['id']}", json={"days": 300}).status_code == 404
        own = officer.post("/api/exceptions", json={**body, "tenant": "boden"})
        assert own.status_code == 200 and own.json()["author"] == "boden.exc"
        assert _exception(server, lulea["id"])["state"] == "active"
    finally:
        officer.close()


def test_bad_exceptions_are_refused_with_the_reason(server: Server) -> None:
    base = {
        "tenant": "lulea",
        "rule_id": RULE_ID,
        "conditions": {"host.name": ["h"]},
        "reason": "r",
        "days": 1,
    }
    for changes, says in [
        ({"days": 400}, "less than or equal to 365"),
        ({"days": None}, "expires"),
        ({"conditions": {}}, "at least one field"),
        ({"tenant": "lulea,"}, "not a configured tenant"),
        ({"group": "tag:attack.t1059"}, "not both"),
        ({"expires": "next week", "days": None}, "ISO 8601"),
    ]:
        resp = server.api("POST", "/api/exceptions", json={**base, **changes})
        assert resp.status_code in (400, 422), (changes, resp.text)
        assert says in resp.text, (changes, resp.text)


def test_an_exception_survives_a_rule_update_and_a_restart(server: Server) -> None:
    """Keyed to the rule's id: a new version of the rule (title, level, detection widened) loads
    after a restart, and the exception still covers its matches — and its count goes on."""
    made = server.api(
        "POST",
        "/api/exceptions",
        json={
            "tenant": "lulea",
            "rule_id": RULE_ID,
            "conditions": {"host.name": ["lulea-bk03"]},
            "reason": "kept through the update",
            "days": 7,
        },
    ).json()
    time.sleep(1.5)
    _send(server, "lulea-bk03")
    assert _until(lambda: _exception(server, made["id"])["hits"] == 1)
    updated = RULE.replace("(exceptions test)", "(exceptions test, v2)").replace(
        "level: high", "level: critical"
    )
    updated = updated.replace(
        "    - 'exctest backup job started'", "    - 'exctest backup job started'\n    - 'exctest v2'"
    )
    (server.data_dir.parent / "rules" / "backup.yml").write_text(updated)
    server.stop()
    server.start()
    _send(server, "lulea-bk03", "lulea-bk04")
    alert = _until(lambda: _by_host(server, "lulea-bk04"))
    assert alert is not None and alert["rule"]["title"].endswith("v2)")  # the new version runs
    assert _until(lambda: _exception(server, made["id"])["hits"] == 2)
    assert _by_host(server, "lulea-bk03") is None
