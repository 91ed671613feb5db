"""Parse workers (`server.workers`): the node parses on every core and still loses nothing.

A parse worker holds nothing that matters: the node journals every batch itself, in the order
the batches were submitted, and acknowledges only after the fsync. So a worker killed with
`kill -9` mid-stream costs no acknowledged event, and the node starts a new one; and when the
node (the process that owns the journal) is killed, its workers go with it and a restart finds
every acknowledged event exactly once (tests/e2e/test_durability.py does that with the default
workers; here the workers' own end is checked too).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.harness import Server, free_ports
from tests.e2e.test_durability import HecSender, RelpSender, assert_stored_once


def _server(tmp_path: Path, workers: int = 2, more: str = "") -> Server:
    u, t, s, r, h = free_ports(5)
    server = Server(
        tmp_path / "data",
        h,
        {"udp": u, "tcp": t, "tls": s, "relp": r},
        server_toml=f"workers = {workers}\n{more}",
    )
    server.data_dir.mkdir(parents=True)
    return server


def _workers(server: Server) -> list[dict[str, Any]]:
    return list(server.api("GET", "/api/stats").json()["workers"]["workers"])


def _wait_ready(server: Server, n: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        workers = _workers(server)
        if sum(w["state"] == "ready" for w in workers) == n or time.monotonic() > deadline:
            return workers
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive: its parent (the killed node) is gone and nobody waits for it
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def _wait_stored(server: Server) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stats = server.api("GET", "/api/stats").json()
        if stats["indexer"]["backlog"] == 0 and stats["journal"]["backlog"]["parsing_batches"] == 0:
            return
        time.sleep(0.5)


class ReconnectingRelpSender(threading.Thread):
    """A RELP sender that, like rsyslog, reconnects when its session dies (to whichever worker
    accepts it) and goes on. It never resends, so every id appears at most once unless the
    server stored one twice; each session's events carry the session's own run id."""

    def __init__(self, port: int, run: str) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.run_id = run
        self.sessions: list[RelpSender] = []
        self.stop = threading.Event()

    @property
    def acked(self) -> list[str]:
        return [i for s in self.sessions for i in s.acked]

    def run(self) -> None:
        while not self.stop.is_set():
            session = RelpSender(self.port, f"{self.run_id}s{len(self.sessions)}")
            session.stop = self.stop
            self.sessions.append(session)
            session.run()  # returns when the session dies or we stop
            time.sleep(0.1)


def _relp_receiver(server: Server) -> dict[str, Any]:
    """The worker whose listeners received the (only) RELP session's events."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        receiving = [w for w in _workers(server) if w["received_events"] > 0]
        if len(receiving) == 1:
            return receiving[0]
        time.sleep(0.1)
    raise AssertionError(_workers(server))


def test_kill_9_of_a_worker_mid_stream_loses_nothing_and_it_is_replaced(tmp_path: Path) -> None:
    """kill -9 of the worker that receives a RELP session while HEC bodies are parsed in the
    workers: HEC loses nothing, the RELP sender reconnects to the other worker and goes on, and
    every acknowledged event is stored exactly once."""
    server = _server(tmp_path)
    server.start()
    try:
        before = _wait_ready(server, 2)
        assert [w["state"] for w in before] == ["ready", "ready"], before
        token = server.ingest_token("lulea", "workers-hec")
        run = uuid.uuid4().hex[:10]
        hec = [HecSender(server, token, run + "a"), HecSender(server, token, run + "b")]
        relp = ReconnectingRelpSender(server.ports["relp"], run + "r")
        for sender in [*hec, relp]:
            sender.start()
        time.sleep(1.5)
        busy = _workers(server)
        assert all(w["batches"] > 0 for w in busy), busy  # two HEC senders: both workers parse
        victim = _relp_receiver(server)
        os.kill(victim["pid"], 9)  # mid-stream
        time.sleep(3.0)
        for sender in [*hec, relp]:
            sender.stop.set()
        for sender in [*hec, relp]:
            sender.join(15)
        assert all(len(s.acked) > 300 for s in [*hec, relp]), [len(s.acked) for s in [*hec, relp]]
        assert len(relp.sessions) >= 2, "the RELP sender did not reconnect"
        assert sum(len(s.acked) for s in relp.sessions[1:]) > 100, "nothing acknowledged after the reconnect"

        after = _wait_ready(server, 2)
        replaced = after[victim["index"]]
        assert replaced["pid"] != victim["pid"] and replaced["restarts"] == 1, after
        assert f"parse worker {victim['index']} (pid {victim['pid']}) exited" in server.log()
        _wait_stored(server)
        for sender, prefix in ((hec[0], run + "a"), (hec[1], run + "b")):
            assert_stored_once(server, prefix, sender.acked)
        for session in relp.sessions:
            assert_stored_once(server, session.run_id, session.acked)
    finally:
        server.stop()


def test_kill_9_of_the_node_takes_its_workers_and_a_restart_has_every_acknowledged_event(
    tmp_path: Path,
) -> None:
    server = _server(tmp_path)
    server.start()
    pids = [w["pid"] for w in _wait_ready(server, 2)]
    token = server.ingest_token("lulea", "workers-hec")
    run = uuid.uuid4().hex[:10]
    hec = HecSender(server, token, run)
    relp = RelpSender(server.ports["relp"], run)
    hec.start()
    relp.start()
    time.sleep(2.5)
    server.kill9()  # the journal owner, mid-stream
    hec.stop.set()
    relp.stop.set()
    hec.join(15)
    relp.join(15)
    assert len(hec.acked) > 300 and len(relp.acked) > 300, (len(hec.acked), len(relp.acked))
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "parse workers outlived the node"

    server.start()
    try:
        _wait_stored(server)
        assert_stored_once(server, run, hec.acked + relp.acked)
    finally:
        server.stop()


def test_one_connection_keeps_its_order_across_workers(tmp_path: Path) -> None:
    """Received in the node (server.receive_in_workers = false), the batches of one TCP
    connection are parsed by different workers but journaled in the order they arrived: the
    seqs follow the sender's numbering."""
    server = _server(tmp_path, more="receive_in_workers = false")
    server.start()
    try:
        _wait_ready(server, 2)
        run = uuid.uuid4().hex[:10]
        n = 3000
        with socket.create_connection(("127.0.0.1", server.ports["tcp"])) as sock:
            for i in range(n):
                msg = f"<13>1 - orderhost order - - - order {run} {i:05d}".encode()
                sock.sendall(b"%d %s" % (len(msg), msg))
                if i % 200 == 0:
                    time.sleep(0.01)  # several reads, so several batches
        assert server.wait_count(f'"order {run}"', n) == n
        assert _numbers_in_seq_order(server, f'"order {run}"', n) == list(range(n))
        stats = _workers(server)
        assert sum(w["batches"] for w in stats) > 1
        assert sum(w["received_events"] for w in stats) == 0, stats
    finally:
        server.stop()


def _numbers_in_seq_order(server: Server, query: str, n: int) -> list[int]:
    """The trailing numbers of the ``n`` events ``query`` finds, in journal (seq) order."""
    rows: list[dict[str, Any]] = []
    while len(rows) < n:
        page = server.search(f"{query} | sort seq asc", limit=1000, offset=len(rows))
        if not page["rows"]:
            break
        rows += page["rows"]
    return [int(r["message"].rsplit(" ", 1)[-1]) for r in rows]


def _send_numbered(port: int, tag: str, n: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for start in range(0, n, 100):
            sock.sendall(
                b"".join(
                    b"%d %s" % (len(m), m)
                    for m in (
                        f"<13>1 - spreadhost spread - - - {tag} {i:05d}".encode()
                        for i in range(start, start + 100)
                    )
                )
            )


def test_connections_are_received_by_the_workers_and_each_keeps_its_order(tmp_path: Path) -> None:
    """By default the workers accept the stream listeners' connections on the node's sockets:
    while one sender keeps a worker busy, the next connections go to a worker free to accept
    them, and each connection's records are journaled in the order it sent them."""
    import threading

    server = _server(tmp_path)
    server.start()
    try:
        _wait_ready(server, 2)
        run = uuid.uuid4().hex[:10]
        n = 2000
        tags = [f"{run}-{k}" for k in range(5)]
        busy = threading.Thread(target=_send_numbered, args=(server.ports["tcp"], tags[0], n * 4))
        busy.start()
        time.sleep(0.3)
        later = [threading.Thread(target=_send_numbered, args=(server.ports["tcp"], t, n)) for t in tags[1:]]
        for t in later:
            t.start()
            time.sleep(0.1)
        for t in [busy, *later]:
            t.join(60)
        for tag, count in zip(tags, [n * 4] + [n] * 4, strict=True):
            assert server.wait_count(f'"{tag}"', count) == count, tag
            assert _numbers_in_seq_order(server, f'"{tag}"', count) == list(range(count)), tag
        stats = server.api("GET", "/api/stats").json()
        workers = stats["workers"]["workers"]
        assert all(w["receiving"] for w in workers), workers
        assert all(w["received_events"] > 0 for w in workers), workers  # both cores received
        assert sum(w["received_events"] for w in workers) == n * 8
        assert stats["workers"]["receiving_in_workers"] == ["syslog-tcp", "syslog-tls", "relp"], stats[
            "workers"
        ]
    finally:
        server.stop()


def test_a_hec_body_is_split_and_parsed_in_a_worker(tmp_path: Path) -> None:
    """The node hands the whole body over; a bad part still becomes a pipeline_error with its
    number and offset, and HEC's answer names it. So does a ``_bulk`` body."""
    import httpx

    server = _server(tmp_path)
    server.start()
    try:
        _wait_ready(server, 2)
        token = server.ingest_token("lulea", "workers-hec")
        run = uuid.uuid4().hex[:10]
        good = [f'{{"event": "hec-in-worker {run} {i}", "host": "h"}}' for i in (1, 2)]
        body = "\n".join([good[0], '{"event": broken}', good[1]])
        resp = httpx.post(
            f"{server.url}/services/collector/event",
            content=body,
            headers={"Authorization": f"Splunk {token}"},
        )
        assert resp.status_code == 400 and resp.json()["invalid-event-number"] == 1, resp.text
        assert server.wait_count(f'"hec-in-worker {run}"', 2) == 2
        errors = server.search('event.kind:pipeline_error "HEC event 1"')["rows"]
        assert errors and "byte offset" in errors[0]["message"], errors
        bulk = b"".join(
            b'{"create": {"_index": "winlogbeat-8"}}\n{"message": "bulk-in-worker %s %d"}\n'
            % (run.encode(), i)
            for i in range(3)
        )
        resp = httpx.post(
            f"{server.url}/_bulk", content=bulk + b"{broken\n", headers={"Authorization": f"Bearer {token}"}
        )
        answer = resp.json()
        assert resp.status_code == 200 and answer["errors"] is True, resp.text
        assert [next(iter(i.values()))["status"] for i in answer["items"]] == [201, 201, 201, 400]
        assert server.wait_count(f'"bulk-in-worker {run}"', 3) == 3
        stats = server.api("GET", "/api/stats").json()["workers"]
        assert sum(w["batches"] for w in stats["workers"]) >= 2 and stats["parsed_in_node"] == 0, stats
    finally:
        server.stop()


def test_a_stuck_worker_is_killed_and_its_batch_parsed_in_the_node(tmp_path: Path) -> None:
    """Batches are journaled in order, so a worker that is alive but stuck would hold up every
    batch behind it — and the connections it received: past server.worker_batch_timeout_s it
    is killed and replaced, and its RELP sender reconnects and goes on."""
    import signal

    import httpx

    server = _server(tmp_path, workers=1, more="worker_batch_timeout_s = 2")
    server.start()
    try:
        (worker,) = _wait_ready(server, 1)
        run = uuid.uuid4().hex[:10]
        relp = ReconnectingRelpSender(server.ports["relp"], run + "r")
        relp.start()
        token = server.ingest_token("lulea", "workers-hec")
        time.sleep(1.0)
        os.kill(worker["pid"], signal.SIGSTOP)  # alive, holding whatever it gets
        started = time.monotonic()
        resp = httpx.post(
            f"{server.url}/services/collector/event",
            content=f'{{"event": "stuck-worker {run}", "host": "h"}}',
            headers={"Authorization": f"Splunk {token}"},
            timeout=30,
        )
        took = time.monotonic() - started
        assert resp.status_code == 200, resp.text
        assert 1.5 < took < 10, took  # waited for the deadline, not for ever
        assert server.wait_count(f'"stuck-worker {run}"', 1) == 1
        (after,) = _wait_ready(server, 1)
        assert after["pid"] != worker["pid"] and after["timeouts"] == 1 and after["restarts"] == 1, after
        # (killed for the batch, or a moment earlier for not answering the ping: both ≈ 2 s)
        assert "has held a batch for" in server.log() or "has not answered for" in server.log()
        time.sleep(1.5)
        relp.stop.set()
        relp.join(15)
        assert len(relp.sessions) >= 2 and len(relp.sessions[-1].acked) > 50, [
            len(x.acked) for x in relp.sessions
        ]
        _wait_stored(server)
        for session in relp.sessions:
            assert_stored_once(server, session.run_id, session.acked)
    finally:
        server.stop()
