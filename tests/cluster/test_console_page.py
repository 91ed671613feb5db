"""The console's Cluster page and `GET /api/cluster/status` (issue 13) on a web node of a real
cluster: nats-server ×3, a detection worker running the cluster watch, and `norrvakt serve`
on the same PostgreSQL — the SOC sees the streams, the stages and the watch's alerts; an
officer of one municipality sees none of it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from norrvakt.cluster.nats_servers import NatsCluster, connect
from norrvakt.cluster.publisher import EnvelopePublisher, LogFull
from norrvakt.cluster.streams import TenantStreamConfig
from tests.cluster.helpers import event, wait_until
from tests.e2e.harness import running_server
from tests.state.postgres import cluster as pg_cluster

pytestmark = pytest.mark.cluster

TENANT = "pajala"


async def _fill(nats: NatsCluster) -> None:
    nc = await connect(nats)
    js = nc.jetstream()
    await TenantStreamConfig(max_bytes=48 * 1024).ensure(js, TENANT)
    pub = EnvelopePublisher(js, "ingest-1", deadline_s=5)
    try:
        for n in range(10_000):
            await pub.publish(TENANT, [event(TENANT, f"p{n}-{i}") for i in range(50)])
    except LogFull:
        pass
    finally:
        await nc.close()


def test_the_cluster_page_shows_streams_stages_and_the_watchs_alerts(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    asyncio.run(_fill(cluster))
    url = pg_cluster().new_database()
    nats_dir = cluster.config.directory
    shared = f'[state]\nurl = "{url}"\n[cluster]\nnats_dir = "{nats_dir}"\n'
    cfg = tmp_path / "detect.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "detect"}"\n{shared}[detection]\nbuiltin = false\n')
    args = ["--nats-dir", str(nats_dir), "--tenant", TENANT, "--name", "det-p", "--tick", "0.5"]
    detect = subprocess.Popen(
        [sys.executable, "-m", "norrvakt.cli", "--config", str(cfg), "cluster", "detect", *args]
    )
    try:
        with running_server(tmp_path, extra_toml=shared) as server:
            admin = server.login("admin", server.admin_password())

            def full_alert_shown() -> bool:
                doc = admin.get("/api/cluster/status").json()
                return any(a["rule_id"] == "norrvakt-cluster-stream_full" for a in doc["alerts"])

            wait_until(full_alert_shown, 60)
            doc = admin.get("/api/cluster/status").json()
            assert doc["cluster"] is True and "error" not in doc, doc
            (row,) = [s for s in doc["streams"] if s["tenant"] == TENANT]
            assert row["leader"] and row["detection_lease"] == "det-p", row
            assert [(c["stage"], c["name"]) for c in row["consumers"]] == [("detect", "det-p")], row
            (alert,) = [a for a in doc["alerts"] if a["rule_id"] == "norrvakt-cluster-stream_full"]
            assert alert["subject"] == TENANT and alert["level"] == "critical"
            page = admin.get("/cluster")
            assert page.status_code == 200
            assert f'id="stream-{TENANT}"' in page.text and "det-p" in page.text
            assert f'href="/alerts/{alert["id"]}"' in page.text
            assert 'href="/cluster"' in admin.get("/alerts").text  # in the menu of central staff
            # an officer of one municipality: neither the page nor the API, nor the menu item
            password = server.add_user("boden.c", "tenant_officer", "boden")
            officer = server.login("boden.c", password)
            assert 'href="/cluster"' not in officer.get("/alerts").text
            assert officer.get("/api/cluster/status").status_code == 403
            assert officer.get("/cluster").status_code == 403
    finally:
        detect.terminate()
        detect.wait(15)
