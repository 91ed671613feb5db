"""Nothing acknowledged is lost: HEC and RELP streams, `kill -9` mid-stream, restart.

Every event the server acknowledged (HEC 200, RELP ``rsp 200``) must be searchable exactly once
after the restart. Events sent but not acknowledged may or may not be there (at most once).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from tests.e2e.harness import Server, free_ports


class HecSender(threading.Thread):
    def __init__(self, server: Server, token: str, run: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{server.url}/services/collector/event"
        self.token = token
        self.run_id = run
        self.acked: list[str] = []
        self.sent: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        batch_no = 0
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                ids = [f"h{batch_no}x{i}" for i in range(100)]
                body = "\n".join(
                    json.dumps(
                        {"time": time.time(), "host": "durability", "event": f"durability {self.run_id} {i}"}
                    )
                    for i in ids
                )
                self.sent += ids
                try:
                    resp = client.post(
                        self.url, content=body, headers={"Authorization": f"Splunk {self.token}"}
                    )
                except httpx.HTTPError:
                    return  # the server died: nothing of this batch was acknowledged
                if resp.status_code == 200:
                    self.acked += ids
                batch_no += 1


class RelpSender(threading.Thread):
    def __init__(self, port: int, run: str) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.run_id = run
        self.acked: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            reader = sock.makefile("rb")
            offer = b"relp_version=0\nrelp_software=test\ncommands=syslog"
            sock.sendall(b"1 open %d %s\n" % (len(offer), offer))
            _read_rsp(reader)
            txnr = 1
            while not self.stop.is_set():
                window = []
                for _ in range(50):
                    txnr += 1
                    ident = f"r{txnr}"
                    msg = f"<13>1 - relphost durability - - - durability {self.run_id} {ident}".encode()
                    sock.sendall(b"%d syslog %d %s\n" % (txnr, len(msg), msg))
                    window.append((txnr, ident))
                for expected_txnr, ident in window:
                    got_txnr, status = _read_rsp(reader)
                    assert got_txnr == expected_txnr
                    if status.startswith(b"200"):
                        self.acked.append(ident)
        except (OSError, ValueError):
            return  # connection died with the server


def _read_rsp(reader) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    line = reader.readline()
    if not line:
        raise OSError("connection closed")
    txnr, cmd, rest = line.split(b" ", 2)
    if cmd != b"rsp":
        raise ValueError(line)
    length, _, data = rest.partition(b" ")
    while len(data) < int(length) + 1:  # offers span lines
        more = reader.readline()
        if not more:
            raise OSError("connection closed")
        data += more
    return int(txnr), data


def _ids_stored(server: Server, run: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    offset = 0
    while True:
        page = server.search(f'"durability {run}"', limit=10000, offset=offset)
        for row in page["rows"]:
            seen[row["message"].rsplit(" ", 1)[-1]] += 1
        offset += len(page["rows"])
        if offset >= page["total"] or not page["rows"]:
            return seen


def assert_stored_once(server: Server, run: str, acked: list[str]) -> None:
    """Every acknowledged event of ``run`` is searchable, and none is there twice."""
    seen = _ids_stored(server, run)
    missing = [i for i in acked if seen[i] == 0]
    duplicated = [i for i, n in seen.items() if n > 1]
    assert missing == [], f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    assert duplicated == [], f"{len(duplicated)} events stored twice, e.g. {duplicated[:5]}"


def test_kill_9_mid_stream_loses_nothing_acknowledged(tmp_path: Path) -> None:
    u, t, s, r, h = free_ports(5)
    server = Server(tmp_path / "data", h, {"udp": u, "tcp": t, "tls": s, "relp": r})
    server.data_dir.mkdir(parents=True)
    server.start()
    token = server.ingest_token("lulea", "durability-hec")
    run = uuid.uuid4().hex[:10]
    hec = HecSender(server, token, run)
    relp = RelpSender(server.ports["relp"], run)
    hec.start()
    relp.start()
    time.sleep(3.0)
    server.kill9()  # mid-stream: both senders are busy
    hec.stop.set()
    relp.stop.set()
    hec.join(15)
    relp.join(15)
    acked = hec.acked + relp.acked
    assert len(hec.acked) > 500 and len(relp.acked) > 500, (len(hec.acked), len(relp.acked))

    server.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stats = server.api("GET", "/api/stats").json()
            if stats["indexer"]["backlog"] == 0:
                break
            time.sleep(0.5)
        assert_stored_once(server, run, acked)
        # And the server goes on accepting after the crash.
        resp = httpx.post(
            f"{server.url}/services/collector/event",
            headers={"Authorization": f"Splunk {token}"},
            content=json.dumps({"event": f"after restart {run}"}),
        )
        assert resp.status_code == 200
        assert server.wait_count(f'"after restart {run}"', 1) == 1
    finally:
        server.stop()


def test_kill_9_keeps_the_notices_that_were_waiting(tmp_path: Path) -> None:
    """An alert's webhook notice that could not be delivered yet (the receiver answers 503)
    survives `kill -9` in the outbox and is delivered after the restart."""
    from tests.alerts.receivers import WebhookReceiver, wait_for

    with WebhookReceiver(fail_first=10**9) as hook:
        toml = f"""
[[alerts.channels]]
name = "soc-oncall"
type = "webhook"
url = "{hook.url}"
secret = "outbox-test"
retries = 20
retry_backoff_s = 1.0

[[alerts.routes]]
min_level = "high"
channels = ["soc-oncall"]
"""
        u, t, s, r, h = free_ports(5)
        server = Server(tmp_path / "data", h, {"udp": u, "tcp": t, "tls": s, "relp": r}, extra_toml=toml)
        server.data_dir.mkdir(parents=True)
        server.start()
        try:
            marker = uuid.uuid4().hex[:8]
            made = server.api(
                "POST",
                "/api/alerts",
                json={"tenant": "lulea", "rule_id": f"outbox-{marker}", "level": "high"},
            )
            assert made.status_code == 200, made.text
            alert_id = made.json()["alerts"][0]["id"]
            wait_for(lambda: hook.attempts >= 2, 20, "the server retrying the webhook")
            server.kill9()
            hook.fail_first = 0  # the receiver is back
            server.start()
            wait_for(lambda: len(hook.received) >= 1, 30, "the notice after the restart")
            docs = [json.loads(r.body) for r in hook.received]
            assert [(d["kind"], d["alert"]["id"]) for d in docs] == [("alert.new", alert_id)]
            log = server.api("GET", "/api/alerts/notifications", params={"tenant": "lulea"}).json()
            assert [n["status"] for n in log["notifications"]] == ["sent"]
        finally:
            server.stop()
