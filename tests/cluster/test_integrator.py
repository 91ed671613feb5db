"""The integrator (issue 13): a tenant's journal built from its stream, exactly once across
kill -9, and a journal `norrvakt verify` accepts."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from norrvakt.cluster.integrator import IntegrationError, IntegratorConfig, state_dir_of
from norrvakt.cluster.nats_servers import NatsCluster, connect
from norrvakt.cluster.position import Position
from norrvakt.cluster.publisher import EnvelopePublisher
from norrvakt.cluster.streams import TenantStreamConfig
from norrvakt.journal.keys import KeyRing
from norrvakt.journal.log import JournalConfig
from norrvakt.journal.verify import verify_journal
from tests.cluster.helpers import event, journal_ids, publish

pytestmark = pytest.mark.cluster

NORRVAKT = [sys.executable, "-m", "norrvakt.cli"]


def _integrator(cluster: NatsCluster, tenant: str, journal_dir: Path) -> subprocess.Popen[bytes]:
    cmd = [*NORRVAKT, "cluster", "integrate", "--nats-dir", str(cluster.config.directory), "--tenant", tenant]
    return subprocess.Popen([*cmd, "--journal", str(journal_dir)], stderr=subprocess.PIPE)


def _wait_integrated(journal_dir: Path, tenant: str, n: int, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    ids: list[str] = []
    while time.monotonic() < deadline:
        ids = journal_ids(journal_dir, tenant) if (journal_dir / tenant).exists() else []
        if len(ids) >= n:
            return ids
        time.sleep(0.3)
    return ids


def test_kill_9_of_the_integrator_mid_stream_journals_every_envelope_once(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    tenant = "pitea"
    journal_dir = tmp_path / "journal"
    sent: list[str] = []

    async def publish_run(count: int, start: int) -> None:
        sent.extend(await publish(cluster, tenant, start, count, prefix="p", batch=300))

    proc = _integrator(cluster, tenant, journal_dir)
    try:
        asyncio.run(publish_run(6000, 0))
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)  # mid-stream: it has some of the envelopes, maybe not all
        proc.wait()
        asyncio.run(publish_run(6000, 6000))  # the log keeps taking events meanwhile
        proc = _integrator(cluster, tenant, journal_dir)
        ids = _wait_integrated(journal_dir, tenant, len(sent))
    finally:
        proc.terminate()
        proc.wait(10)
    assert ids == sent  # every event once, in the stream's order
    # the integrator signed with the key it made beside the journal; the whole folder verifies
    trusted = KeyRing(state_dir_of(journal_dir) / "keys").public_keys()
    report = verify_journal(journal_dir, trusted)
    assert report.records == len(sent)
    assert report.ok, [(f.code, f.detail) for f in report.findings]


def test_a_crash_between_commit_and_position_is_caught_up_without_doubles(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    """The position file is written after the journal commit: if it is lost (older), the
    integrator finds the envelopes already journaled by their event counts."""
    tenant = "arjeplog"
    journal_dir = tmp_path / "journal"

    async def run() -> tuple[Position, Position, list[str]]:
        nc = await connect(cluster)
        js = nc.jetstream()
        await TenantStreamConfig().ensure(js, tenant)
        pub = EnvelopePublisher(js, "ingest-1")
        for b in range(5):
            await pub.publish(tenant, [event(tenant, f"a{b}-{i}") for i in range(50 + b)])
        journal = JournalConfig(directory=journal_dir, fsync=False, merkle=True).build()
        config = IntegratorConfig(tenant, tmp_path / "state")
        first = config.build(js, journal)
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))
        while first.position.stream_seq < 5:
            await asyncio.sleep(0.05)
        stop.set()
        await task
        done = first.position
        (tmp_path / "state" / f"integrated-{tenant}.json").write_text('{"stream_seq": 2, "journal_seq": 101}')
        again = config.build(js, journal)
        caught = await again.catch_up_position()
        # a position that does not fit the journal is refused, not guessed
        position_file = tmp_path / "state" / f"integrated-{tenant}.json"
        position_file.write_text('{"stream_seq": 2, "journal_seq": 111}')
        with pytest.raises(IntegrationError, match="crosses the journal's end"):
            await config.build(js, journal).catch_up_position()
        position_file.write_text('{"stream_seq": 1, "journal_seq": 7}')
        with pytest.raises(IntegrationError, match="the journal and the stream differ"):
            await config.build(js, journal).catch_up_position()
        journal.close()
        await nc.close()
        return done, caught, journal_ids(journal_dir, tenant)

    done, caught, ids = asyncio.run(run())
    assert done == caught == Position(5, 50 + 51 + 52 + 53 + 54)
    assert len(ids) == sum(50 + b for b in range(5)) and max(Counter(ids).values()) == 1


def test_all_three_nats_nodes_killed_and_restarted_together_lose_nothing(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    """SIGKILL of every nats-server at once, then all restarted: what was acknowledged is still
    in the stream (each node fsyncs before acknowledging), the publisher resumes once a quorum
    is back, and the integrator's subscription is made again (nats.py#504) and goes on."""
    tenant = "overkalix"
    journal_dir = tmp_path / "journal"
    sent: list[str] = []

    async def publish_run(start: int, count: int) -> None:
        sent.extend(await publish(cluster, tenant, start, count, prefix="o", deadline_s=60))

    proc = _integrator(cluster, tenant, journal_dir)
    try:
        asyncio.run(publish_run(0, 3000))
        assert len(_wait_integrated(journal_dir, tenant, 3000)) == 3000
        for spec in cluster.specs:
            cluster.kill(spec.name)
        for spec in cluster.specs:
            cluster.start_node(spec.name, wait=False)
        for spec in cluster.specs:
            cluster.wait_healthy(spec.name)
        asyncio.run(publish_run(3000, 3000))
        ids = _wait_integrated(journal_dir, tenant, len(sent), timeout=60)
    finally:
        proc.terminate()
        proc.wait(10)
    assert ids == sent
