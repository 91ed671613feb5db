"""One signer per tenant (issue 13): two integrators of one tenant, a lease in JetStream KV,
checkpoints chained with compare-and-set; kill -9 of the holder hands signing over within the
lease's TTL, and the chain never forks."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from norrvakt.cluster.nats_servers import NatsCluster, connect
from norrvakt.cluster.signing import CHECKPOINT_STREAM, LEASE_BUCKET, checkpoint_subject
from norrvakt.journal.checkpoint import FILE_NAME, GENESIS, Checkpoint, tail_line
from norrvakt.journal.keys import KeyRing
from norrvakt.journal.verify import verify_journal
from tests.cluster.helpers import publish, wait_until

pytestmark = pytest.mark.cluster

TTL = 3.0


def _integrator(cluster: NatsCluster, journal: Path, name: str, key: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "norrvakt.cli",
        "cluster",
        "integrate",
        "--nats-dir",
        str(cluster.config.directory),
    ]
    cmd += ["--tenant", "gallivare", "--journal", str(journal), "--name", name, "--key-file", str(key)]
    return subprocess.Popen([*cmd, "--lease-ttl", str(TTL), "--checkpoint-every", "0.5"])


async def _holder(cluster: NatsCluster) -> str | None:
    nc = await connect(cluster)
    try:
        kv = await nc.jetstream().key_value(LEASE_BUCKET)
        entry = await kv.get("gallivare")
        return entry.value.decode() if entry.value else None
    except Exception:
        return None
    finally:
        await nc.close()


async def _chain(cluster: NatsCluster) -> list[Checkpoint]:
    nc = await connect(cluster)
    js = nc.jetstream()
    last = (await js.get_last_msg(CHECKPOINT_STREAM, checkpoint_subject("gallivare"))).seq or 0
    lines = []
    for seq in range(1, last + 1):
        msg = await js.get_msg(CHECKPOINT_STREAM, seq)
        if msg.subject == checkpoint_subject("gallivare"):
            lines.append(Checkpoint.parse(msg.data or b""))
    await nc.close()
    return lines


async def _publish(cluster: NatsCluster, start: int, count: int) -> None:
    await publish(cluster, "gallivare", start, count)


def _local_size(journal: Path) -> int:
    """The size of the newest checkpoint in an integrator's own copy of the chain."""
    path = journal / "gallivare" / FILE_NAME
    raw = tail_line(path) if path.exists() else None
    return Checkpoint.parse(raw).size if raw else 0


def test_kill_9_of_the_signing_integrator_hands_over_and_the_chain_never_forks(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    ring = KeyRing(tmp_path / "keys")
    key_id = ring.ensure()
    key = tmp_path / "keys" / f"{key_id}.key"
    journals = {"a": tmp_path / "journal-a", "b": tmp_path / "journal-b"}
    asyncio.run(_publish(cluster, 0, 2000))
    procs = {name: _integrator(cluster, j, name, key) for name, j in journals.items()}
    try:
        wait_until(lambda: asyncio.run(_holder(cluster)) in journals, 20)
        holder = asyncio.run(_holder(cluster))
        assert holder is not None
        wait_until(lambda: len(asyncio.run(_chain(cluster))) >= 3, 20)
        asyncio.run(_publish(cluster, 2000, 2000))
        procs[holder].send_signal(signal.SIGKILL)
        procs[holder].wait()
        other = "b" if holder == "a" else "a"
        took = wait_until(lambda: asyncio.run(_holder(cluster)) == other, TTL + 10)
        assert took <= TTL + 5, took  # the issue: a standby takes over within the TTL + 5 s
        before = len(asyncio.run(_chain(cluster)))
        asyncio.run(_publish(cluster, 4000, 1000))
        wait_until(lambda: (c := asyncio.run(_chain(cluster))) and len(c) > before and c[-1].size == 5000, 20)
        # the killed one comes back: it cuts the frame it was writing (crash recovery), catches
        # up from the stream and copies the chain signed meanwhile; it is now the standby
        procs[holder] = _integrator(cluster, journals[holder], holder, key)
        wait_until(lambda: _local_size(journals[holder]) == 5000, 20)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    chain = asyncio.run(_chain(cluster))
    assert chain[0].prev == GENESIS
    assert all(b.prev == a.digest() for a, b in itertools.pairwise(chain)), "the chain forks"
    roots: dict[int, str] = {}
    for cp in chain:
        assert roots.setdefault(cp.size, cp.root) == cp.root, f"two roots signed for size {cp.size}"
    assert [c.size for c in chain] == sorted(c.size for c in chain)
    trusted = ring.public_keys()
    for name, journal in journals.items():
        report = verify_journal(journal, trusted)
        assert report.ok, (name, [(f.code, f.detail) for f in report.findings])
    print(f"signing handed over in {took:.1f} s (lease TTL {TTL:.0f} s)")
