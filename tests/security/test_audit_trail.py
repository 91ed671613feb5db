"""The audit trail's own inputs (issue #11): nobody imports into ``_norrvakt``, an import's
``peer`` and ``received_at`` are the server's (the client's claims are kept as such), import
tenant ids are exact, and CLI commands on a data directory that does not exist say so.

Before: a SOC analyst (or the admin's CLI token) could POST /api/import?tenant=_norrvakt with
``"peer": "local"`` and a ``received_at`` years back — records indistinguishable from
Norrvakt's own audit events of that time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from norrvakt.event import now_us
from tests.e2e.harness import REPO, Server, running_server

BACK_THEN = 1_262_304_000_000_000  # 2010-01-01, microseconds
CLI = [sys.executable, "-m", "norrvakt.cli"]


def _forged(marker: str, **extra: Any) -> bytes:
    """An NDJSON import line shaped like one of Norrvakt's audit records."""
    payload = {"message": f"admin search: query={marker}", "actor": "admin", "action": "search"}
    doc = {"peer": "local", "received_at": BACK_THEN, "format": "json", "payload": json.dumps(payload)}
    return json.dumps({**doc, **extra}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("audit"))) as srv:
        yield srv


def test_nobody_imports_into_the_audit_trail(server: Server, tmp_path: Path) -> None:
    marker = "forged" + uuid.uuid4().hex[:8]
    resp = server.api("POST", "/api/import", params={"tenant": "_norrvakt"}, content=_forged(marker))
    assert resp.status_code == 400, resp.text
    assert "'_norrvakt' is Norrvakt's own audit trail" in resp.json()["detail"]
    # the CLI (with the server running, or without) refuses it too
    log = tmp_path / "audit.jsonl"
    log.write_text(json.dumps({"message": marker}) + "\n")
    out = subprocess.run(
        [*CLI, "--data-dir", str(server.data_dir), "import", "--tenant", "_norrvakt", str(log)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 2 and "_norrvakt" in out.stderr
    time.sleep(1.0)  # anything accepted would be searchable by now
    assert server.count(marker, tenant="_norrvakt") == 0


@pytest.mark.parametrize("tenant", ["boden,", " boden", "Boden", ""])
def test_import_tenant_ids_are_exact(server: Server, tenant: str) -> None:
    resp = server.api("POST", "/api/import", params={"tenant": tenant}, content=_forged("x"))
    assert resp.status_code == 400, resp.text
    assert f"import tenant: {tenant!r} is not a configured tenant" in resp.json()["detail"]


def test_norrvakts_own_source_names_are_refused(server: Server) -> None:
    resp = server.api(
        "POST", "/api/import", params={"tenant": "lulea", "source": "norrvakt-audit"}, content=_forged("x")
    )
    assert resp.status_code == 400
    assert "'norrvakt-' are Norrvakt's own" in resp.json()["detail"]


def test_peer_and_received_at_come_from_the_server(server: Server) -> None:
    marker = "backdated" + uuid.uuid4().hex[:8]
    before = now_us()
    resp = server.api("POST", "/api/import", params={"tenant": "lulea"}, content=_forged(marker))
    assert resp.status_code == 200, resp.text
    assert server.wait_count(marker, 1, tenant="lulea") == 1
    (row,) = server.search(marker, tenant="lulea")["rows"]
    assert row["peer"].startswith("127.0.0.1:"), row["peer"]  # the caller, not "local"
    assert before - 5_000_000 <= row["ingested"] <= now_us(), row["ingested"]  # now, not 2010
    # what the client said is kept, marked as its claim
    assert row["fields"]["import.claimed_peer"] == "local"
    assert row["fields"]["import.claimed_received_at"] == str(BACK_THEN)
    assert row["source"] == "import"


def test_the_cli_import_through_the_server_keeps_the_file_as_a_claim(server: Server, tmp_path: Path) -> None:
    marker = "cliimport" + uuid.uuid4().hex[:8]
    log = tmp_path / "auth.log"
    log.write_text(f"Nov 26 21:43:38 vm sshd[812]: Failed password for root from 10.9.8.7 {marker}\n")
    server.cli("import", "--tenant", "kiruna", str(log))
    assert server.wait_count(marker, 1, tenant="kiruna") == 1
    (row,) = server.search(marker, tenant="kiruna")["rows"]
    assert row["peer"].startswith("127.0.0.1:")
    assert row["fields"]["import.claimed_peer"] == f"file:{log}:1"


# -- a data directory that does not exist ------------------------------------------------------------


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("tokens", "create", "--tenant", "lulea", "--source", "lulea-x"),
        ("tokens", "list"),
        ("search", "x"),
        ("users", "add", "anna", "--role", "soc_analyst"),
        ("verify",),
        ("alerts", "list"),
        ("keys", "export"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_cli_on_a_missing_data_directory_says_so(tmp_path: Path, args: tuple[str, ...]) -> None:
    missing = tmp_path / "no-such-dir"
    out = _cli(missing, *args)
    assert out.returncode == 2, (out.returncode, out.stderr[-500:])
    assert f"no Norrvakt data directory at {missing}" in out.stderr.replace("\n", "")
    assert "Traceback" not in out.stderr
    assert not missing.exists(), "the command created the directory it was told does not exist"


def test_import_may_create_the_data_directory(tmp_path: Path) -> None:
    # The first use of a fresh directory can be an import (tests/e2e/test_cli.py works offline).
    log = tmp_path / "a.log"
    log.write_text("Nov 26 21:43:38 vm sshd[812]: Accepted password for anna from 10.9.8.7 port 22 ssh2\n")
    out = _cli(tmp_path / "fresh", "import", "--tenant", "pajala", str(log))
    assert out.returncode == 0, out.stderr
    assert json.loads(_cli(tmp_path / "fresh", "search", "anna", "--format", "json").stdout)["total"] == 1
