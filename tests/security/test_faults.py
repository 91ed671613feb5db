"""Faults end, and health tells the truth: a journal that runs out of disk space or file
descriptors refuses records cleanly (503, nothing of a refused batch kept), reads and logins go
on, /api/health says why it is degraded, and ingest resumes by itself once the resource is back
— no restart.

The disk-full case runs on a real, small tmpfs mounted over the journal folder (needs root to
mount; skipped with the reason otherwise). The descriptor case lowers the running server's
RLIMIT_NOFILE with util-linux ``prlimit``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.harness import Server, free_ports

EXTRA = """
[journal]
segment_mb = 1
group_commit_ms = 1
[integrity]
checkpoint_every_seconds = 2
verify_every_minutes = 0
"""


def _server(tmp: Path, extra: str = EXTRA) -> Server:
    u, t, s, r, h = free_ports(5)
    server = Server(tmp / "data", h, {"udp": u, "tcp": t, "tls": s, "relp": r}, extra_toml=extra)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    return server


def _mount_tmpfs(path: Path, size_mb: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs for the disk-full case needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN)")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def full_disk_server(tmp_path: Path) -> Iterator[Server]:
    server = _server(tmp_path)
    journal = server.data_dir / "journal"
    _mount_tmpfs(journal, 24)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        _umount(journal)


def _hec(server: Server, token: str, batch: str, n: int, pad: int = 400) -> int:
    body = b"\n".join(
        orjson.dumps({"event": {"message": f"fault-{batch}-{i} " + "x" * pad}, "host": "fault-host"})
        for i in range(n)
    )
    try:
        resp = httpx.post(
            f"{server.url}/services/collector/event",
            content=body,
            headers={"Authorization": f"Splunk {token}"},
            timeout=30,
        )
    except httpx.HTTPError:
        return 0  # no answer is no acknowledgement
    return resp.status_code


def _fill(path: Path, leave_bytes: int) -> Path:
    """Take all but ``leave_bytes`` of the file system at ``path``."""
    filler = path / "filler.bin"
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as fh:
        fh.truncate(0)
        chunk = b"\0" * (1 << 20)
        todo = max(0, free - leave_bytes)
        while todo > 0:
            n = min(len(chunk), todo)
            try:
                fh.write(chunk[:n])
            except OSError:
                break
            todo -= n
    return filler


def _login_works(server: Server, username: str, password: str) -> bool:
    """The console's login form, as a browser fills it (hidden fields such as a CSRF token kept)."""
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as web:
        form = web.get("/login")
        hidden = dict(
            re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.text)
        )
        resp = web.post("/login", data={**hidden, "username": username, "password": password, "next": "/"})
        return resp.status_code == 303 and "login" not in resp.headers.get("location", "login")


def _wait(predicate, timeout: float, step: float = 0.25) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_disk_full_refuses_cleanly_and_ingest_resumes_by_itself(full_disk_server: Server) -> None:
    server = full_disk_server
    journal = server.data_dir / "journal"
    token = server.ingest_token("lulea", "fault-hec")
    password = server.add_user("officer", "soc_analyst", "lulea")
    assert _hec(server, token, "before", 50) == 200

    filler = _fill(journal, leave_bytes=256 * 1024)
    outcomes: dict[str, int] = {}
    for i in range(40):  # 40 batches of ~100 KB into 256 KB: the disk runs out on the way
        outcomes[f"full{i}"] = _hec(server, token, f"full{i}", 200)
    refused = [b for b, code in outcomes.items() if code != 200]
    assert refused, f"the disk never filled up: {outcomes}"
    assert all(code in {200, 503} for code in outcomes.values()), outcomes

    health = httpx.get(f"{server.url}/api/health", timeout=10).json()
    assert health["status"] == "degraded", health
    assert any(p["component"] == "journal" for p in health["problems"]), health

    # Reads and logins keep working while nothing can be journaled.
    marker = uuid.uuid4().hex
    during = server.api("GET", "/api/search", params={"q": f"outage-{marker}", "since": "1h"})
    assert during.status_code == 200, during.text
    assert _login_works(server, "officer", password)

    filler.unlink()
    assert _wait(lambda: _hec(server, token, "after", 50) == 200, timeout=45), server.log()
    assert _wait(lambda: httpx.get(f"{server.url}/api/health", timeout=10).json()["status"] == "ok", 30), (
        httpx.get(f"{server.url}/api/health", timeout=10).json()
    )

    # Every batch answered 200 is stored once, in full; nothing of a refused batch is stored.
    accepted = [b for b, code in outcomes.items() if code == 200]
    server.wait_count("fault-after", 50, timeout=60)
    for batch in ["before", "after", *accepted]:
        assert server.wait_count(f'"fault-{batch}-"', 1, timeout=30) >= 0
    counts = {
        b: server.count(f"host.name:fault-host fault-{b}-*", since="1h")
        for b in ["before", "after", *outcomes]
    }
    for b in ["before", "after", *accepted]:
        expected = 50 if b in {"before", "after"} else 200
        assert counts[b] == expected, (b, counts[b])
    for b in refused:
        assert counts[b] == 0, (
            f"batch {b} was answered {outcomes[b]} but {counts[b]} of its events are stored"
        )

    # The search made during the outage is in the audit trail after all.
    audit_hits = server.wait_count(f"event.action:search outage-{marker}", 1, timeout=30, tenant="_norrvakt")
    assert audit_hits == 1

    # And the journal the refusals left behind verifies clean.
    job = server.api("POST", "/api/integrity/verify", params={"tenant": "lulea", "store": "false"}).json()
    assert _wait(
        lambda: server.api("GET", f"/api/integrity/verify/{job['job']}").json()["state"] != "running", 60
    )
    report = server.api("GET", f"/api/integrity/verify/{job['job']}").json()["report"]
    assert report is not None and report["ok"], report


def test_descriptor_exhaustion_refuses_then_resumes(tmp_path: Path) -> None:
    """The server runs out of file descriptors (its open-file limit lowered, while running, to
    what it has open): a batch that needs new journal files is refused with 503 on a connection
    that was open already, health says degraded, and once descriptors are back ingest resumes."""
    if shutil.which("prlimit") is None:
        pytest.skip("util-linux prlimit is not installed")
    server = _server(tmp_path)
    server.start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        lulea = server.ingest_token("lulea", "fd-hec")
        boden = server.ingest_token("boden", "fd-hec")
        with httpx.Client(base_url=server.url, timeout=30) as http:

            def post(token: str, batch: str) -> int:
                body = b"\n".join(
                    orjson.dumps({"event": {"message": f"fault-{batch}-{i}"}, "host": "fd-host"})
                    for i in range(10)
                )
                resp = http.post(
                    "/services/collector/event", content=body, headers={"Authorization": f"Splunk {token}"}
                )
                if resp.status_code == 503:  # the sender is told when to try again
                    assert resp.headers.get("retry-after") == "5", resp.headers
                return resp.status_code

            assert post(lulea, "fd-before") == 200  # the keep-alive connection is open now
            open_now = len(os.listdir(f"/proc/{pid}/fd"))
            # Below what is open: no new descriptor at all (files the store or the checkpointer
            # open and close meanwhile do not make room). Boden's first records need a folder, a
            # segment and tree files.
            subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={open_now - 8}:20000"], check=True)
            try:
                starved = post(boden, "fd-starved")
                health = http.get("/api/health").json()
            finally:
                subprocess.run(["prlimit", f"--pid={pid}", "--nofile=20000:20000"], check=True)
        assert starved == 503, starved
        assert health["status"] == "degraded", health
        assert any(p["component"] == "journal" for p in health["problems"]), health

        assert _wait(lambda: _hec(server, boden, "fd-after", 10) == 200, timeout=45), server.log()
        assert server.wait_count("fd-after", 10, timeout=60, tenant="boden") == 10
        assert server.count("fault-fd-starved*", tenant="boden") == 0
        assert _wait(lambda: httpx.get(f"{server.url}/api/health", timeout=10).json()["status"] == "ok", 30)
    finally:
        server.stop()


def test_records_of_unmapped_senders_go_to_the_system_tenant(tmp_path: Path) -> None:
    """A listener without a default tenant: records and transport errors of a sender no network
    maps land in ``_norrvakt`` — never in a tenant named "" (the journal's root folder)."""
    u, t, s, r, h = free_ports(5)
    server = Server(tmp_path / "data", h, {"udp": u, "tcp": t, "tls": s, "relp": r}, tenant="lulea")
    server.data_dir.mkdir(parents=True)
    server.extra_toml = EXTRA
    config = server.write_config
    unmapped_port = free_ports(1)[0]

    def write_config() -> Path:
        path = config()
        path.write_text(
            path.read_text()
            + f"""
[[sources]]
id = "unmapped-tcp"
type = "syslog"
protocol = "tcp"
host = "127.0.0.1"
port = {unmapped_port}
max_message_bytes = 512
networks = {{ "10.99.0.0/16" = "boden" }}
"""
        )
        return path

    server.write_config = write_config  # type: ignore[method-assign]
    server.start()
    try:
        import socket

        with socket.create_connection(("127.0.0.1", unmapped_port)) as sock:
            sock.sendall(b"<13>Dec  1 10:00:00 box app: unmapped-one\n")
            sock.sendall(b"<13>Dec  1 10:00:00 box app: " + b"y" * 2000 + b"\n")  # oversized: transport error
            sock.shutdown(socket.SHUT_WR)
            sock.recv(1)
        # (the search for it is audited in the same tenant: count the pipeline errors only)
        assert server.wait_count("event.kind:pipeline_error unmapped-one", 1, tenant="_norrvakt") == 1
        assert server.wait_count("event.kind:pipeline_error error.type:syslog.*", 1, tenant="_norrvakt") >= 1
        journal = server.data_dir / "journal"
        assert not list(journal.glob("*.seg")), "records were journaled into the journal's root folder"
    finally:
        server.stop()
    server.start()  # after a restart there is no pseudo-tenant either
    try:
        tenants = server.api("GET", "/api/stats").json()["tenants"]
        assert "" not in tenants and "tree" not in tenants, tenants
    finally:
        server.stop()


def test_health_says_degraded_while_a_witness_cannot_be_reached(tmp_path: Path) -> None:
    dead = free_ports(1)[0]  # nothing listens here
    server = _server(
        tmp_path,
        EXTRA.replace("[integrity]\n", f'[integrity]\nwitnesses = ["http://127.0.0.1:{dead}/witness"]\n'),
    )
    server.start()
    try:

        def witness_problem() -> bool:
            health = httpx.get(f"{server.url}/api/health", timeout=10).json()
            return health["status"] == "degraded" and any(
                p["component"] == "witness" for p in health["problems"]
            )

        assert _wait(witness_problem, timeout=30), httpx.get(f"{server.url}/api/health", timeout=10).json()
    finally:
        server.stop()
