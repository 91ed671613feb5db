"""`serve --demo`: a new user sees traffic for all 14 municipalities within seconds."""

from __future__ import annotations

import time
from pathlib import Path

from norrvakt.config import MUNICIPALITIES
from tests.e2e.harness import running_server


def test_demo_traffic_reaches_every_tenant_with_attack_stories(tmp_path: Path) -> None:
    with running_server(tmp_path, "--demo") as server:
        deadline = time.monotonic() + 60
        tenants: set[str] = set()
        while time.monotonic() < deadline:
            rows = server.search("| stats count by tenant")["rows"]
            tenants = {r["tenant"] for r in rows}
            if (
                tenants >= set(MUNICIPALITIES)
                and server.count("event.code:1102") >= 1
                and server.count("event.code:4625") >= 20
            ):
                break
            time.sleep(1)
        assert tenants >= set(MUNICIPALITIES)
        assert server.count("event.code:1102") >= 1  # audit log cleared
        assert server.count("event.code:4625") >= 20  # password spraying
        assert server.count('"Failed password"') >= 10  # ssh brute force
        sources = {r["source"] for r in server.search("| stats count by source")["rows"]}
        assert {"syslog-udp", "syslog-tcp", "syslog-tls", "relp"} <= sources
        assert server.count("event.kind:pipeline_error") == 0, server.search("event.kind:pipeline_error")[
            "rows"
        ][:3]
        # Live detection turned the stories into alerts and cases.
        deadline = time.monotonic() + 30
        titles: set[str] = set()
        while time.monotonic() < deadline:
            alerts = server.api("GET", "/api/alerts", params={"status": "", "limit": 500}).json()["alerts"]
            titles = {a["rule"]["title"] for a in alerts}
            if "Security audit log cleared" in titles:
                break
            time.sleep(1)
        assert "Security audit log cleared" in titles, titles
        assert any(a["case_id"] for a in alerts)
        # The log follow-up has its demo plans; this month's sample can be drawn.
        plans = server.api("GET", "/api/followup/plans").json()["plans"]
        assert {(p["tenant"], p["dataset"]) for p in plans} == {
            ("lulea", "socialtjanst.record_access"),
            ("lulea", "health.record_access"),
        }
        drawn = server.api(
            "POST", f"/api/followup/plans/{plans[0]['id']}/rounds", json={"period": time.strftime("%Y-%m")}
        )
        assert drawn.status_code == 200, drawn.text
        # The demo's own HTTP requests are not logged one by one (they buried the banner with
        # the password), and the banner is shown again once the node is up.
        log = server.log_path.read_text(errors="replace") if server.log_path else ""
        assert "HTTP Request:" not in log
        assert "Norrvakt is up — demo traffic is flowing" in log
        assert log.count("Log in:        admin") == 2
