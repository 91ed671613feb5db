"""The cluster watch (issue 13): what the status says becomes alerts of the system tenant —
a full stream, a stage that went away, one falling behind, a tenant nobody signs or detects;
checked on a status document, then end to end with real nats-server, store replica and
detection worker processes on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from norrvakt.cluster.nats_servers import NatsCluster, connect
from norrvakt.cluster.publisher import EnvelopePublisher, LogFull
from norrvakt.cluster.streams import TenantStreamConfig
from norrvakt.cluster.watch import Problem, WatchConfig, problems
from norrvakt.event import SYSTEM_TENANT
from norrvakt.state.db import alerts, open_state
from tests.cluster.helpers import event, wait_until
from tests.state.postgres import cluster as pg_cluster


def _stream(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant": "lulea",
        "leader": "n1",
        "replicas": [{"name": "n2", "current": True, "offline": False, "lag": 0, "seen_s": 0.1}],
        "envelopes": 10,
        "last_seq": 10,
        "bytes": 1000,
        "max_bytes": 100_000_000,
        "full": 0.01,
        "free_bytes": 99_000_000,
        "signing_lease": "int-a",
        "detection_lease": "det-a",
        "consumers": [
            {"stage": "integrator", "name": "int-a", "stream_seq": 10, "behind_envelopes": 0, "age_s": 1.0},
            {"stage": "store", "name": "s-a", "stream_seq": 10, "behind_envelopes": 0, "age_s": 1.0},
            {"stage": "detect", "name": "det-a", "stream_seq": 10, "behind_envelopes": 0, "age_s": 1.0},
        ],
    }
    return row | changes


def _checks(*rows: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.check, p.subject) for p in problems({"streams": list(rows)}, WatchConfig())]


def test_a_healthy_cluster_has_no_problems() -> None:
    assert _checks(_stream()) == []


def test_each_problem_is_named_with_its_subject() -> None:
    consumers = _stream()["consumers"]
    gone = [{**consumers[0], "age_s": 45.0}, {**consumers[1], "behind_envelopes": 5000}, consumers[2]]
    row = _stream(
        full=0.95,
        leader=None,
        replicas=[{"name": "n3", "current": False, "offline": True, "lag": None, "seen_s": 40.0}],
        signing_lease=None,
        detection_lease=None,
        consumers=gone,
    )
    assert _checks(row) == [
        ("stream_full", "lulea"),
        ("no_leader", "lulea"),
        ("replica_offline", "lulea/n3"),
        ("consumer_gone", "lulea/integrator/int-a"),
        ("consumer_behind", "lulea/store/s-a"),
        ("no_signer", "lulea"),
        ("no_detector", "lulea"),
    ]


def test_a_detection_worker_that_handed_its_tenant_over_is_not_missed() -> None:
    consumers = _stream()["consumers"]
    old = {**consumers[2], "name": "det-old", "age_s": 300.0}
    assert _checks(_stream(consumers=[*consumers, old])) == []
    # but when no detection worker reports any more, the tenant's detection is gone
    assert _checks(_stream(consumers=[*consumers[:2], old])) == [("consumer_gone", "lulea/detect/det-old")]


def test_a_problem_is_an_alert_of_the_system_tenant_keyed_on_check_and_subject() -> None:
    alert = Problem("stream_full", "lulea", "95% full").as_input(1)
    assert alert.tenant == SYSTEM_TENANT and alert.level == "critical"
    assert alert.rule_id == "norrvakt-cluster-stream_full"
    assert alert.dedupe_key_fields == ["norrvakt.check", "norrvakt.subject"]
    assert alert.entities["norrvakt.subject"] == "lulea"


@pytest.mark.cluster
def test_a_full_stream_and_a_store_replica_gone_are_alerts(cluster: NatsCluster, tmp_path: Path) -> None:
    state = open_state(pg_cluster().new_database())
    url = str(state.url.render_as_string(hide_password=False))
    tenant = "overkalix"

    async def fill() -> int:
        nc = await connect(cluster)
        js = nc.jetstream()
        await TenantStreamConfig(max_bytes=48 * 1024).ensure(js, tenant)
        pub = EnvelopePublisher(js, "ingest-1", deadline_s=5)
        sent = 0
        try:
            while True:
                await pub.publish(tenant, [event(tenant, f"f{sent + i}") for i in range(50)])
                sent += 50
        except LogFull:
            return sent
        finally:
            await nc.close()

    sent = asyncio.run(fill())
    assert sent > 0
    cfg = tmp_path / "detect.toml"
    data = tmp_path / "data"
    cfg.write_text(f'data_dir = "{data}"\n[state]\nurl = "{url}"\n[detection]\nbuiltin = false\n')
    nats_dir = str(cluster.config.directory)
    store_args = ["--tenant", tenant, "--store-dir", str(tmp_path / "store"), "--name", "replica-x"]
    store = _cli("cluster", "store", "--nats-dir", nats_dir, *store_args)
    detect_args = ["--tenant", tenant, "--name", "det-1", "--tick", "0.5", "--silent-after", "3"]
    detect = _cli("--config", str(cfg), "cluster", "detect", "--nats-dir", nats_dir, *detect_args)
    try:
        wait_until(lambda: "norrvakt-cluster-stream_full" in _rules(state), 60, lambda: _status(nats_dir))
        wait_until(lambda: len(_row(nats_dir, tenant)["consumers"]) == 2, 30, lambda: _row(nats_dir, tenant))
        row = _row(nats_dir, tenant)
        assert row["free_bytes"] < 256 * 1024 and row["detection_lease"] == "det-1", row
        stages = {(c["stage"], c["name"]) for c in row["consumers"]}
        assert {("store", "replica-x"), ("detect", "det-1")} <= stages, row
        assert "norrvakt-cluster-consumer_gone" not in _rules(state)
        store.send_signal(signal.SIGKILL)
        store.wait()
        wait_until(lambda: "norrvakt-cluster-consumer_gone" in _rules(state), 30)
        (gone,) = [a for a in _system_alerts(state) if a["rule_id"] == "norrvakt-cluster-consumer_gone"]
        assert f'"{tenant}/store/replica-x"' in str(gone["entities"]), gone
        time.sleep(1.5)  # more ticks: the lasting problems raise the counts, not new alerts
        rules = [a["rule_id"] for a in _system_alerts(state)]
        assert sorted(rules) == sorted(set(rules)), rules
    finally:
        for proc in (store, detect):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)
        state.dispose()


def _cli(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "norrvakt.cli", *args])


def _system_alerts(state: sa.Engine) -> list[dict[str, Any]]:
    with state.connect() as conn:
        rows = conn.execute(sa.select(alerts).where(alerts.c.tenant == SYSTEM_TENANT)).all()
    return [dict(r._mapping) for r in rows]


def _rules(state: sa.Engine) -> set[str]:
    return {str(a["rule_id"]) for a in _system_alerts(state)}


def _row(nats_dir: str, tenant: str) -> dict[str, Any]:
    (row,) = [r for r in _status(nats_dir)["streams"] if r["tenant"] == tenant]
    return row


def _status(nats_dir: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "norrvakt.cli", "cluster", "status", "--nats-dir", nats_dir],
        capture_output=True,
        text=True,
        check=True,
    )
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc
