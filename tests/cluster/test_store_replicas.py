"""Two store replicas fed from the replicated log (issue 13): kill -9 of one mid-stream, and
both hold every event of the stream exactly once (rows = distinct seqs = the stream's events)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from norrvakt.cluster.nats_servers import NatsCluster
from tests.cluster.test_signing import _publish_to

pytestmark = pytest.mark.cluster

TENANT = "overtornea"

_COUNT = """
import json, sys
from norrvakt.store.clickhouse import StoreConfig
store = StoreConfig(dsn="chdb://" + sys.argv[1], dedupe_window=10000).build()
sql = "SELECT count(), uniqExact(seq), min(seq), max(seq), uniqExact(message) FROM events"
rows = store.query(sql + " WHERE tenant = %(t)s", {"t": sys.argv[2]})
print(json.dumps(rows[0]))
store.close()
"""


def _replica(cluster: NatsCluster, store_dir: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "norrvakt.cli",
        "cluster",
        "store",
        "--nats-dir",
        str(cluster.config.directory),
    ]
    return subprocess.Popen([*cmd, "--tenant", TENANT, "--store-dir", str(store_dir), "--batch-rows", "1000"])


def _counts(store_dir: Path) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", _COUNT, str((store_dir / "chdb").resolve()), TENANT],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_kill_9_of_a_store_replica_mid_stream_stores_every_event_once(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    replicas = {"a": tmp_path / "store-a", "b": tmp_path / "store-b"}
    asyncio.run(_publish_to(cluster, TENANT, 0, 5000))
    procs = {name: _replica(cluster, d) for name, d in replicas.items()}
    try:
        time.sleep(2.0)
        asyncio.run(_publish_to(cluster, TENANT, 5000, 5000))
        procs["a"].send_signal(signal.SIGKILL)  # mid-stream, maybe mid-insert
        procs["a"].wait()
        asyncio.run(_publish_to(cluster, TENANT, 10000, 2500))
        procs["a"] = _replica(cluster, replicas["a"])
        time.sleep(6.0)  # both catch up (linger 0.5 s)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    for name, d in replicas.items():
        rows, seqs, low, high, messages = _counts(d)
        assert (rows, seqs, low, high, messages) == (12500, 12500, 1, 12500, 12500), (
            name,
            rows,
            seqs,
            low,
            high,
        )
