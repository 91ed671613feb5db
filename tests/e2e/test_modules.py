"""Module subscriptions are honoured: a municipality without detection gets no alerts from
the rules, one without 24/7 SOC notification gets alerts but nobody is paged, one without
the follow-up module cannot make follow-up plans — and only admins change subscriptions."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.alerts.receivers import WebhookReceiver, wait_for
from tests.e2e.harness import Server, running_server


def _spray(server: Server, tenant: str, attacker: str) -> None:
    """25 failed SSH logons for 25 accounts from one address, through the tenant's HEC token."""
    token = server.ingest_token(tenant, f"{tenant}-sshd")
    marker = uuid.uuid4().hex[:6]
    body = "\n".join(
        json.dumps(
            {
                "event": f"<38>1 - {tenant}-srv01 sshd 4711 - - Failed password for user{i}.{marker} "
                f"from {attacker} port 2222 ssh2",
                "sourcetype": "syslog",
            }
        )
        for i in range(25)
    )
    resp = httpx.post(
        f"{server.url}/services/collector/event", content=body, headers={"Authorization": f"Splunk {token}"}
    )
    assert resp.status_code == 200, resp.text
    assert server.wait_count(marker, 25, tenant=tenant) == 25


def _spray_alerts(server: Server, tenant: str) -> list[dict[str, Any]]:
    alerts = server.api("GET", "/api/alerts", params={"tenant": tenant, "status": ""}).json()["alerts"]
    return [a for a in alerts if "Password spraying" in a["rule"]["title"]]


def test_subscriptions_are_honoured(tmp_path: Path) -> None:
    with WebhookReceiver() as hook:
        toml = f"""
[[alerts.channels]]
name = "soc-oncall"
type = "webhook"
url = "{hook.url}"
secret = "modules-test"

[[alerts.routes]]
min_level = "medium"
channels = ["soc-oncall"]
"""
        with running_server(tmp_path, extra_toml=toml) as server:
            listed = server.api("GET", "/api/admin/modules").json()
            assert listed["tenants"]["boden"] == {
                "detection": True,
                "soc_notification": True,
                "followup": True,
                "response": False,  # opt-in
            }

            bad = server.api("PUT", "/api/admin/modules/boden", json={"teleport": True})
            assert bad.status_code == 400 and "teleport" in bad.text
            assert (
                server.api("PUT", "/api/admin/modules/atlantis", json={"detection": False}).status_code == 404
            )
            made = server.api(
                "POST",
                "/api/admin/users",
                json={
                    "username": "kiruna.it",
                    "role": "tenant_officer",
                    "tenants": ["kiruna"],
                    "must_change_password": False,  # used with Basic right away
                },
            ).json()
            officer = httpx.BasicAuth("kiruna.it", made["password"])
            own = httpx.put(f"{server.url}/api/admin/modules/kiruna", json={"detection": False}, auth=officer)
            assert own.status_code == 403  # subscriptions are the admin's

            r = server.api("PUT", "/api/admin/modules/boden", json={"detection": False})
            assert r.status_code == 200 and r.json()["modules"]["detection"] is False
            server.api("PUT", "/api/admin/modules/lulea", json={"soc_notification": False})
            server.api("PUT", "/api/admin/modules/kiruna", json={"followup": False})
            assert server.wait_count("event.action:tenant-modules", 3, tenant="_norrvakt") == 3

            _spray(server, "boden", "203.0.113.10")
            _spray(server, "lulea", "203.0.113.20")
            _spray(server, "kiruna", "203.0.113.30")
            wait_for(
                lambda: _spray_alerts(server, "kiruna") and _spray_alerts(server, "lulea"), what="alerts"
            )
            time.sleep(2)  # boden's events went through the same pipeline by now
            assert _spray_alerts(server, "boden") == []  # no detection module: no rule alerts
            assert server.count("203.0.113.10", tenant="boden") == 25  # but every log is kept

            wait_for(lambda: hook.received, what="the webhook")
            time.sleep(1)
            paged = [json.loads(r.body)["alert"]["tenant"] for r in hook.received]
            assert "kiruna" in paged and "lulea" not in paged  # lulea: alerts, but nobody paged

            plan = server.api(
                "POST",
                "/api/followup/plans",
                json={"tenant": "kiruna", "dataset": "socialtjanst.record_access", "reviewer": "kiruna.it"},
            )
            assert plan.status_code == 409 and "follow-up module" in plan.text
            server.api("PUT", "/api/admin/modules/kiruna", json={"followup": True})
            plan = server.api(
                "POST",
                "/api/followup/plans",
                json={"tenant": "kiruna", "dataset": "socialtjanst.record_access", "reviewer": "kiruna.it"},
            )
            assert plan.status_code == 200, plan.text
