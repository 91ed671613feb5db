"""End-to-end ingest: loggen (syslog-ng's load generator) → syslog TCP → journal → chDB.

Starts a real `norrvakt serve` (fsync on, as in production), sends N RFC 5424 messages with
octet-counting framing over one TCP connection as fast as loggen can, and measures until all
N are stored and searchable. Reports sustained events/s, the time to journal (acknowledgement
side), the server's peak RSS and the CPU seconds of its processes (so CPU-µs per event).

``--workers 1,2`` starts the server once per value (the setting ``server.workers``, which issue
#12 adds; until it exists only 1 runs) and prints the runs side by side with their ratio.
``--profile`` attaches py-spy to the server (bench/profile_server.py) and adds the stage table.

    .venv/bin/python bench/ingest.py [--events 1000000] [--size 300] [--workers 1,2] [--profile]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    CpuClock,
    bench_server,
    is_python_thread,
    parse_workers,
    peak_rss_mb,
    print_columns,
    print_table,
    tree_peak_rss_mb,
    workers_toml,
    write_result,
)
from profile_server import CpuCost, print_profile, profile_with_cpu, read_profile, recording

from tests.e2e.harness import SYSLOG_NG


def loggen_cmd(port: int, events: int, size: int, connections: int) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "LD_LIBRARY_PATH": str(SYSLOG_NG / "usr/lib/syslog-ng"),
        "SYSLOGNG_PREFIX": str(SYSLOG_NG / "usr"),
    }
    per_conn = events // connections
    cmd = [
        str(SYSLOG_NG / "usr/bin/loggen"),
        "--inet",
        "--stream",
        "--syslog-proto",
        "--rate",
        "10000000",
        "--size",
        str(size),
        "--number",
        str(per_conn),
        "--interval",  # loggen stops after --interval seconds (default 10) even before --number
        "3600",
        "--active-connections",
        str(connections),
        "--quiet",
        "127.0.0.1",
        str(port),
    ]
    return cmd, env


def run(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    extra = "[journal]\nfsync = false\n" if args.no_fsync else ""
    if args.no_integrity:
        extra += "[integrity]\nenabled = false\n"
    if args.no_detection:
        extra += "[detection]\nenabled = false\n"
    server_toml = workers_toml(workers)
    with (
        tempfile.TemporaryDirectory(prefix="norrvakt-bench-") as tmp,
        bench_server(Path(tmp), extra_toml=extra, server_toml=server_toml) as srv,
        ExitStack() as profiling,
    ):
        assert srv.proc is not None
        profile_path = Path(args.profile_dir) / f"profile-{args.name}-w{workers}.txt"
        if args.profile:
            profiling.enter_context(recording(srv.proc.pid, profile_path, rate=args.profile_rate))
        cmd, env = loggen_cmd(srv.ports["tcp"], args.events, args.size, args.connections)
        events = (args.events // args.connections) * args.connections
        clock = CpuClock(srv.proc.pid)
        start = time.monotonic()
        sender = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        journaled_at = stored_at = None
        sent_at = None
        while True:
            time.sleep(0.2)
            if sent_at is None and sender.poll() is not None:
                sent_at = time.monotonic()
            stats = srv.api("GET", "/api/stats").json()
            lulea = stats["tenants"].get("lulea", {"journaled": 0, "stored": 0})
            if journaled_at is None and lulea["journaled"] >= events:
                journaled_at = time.monotonic()
            if lulea["stored"] >= events:
                stored_at = time.monotonic()
                break
            if time.monotonic() - start > 900:
                raise SystemExit(f"timed out: {lulea}")
        cpu_server, by_thread = clock.server(), clock.threads()
        profiling.close()  # py-spy writes its file
        sender.wait(timeout=60)
        loggen_report = (sender.stderr.read() if sender.stderr else b"").decode(errors="replace").strip()
        searchable = srv.count("")
        rss = peak_rss_mb(srv.proc.pid)
        rss_all = sum(tree_peak_rss_mb(srv.proc.pid).values())
        errors = stats["pipeline"]["pipeline_errors"]
    total = stored_at - start
    chdb_s = sum(v for k, v in by_thread.items() if not is_python_thread(k))
    result: dict[str, Any] = {
        "workers": workers,
        "workers_setting": server_toml.strip() or "(absent: one process)",
        "events": events,
        "message_size": args.size,
        "connections": args.connections,
        "fsync": not args.no_fsync,
        "integrity": not args.no_integrity,
        "detection": not args.no_detection,
        "sender": "loggen 3.38 (RFC 5424, octet-counted, TCP)",
        "seconds_to_stored": round(total, 2),
        "events_per_s_stored": round(events / total),
        "seconds_to_journaled": round((journaled_at or stored_at) - start, 2),
        "events_per_s_journaled": round(events / ((journaled_at or stored_at) - start)),
        "sender_seconds": round((sent_at or stored_at) - start, 2),
        "searchable_count": searchable,
        "loggen_report": loggen_report[-200:],
        "pipeline_errors": errors,
        "server_cpu_s": round(cpu_server, 2),
        "server_cpu_s_chdb_threads": round(chdb_s, 2),
        "server_cpu_us_per_event": round(cpu_server / events * 1e6, 1),
        "server_cores_busy": round(cpu_server / total, 2),
        "server_peak_rss_mb": round(rss, 1),
        "server_peak_rss_mb_sum_of_processes": round(rss_all, 1),
        "goal_events_per_s": 50000,
    }
    if args.profile:
        prof = read_profile(profile_path)
        cost = CpuCost(cpu_server, chdb_s, events)
        print_profile(prof, cost)
        result["profile"] = {"file": str(profile_path), **profile_with_cpu(prof, cost)}
    if searchable != events:
        raise SystemExit(f"count mismatch: {searchable} searchable, {events} sent")
    return result


_COMPARED = (
    "events_per_s_stored",
    "events_per_s_journaled",
    "server_cpu_us_per_event",
    "server_cores_busy",
    "server_peak_rss_mb_sum_of_processes",
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--no-fsync", action="store_true", help="journal without fsync (for comparison only)")
    ap.add_argument(
        "--no-integrity", action="store_true", help="no Merkle tree or checkpoints (to measure their cost)"
    )
    ap.add_argument("--no-detection", action="store_true", help="no live detection (to measure its cost)")
    ap.add_argument("--workers", default="1", help="comma-separated server.workers values, e.g. 1,2")
    ap.add_argument("--profile", action="store_true", help="py-spy the server (bench/profile_server.py)")
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    ap.add_argument("--profile-dir", default=tempfile.gettempdir(), help="where py-spy's raw file goes")
    ap.add_argument("--name", default="ingest")
    args = ap.parse_args()
    if not (SYSLOG_NG / "usr/bin/loggen").exists():
        raise SystemExit("loggen missing: run `bash scripts/install-system-deps.sh` first")
    workers = parse_workers(args.workers)
    for w in workers:
        workers_toml(w)  # refuse a value this code cannot run before anything starts
    runs = [run(w, args) for w in workers]
    if len(runs) == 1:
        path = write_result(args.name, runs[0])
        pairs = [(k, str(v)) for k, v in runs[0].items() if k != "profile"]
        print_table(f"ingest ({path.relative_to(REPO)})", pairs)
        return
    ratios = {
        f"workers={r['workers']}": {k: round(r[k] / runs[0][k], 2) for k in _COMPARED if runs[0][k]}
        for r in runs
    }
    path = write_result(args.name, {"runs": runs, "ratios_to_first": ratios})
    headers = ["measure", *[f"workers={r['workers']}" for r in runs], "ratio last/first"]
    rows = [
        [k, *[str(r[k]) for r in runs], f"{runs[-1][k] / runs[0][k]:.2f}" if runs[0][k] else "-"]
        for k in _COMPARED
    ]
    print_columns(f"ingest ({path.relative_to(REPO)})", headers, rows)


if __name__ == "__main__":
    main()
