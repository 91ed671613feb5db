"""systemd-journal-upload into a real ``norrvakt serve``: a journal-remote listener of its own
(the tenant from the listener), its connections taken by the parse workers; entries
searchable, sshd recognized, binary fields kept; a file that is not export format refused."""

from __future__ import annotations

import os
import struct
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Server, free_port, running_server

UPLOAD = "/lib/systemd/systemd-journal-upload"
pytestmark = pytest.mark.skipif(
    not os.access(UPLOAD, os.X_OK),
    reason="Debian's systemd-journal-remote package is needed (make installs it)",
)


@pytest.fixture(scope="module")
def journal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    port = free_port()
    extra = f"""
[[sources]]
id = "journal"
type = "journal-remote"
protocol = "tcp"
host = "127.0.0.1"
port = {port}
tenant = "boden"
"""
    with running_server(Path(tmp_path_factory.mktemp("journal")), extra_toml=extra) as server:
        yield server, port


def _entry(m: str, i: int) -> bytes:
    blob = f"first line {m}\nsecond line".encode()
    return (
        (
            f"__REALTIME_TIMESTAMP={1795729418412345 + i}\n_HOSTNAME=srv-{m}\nSYSLOG_IDENTIFIER=sshd\n"
            f"_PID=4242\nPRIORITY=5\n"
            f"MESSAGE=Failed password for invalid user admin from 10.9.8.{i % 250} port 22 ssh2 {m}\n"
        ).encode()
        + b"DETAIL\n"
        + struct.pack("<Q", len(blob))
        + blob
        + b"\n\n"
    )


def _upload(port: int, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UPLOAD, f"--url=http://127.0.0.1:{port}", str(path)], capture_output=True, text=True, timeout=60
    )


def test_journal_upload_into_the_listeners_tenant(journal_server: tuple[Server, int], tmp_path: Path) -> None:
    server, port = journal_server
    m = "j" + uuid.uuid4().hex[:10]
    (tmp_path / "e.export").write_bytes(b"".join(_entry(m, i) for i in range(200)))
    done = _upload(port, tmp_path / "e.export")
    assert done.returncode == 0, done.stderr
    # acknowledged means journaled: every entry is there (searchable once indexed)
    assert server.wait_count(m, 200, tenant="boden") == 200
    assert server.count(m, tenant="lulea") == 0
    row = server.search(f"{m} source.ip:10.9.8.7", tenant="boden")["rows"][0]
    assert row["ecs"]["host.name"] == f"srv-{m}" and row["ecs"]["user.name"] == "admin"
    assert row["ecs"]["event.outcome"] == "failure" and row["source"] == "journal"
    assert row["fields"]["DETAIL"] == f"first line {m}\nsecond line"


def test_not_export_format_is_refused_and_kept(journal_server: tuple[Server, int], tmp_path: Path) -> None:
    server, port = journal_server
    before = server.count("error.type:journal.not_export_format", tenant="boden")
    (tmp_path / "bad.export").write_bytes(b"<13>Nov 26 21:43:38 host app: a syslog line, not export format\n")
    done = _upload(port, tmp_path / "bad.export")
    assert done.returncode != 0
    after = server.wait_count("error.type:journal.not_export_format", before + 1, tenant="boden")
    assert after == before + 1
