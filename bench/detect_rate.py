"""Streaming rate of the whole detection engine, single core (a measurement, not a test).

    .venv/bin/python bench/detect_rate.py [--events N]

All SigmaHQ Windows rules plus the built-in rules and correlations, a threat intel directory
(10,000 IPs, 1,000 networks, 5,000 domains, 5,000 hashes, as CSV), source health on; events:
evtx-attack-samples (8,255 Windows events) and the demo's municipal and Linux traffic with its
attack stories, parsed once, then matched five times after a warm-up. Prints events/s for the
Windows events, the mixed stream, and RuleSet.matching_rules alone for comparison.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import REPO, print_table, write_result

from norrvakt.demo.generator import STORIES, TenantWorld
from norrvakt.demo.seed_systems import IMPROPER_USE_STORIES, SeedSystems
from norrvakt.detect.detection import DetectionEngine
from norrvakt.detect.health import HealthConfig
from norrvakt.detect.hunt import _events, find_hunt_files
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record
from tests.conftest import shared_data


def windows_events() -> list[Event]:
    from norrvakt.detect.hunt import HuntSummary

    summary = HuntSummary()
    out = []
    for path in find_hunt_files([Path(shared_data("evtx-attack-samples"))]):
        out.extend(event for event, _ in _events(path, summary))
    return out


def demo_events(count: int, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    world = TenantWorld("lulea", 0, random.Random(seed))
    systems = SeedSystems(world)
    ts = 1_795_726_801.0
    out = []
    for i in range(count):
        ts += rng.random() * 0.5
        msg = world.background(ts) if i % 2 else systems.background(ts)
        out.append(_parse(msg, ts))
    for story in STORIES.values():
        out.extend(_parse(m, t) for t, m in story(world, ts))
    for improper in IMPROPER_USE_STORIES.values():
        out.extend(_parse(m, t) for t, m in improper(world, systems, ts))
    return out


def _parse(msg: object, ts: float) -> Event:
    transport, body = msg.transport, msg.body  # type: ignore[attr-defined]
    if transport == "hec":
        record = RawRecord("lulea", "hec", int(ts * 1e6), "127.0.0.1:1", json.dumps(body).encode(), "hec")
    else:
        record = RawRecord("lulea", "syslog", int(ts * 1e6), "127.0.0.1:1", body.encode(), "syslog")
    return parse_record(record)


def intel_dir(root: Path) -> Path:
    rng = random.Random(1)
    lines = ["type,value,description,source,level"]
    lines += [
        f"ip,{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)},,,"
        for _ in range(10_000)
    ]
    lines += [
        f"cidr,{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/24,,,"
        for _ in range(1_000)
    ]
    lines += [f"domain,host{i}.bad{rng.randint(0, 10**6)}.example,,," for i in range(5_000)]
    lines += [f"sha256,{rng.getrandbits(256):064x},,," for _ in range(5_000)]
    directory = root / "intel"
    directory.mkdir()
    (directory / "bench.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def rate(run: Callable[[], object], n: int) -> tuple[float, float]:
    run()  # warm-up: index buckets, RE2 automata
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        rates.append(n / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000, help="demo events in the mixed stream")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        engine, report = DetectionEngine.load(
            [Path(shared_data("sigma", "rules", "windows"))],
            cache_dir=root / "cache",
            intel_dir=intel_dir(root),
            health=HealthConfig(),
        )
        print(report.summary())
        windows = windows_events()
        mixed = windows + demo_events(args.events)
        for i, event in enumerate(mixed, start=1):
            event.seq = i
        print(f"{len(windows)} Windows events, {len(mixed)} mixed")
        results = {}
        for name, fn, n in [
            (
                "RuleSet.matching_rules, Windows events",
                lambda: [engine.rules.matching_rules(e) for e in windows],
                len(windows),
            ),
            ("DetectionEngine.process, Windows events", lambda: engine.process(windows), len(windows)),
            ("DetectionEngine.process, mixed stream", lambda: engine.process(mixed), len(mixed)),
        ]:
            best, median = rate(fn, n)
            results[name] = {"best_per_s": round(best), "median_per_s": round(median), "events": n}
        path = write_result(
            "detect_rate",
            {
                "rules": report.summary(),
                "rates": results,
                "goal_per_s": 20_000,
                "note": "single core, events already parsed",
            },
        )
        print_table(
            f"detection rate ({path.relative_to(REPO)})",
            [(k, f"{v['median_per_s']:,}/s median, {v['best_per_s']:,}/s best") for k, v in results.items()],
        )


if __name__ == "__main__":
    main()
