"""Alert creation under a flood: a rule that fires on every event of a 1M-event replay.

Two measurements:

1. **Intake alone** — ``AlertService.ingest`` with 1,000,000 inputs (failed logons from 200
   source addresses against 20 hosts, every one a rule match) on the SQLite state database:
   inputs/s and how many alerts exist afterwards (dedupe must keep that bounded).
2. **Ingest with and without alerts** — the same 1M events journaled (fsync, Merkle tree,
   checkpoints) and stored in chDB by the real pipeline and indexer, once plain and once with
   every committed event turned into an alert input and ingested by the alert service in a
   worker thread. Each run is its own process (chDB allows one store per process); the goal
   is that ingest does not slow below half its normal rate.

    .venv/bin/python bench/alerts.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, print_table, write_result

from norrvakt.event import Event

BATCH = 5000
IPS = [f"185.220.{i // 256}.{i % 256}" for i in range(200)]
HOSTS = [f"dc{i:02d}" for i in range(20)]


def events(n: int, seed: int = 7) -> list[list[Event]]:
    """n failed logons (as parsed events) in batches."""
    rng = random.Random(seed)
    t0 = int(time.time() * 1e6) - n * 100
    out: list[list[Event]] = []
    batch: list[Event] = []
    for i in range(n):
        ip, host, user = rng.choice(IPS), rng.choice(HOSTS), f"user{rng.randrange(5000)}"
        msg = f"An account failed to log on: {user} from {ip}"
        batch.append(
            Event(
                tenant=("lulea", "boden", "kiruna", "pitea")[i % 4],
                ts=t0 + i * 100,
                ingested=t0 + i * 100,
                source="bench",
                peer="127.0.0.1:1",
                ecs={
                    "event.kind": "event",
                    "event.code": "4625",
                    "event.outcome": "failure",
                    "host.name": host,
                    "source.ip": ip,
                    "user.name": user,
                },
                fields={"EventID": "4625", "IpAddress": ip, "TargetUserName": user},
                message=msg,
                raw=msg.encode(),
            )
        )
        if len(batch) == BATCH:
            out.append(batch)
            batch = []
    if batch:
        out.append(batch)
    return out


def intake_alone(n: int) -> dict[str, Any]:
    from norrvakt.alerts.intake import input_from_event
    from norrvakt.alerts.service import AlertService
    from norrvakt.config import AlertSettings
    from norrvakt.state.db import open_state

    batches = events(n)
    seq = 0
    inputs = []
    for b in batches:
        chunk = []
        for e in b:
            seq += 1
            e.seq = seq
            chunk.append(input_from_event(e, "win-failed-logon", "Failed logon", "medium", ["attack.t1110"]))
        inputs.append(chunk)
    with tempfile.TemporaryDirectory() as d:
        engine = open_state(f"sqlite:///{d}/state.db")
        svc = AlertService(engine, AlertSettings())
        svc.warm()
        started = time.perf_counter()
        for chunk in inputs:
            svc.ingest(chunk)
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            import sqlalchemy as sa

            alerts = conn.execute(sa.text("SELECT count(*), sum(event_count) FROM alerts")).one()
            cases = conn.execute(sa.text("SELECT count(*) FROM cases")).scalar_one()
        engine.dispose()
    return {
        "inputs": n,
        "seconds": round(seconds, 2),
        "inputs_per_s": round(n / seconds),
        "alerts": int(alerts[0]),
        "events_counted": int(alerts[1]),
        "cases": int(cases),
        "stats": svc.stats.as_dict(),
    }


async def pipeline_run(n: int, with_alerts: bool) -> dict[str, Any]:
    from norrvakt.alerts.intake import input_from_event
    from norrvakt.alerts.model import AlertInput
    from norrvakt.alerts.soc import soc_for
    from norrvakt.config import load_settings
    from norrvakt.node.runtime import open_runtime

    batches = events(n)
    with tempfile.TemporaryDirectory() as d:
        settings = load_settings(None, {"data_dir": str(Path(d) / "var")})
        rt = open_runtime(settings)
        await rt.start(with_sources=False)
        queue: asyncio.Queue[list[AlertInput]] = asyncio.Queue()
        ingested = 0
        ingest_seconds = 0.0
        worker: asyncio.Task[None] | None = None
        if with_alerts:
            soc = soc_for(rt)

            def on_commit(committed: list[Event]) -> None:
                queue.put_nowait(
                    [
                        input_from_event(e, "win-failed-logon", "Failed logon", "medium", ["attack.t1110"])
                        for e in committed
                        if e.source == "bench"
                    ]
                )

            async def drain() -> None:
                nonlocal ingested, ingest_seconds
                while True:
                    chunk = await queue.get()
                    while not queue.empty() and len(chunk) < 50_000:
                        chunk.extend(queue.get_nowait())
                    t = time.perf_counter()
                    await asyncio.to_thread(soc.alerts.ingest, chunk)
                    ingest_seconds += time.perf_counter() - t
                    ingested += len(chunk)

            rt.pipeline.committed_hooks.append(on_commit)
            worker = asyncio.create_task(drain())
        started = time.perf_counter()
        in_flight: list[asyncio.Future[None]] = []
        for b in batches:
            in_flight.append(rt.pipeline.commit_nowait(b))
            if len(in_flight) > 8:
                await in_flight.pop(0)
            await asyncio.sleep(0)
        for f in in_flight:
            await f
        journaled = time.perf_counter() - started
        await rt.indexer.wait_caught_up(timeout=1800)
        stored = time.perf_counter() - started
        while with_alerts and ingested < n:
            await asyncio.sleep(0.05)
        done = time.perf_counter() - started
        result: dict[str, Any] = {
            "events": n,
            "journaled_s": round(journaled, 2),
            "stored_s": round(stored, 2),
            "all_done_s": round(done, 2),
            "events_per_s": round(n / done),
        }
        if with_alerts:
            if worker is not None:
                worker.cancel()
            with soc.engine.connect() as conn:
                import sqlalchemy as sa

                row = conn.execute(sa.text("SELECT count(*), sum(event_count) FROM alerts")).one()
            result.update(
                alerts=int(row[0]),
                events_counted=int(row[1]),
                alert_ingest_busy_s=round(ingest_seconds, 2),
                stats=soc.alerts.stats.as_dict(),
            )
        await rt.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--mode", choices=["all", "intake", "plain", "alerts"], default="all")
    args = ap.parse_args()
    if args.mode == "intake":
        print(json.dumps(intake_alone(args.events)))
        return
    if args.mode in ("plain", "alerts"):
        print(json.dumps(asyncio.run(pipeline_run(args.events, args.mode == "alerts"))))
        return

    def sub(mode: str) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, __file__, "--mode", mode, "--events", str(args.events)],
            capture_output=True,
            text=True,
            cwd=str(REPO),
            check=True,
        )
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result

    intake = sub("intake")
    plain = sub("plain")
    alerts = sub("alerts")
    ratio = alerts["events_per_s"] / plain["events_per_s"]
    result = {
        "intake_alone": intake,
        "ingest_plain": plain,
        "ingest_with_alerts": alerts,
        "ratio": round(ratio, 3),
    }
    path = write_result("alerts", result)
    print_table(
        f"alert flood: a rule firing on every one of {args.events:,} events",
        [
            ("intake alone (AlertService.ingest)", f"{intake['inputs_per_s']:,} inputs/s"),
            ("alerts after 1M matches", f"{intake['alerts']:,} (cases {intake['cases']:,})"),
            ("ingest, no alerts", f"{plain['events_per_s']:,} events/s"),
            ("ingest, every event an alert input", f"{alerts['events_per_s']:,} events/s"),
            ("with alerts / without", f"{ratio:.2f} (goal ≥ 0.5)"),
            (
                "alerts created in that run",
                f"{alerts['alerts']:,} holding {alerts['events_counted']:,} events",
            ),
        ],
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
