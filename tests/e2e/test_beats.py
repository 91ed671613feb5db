"""Beats (Lumberjack v2) against a real `norrvakt serve` — parse workers and the listener lent to
them, the default — with pylogbeat, the real client: plain TCP and TLS, a Filebeat-shaped and
a Winlogbeat-shaped document, a v1 ``2D`` frame kept as a pipeline_error, and kill -9 (of the
server, and of the worker holding the connection) losing nothing that was acknowledged."""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pylogbeat
import pytest

from tests.e2e.harness import Server, free_ports
from tests.e2e.test_durability import assert_stored_once
from tests.e2e.worker_kill import kill_the_receiving_worker, wait_stored


def _server(tmp: Path, server_toml: str = "") -> Server:
    u, t, s, r, h, b, bt = free_ports(7)
    extra = f"""
[[sources]]
id = "beats"
type = "beats"
host = "127.0.0.1"
port = {b}
tenant = "lulea"

[[sources]]
id = "beats-tls"
type = "beats"
protocol = "tls"
host = "127.0.0.1"
port = {bt}
tenant = "boden"
"""
    server = Server(
        tmp / "data",
        h,
        {"udp": u, "tcp": t, "tls": s, "relp": r, "beats": b, "beats-tls": bt},
        extra_toml=extra,
        server_toml=server_toml,
    )
    server.data_dir.mkdir(parents=True)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _server(Path(tmp_path_factory.mktemp("beats")), "workers = 2")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _m() -> str:
    return "b" + uuid.uuid4().hex[:12]


def _filebeat(m: str, i: int) -> dict[str, Any]:
    return {
        "@timestamp": "2026-12-02T10:15:02.118Z",
        "message": f"GET /index.html 200 {m} {i}",
        "log": {"file": {"path": "/var/log/nginx/access.log"}, "offset": 1200 + i},
        "host": {"name": "web01"},
        "agent": {"type": "filebeat", "version": "8.15.3"},
    }


def test_pylogbeat_over_tcp(server: Server) -> None:
    m = _m()
    with pylogbeat.PyLogBeatClient("127.0.0.1", server.ports["beats"], timeout=10) as client:
        client.send([_filebeat(m, i) for i in range(200)])
        client.send([_filebeat(m, i) for i in range(200, 300)])
    assert server.wait_count(m, 300) == 300
    row = server.search(f'"{m} 7"')["rows"][0]
    assert (row["tenant"], row["source"]) == ("lulea", "beats")
    assert row["ecs"]["host.name"] == "web01"
    assert row["fields"]["log.file.path"] == "/var/log/nginx/access.log"
    assert row["fields"]["agent.type"] == "filebeat"


def test_pylogbeat_over_tls(server: Server) -> None:
    m = _m()
    ca = server.data_dir / "tls" / "server.crt"
    doc = {
        "@timestamp": "2026-12-02T10:20:00.000Z",
        "winlog": {
            "channel": "Security",
            "event_id": 4625,
            "provider_name": "Microsoft-Windows-Security-Auditing",
            "computer_name": "DC01.kommun.local",
            "record_id": 77812,
            "event_data": {"TargetUserName": "anna", "IpAddress": "10.1.2.3", "LogonType": "3"},
        },
        "tags": [m],
    }
    client = pylogbeat.PyLogBeatClient(
        "127.0.0.1", server.ports["beats-tls"], timeout=10, ssl_enable=True, ssl_verify=True, ca_certs=str(ca)
    )
    with client:
        client.send([doc])
    assert server.wait_count(f"tags:{m}", 1, tenant="boden") == 1
    (row,) = server.search(f"tags:{m}", tenant="boden")["rows"]
    assert (row["tenant"], row["source"]) == ("boden", "beats-tls")
    assert row["fields"]["EventID"] == "4625" and row["fields"]["Channel"] == "Security"
    assert row["fields"]["EventRecordID"] == "77812"
    assert row["ecs"]["user.name"] == "anna" and row["ecs"]["source.ip"] == "10.1.2.3"
    assert row["ecs"]["event.outcome"] == "failure"


def test_a_plain_client_on_the_tls_port_is_refused_and_kept(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.ports["beats-tls"]), timeout=10) as sock:
        sock.sendall(b"2W\x00\x00\x00\x01")
        sock.settimeout(10)
        assert sock.recv(64) == b""  # the handshake failed: closed
    assert server.wait_count("error.type:tls.handshake_failed source:beats-tls", 1) >= 1


def test_a_2d_frame_is_a_pipeline_error_and_closes(server: Server) -> None:
    m = _m()
    good = b'{"message": "before %s"}' % m.encode()
    with socket.create_connection(("127.0.0.1", server.ports["beats"]), timeout=10) as sock:
        sock.sendall(b"2W\x00\x00\x00\x02" + b"2J" + struct.pack(">II", 1, len(good)) + good)
        sock.sendall(b"2D" + struct.pack(">II", 2, 1) + b"\x00\x00\x00\x01k\x00\x00\x00\x01" + m[:1].encode())
        sock.settimeout(10)
        got = b""
        while chunk := sock.recv(64):
            got += chunk
    assert got == b"2A\x00\x00\x00\x01"  # the event before it, then closed
    assert server.wait_count(f"before {m}", 1) == 1
    assert server.wait_count("error.type:beats.bad_frame source:beats", 1) >= 1


class BeatsSender(threading.Thread):
    """pylogbeat windows of 50 events, each acknowledged before the next; never resends, so an
    id is stored at most once."""

    def __init__(self, port: int, run: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.run_id = run
        self.prefix = prefix
        self.acked: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with pylogbeat.PyLogBeatClient("127.0.0.1", self.port, timeout=10) as client:
                n = 0
                while not self.stop.is_set():
                    ids = [f"{self.prefix}{n}x{i}" for i in range(50)]
                    client.send([{"message": f"durability {self.run_id} {i}"} for i in ids])
                    self.acked += ids  # send() returns once the window's ACK arrived
                    n += 1
        except (OSError, pylogbeat.ConnectionException, struct.error):
            return  # the server (or its worker) died


def test_kill_9_of_the_receiving_worker_loses_nothing_acknowledged(server: Server) -> None:
    """The Beats connection is accepted by a parse worker; kill -9 of that worker mid-stream:
    every window it acknowledged is stored once, and a new connection (as a Beat makes after
    an error) goes on."""
    run = uuid.uuid4().hex[:10]
    kill_the_receiving_worker(server, run, lambda tag: BeatsSender(server.ports["beats"], run, tag), "beats")


def test_kill_9_mid_stream_loses_nothing_acknowledged(server: Server) -> None:
    # (last in the module: it kills the module's node and starts it again)
    run = uuid.uuid4().hex[:10]
    senders = [BeatsSender(server.ports["beats"], run, prefix) for prefix in ("a", "b")]
    for s in senders:
        s.start()
    time.sleep(3.0)
    server.kill9()
    for s in senders:
        s.stop.set()
        s.join(15)
    acked = [i for s in senders for i in s.acked]
    print(f"kill -9 of the server: {len(acked)} events acknowledged before it")
    assert len(acked) > 300, len(acked)
    server.start()
    wait_stored(server)
    assert_stored_once(server, run, acked)
