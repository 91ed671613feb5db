"""Two store replicas fed from the replicated log (issue 13): kill -9 of one mid-stream, and
both hold every event of the stream exactly once (rows = distinct seqs = the stream's events)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from norrvakt.cluster.nats_servers import NatsCluster
from tests.cluster.helpers import publish

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


def _replica(
    cluster: NatsCluster, store_dir: Path, tenant: str = TENANT, *, crash_after: int = 0, dedupe: bool = True
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "norrvakt.cli",
        "cluster",
        "store",
        "--nats-dir",
        str(cluster.config.directory),
    ]
    cmd += ["--tenant", tenant, "--store-dir", str(store_dir), "--batch-rows", "1000"]
    env = {**os.environ, "NORRVAKT_FAILPOINT_STORE_AFTER_INSERT": str(crash_after)}
    return subprocess.Popen(cmd + ([] if dedupe else ["--no-dedupe"]), env=env)


def _counts(store_dir: Path, tenant: str = TENANT) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", _COUNT, str((store_dir / "chdb").resolve()), tenant],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_kill_9_of_a_store_replica_mid_stream_stores_every_event_once(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    replicas = {"a": tmp_path / "store-a", "b": tmp_path / "store-b"}
    asyncio.run(publish(cluster, TENANT, 0, 5000))
    procs = {name: _replica(cluster, d) for name, d in replicas.items()}
    try:
        time.sleep(2.0)
        asyncio.run(publish(cluster, TENANT, 5000, 5000))
        procs["a"].send_signal(signal.SIGKILL)  # mid-stream, maybe mid-insert
        procs["a"].wait()
        asyncio.run(publish(cluster, TENANT, 10000, 2500))
        procs["a"] = _replica(cluster, replicas["a"])
        time.sleep(6.0)  # both catch up (linger 0.5 s)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "norrvakt.cli",
            "cluster",
            "status",
            "--nats-dir",
            str(cluster.config.directory),
        ]
        + [f"--store-dir={d}" for d in replicas.values()],
        capture_output=True,
        text=True,
        check=True,
    )
    (stream,) = [x for x in json.loads(status.stdout)["streams"] if x["tenant"] == TENANT]
    assert stream["leader"] and len(stream["replicas"]) == 2, stream  # R3: a leader and two more
    assert [r["applied_seq"] for r in stream["store_replicas"]] == [12500, 12500], stream
    for name, d in replicas.items():
        rows, seqs, low, high, messages = _counts(d)
        assert (rows, seqs, low, high, messages) == (12500, 12500, 1, 12500, 12500), (
            name,
            rows,
            seqs,
            low,
            high,
        )


@pytest.mark.parametrize("dedupe", [True, False], ids=["tokens", "negative-control-no-tokens"])
def test_a_crash_between_insert_and_its_record_is_replayed_once(
    cluster: NatsCluster, tmp_path: Path, dedupe: bool
) -> None:
    """The failpoint kills the replica right after its 3rd insert, before the writer records it.
    With tokens the restart finds the range stored and all 5,000 events are there once; the
    negative control without tokens stores that range twice — so the oracle can fail."""
    tenant = "haparanda" if dedupe else "kalix"
    asyncio.run(publish(cluster, tenant, 0, 5000))
    store = tmp_path / "store"
    crashed = _replica(cluster, store, tenant, crash_after=3, dedupe=dedupe)
    assert crashed.wait(30) == 137  # died at the failpoint
    replica = _replica(cluster, store, tenant, dedupe=dedupe)
    try:
        time.sleep(4.0)
    finally:
        replica.send_signal(signal.SIGTERM)
        replica.wait(20)
    rows, seqs, low, high, _messages = _counts(store, tenant)
    assert (seqs, low, high) == (5000, 1, 5000)
    if dedupe:
        assert rows == 5000
    else:
        assert rows == 6000, rows  # range 2001-3000 twice: what the tokens prevent
