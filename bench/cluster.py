"""The whole cluster on this one machine: real Windows events over HEC, end to end.

Started here, sharing the cores: a 3-node JetStream cluster (nats-server, `sync_interval:
always`), two ingest nodes (`norrvakt cluster ingest`, HEC on their own ports), one integrator
(`norrvakt cluster integrate`: the journal with its Merkle tree, and signed checkpoints), two
store replicas (`norrvakt cluster store`, each its own chDB) and a detection worker (`norrvakt
cluster detect`: the built-in rules, alerts into the state database — PostgreSQL when one is
installed here, else SQLite). The evtx-attack-samples records are
sent as HEC JSON exactly as bench/ingest_http.py sends them (500 per POST), half to each ingest
node by ``--posters`` posters each. Measured: events/s acknowledged (after JetStream's
acknowledgement), journaled by the integrator, and stored in both replicas; the CPU seconds of
each kind of process (so the share NATS takes, and the CPU-µs per event); peak RSS.

Not in this run: the failure checks (tests/cluster/test_combined_failures.py does them under
load). ``--no-detect`` leaves the detection worker out.

    .venv/bin/python bench/cluster.py [--events 200000] [--posters 2]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _common import cpu_seconds, peak_rss_mb, print_table, write_result
from ingest_http import Posters, check_shapes, hec_event, read_records

from norrvakt.cluster.integrator import state_dir_of
from norrvakt.cluster.nats_servers import NatsClusterConfig
from norrvakt.state.accounts import create_ingest_token
from norrvakt.state.db import alerts as alerts_table
from norrvakt.state.db import detect_positions, open_state
from tests.e2e.harness import free_ports, wait_port

TENANT = "lulea"
NORRVAKT = [sys.executable, "-m", "norrvakt.cli"]


def _json(path: Path, key: str) -> int:
    try:
        return int(json.loads(path.read_text())[key])
    except (OSError, ValueError, KeyError):
        return 0


def _state_url(tmp: Path) -> str:
    """A private PostgreSQL (as the tests start one) when installed here, else SQLite."""
    try:
        from tests.state.postgres import cluster as pg_cluster

        return pg_cluster().new_database()
    except BaseException:  # (pytest's Skipped when PostgreSQL is missing)
        return f"sqlite:///{tmp / 'state.db'}"


def _detected(state: Any) -> int:
    with state.connect() as conn:
        row = conn.execute(sa.select(detect_positions.c.journal_seq)).first()
    return int(row.journal_seq) if row is not None else 0


def _alerts(state: Any) -> int:
    with state.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(alerts_table)).scalar_one())


def run(args: argparse.Namespace) -> dict[str, Any]:
    records = read_records()
    encoded = [hec_event(r) for r in records]
    windows = check_shapes(records, encoded, bulk=False)
    tmp = Path(tempfile.mkdtemp(prefix="norrvakt-bench-cluster-"))
    nats = NatsClusterConfig(tmp / "nats").build()
    nats.start()
    state_url = _state_url(tmp)
    state = open_state(state_url)
    token = create_ingest_token(state, TENANT, "hec-bench", "bench")
    state.dispose()
    ports = free_ports(args.ingest_nodes)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    nats_dir = ["--nats-dir", str(tmp / "nats")]
    try:
        for i, port in enumerate(ports):
            cfg = tmp / f"ingest-{i}.toml"
            cfg.write_text(
                f'data_dir = "{tmp / f"ingest-{i}"}"\nlog_level = "warning"\nsources = []\n'
                f'[server]\nhost = "127.0.0.1"\nport = {port}\n[state]\nurl = "{state_url}"\n'
            )
            cmd = [*NORRVAKT, "--config", str(cfg), "--log-level", "warning", "cluster", "ingest", *nats_dir]
            procs[f"ingest-{i}"] = subprocess.Popen([*cmd, "--name", f"ingest-{i}"])
        journal = tmp / "journal"
        cmd = [*NORRVAKT, "--log-level", "warning", "cluster", "integrate", *nats_dir, "--tenant", TENANT]
        procs["integrator"] = subprocess.Popen([*cmd, "--journal", str(journal), "--name", "integrator-1"])
        for r in ("a", "b"):
            cmd = [*NORRVAKT, "--log-level", "warning", "cluster", "store", *nats_dir, "--tenant", TENANT]
            procs[f"store-{r}"] = subprocess.Popen([*cmd, "--store-dir", str(tmp / f"store-{r}")])
        if args.detect:
            cfg = tmp / "detect.toml"
            cfg.write_text(
                f'data_dir = "{tmp / "detect"}"\nlog_level = "warning"\n[state]\nurl = "{state_url}"\n'
            )
            cmd = [*NORRVAKT, "--config", str(cfg), "--log-level", "warning", "cluster", "detect", *nats_dir]
            procs["detect"] = subprocess.Popen([*cmd, "--tenant", TENANT, "--name", "detect-1"])
        for port in ports:
            wait_port(port, 30)
        time.sleep(2.0)  # the integrator and the replicas subscribe

        per_node = args.events // len(ports)
        posters = []
        for port in ports:
            node_args = argparse.Namespace(**{**vars(args), "events": per_node, "bulk": False})
            posters.append(Posters(f"http://127.0.0.1:{port}", token, encoded, node_args))
        cpu_before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        nats_pids = [p.pid for p in nats.procs.values()]
        nats_before = sum(cpu_seconds(pid) for pid in nats_pids)
        started = time.monotonic()
        pools = [p.start() for p in posters]
        total = per_node * len(ports)
        journaled_at = stored_at = detected_at = 0.0
        state = open_state(state_url)
        stores = [tmp / f"store-{r}" / "ledger" / f"{TENANT}.json" for r in ("a", "b")]
        position = state_dir_of(journal) / f"integrated-{TENANT}.json"
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            time.sleep(0.25)
            for _pool, futures in pools:
                for f in futures:
                    if f.done() and f.exception() is not None:
                        raise SystemExit(f"poster failed: {f.exception()}")
            if not journaled_at and _json(position, "journal_seq") >= total:
                journaled_at = time.monotonic()
            if not stored_at and all(_json(s, "stored_through") >= total for s in stores):
                stored_at = time.monotonic()
            if args.detect and not detected_at and _detected(state) >= total:
                detected_at = time.monotonic()
            if journaled_at and stored_at and (detected_at or not args.detect):
                break
        for pool, _ in pools:
            pool.shutdown(wait=True)
        if not (journaled_at and stored_at and (detected_at or not args.detect)):
            raise SystemExit(
                f"not all {total} events arrived in {args.timeout:.0f} s: journaled "
                f"{_json(position, 'journal_seq')}, stored {[_json(s, 'stored_through') for s in stores]}, "
                f"detected {_detected(state)}"
            )
        alerts = _alerts(state)
        state.dispose()
        cpu = {name: cpu_seconds(p.pid) - cpu_before[name] for name, p in procs.items()}
        cpu["nats (3 nodes)"] = sum(cpu_seconds(pid) for pid in nats_pids) - nats_before
        rss = {name: peak_rss_mb(p.pid) for name, p in procs.items()}
        acked_at = max(p.acked_at for p in posters)
        latencies = sorted(x for p in posters for x in p.latencies)
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        nats.stop()
    cpu_total = sum(cpu.values())
    return {
        "events": total,
        "windows_events_in_corpus": windows,
        "ingest_nodes": len(ports),
        "posters_per_node": args.posters,
        "batch": args.batch,
        "events_per_s_acknowledged": round(total / (acked_at - started)),
        "events_per_s_journaled": round(total / (journaled_at - started)),
        "events_per_s_stored_both_replicas": round(total / (stored_at - started)),
        "events_per_s_detected": round(total / (detected_at - started)) if detected_at else None,
        "alerts": alerts,
        "state": state_url.split(":", 1)[0],
        "post_latency_p50_ms": round(1000 * latencies[len(latencies) // 2]),
        "post_latency_p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)]),
        "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
        "cpu_us_per_event": round(cpu_total / total * 1e6, 1),
        "nats_share_of_cpu": round(cpu["nats (3 nodes)"] / cpu_total, 3),
        "events_per_s_per_ingest_process_core": round(
            total / sum(v for k, v in cpu.items() if k.startswith("ingest"))
        ),
        "events_per_s_per_store_writer_core": round(total / cpu["store-a"]),
        "events_per_s_per_detection_core": round(total / cpu["detect"]) if "detect" in cpu else None,
        "peak_rss_mb": rss,
        "goal_events_per_s": 15000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--posters", type=int, default=2, help="posters per ingest node")
    ap.add_argument("--ingest-nodes", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--name", default="cluster")
    ap.add_argument("--no-detect", dest="detect", action="store_false", help="no detection worker")
    args = ap.parse_args()
    result = run(args)
    path = write_result(args.name, result)
    rows = []
    for k, v in result.items():
        rows.append((k, json.dumps(v) if isinstance(v, dict) else str(v)))
    print_table(f"cluster ({path.relative_to(path.parents[2])})", rows)


if __name__ == "__main__":
    main()
