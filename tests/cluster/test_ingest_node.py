"""A stateless ingest node (issue 13): RELP in, envelopes on JetStream out, acknowledged only
after JetStream; kill -9 of the ingest node mid-stream loses nothing acknowledged, and the
integrator journals every acknowledged event exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from norrvakt.cluster.nats_servers import NatsCluster
from tests.cluster.helpers import journal_ids
from tests.cluster.test_integrator import _integrator
from tests.e2e.harness import free_ports, wait_port
from tests.e2e.test_durability import _read_rsp
from tests.e2e.test_workers import ReconnectingRelpSender

pytestmark = pytest.mark.cluster


def _ingest_node(
    cluster: NatsCluster, config: Path, name: str, *, http: bool = False
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "norrvakt.cli", "--config", str(config), "cluster", "ingest"]
    cmd += ["--nats-dir", str(cluster.config.directory), "--name", name]
    return subprocess.Popen([*cmd, "--http" if http else "--no-http"])


def test_kill_9_of_an_ingest_node_loses_no_acknowledged_event(cluster: NatsCluster, tmp_path: Path) -> None:
    (relp_port,) = free_ports(1)
    config = tmp_path / "ingest.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "ingest-data"}"\n'
        '[[sources]]\nid = "relp"\ntype = "relp"\nprotocol = "tcp"\nhost = "127.0.0.1"\n'
        f'port = {relp_port}\ntenant = "lulea"\n'
    )
    journal_dir = tmp_path / "journal"
    node = _ingest_node(cluster, config, "ingest-a")
    integrator = _integrator(cluster, "lulea", journal_dir)
    relp = ReconnectingRelpSender(relp_port, "clusterrun")
    try:
        wait_port(relp_port)
        relp.start()
        time.sleep(2.0)
        node.send_signal(signal.SIGKILL)  # mid-stream
        node.wait()
        node = _ingest_node(cluster, config, "ingest-b")  # (a second node on the same address)
        time.sleep(3.0)
        relp.stop.set()
        relp.join(15)
        acked = {s.run_id: s.acked for s in relp.sessions}
        assert len(relp.sessions) >= 2 and sum(map(len, acked.values())) > 1000, {
            k: len(v) for k, v in acked.items()
        }
        assert sum(len(s.acked) for s in relp.sessions[1:]) > 100, "nothing acknowledged after the kill"
        total = sum(map(len, acked.values()))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stored = (
                Counter(journal_ids(journal_dir, "lulea")) if (journal_dir / "lulea").exists() else Counter()
            )
            if sum(stored.values()) >= total:
                break
            time.sleep(0.5)
    finally:
        relp.stop.set()
        for proc in (node, integrator):
            proc.terminate()
            proc.wait(10)
    # the journal's messages are "durability <run> <ident>"; <run> is the session's run id
    journal = JournalMessages(journal_dir)
    for session in relp.sessions:
        seen = journal.ids(session.run_id)
        missing = [i for i in session.acked if seen[i] == 0]
        doubled = [i for i, n in seen.items() if n > 1]
        assert missing == [] and doubled == [], (session.run_id, missing[:5], doubled[:5])


class JournalMessages:
    def __init__(self, journal_dir: Path) -> None:
        from norrvakt.event import event_from_canonical
        from norrvakt.journal.log import Journal, JournalConfig

        journal = Journal(JournalConfig(directory=journal_dir, merkle=False), read_only=True)
        try:
            self.messages = [event_from_canonical(b).message for _s, b in journal.read("lulea")]
        finally:
            journal.close()

    def ids(self, run_id: str) -> Counter[str]:
        marker = f"durability {run_id} "
        return Counter(m.rsplit(" ", 1)[-1] for m in self.messages if marker in m)


def test_hec_on_an_ingest_node_is_acknowledged_after_jetstream_and_integrated(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    """HEC bodies on an ingest node: the single node's routes (token, bad parts, answers), the
    events in the tenant's stream once acknowledged; a wrong token is refused; OTLP/HTTP logs
    are taken too."""
    import httpx

    from norrvakt.state.accounts import create_ingest_token
    from norrvakt.state.db import open_state

    (http_port,) = free_ports(1)
    data = tmp_path / "ingest-data"
    data.mkdir()
    config = tmp_path / "ingest.toml"
    config.write_text(
        f'data_dir = "{data}"\nsources = []\n[server]\nhost = "127.0.0.1"\nport = {http_port}\n'
    )
    state = open_state(f"sqlite:///{data / 'state.db'}")
    token = create_ingest_token(state, "lulea", "hec-cluster", "cluster test")
    state.dispose()
    journal_dir = tmp_path / "journal"
    node = _ingest_node(cluster, config, "ingest-h", http=True)
    integrator = _integrator(cluster, "lulea", journal_dir)
    try:
        wait_port(http_port)
        url = f"http://127.0.0.1:{http_port}/services/collector/event"
        good = "\n".join(f'{{"event": "durability hecrun h{i}", "host": "dc01"}}' for i in range(300))
        resp = httpx.post(url, content=good, headers={"Authorization": f"Splunk {token}"})
        assert resp.status_code == 200 and resp.json()["code"] == 0, resp.text
        bad = '{"event": "durability hecrun h300"}\n{"event": broken}'
        resp = httpx.post(url, content=bad, headers={"Authorization": f"Splunk {token}"})
        assert resp.status_code == 400 and resp.json()["invalid-event-number"] == 1, resp.text
        resp = httpx.post(url, content=good, headers={"Authorization": "Splunk wrong"})
        assert resp.status_code == 403, resp.text
        # OTLP/HTTP logs: the ingest node serves the node's ingest routes, /v1/logs included.
        record = {"timeUnixNano": "1795729970000000000", "body": {"stringValue": "durability hecrun h301"}}
        otlp = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"scope": {}, "logRecords": [record]}]}]}
        resp = httpx.post(
            f"http://127.0.0.1:{http_port}/v1/logs",
            json=otlp,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (journal_dir / "lulea").exists() and len(JournalMessages(journal_dir).ids("hecrun")) >= 302:
                break
            time.sleep(0.3)
    finally:
        for proc in (node, integrator):
            proc.terminate()
            proc.wait(10)
    journal = JournalMessages(journal_dir)
    assert journal.ids("hecrun") == Counter({f"h{i}": 1 for i in range(302)})
    errors = [m for m in journal.messages if "HEC event 1 (byte offset" in m]
    assert len(errors) == 1, errors  # the bad part, kept as a pipeline_error event


def test_a_full_stream_is_a_retry_signal_to_hec_and_relp_senders(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    """With the tenant's stream full (discard: new) a HEC sender gets 503 with Retry-After and
    a RELP sender no rsp 200 — nothing it sends is acknowledged, so nothing is lost."""
    import asyncio
    import socket

    import httpx

    from norrvakt.cluster.nats_servers import connect
    from norrvakt.cluster.streams import TenantStreamConfig
    from norrvakt.state.accounts import create_ingest_token
    from norrvakt.state.db import open_state

    async def small_stream() -> None:
        nc = await connect(cluster)
        await TenantStreamConfig(max_bytes=32 * 1024).ensure(nc.jetstream(), "arvidsjaur")
        await nc.close()

    asyncio.run(small_stream())
    http_port, relp_port = free_ports(2)
    data = tmp_path / "ingest-data"
    data.mkdir()
    config = tmp_path / "ingest.toml"
    config.write_text(
        f'data_dir = "{data}"\n[server]\nhost = "127.0.0.1"\nport = {http_port}\n'
        '[[sources]]\nid = "relp"\ntype = "relp"\nprotocol = "tcp"\nhost = "127.0.0.1"\n'
        f'port = {relp_port}\ntenant = "arvidsjaur"\n'
    )
    state = open_state(f"sqlite:///{data / 'state.db'}")
    token = create_ingest_token(state, "arvidsjaur", "hec-full", "full stream")
    state.dispose()
    node = _ingest_node(cluster, config, "ingest-f", http=True)
    try:
        wait_port(http_port)
        url = f"http://127.0.0.1:{http_port}/services/collector/event"
        body = "\n".join(f'{{"event": "fill {i} {"x" * 300}"}}' for i in range(20))
        statuses = []
        for _ in range(40):
            resp = httpx.post(url, content=body, headers={"Authorization": f"Splunk {token}"})
            statuses.append(resp.status_code)
            if resp.status_code == 503:
                assert resp.headers["retry-after"] == "5" and "full" in resp.json()["text"], resp.text
                break
        assert statuses[0] == 200 and statuses[-1] == 503, statuses
        for i in range(400):  # to the brim: single small events until even they are refused
            one = httpx.post(
                url, content=f'{{"event": "brim {i}"}}', headers={"Authorization": f"Splunk {token}"}
            )
            if one.status_code == 503:
                break
        assert one.status_code == 503
        # RELP: the session is opened, the message is not acknowledged
        with socket.create_connection(("127.0.0.1", relp_port), timeout=10) as sock:
            reader = sock.makefile("rb")
            offer = b"relp_version=0\nrelp_software=test\ncommands=syslog"
            sock.sendall(b"1 open %d %s\n" % (len(offer), offer))
            assert _read_rsp(reader)[1].startswith(b"200")
            msg = b"<13>1 - h a - - - refused while full " + b"y" * 2000  # more than any room left
            sock.sendall(b"2 syslog %d %s\n" % (len(msg), msg))
            try:
                txnr, status = _read_rsp(reader)
            except OSError:  # the session is closed: no acknowledgement
                txnr, status = 2, b"closed"
            assert txnr == 2 and not status.startswith(b"200"), status
    finally:
        node.terminate()
        node.wait(10)
