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


def test_kill_9_of_a_parse_worker_mid_stream_loses_nothing_and_it_is_replaced(tmp_path: Path) -> None:
    server = _server(tmp_path)
    server.start()
    try:
        before = _wait_ready(server, 2)
        assert [w["state"] for w in before] == ["ready", "ready"], before
        token = server.ingest_token("lulea", "workers-hec")
        run = uuid.uuid4().hex[:10]
        hec = [HecSender(server, token, run + "a"), HecSender(server, token, run + "b")]
        relp = RelpSender(server.ports["relp"], run)
        for sender in [*hec, relp]:
            sender.start()
        time.sleep(2.0)
        busy = _workers(server)
        assert all(w["batches"] > 0 for w in busy), busy  # two senders: both workers parse
        victim = busy[0]["pid"]
        os.kill(victim, 9)  # mid-stream
        time.sleep(3.0)
        for sender in [*hec, relp]:
            sender.stop.set()
        for sender in [*hec, relp]:
            sender.join(15)
        assert all(len(s.acked) > 300 for s in [*hec, relp]), [len(s.acked) for s in [*hec, relp]]

        after = _wait_ready(server, 2)
        assert after[0]["pid"] != victim and after[0]["restarts"] == 1, after
        assert f"parse worker 0 (pid {victim}) exited" in server.log()
        _wait_stored(server)
        for sender, prefix in ((hec[0], run + "a"), (hec[1], run + "b"), (relp, run)):
            assert_stored_once(server, prefix, sender.acked)
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
    """Batches of one TCP connection are parsed by different workers but journaled in the
    order they arrived: the seqs follow the sender's numbering."""
    server = _server(tmp_path)
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
        rows: list[dict[str, Any]] = []
        offset = 0
        while offset < n:
            page = server.search(f'"order {run}" | sort seq asc', limit=1000, offset=offset)
            rows += page["rows"]
            offset += len(page["rows"])
            if not page["rows"]:
                break
        numbers = [int(r["message"].rsplit(" ", 1)[-1]) for r in rows]
        assert numbers == list(range(n))
        stats = _workers(server)
        assert sum(w["batches"] for w in stats) > 1
    finally:
        server.stop()


def test_a_hec_body_is_split_and_parsed_in_a_worker(tmp_path: Path) -> None:
    """The node hands the whole body over; a bad part still becomes a pipeline_error with its
    number and offset, and HEC's answer names it."""
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
        stats = server.api("GET", "/api/stats").json()["workers"]
        assert sum(w["batches"] for w in stats["workers"]) >= 1 and stats["parsed_in_node"] == 0, stats
    finally:
        server.stop()


def test_a_stuck_worker_is_killed_and_its_batch_parsed_in_the_node(tmp_path: Path) -> None:
    """Batches are journaled in order, so a worker that is alive but stuck would hold up every
    batch behind it: past server.worker_batch_timeout_s it is killed and replaced."""
    import signal

    import httpx

    server = _server(tmp_path, workers=1, more="worker_batch_timeout_s = 2")
    server.start()
    try:
        (worker,) = _wait_ready(server, 1)
        os.kill(worker["pid"], signal.SIGSTOP)  # alive, holding whatever it gets
        token = server.ingest_token("lulea", "workers-hec")
        run = uuid.uuid4().hex[:10]
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
        assert "has held a batch for" in server.log()
    finally:
        server.stop()
