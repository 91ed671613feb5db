"""A real `norrvakt serve`: a Windows logon failure sent over HEC is stored with its enrichment
(searchable as fields), the event view shows the words next to the raw values, and an alert on a
critical asset of the tenant is raised, with the asset and the reason on the alert queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Server, running_server

NETWORKS = '[enrich.networks.lulea]\n"VPN-pool" = ["10.20.200.0/22"]\n'


def _logon_failure(marker: str) -> dict[str, object]:
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "EventID": 4625,
                "Channel": "Security",
                "Computer": f"treserva-db01.{marker}.lulea.local",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-12-02T06:01:02.000000Z"}},
            },
            "EventData": {"TargetUserName": marker, "LogonType": 10, "Status": "0xC000006D",
                          "SubStatus": "0xC000006A", "IpAddress": "83.255.1.1"},
        }
    }  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("enrich")), extra_toml=NETWORKS) as srv:
        yield srv


def test_ingest_enrichment_is_stored_searchable_and_shown(server: Server) -> None:
    marker = "enr" + "x4625"
    # first: the intake's asset list reloads within a second of a change, and ingesting takes longer
    asset = server.api(
        "PUT",
        "/api/assets/lulea/treserva-db01",
        json={"owner": "Socialförvaltningen", "criticality": "critical", "system": "Treserva"},
    )
    assert asset.status_code == 200, asset.text
    token = server.ingest_token("lulea", "lulea-evtx")
    body = json.dumps({"event": _logon_failure(marker), "sourcetype": "XmlWinEventLog"})
    resp = httpx.post(f"{server.url}/services/collector/event", headers={"Authorization": f"Splunk {token}"},
                      content=body)  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert server.wait_count(marker, 1, tenant="lulea") == 1
    hits = server.search(
        f"{marker} source.as.number:1257 winlog.logon.type_name:RemoteInteractive", tenant="lulea"
    )
    assert len(hits["rows"]) == 1, hits
    seq = hits["rows"][0]["seq"]
    officer = server.login("lulea.enrich", server.add_user("lulea.enrich", "tenant_officer", "lulea"))
    page = officer.get(f"/ui/event/lulea/{seq}")
    assert page.status_code == 200
    row = page.text.split('class="orig">SubStatus</th>')[1].split("</tr>")[0]
    assert "0xC000006A" in row and "Bad password" in row
    assert "SE · AS1257 Tele2 Sverige AB" in page.text

    alert_in = {"tenant": "lulea", "rule_id": "enrich-e2e", "level": "medium", "event_seq": seq,
                "entities": {"host.name": f"treserva-db01.{marker}.lulea.local"}}  # fmt: skip
    made = server.api("POST", "/api/alerts", json=alert_in)
    assert made.status_code in (200, 201), made.text
    alert = made.json()["alerts"][0]
    assert alert["level"] == "critical" and alert["entities"]["norrvakt.level.rule"] == "medium"
    queue = officer.get("/alerts?tenant=lulea&status=")
    assert queue.status_code == 200
    assert (
        "treserva-db01" in queue.text
        and "Treserva" in queue.text
        and "asset treserva-db01: critical" in queue.text
    )
