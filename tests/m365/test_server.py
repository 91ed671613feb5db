"""`norrvakt serve` with an m365 connector pulling the stand-in: records journaled in the
connector's tenant once each, also across a restart; the status routes per role."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from norrvakt.cli.main import main
from norrvakt.event import now_us
from norrvakt.sources.m365.checkpoints import MINUTE
from tests.e2e.harness import Server, running_server
from tests.m365.standin import CLIENT_ID, DIRECTORY, SECRET, StandIn, audit_record, signin_record


def _connector_toml(ms: StandIn) -> str:
    return f"""
[[sources]]
id = "m365-lulea"
type = "m365"
tenant = "lulea"
m365.directory_id = "{DIRECTORY}"
m365.client_id = "{CLIENT_ID}"
m365.feeds = ["Audit.Exchange", "graph.signIns"]
m365.poll_interval_s = 1
m365.login_url = "{ms.base}"
m365.manage_url = "{ms.base}"
m365.graph_url = "{ms.base}"
m365.ca_file = "{ms.ca_file}"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = Path(tmp_path_factory.mktemp("m365srv"))
    with StandIn(tmp) as ms:
        now = now_us()
        for b in range(3):
            at = now - (40 - b * 10) * MINUTE
            ms.add_blob(
                "Audit.Exchange", at, [audit_record(f"srv-ex-{b}-{i}", at - MINUTE) for i in range(3)]
            )
        ms.add_blob(
            "Audit.Exchange", now - 5 * MINUTE, [audit_record("srv-ex-0-0", now - 6 * MINUTE)]
        )  # again
        for i in range(4):
            ms.add_graph("graph.signIns", signin_record(f"srv-si-{i}", now - (30 - i) * MINUTE))
        with running_server(tmp, extra_toml=_connector_toml(ms)) as server:
            secret = tmp / "secret.txt"
            secret.write_text(SECRET)
            cfg = server.data_dir.parent / f"{server.data_dir.name}.toml"
            result = CliRunner().invoke(
                main,
                [
                    "--config",
                    str(cfg),
                    "m365",
                    "set-credential",
                    "-c",
                    "m365-lulea",
                    "--secret-file",
                    str(secret),
                ],
            )
            assert result.exit_code == 0, result.output
            yield {"server": server, "standin": ms, "cfg": cfg}


def _journaled(server: Server) -> int:
    return server.count("source:m365-lulea", tenant="lulea")


def test_records_are_journaled_once_in_the_connectors_tenant(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    assert server.wait_count("source:m365-lulea", 13, timeout=60, tenant="lulea") == 13
    time.sleep(2.5)  # two more polls: the overlap is pulled again, nothing is journaled twice
    assert _journaled(server) == 13
    assert server.count("source:m365-lulea", tenant="boden") == 0
    # normalized by the m365 parser (norrvakt/parsers/m365.py, entra.py), not pipeline errors
    assert server.count("event.dataset:m365.audit user.name:anna.berg@lulea.example", tenant="lulea") == 9
    assert server.count("event.dataset:azure.signinlogs source.ip:198.51.100.23", tenant="lulea") == 4
    assert server.count("source:m365-lulea event.kind:pipeline_error", tenant="lulea") == 0


def test_the_status_route_shows_lag_and_success_to_the_soc_and_never_the_secret(
    world: dict[str, Any],
) -> None:
    server: Server = world["server"]
    server.wait_count("source:m365-lulea", 13, timeout=60, tenant="lulea")
    resp = server.api("GET", "/api/m365/connectors")
    assert resp.status_code == 200
    (conn,) = resp.json()["connectors"]
    assert conn["id"] == "m365-lulea" and conn["tenant"] == "lulea" and conn["ok"] is True
    assert conn["credential"]["kind"] == "secret" and conn["last_success_at"] is not None
    assert {f["feed"]: f["records"] for f in conn["feeds"]} == {"Audit.Exchange": 9, "graph.signIns": 4}
    lags = {f["feed"]: f["lag_s"] for f in conn["feeds"]}
    assert 0 <= lags["Audit.Exchange"] < 120 and 300 <= lags["graph.signIns"] < 420  # graph_delay_minutes 5
    assert SECRET not in resp.text and "ciphertext" not in resp.text
    admin = server.login("admin", server.admin_password())
    try:
        page = admin.get("/admin").text
    finally:
        admin.close()
    assert "Microsoft 365 connectors" in page and "credential: secret" in page and SECRET not in page


def test_officers_see_their_own_connector_without_credentials_and_nothing_of_others(
    world: dict[str, Any],
) -> None:
    server: Server = world["server"]
    lulea = server.login("lulea.m365", server.add_user("lulea.m365", "tenant_officer", "lulea"))
    boden = server.login("boden.m365", server.add_user("boden.m365", "tenant_officer", "boden"))
    try:
        own = lulea.get("/api/m365/connectors").json()["connectors"]
        assert [c["id"] for c in own] == ["m365-lulea"] and "credential" not in own[0]
        assert "credential" not in lulea.get("/api/m365/connectors/m365-lulea").text
        other = boden.get("/api/m365/connectors")
        assert other.status_code == 200 and other.json() == {"connectors": []}
        one = boden.get("/api/m365/connectors/m365-lulea")
        missing = boden.get("/api/m365/connectors/m365-nowhere")
        assert one.status_code == missing.status_code == 404 and one.text == missing.text
        page = boden.get("/admin")
        assert page.status_code in {200, 403} and "m365-lulea" not in page.text
        own_page = lulea.get("/admin")
        if own_page.status_code == 200:
            assert "m365-lulea" in own_page.text and "no credential set" not in own_page.text
            assert "credential: secret" not in own_page.text
    finally:
        lulea.close()
        boden.close()


def test_a_restart_resumes_without_gaps_or_duplicates(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    ms: StandIn = world["standin"]
    server.wait_count("source:m365-lulea", 13, timeout=60, tenant="lulea")
    server.stop()
    now = now_us()
    ms.add_blob(
        "Audit.Exchange", now - MINUTE, [audit_record("srv-after", now), audit_record("srv-ex-2-1", now)]
    )
    ms.add_graph("graph.signIns", signin_record("srv-si-after", now - 6 * MINUTE))  # settled: past the delay
    server.start()
    assert server.wait_count("source:m365-lulea", 15, timeout=60, tenant="lulea") == 15
    time.sleep(2.5)
    assert _journaled(server) == 15
