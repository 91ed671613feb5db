"""Cluster detection (issue 13): detection workers consume a tenant's stream while holding its
lease and write alerts into a real PostgreSQL exactly once — kill -9 of the worker mid-stream,
and of the lease holder with a standby running, raise no alert twice and count no match twice;
the SOC closing an alert in the database (as any web node does) is seen by the worker."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from norrvakt.cluster.detect_worker import LEASE_BUCKET
from norrvakt.cluster.nats_servers import NatsCluster, connect
from norrvakt.cluster.publisher import EnvelopePublisher
from norrvakt.cluster.streams import TenantStreamConfig
from norrvakt.event import Event
from norrvakt.state.db import alert_events, alerts, detect_positions, open_state
from tests.cluster.helpers import wait_until
from tests.state.postgres import cluster as pg_cluster

pytestmark = pytest.mark.cluster

TENANT = "pitea"
HOSTS = 20
TTL = 3.0
RULE = """title: Failed logon (test)
id: 7d0c1e52-5a51-4c1b-9a55-1d2b3c4d5e6f
status: test
level: high
tags: [attack.credential_access, attack.t1110]
logsource:
    category: norrvakt_test
detection:
    selection:
        event.action: logon-failed
    condition: selection
"""


def _event(i: int, tenant: str = TENANT, t0: int = 1_764_000_000_000_000) -> Event:
    """Event ``i``: every third one a matching failed logon on host ``h{i % HOSTS}``."""
    action = "logon-failed" if i % 3 == 0 else "logon"
    raw = f"<13>1 - h{i % HOSTS} a - - - detect e{i}".encode()
    ecs = {"host.name": f"h{i % HOSTS}", "event.action": action}
    ts = t0 + i * 1000
    return Event(tenant, ts, ts + 1, "relp", "10.0.0.5:601", ecs, {}, raw.decode(), raw)


def _matching(n: int) -> int:
    return len(range(0, n, 3))


async def _publish(nats: NatsCluster, start: int, count: int, batch: int = 250) -> None:
    nc = await connect(nats)
    js = nc.jetstream()
    await TenantStreamConfig().ensure(js, TENANT)
    pub = EnvelopePublisher(js, "ingest-1", deadline_s=30)
    for b in range(start, start + count, batch):
        await pub.publish(TENANT, [_event(i) for i in range(b, min(b + batch, start + count))])
    await nc.close()


def _config(tmp_path: Path, name: str, state_url: str, rule: str = RULE) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "failed.yml").write_text(rule)
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path / ("data-" + name)}"\n'
        f'[state]\nurl = "{state_url}"\n'
        f'[detection]\nbuiltin = false\nsource_health = false\nrule_dirs = ["{rules}"]\n'
    )
    return cfg


def _worker(
    nats: NatsCluster, cfg: Path, name: str, tenant: str = TENANT, *more: str
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "norrvakt.cli", "--config", str(cfg), "cluster", "detect"]
    cmd += ["--nats-dir", str(nats.config.directory), "--tenant", tenant, "--name", name]
    return subprocess.Popen([*cmd, "--lease-ttl", str(TTL), "--tick", "0.5", *more])


def _position(state: sa.Engine, tenant: str = TENANT) -> int:
    with state.connect() as conn:
        row = conn.execute(
            sa.select(detect_positions.c.journal_seq).where(detect_positions.c.tenant == tenant)
        ).first()
    return int(row.journal_seq) if row is not None else 0


def _alerts(state: sa.Engine) -> list[dict[str, object]]:
    with state.connect() as conn:
        rows = conn.execute(sa.select(alerts).order_by(alerts.c.id)).all()
    return [dict(r._mapping) for r in rows]


def _check_exact(state: sa.Engine, events: int) -> None:
    """One alert per host, every matching event counted once, no evidence seq twice."""
    found = _alerts(state)
    hosts = [a["entities"] for a in found]
    assert len(found) == HOSTS, (len(found), hosts)
    assert len({a["dedupe_key"] for a in found}) == HOSTS
    assert sum(int(str(a["event_count"])) for a in found) == _matching(events)
    with state.connect() as conn:
        seqs = [int(r.seq) for r in conn.execute(sa.select(alert_events.c.seq))]
    assert len(seqs) == len(set(seqs))
    # the matching events are every third, from seq 1: evidence only ever points at them
    assert all((s - 1) % 3 == 0 for s in seqs)


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


def test_kill_9_of_the_detection_worker_mid_stream_raises_no_alert_twice(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    state = open_state(pg_cluster().new_database())
    cfg = _config(tmp_path, "a", str(state.url.render_as_string(hide_password=False)))
    total = 30_000
    worker = _worker(cluster, cfg, "a")
    try:
        asyncio.run(_publish(cluster, 0, 10_000))
        wait_until(lambda: _position(state) > 0, 30)
        publishing = subprocess.Popen(  # more arrives while the worker is killed and restarted
            [sys.executable, "-c", _PUBLISH_MORE, str(cluster.config.directory), "10000", "20000"]
        )
        wait_until(lambda: 0 < _position(state) < total and _position(state) > 12_000, 60)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = _position(state)
        worker = _worker(cluster, cfg, "a")
        assert publishing.wait(60) == 0
        wait_until(lambda: _position(state) == total, 60)
        assert killed_at < total
        print(f"killed at seq {killed_at} of {total}")
        _check_exact(state, total)
    finally:
        _stop(worker)
        state.dispose()


def test_kill_9_of_the_lease_holder_hands_the_tenant_to_the_standby(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    state = open_state(pg_cluster().new_database())
    url = str(state.url.render_as_string(hide_password=False))
    start = _stream_events(cluster)
    procs = {n: _worker(cluster, _config(tmp_path, n, url), n) for n in ("a", "b")}
    try:
        wait_until(lambda: _position(state) == start, 60)  # the stream so far, by whoever holds it
        holder = _mover(state)
        assert holder in procs
        assert asyncio.run(_holder(cluster)) == holder
        publishing = subprocess.Popen(
            [sys.executable, "-c", _PUBLISH_MORE, str(cluster.config.directory), str(start), "9000"]
        )
        wait_until(lambda: _position(state) > start, 30)
        procs[holder].send_signal(signal.SIGKILL)
        procs[holder].wait()
        killed_at = _position(state)
        killed = time.monotonic()
        other = "b" if holder == "a" else "a"
        assert publishing.wait(60) == 0
        # more after the kill, so the standby has something to match even when the holder took
        # all of the first 9,000 before it died
        asyncio.run(_publish(cluster, start + 9000, 3000))
        wait_until(lambda: _mover(state) == other, TTL + 20)
        took = time.monotonic() - killed
        wait_until(lambda: _position(state) == start + 12000, 60)
        print(f"holder killed at seq {killed_at}; the standby moved the position {took:.1f} s later")
        assert took <= TTL + 5, took  # a standby takes over within the lease TTL + 5 s
        _check_exact(state, start + 12000)
        # the SOC resolves host h0's alert on some web node: its next match starts a new alert
        with state.begin() as conn:
            conn.execute(
                alerts.update()
                .where(alerts.c.entities.like('%"h0"%'))
                .values(status="resolved", updated_at=int(time.time() * 1e6))
            )
        time.sleep(1.5)  # a tick or two of the worker (--tick 0.5) re-reads the statuses
        asyncio.run(_publish(cluster, start + 12000, HOSTS * 3))
        wait_until(lambda: _position(state) == start + 12000 + HOSTS * 3, 30)
        h0 = [a for a in _alerts(state) if '"h0"' in str(a["entities"])]
        assert [a["status"] for a in h0] == ["resolved", "new"], h0
        assert int(str(h0[1]["event_count"])) == 1
        nats_dir = str(cluster.config.directory)
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "norrvakt.cli",
                "cluster",
                "status",
                "--nats-dir",
                nats_dir,
                "--state-url",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        (stream,) = [x for x in json.loads(status.stdout)["streams"] if x["tenant"] == TENANT]
        assert stream["detection_lease"] == other and stream["detection_lag_envelopes"] == 0, stream
        assert stream["detected_seq"] == start + 12000 + HOSTS * 3, stream
    finally:
        _stop(*procs.values())
        state.dispose()


def _mover(state: sa.Engine) -> str | None:
    """The worker that moved the tenant's detection position last."""
    with state.connect() as conn:
        row = conn.execute(sa.select(detect_positions.c.holder)).first()
    return str(row.holder) if row is not None else None


BURST = """---
title: Failed logon burst on one host (test)
id: 3f6a2b1c-0d4e-4f5a-8b6c-7d8e9f0a1b2c
status: test
level: critical
correlation:
    type: event_count
    rules: [7d0c1e52-5a51-4c1b-9a55-1d2b3c4d5e6f]
    group-by: [host.name]
    timespan: 1h
    condition: {gte: 5}
"""


@pytest.mark.parametrize("warmup", [100, 0], ids=["warm-up", "negative-control-no-warm-up"])
def test_a_restarted_worker_carries_an_open_correlation_window_over(
    cluster: NatsCluster, tmp_path: Path, warmup: int
) -> None:
    """3 failed logons of a host before kill -9, 3 after: only the warm-up (the envelopes before
    the position, re-read with their detections dropped) lets the burst rule (≥ 5) see all 6 —
    without it (the negative control) the restarted worker sees 3 and raises nothing."""
    tenant = f"arvidsjaur{warmup}"
    state = open_state(pg_cluster().new_database())
    cfg = _config(tmp_path, "w", str(state.url.render_as_string(hide_password=False)), RULE + BURST)
    now = int(time.time() * 1e6)  # windows near now: no tick closes them during the test
    first = [_event(i, tenant, now) for i in range(0, 9 * HOSTS, HOSTS)]  # host h0; i = 0, 20, ...

    async def send(events: list[Event]) -> None:
        nc = await connect(cluster)
        js = nc.jetstream()
        await TenantStreamConfig().ensure(js, tenant)
        await EnvelopePublisher(js, "ingest-1", deadline_s=30).publish(tenant, events)
        await nc.close()

    burst_rule = "3f6a2b1c-0d4e-4f5a-8b6c-7d8e9f0a1b2c"
    worker = _worker(cluster, cfg, "w", tenant)
    try:
        matching = [e for e in first if e.ecs["event.action"] == "logon-failed"]
        assert len(matching) == 3
        asyncio.run(send(first))
        wait_until(lambda: _position(state, tenant) == len(first), 30)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        asyncio.run(send([_event(i, tenant, now) for i in range(9 * HOSTS, 18 * HOSTS, HOSTS)]))
        worker = _worker(cluster, cfg, "w", tenant, "--warmup-envelopes", str(warmup))
        wait_until(lambda: _position(state, tenant) == 2 * len(first), 30)
        time.sleep(1.0)  # two ticks (--tick 0.5): a burst the worker saw is in the database
    finally:
        _stop(worker)
    found = [a for a in _alerts(state) if a["tenant"] == tenant]
    # the failed-logon rule is the burst's building block (it raises no alert of its own)
    assert [(a["rule_id"], a["event_count"]) for a in found] == ([(burst_rule, 1)] if warmup else [])
    state.dispose()


def _stream_events(nats: NatsCluster) -> int:
    """Events already in the tenant's stream (the module's earlier test published them)."""

    async def count() -> int:
        nc = await connect(nats)
        try:
            from norrvakt.cluster import envelope
            from norrvakt.cluster.streams import stream_name

            js = nc.jetstream()
            await TenantStreamConfig().ensure(js, TENANT)
            info = await js.stream_info(stream_name(TENANT))
            n = 0
            for seq in range(1, (info.state.last_seq or 0) + 1):
                msg = await js.get_msg(stream_name(TENANT), seq)
                n += len(envelope.unpack(msg.data or b"")[2])
            return n
        finally:
            await nc.close()

    return asyncio.run(count())


async def _holder(nats: NatsCluster) -> str | None:
    nc = await connect(nats)
    try:
        entry = await (await nc.jetstream().key_value(LEASE_BUCKET)).get(TENANT)
        return entry.value.decode() if entry.value else None
    except Exception:
        return None
    finally:
        await nc.close()


_PUBLISH_MORE = """
import asyncio, sys
from pathlib import Path
from norrvakt.cluster.nats_servers import NatsClusterConfig
from tests.cluster.test_detect_worker import _publish
asyncio.run(_publish(NatsClusterConfig(Path(sys.argv[1])).build(), int(sys.argv[2]), int(sys.argv[3])))
"""
