"""`norrvakt import` and `norrvakt search`, with and without a running server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import shared_data
from tests.e2e.harness import Server, run_cli

_cli = run_cli


def test_import_evtx_then_cli_search_equals_api_search(server: Server) -> None:
    folder = shared_data("evtx-attack-samples", "Credential Access")
    files = [folder / "CA_DCSync_4662.evtx", folder / "kerberos_pwd_spray_4771.evtx"]
    out = _cli(server.data_dir, "import", "--tenant", "jokkmokk", *map(str, files))
    assert out.returncode == 0, out.stderr
    assert "imported" in out.stderr
    query = "event.code:4771 | stats count by user.name"
    api = server.search(query, tenant="jokkmokk")
    cli = json.loads(
        _cli(server.data_dir, "search", query, "--tenant", "jokkmokk", "--format", "json").stdout
    )
    assert api["rows"] == cli["rows"]
    assert sum(r["count"] for r in api["rows"]) == 2  # the file holds two 4771 events
    events = json.loads(
        _cli(server.data_dir, "search", "EventID:4662", "--tenant", "jokkmokk", "--format", "json").stdout
    )
    assert events["total"] == server.count("EventID:4662", tenant="jokkmokk") > 0


def test_cli_works_without_a_server(tmp_path: Path) -> None:
    data = tmp_path / "offline"
    log = tmp_path / "auth.log"
    log.write_text(
        "Nov 26 21:43:38 vm sshd[812]: Failed password for root from 10.9.8.7 port 4022 ssh2\n"
        "Nov 26 21:43:40 vm sshd[812]: Accepted password for anna from 10.9.8.7 port 4023 ssh2\n"
    )
    out = _cli(data, "import", "--tenant", "pajala", str(log))
    assert out.returncode == 0, out.stderr
    res = json.loads(_cli(data, "search", "source.ip:10.9.8.0/24", "--format", "json").stdout)
    assert res["total"] == 2
    table = _cli(data, "search", "event.outcome:failure")
    assert "root" in table.stdout


def test_search_errors_say_where(server: Server) -> None:
    resp = server.api("GET", "/api/search", params={"q": "user.name:(anna"})
    assert resp.status_code == 400
    assert "column" in resp.json()["detail"]
    out = _cli(server.data_dir, "search", "user.name:(anna")
    assert out.returncode == 2 and "column" in out.stderr
