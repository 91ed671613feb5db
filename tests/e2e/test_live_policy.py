"""The live-set policy in a running server: a rule the policy leaves out is loaded, not live,
and says why; a tenant officer puts it live for their own tenant with the rule setting, and
only that tenant's events raise its alert."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import Server, running_server

RULE_ID = "6c1f3e9a-4b1d-4e0c-9a55-1d2f3a4b5c6d"


def _rule(word: str) -> str:
    return (
        f"title: Live policy probe\nid: {RULE_ID}\nstatus: test\nlevel: low\n"
        "logsource:\n  category: norrvakt_test\n"
        f"detection:\n  keywords:\n    - {word}\n  condition: keywords\n"
    )


def _row(client: httpx.Client | Server) -> dict[str, Any]:
    if isinstance(client, Server):
        listing = client.api("GET", "/api/rules", params={"q": RULE_ID}).json()
    else:
        listing = client.get("/api/rules", params={"q": RULE_ID}).json()
    rows = [r for r in listing["rules"] if r["id"] == RULE_ID]
    assert len(rows) == 1, listing
    row: dict[str, Any] = rows[0]
    return row


def _alerts(server: Server, word: str) -> set[str]:
    alerts = server.api("GET", "/api/alerts", params={"status": "", "limit": 500}).json()["alerts"]
    return {a["tenant"] for a in alerts if a["rule"]["id"] == RULE_ID}


def test_a_tenant_officer_puts_a_rule_live_for_their_tenant_only(tmp_path: Path) -> None:
    word = "lp" + uuid.uuid4().hex[:10]
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "probe.yml").write_text(_rule(word))
    with running_server(tmp_path, extra_toml=f'[detection]\nrule_dirs = ["{rules}"]\n') as server:
        row = _row(server)
        assert row["loaded"] and not row["live"]
        assert "level low is below detection.live_min_level" in row["not_live"]

        password = server.add_user("boden.officer", "tenant_officer", "boden")
        officer = server.login("boden.officer", password)
        try:
            refused = officer.put(f"/api/alerts/rules/{RULE_ID}", json={"tenant": "lulea", "enabled": True})
            assert refused.status_code == 403, refused.text
            done = officer.put(f"/api/alerts/rules/{RULE_ID}", json={"tenant": "boden", "enabled": True})
            assert done.status_code == 200, done.text
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not _row(officer)["live"]:
                time.sleep(0.5)
            mine = _row(officer)
            assert mine["live"] and mine["live_tenants"] == ["boden"], mine
        finally:
            officer.close()
        everyone = _row(server)
        assert "boden" in everyone["live_tenants"] and "lulea" not in everyone["live_tenants"]

        for tenant in ("boden", "lulea"):
            token = server.ingest_token(tenant, f"{tenant}-hec")
            resp = httpx.post(
                f"{server.url}/services/collector/event",
                json={"event": f"probe {word} from {tenant}"},
                headers={"Authorization": f"Splunk {token}"},
                timeout=30,
            )
            assert resp.status_code == 200, resp.text
        assert server.wait_count(word, 2) == 2
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _alerts(server, word):
            time.sleep(0.5)
        time.sleep(2)  # Luleå's event was matched in the same batch or just after: none may come
        assert _alerts(server, word) == {"boden"}
