"""Two store replicas fed from the replicated log (issue 13): kill -9 of one mid-stream, and
both hold every event of the stream exactly once (rows = distinct seqs = the stream's events)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from norrvakt.cluster.nats_servers import NatsCluster, connect
from norrvakt.cluster.streams import TenantStreamConfig, stream_name
from tests.cluster.helpers import publish, wait_until

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
    cluster: NatsCluster,
    store_dir: Path,
    tenant: str = TENANT,
    *,
    crash_after: int = 0,
    dedupe: bool = True,
    more: tuple[str, ...] = (),
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
    return subprocess.Popen(cmd + ([] if dedupe else ["--no-dedupe"]) + list(more), env=env)


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
        # every envelope stored (the ledger says so), however slowly a loaded machine starts it
        wait_until(lambda: _stored_through(store, tenant) == 5000, 60)
        time.sleep(1.0)  # nothing more arrives
    finally:
        replica.send_signal(signal.SIGTERM)
        replica.wait(20)
    rows, seqs, low, high, _messages = _counts(store, tenant)
    assert (seqs, low, high) == (5000, 1, 5000)
    if dedupe:
        assert rows == 5000
    else:
        assert rows == 6000, rows  # range 2001-3000 twice: what the tokens prevent


def test_a_replica_rebuilt_after_the_stream_expired_catches_up_from_the_journal(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    """The stream keeps envelopes for max_age (3 s here); a replica started later finds the
    first 5,000 events gone from it. Without a journal it refuses, saying so; given the
    integrator's journal it stores those from the journal and the rest from the stream —
    every event once (the journal's up to the integrator's position, the stream's after it),
    as a replica fed from the stream alone would."""
    tenant = "sorsele"

    async def short_lived() -> None:
        nc = await connect(cluster)
        await TenantStreamConfig(max_age_s=3.0, duplicate_window_s=1.0).ensure(nc.jetstream(), tenant)
        await nc.close()

    asyncio.run(short_lived())
    journal = tmp_path / "journal"
    nats = ["--nats-dir", str(cluster.config.directory), "--tenant", tenant]
    cli = [sys.executable, "-m", "norrvakt.cli", "cluster"]
    integrator = subprocess.Popen([*cli, "integrate", *nats, "--journal", str(journal), "--name", "int-s"])
    try:
        asyncio.run(publish(cluster, tenant, 0, 5000))
        wait_until(lambda: _integrated(journal, tenant) == 5000, 30)
        wait_until(lambda: asyncio.run(_stream_messages(cluster, tenant)) == 0, 30)  # expired
        asyncio.run(publish(cluster, tenant, 5000, 2000))
        wait_until(lambda: _integrated(journal, tenant) == 7000, 30)
    finally:
        integrator.terminate()
        integrator.wait(20)
    refused = subprocess.run(
        [*cli, "store", *nats, "--store-dir", str(tmp_path / "no-journal")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert re.search(r"envelopes 1-\d+ of sorsele have expired from the stream", refused.stderr), (
        refused.stderr
    )
    assert "--journal" in refused.stderr and "Traceback" not in refused.stderr
    store = tmp_path / "rebuilt"
    replica = _replica(cluster, store, tenant, more=("--journal", str(journal)))
    try:
        # the journal's 7,000 first; then 1,000 published now are in the stream for sure (max_age
        # is 3 s: published before the replica started they could expire while it starts on a
        # loaded machine, and then neither the stream nor the stopped integrator's journal has them)
        wait_until(lambda: _stored_through(store, tenant) == 7000, 60)  # (its chDB is its own while it runs)
        asyncio.run(publish(cluster, tenant, 7000, 1000))
        wait_until(lambda: _stored_through(store, tenant) == 8000, 60)
        time.sleep(1.0)  # nothing more arrives
    finally:
        replica.send_signal(signal.SIGTERM)
        replica.wait(20)
    assert _counts(store, tenant) == [8000, 8000, 1, 8000, 8000]


async def _stream_messages(cluster: NatsCluster, tenant: str) -> int:
    nc = await connect(cluster)
    try:
        info = await nc.jetstream().stream_info(stream_name(tenant))
        return int(info.state.messages)
    finally:
        await nc.close()


def _stored_through(store: Path, tenant: str) -> int:
    ledger = store / "ledger" / f"{tenant}.json"
    return int(json.loads(ledger.read_text())["stored_through"]) if ledger.exists() else 0


def _integrated(journal: Path, tenant: str) -> int:
    pos = journal.parent / f"{journal.name}.integrator" / f"integrated-{tenant}.json"
    return int(json.loads(pos.read_text())["journal_seq"]) if pos.exists() else 0
