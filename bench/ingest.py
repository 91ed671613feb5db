"""End-to-end ingest: loggen (syslog-ng's load generator) → syslog TCP → journal → chDB.

Starts a real `norrvakt serve` (fsync on, as in production), sends N RFC 5424 messages with
octet-counting framing over one TCP connection as fast as loggen can, and measures until all
N are stored and searchable. Reports sustained events/s, the time to journal (acknowledgement
side) and the server's peak RSS.

    .venv/bin/python bench/ingest.py [--events 1000000] [--size 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _common import REPO, peak_rss_mb, print_table, write_result

from tests.e2e.harness import SYSLOG_NG, running_server


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
    ap.add_argument("--name", default="ingest")
    args = ap.parse_args()
    if not (SYSLOG_NG / "usr/bin/loggen").exists():
        raise SystemExit("loggen missing: run `bash scripts/install-system-deps.sh` first")
    extra = "[journal]\nfsync = false\n" if args.no_fsync else ""
    if args.no_integrity:
        extra += "[integrity]\nenabled = false\n"
    if args.no_detection:
        extra += "[detection]\nenabled = false\n"
    with (
        tempfile.TemporaryDirectory(prefix="norrvakt-bench-") as tmp,
        running_server(Path(tmp), extra_toml=extra) as srv,
    ):
        assert srv.proc is not None
        cmd, env = loggen_cmd(srv.ports["tcp"], args.events, args.size, args.connections)
        events = (args.events // args.connections) * args.connections
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
        sender.wait(timeout=60)
        loggen_report = (sender.stderr.read() if sender.stderr else b"").decode(errors="replace").strip()
        searchable = srv.count("")
        rss = peak_rss_mb(srv.proc.pid)
        errors = stats["pipeline"]["pipeline_errors"]
    total = stored_at - start
    result = {
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
        "server_peak_rss_mb": round(rss, 1),
        "goal_events_per_s": 20000,
    }
    path = write_result(args.name, result)
    print_table(f"ingest ({path.relative_to(REPO)})", [(k, str(v)) for k, v in result.items()])
    if searchable != events:
        raise SystemExit(f"count mismatch: {searchable} searchable, {events} sent")


if __name__ == "__main__":
    main()
