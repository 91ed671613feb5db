"""Bad input: a clear error with source and offset, kept as a pipeline_error event; the rest flows."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import shared_data
from tests.e2e.harness import REPO, Server


def _m() -> str:
    return "b" + uuid.uuid4().hex[:12]


def _send_tcp(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # the server closes once everything is journaled


def test_oversized_octet_frame(server: Server) -> None:
    m = _m()
    big = b"<13>1 - h app - - - " + m.encode() + b" " + b"x" * 20000  # listener limit is 8192
    after = f"<13>1 - h app - - - after {m}".encode()
    _send_tcp(server.ports["tcp"], b"%d %s%d %s" % (len(big), big, len(after), after))
    assert server.wait_count(f'"after {m}"', 1) == 1
    assert server.wait_count(f"event.kind:pipeline_error {m}", 1) == 1
    (row,) = server.search(f"event.kind:pipeline_error {m}")["rows"]
    assert row["ecs"]["error.type"] == "syslog.oversized"
    assert "syslog-tcp" in row["ecs"]["error.message"] and "offset 0" in row["ecs"]["error.message"]


def test_truncated_octet_count(server: Server) -> None:
    m = _m()
    _send_tcp(server.ports["tcp"], b"500 <13>1 - h app - - - cut short " + m.encode())
    assert server.wait_count(f"event.kind:pipeline_error {m}", 1) == 1
    (row,) = server.search(f"event.kind:pipeline_error {m}")["rows"]
    assert row["ecs"]["error.type"] == "syslog.truncated"


def test_invalid_utf8_is_kept_with_raw_bytes(server: Server) -> None:
    m = _m()
    _send_tcp(server.ports["tcp"], b"<13>1 - h app - - - bad \xff\xfe bytes " + m.encode() + b"\n")
    assert server.wait_count(m, 1) == 1
    (row,) = server.search(m)["rows"]
    assert "bad" in row["message"]


def test_garbage_on_the_tls_port(server: Server) -> None:
    before = server.count("error.type:tls.handshake_failed")
    with socket.create_connection(("127.0.0.1", server.ports["tls"]), timeout=10) as s:
        s.sendall(b"<13>this is not a TLS client hello\n" * 10)
        try:
            s.recv(100)
        except OSError:
            pass
    assert server.wait_count("error.type:tls.handshake_failed", before + 1) == before + 1
    # ... and the TLS listener still serves real clients.
    m = _m()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", server.ports["tls"]), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        msg = f"<13>1 - h app - - - fine after garbage {m}".encode()
        s.sendall(b"%d %s" % (len(msg), msg))
    assert server.wait_count(m, 1) == 1


def test_relp_garbage_ends_session_with_serverclose(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.ports["relp"]), timeout=10) as s:
        s.sendall(b"this is not relp at all, just a long line of text\n")
        data = s.recv(100)
    assert b"serverclose" in data
    assert server.wait_count("error.type:relp.bad_frame", 1) >= 1


def test_corrupt_evtx_import(server: Server, tmp_path: Path) -> None:
    src = shared_data("evtx-attack-samples", "AutomatedTestingTools", "PanacheSysmon_vs_AtomicRedTeam01.evtx")
    data = bytearray(src.read_bytes())
    for i in range(4096 + 65536 + 20000, 4096 + 65536 + 26000):
        data[i] = 0x41
    bad = tmp_path / "corrupt-halfway.evtx"
    bad.write_bytes(bytes(data))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "norrvakt.cli",
            "--data-dir",
            str(server.data_dir),
            "import",
            "--tenant",
            "kalix",
            str(bad),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "problem" in out.stderr and "damaged" in out.stderr
    time.sleep(0.5)
    errors = server.search("event.kind:pipeline_error error.type:evtx.bad_record", tenant="kalix")
    assert errors["total"] >= 1
    assert "corrupt-halfway.evtx" in errors["rows"][0]["ecs"]["error.message"]
    assert server.count("event.code:*", tenant="kalix") > 500  # the rest of the file still arrived
