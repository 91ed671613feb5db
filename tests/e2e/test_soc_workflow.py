"""The SOC workflow end to end, against a real `norrvakt serve`: a password-spraying story
becomes one alert with a count (not 25), grouped into a case; the SOC's webhook receives it
signed, Luleå's IT security officer gets an e-mail over STARTTLS, the upstream SIEM a CEF
record; the case is acknowledged and resolved through the API and MTTA/MTTR are reported.
Bad input — invalid transitions, unknown ids, other tenants' ids — gets clear 4xx answers and
changes nothing.

The alert comes from the running detection engine: 25 failed SSH logons for 25 accounts from
one address, sent over syslog TCP, trip the built-in password-spraying correlation rule.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from norrvakt.alerts.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.alerts.receivers import SmtpServer, SyslogReceiver, WebhookReceiver, wait_for
from tests.e2e.harness import REPO, Server, running_server

SECRET = "e2e-webhook-secret"
ATTACKER = "185.220.101.7"


@pytest.fixture(scope="module")
def soc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = Path(tmp_path_factory.mktemp("soc"))
    with WebhookReceiver() as hook, SmtpServer(tmp) as smtp, SyslogReceiver("udp") as upstream:
        toml = f"""
[alerts]
escalate_after_minutes = 0

[[alerts.channels]]
name = "soc-oncall"
type = "webhook"
url = "{hook.url}"
secret = "{SECRET}"
retry_backoff_s = 0.2

[[alerts.channels]]
name = "lulea-itsec"
type = "email"
url = "smtp://127.0.0.1:{smtp.port}"
recipients = ["itsec@lulea.se"]
sender = "norrvakt@soc.norrbotten.example"
ca_file = "{smtp.cert}"

[[alerts.channels]]
name = "upstream-siem"
type = "syslog"
url = "{upstream.url}"

[[alerts.routes]]
min_level = "high"
channels = ["soc-oncall", "upstream-siem"]

[[alerts.routes]]
tenants = ["lulea"]
min_level = "high"
channels = ["lulea-itsec"]
"""
        with running_server(tmp, extra_toml=toml) as server:
            yield {"server": server, "hook": hook, "smtp": smtp, "upstream": upstream}


def _spray_events(server: Server) -> list[dict[str, Any]]:
    """25 failed logons from one outside address, sent over syslog TCP and journaled."""
    marker = "spray" + uuid.uuid4().hex[:8]
    lines = b"".join(
        f"<38>1 - lulea-dc01 sshd 4711 - - Failed password for user{i}.{marker} "
        f"from {ATTACKER} port 2222 ssh2\n".encode()
        for i in range(25)
    )
    with socket.create_connection(("127.0.0.1", server.ports["tcp"]), timeout=10) as s:
        s.sendall(lines)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
    assert server.wait_count(marker, 25) == 25
    rows: list[dict[str, Any]] = server.search(marker)["rows"]
    return sorted(rows, key=lambda r: r["seq"])


def test_password_spraying_from_detection_to_closed_case(soc: dict[str, Any]) -> None:
    server: Server = soc["server"]
    rows = _spray_events(server)
    assert all(r["ecs"]["source.ip"] == ATTACKER for r in rows)

    def spray_alerts() -> list[dict[str, Any]]:
        listed = server.api("GET", "/api/alerts", params={"tenant": "lulea", "status": ""}).json()["alerts"]
        return [a for a in listed if "Password spraying" in a["rule"]["title"]]

    wait_for(spray_alerts, what="the password-spraying alert")
    (alert,) = spray_alerts()  # one alert for the whole story, not one per failed logon
    assert alert["status"] == "new" and alert["level"] == "high"
    assert alert["entities"]["source.ip"] == ATTACKER
    assert 1 <= alert["count"] < 25
    case_id = alert["case_id"]
    assert case_id is not None

    evidence = server.api("GET", f"/api/alerts/{alert['id']}/events").json()["events"]
    assert len(evidence) >= 20 and all("Failed password" in e["message"] for e in evidence)
    assert {e["seq"] for e in evidence} <= {r["seq"] for r in rows}

    hook: WebhookReceiver = soc["hook"]
    wait_for(lambda: hook.received, what="the webhook")
    (got,) = hook.received  # one alert → one message, not 25
    ts, sig = got.headers[TIMESTAMP_HEADER.lower()], got.headers[SIGNATURE_HEADER.lower()]
    assert verify(SECRET, ts, got.body, sig)
    doc = json.loads(got.body)
    assert doc["alert"]["id"] == alert["id"] and doc["kind"] == "alert.new"

    smtp: SmtpServer = soc["smtp"]
    wait_for(lambda: smtp.messages, what="the e-mail")
    (mail,) = smtp.messages
    assert mail.tls and mail.recipients == ["itsec@lulea.se"]
    assert "Password spraying" in mail.content.decode()

    upstream: SyslogReceiver = soc["upstream"]
    wait_for(lambda: upstream.messages, what="the CEF record")
    assert (
        b"CEF:0|Norrvakt|Norrvakt|" in upstream.messages[0]
        and f"src={ATTACKER}".encode() in upstream.messages[0]
    )

    case = server.api("GET", f"/api/cases/{case_id}").json()
    assert case["alert_ids"] == [alert["id"]] and case["status"] == "new" and ATTACKER in case["title"]

    time.sleep(1.0)  # a measurable response time
    ack = server.api("POST", f"/api/cases/{case_id}/status", json={"status": "acknowledged"})
    assert ack.status_code == 200, ack.text
    server.api(
        "POST", f"/api/cases/{case_id}/comments", json={"text": "blocked 185.220.101.7 at the firewall"}
    )
    done = server.api(
        "POST", f"/api/cases/{case_id}/status", json={"status": "resolved", "note": "passwords reset"}
    )
    assert done.status_code == 200 and done.json()["status"] == "resolved"
    alert_now = server.api("GET", f"/api/alerts/{alert['id']}").json()
    assert alert_now["status"] == "resolved"

    sla = server.api("GET", "/api/cases/sla", params={"tenant": "lulea", "since": "1h"}).json()["sla"]
    high = next(r for r in sla if r["severity"] == "high")
    assert high["mtta_s"] >= 1.0 and high["mttr_s"] >= high["mtta_s"] and high["resolved"] >= 1

    history = server.api("GET", f"/api/cases/{case_id}/history").json()["history"]
    assert [h["action"] for h in history][:2] == ["created", "alert-added"]
    assert [(h["old"], h["new"]) for h in history if h["action"] == "status"] == [
        ("new", "acknowledged"),
        ("acknowledged", "resolved"),
    ]
    # ... and each change is journaled in the audit trail, sealed like any log
    assert server.wait_count(f"event.action:case-status case:{case_id}", 2, tenant="_norrvakt") >= 2


def test_the_routes_are_in_the_published_openapi_schema(soc: dict[str, Any]) -> None:
    paths = soc["server"].api("GET", "/api/openapi.json").json()["paths"]
    for path in (
        "/api/alerts",
        "/api/alerts/{alert_id}/events",
        "/api/cases/{case_id}/status",
        "/api/cases/sla",
    ):
        assert path in paths


def test_same_attacker_in_several_municipalities_is_one_indicator(soc: dict[str, Any]) -> None:
    server: Server = soc["server"]
    ip = "45.155.205.99"
    for tenant in ("boden", "kiruna", "pitea"):
        body = {
            "tenant": tenant,
            "rule_id": "vpn-brute-force",
            "level": "medium",
            "entities": {"source.ip": ip},
        }
        assert server.api("POST", "/api/alerts", json=body).status_code == 200
    found = server.api("GET", "/api/alerts/indicators", params={"since": "1h"}).json()["indicators"]
    (row,) = [i for i in found if i["value"] == ip]
    assert row["kind"] == "source.ip" and row["tenant_count"] == 3
    assert [t["tenant"] for t in row["tenants"]] == ["boden", "kiruna", "pitea"]


def _officer(server: Server, tenant: str, role: str = "tenant_officer") -> httpx.Auth:
    name = f"{role}-{tenant}-{uuid.uuid4().hex[:6]}"
    body = {"username": name, "role": role, "tenants": [tenant], "must_change_password": False}
    resp = server.api("POST", "/api/admin/users", json=body)  # a password usable at once (Basic)
    assert resp.status_code == 200, resp.text
    return httpx.BasicAuth(name, resp.json()["password"])


def _as(server: Server, auth: httpx.Auth, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", auth=auth, timeout=30, **kw)


def test_bad_input_gets_clear_4xx_and_changes_nothing(soc: dict[str, Any]) -> None:
    server: Server = soc["server"]
    body = {
        "tenant": "lulea",
        "rule_id": "bad-input-check",
        "level": "high",
        "entities": {"host.name": "lulea-fs01"},
    }
    alert = server.api("POST", "/api/alerts", json=body).json()["alerts"][0]
    case_id, alert_id = alert["case_id"], alert["id"]
    before = server.api("GET", f"/api/cases/{case_id}/history").json()["history"]

    bad = server.api("POST", f"/api/cases/{case_id}/status", json={"status": "resolved"})
    assert bad.status_code == 409 and "cannot become 'resolved'" in bad.json()["detail"]
    assert server.api("POST", f"/api/cases/{case_id}/status", json={"status": "closed"}).status_code == 409
    assert server.api("POST", "/api/cases/999999/status", json={"status": "acknowledged"}).status_code == 404
    assert server.api("GET", "/api/alerts/999999").json()["detail"] == "no alert 999999"
    assert server.api("POST", "/api/cases/999999/merge", json={"case_ids": [case_id]}).status_code == 404
    assert server.api("POST", f"/api/cases/{case_id}/alerts", json={"alert_id": 999999}).status_code == 404
    wrong_level = server.api("POST", "/api/alerts", json={**body, "level": "severe"})
    assert wrong_level.status_code == 400 and "unknown level 'severe'" in wrong_level.json()["detail"]
    assert server.api("POST", "/api/alerts", json={**body, "tenant": "stockholm"}).status_code == 403
    nis2 = server.api("PUT", f"/api/cases/{case_id}/nis2", json={"early_warning_sent_at": "now"})
    assert nis2.status_code == 400 and "significant" in nis2.json()["detail"]

    boden = _officer(server, "boden")
    assert _as(server, boden, "GET", f"/api/cases/{case_id}").status_code == 404
    assert _as(server, boden, "GET", f"/api/alerts/{alert_id}").status_code == 404
    assert _as(server, boden, "GET", f"/api/alerts/{alert_id}/events").status_code == 404
    assert (
        _as(
            server, boden, "POST", f"/api/cases/{case_id}/status", json={"status": "acknowledged"}
        ).status_code
        == 404
    )
    assert _as(server, boden, "PATCH", f"/api/cases/{case_id}", json={"assignee": "bo"}).status_code == 404
    assert _as(server, boden, "POST", "/api/alerts", json=body).status_code == 403
    assert _as(server, boden, "GET", "/api/alerts/indicators").status_code == 403
    assert _as(server, boden, "GET", "/api/alerts", params={"tenant": "lulea"}).status_code == 403
    mine = _as(server, boden, "GET", "/api/alerts").json()["alerts"]
    assert all(a["tenant"] == "boden" for a in mine)
    auditor = _officer(server, "lulea", role="auditor")
    assert _as(server, auditor, "GET", f"/api/cases/{case_id}").status_code == 200
    assert (
        _as(server, auditor, "POST", f"/api/cases/{case_id}/comments", json={"text": "x"}).status_code == 403
    )

    after = server.api("GET", f"/api/cases/{case_id}").json()
    assert after["status"] == "new" and after["assignee"] is None and after["alert_ids"] == [alert_id]
    assert server.api("GET", f"/api/cases/{case_id}/history").json()["history"] == before


def test_cli_goes_through_the_server(soc: dict[str, Any]) -> None:
    server: Server = soc["server"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "norrvakt.cli", "--data-dir", str(server.data_dir), *args],
            capture_output=True,
            text=True,
            cwd=str(REPO),
            timeout=60,
        )

    made = cli("alerts", "create", "-t", "kalix", "--rule", "edr-ransomware", "--level", "critical",
               "--entity", "host.name=kalix-ws17", "--title", "Ransomware behaviour")  # fmt: skip
    assert made.returncode == 0, made.stderr
    alert_id = int(made.stdout.strip())
    listed = json.loads(cli("alerts", "list", "-t", "kalix", "--format", "json").stdout)
    (alert,) = [a for a in listed["alerts"] if a["id"] == alert_id]
    assert cli("cases", "status", str(alert["case_id"]), "acknowledged").returncode == 0
    bad = cli("cases", "status", str(alert["case_id"]), "acknowledged")
    assert bad.returncode == 2 and "cannot become 'acknowledged'" in bad.stderr
    shown = json.loads(cli("cases", "show", str(alert["case_id"]), "--history").stdout)
    assert shown["status"] == "acknowledged" and shown["history"][-1]["actor"] == "admin"
