"""`norrvakt hunt` with all SigmaHQ Windows rules over evtx-attack-samples, against Zircolite 3.7.

Measures, on this machine:

- wall time and peak RSS of the real command, cold (empty rule cache: every rule is parsed and
  compiled) and warm (compiled rules from the cache);
- rules fired and detections, and per rule the (file, EventRecordID) pairs compared with
  Zircolite's (../shared/data/peers/zircolite-native-windows.json). Every Zircolite detection
  must be found; every extra one is classified with the reason it differs;
- the steady-state matching rate on one core with all rules loaded and events already parsed.

    .venv/bin/python bench/hunt.py

Writes bench/results/hunt.json.

Large-corpus mode (issue #12: `norrvakt hunt` on every core), see :func:`large`::

    .venv/bin/python bench/hunt.py --large --events 1000000 --workers 1,2 --formats jsonl,evtx

builds, in a temporary directory, the evtx-attack-samples records replicated to N events as
JSON lines and as EVTX, runs the real command once per --workers value on each, side by side,
and reports events/s, wall and CPU time, peak memory of the parent and of the whole process
tree, the ratio to --workers 1 and whether the outputs are byte-identical. Writes
bench/results/hunt-large.json.

Measured at 200,000 events (not 1 M: the lead re-runs 1 M for the README), 2026-12-02, the code
before the matcher's memo, regex sets and the JSON writer's fragments (9cdb0e0) and after, run
alternately in one sitting, two rounds (another session's tests were running: 2-3 s runnable
but waiting for a core per --workers 2 run), outputs byte-identical to each other and to
--workers 1: JSONL --workers 2 23,121-24,845 -> 32,680-35,211 events/s, --workers 1
14,760-15,152 -> 19,399-20,182; EVTX --workers 2 22,233-25,852 -> 28,626-34,799, --workers 1
14,242-14,745 -> 17,676-19,714. At 200k each worker's warm-up (rule buckets, RE2 sets and
DFAs built on first use, ~0.6 s) is a larger share than at 1 M; the corpus repeats the 8,255
samples, so the memo of field values hits more often than on real logs (over the unique
samples alone matching takes ~19 instead of ~16 us/event).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml
from _common import REPO, SHARED, parse_workers, print_columns, print_table, process_tree, write_result

RULES = SHARED / "sigma" / "rules" / "windows"
SAMPLES = SHARED / "evtx-attack-samples"
PEERS = SHARED / "peers" / "zircolite-native-windows.json"
GOALS = {"cold_speedup": 5.0, "warm_speedup": 10.0, "events_per_s": 20_000}

Hit = tuple[str, int]

EXPLANATIONS = {
    "security-4688": (
        "Security 4688 event: Norrvakt maps process_creation to Sysmon 1 and to Security 4688 (renaming "
        "Image->NewProcessName, ParentImage->ParentProcessName as pySigma's windows audit pipeline does); "
        "Zircolite ran only the sysmon pipeline, so 4688 never meets process_creation rules there"
    ),
    "no-such-column": (
        "the rule names a field that no event in the samples has; Zircolite's SQLite table has no such "
        "column, the rule's query fails and the whole rule yields nothing - also for its other branches"
    ),
    "json-boolean": (
        "the matched field is a JSON boolean in the EVTX record (e.g. Initiated: true); Norrvakt renders it "
        "'true' as the XML does and the rule expects, Zircolite stores it as the integer 1"
    ),
    "unnamed-data": (
        "the rule matches `Data`; the event has unnamed <Data> elements, which Norrvakt exposes as `Data` "
        "(all of them, one per line) and Data_1..n, while Zircolite stores them in a column named `text`"
    ),
    "empty-value": (
        "the rule expects an empty value ('') and the event has it; Zircolite drops empty values while "
        "flattening, so the column is NULL and never equals ''"
    ),
    "keyword-message": (
        "a keyword of the rule is in Norrvakt's event description (`message`, e.g. 'Sysmon config state "
        "changed' for Sysmon event 16); Zircolite searches only the event's own fields"
    ),
}


def run_cli(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of one CLI run, and its stderr."""
    from norrvakt.cli import main

    if "hunt" in getattr(main, "commands", {}):
        cmd = [sys.executable, "-m", "norrvakt.cli", "hunt", *args]
    else:  # not registered in norrvakt.cli yet: the command itself
        cmd = [sys.executable, "-c", "from norrvakt.detect.cli import hunt; hunt()", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"hunt failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024, err


def read_hits(path: Path) -> tuple[dict[str, set[Hit]], int, dict[str, dict[str, Any]]]:
    hits: dict[str, set[Hit]] = defaultdict(set)
    rules: dict[str, dict[str, Any]] = {}
    total = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            total += 1
            hits[doc["rule"]["id"]].add((doc["file"], int(doc["event_record_id"])))
            rules[doc["rule"]["id"]] = doc["rule"]
    return dict(hits), total, rules


def load_events() -> list[Any]:
    from norrvakt.parsers import parse_record
    from norrvakt.sources.files import read_file

    events = []
    for path in sorted(SAMPLES.rglob("*.evtx")):
        for item in read_file(path, "bench", "hunt"):
            if item.error_type is None:
                events.append(parse_record(item.record))
    return events


def rule_docs() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in RULES.rglob("*.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        docs[str(doc["id"])] = doc
    return docs


def detection_fields(detection: Any) -> dict[str, list[Any]]:
    """Field name -> the values it is compared with, over all selections of a rule."""
    out: dict[str, list[Any]] = defaultdict(list)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, (dict, list)) and not _is_value_list(value):
                    walk(value)
                else:
                    out[str(key).split("|")[0]].extend(value if isinstance(value, list) else [value])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for name, selection in detection.items():
        if name == "condition":
            continue
        if isinstance(selection, list) and _is_value_list(selection):
            out[""].extend(selection)  # keywords
        else:
            walk(selection)
    return out


def _is_value_list(value: Any) -> bool:
    return isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value)


def classify(doc: dict[str, Any], event: Any, dataset_fields: set[str]) -> str:
    fields = detection_fields(doc["detection"])
    category = doc["logsource"].get("category")
    ev = event.fields
    if category == "process_creation" and ev.get("Channel") == "Security" and ev.get("EventID") == "4688":
        return "security-4688"
    if any(name and name not in dataset_fields for name in fields):
        return "no-such-column"
    raw = json.loads(event.raw)
    data = raw.get("Event", {}).get("EventData") or {}
    if any(isinstance(data.get(name), bool) for name in fields):
        return "json-boolean"
    if "Data" in fields and "Data_1" in ev:
        return "unnamed-data"
    if any(v == "" and ev.get(name) == "" for name, values in fields.items() for v in values):
        return "empty-value"
    keywords = [str(k).casefold() for k in fields.get("", [])]
    if keywords and any(k in event.message.casefold() for k in keywords):
        return "keyword-message"
    return "unexplained"


def streaming_rate(events: list[Any], cache: Path) -> dict[str, float]:
    from norrvakt.detect.engine import RuleSet

    rules, _ = RuleSet.load([RULES], cache_dir=cache)
    for event in events:  # warm-up: builds the index buckets and the RE2 automata
        rules.matching_rules(event)
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for event in events:
            rules.matching_rules(event)
        rates.append(len(events) / (time.perf_counter() - start))
    return {"events": len(events), "best": max(rates), "median": statistics.median(rates)}


def main() -> None:
    for path in (RULES, SAMPLES, PEERS):
        if not path.exists():
            raise SystemExit(f"{path} is missing")
    peers = json.loads(PEERS.read_text())
    zircolite = {r["id"]: {(f, int(i)) for f, i in r["hits"]} for r in peers["rules"]}
    zircolite_titles = {r["id"]: r["title"] for r in peers["rules"]}

    with tempfile.TemporaryDirectory(prefix="norrvakt-hunt-") as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "detections.jsonl"
        args = ["--rules", str(RULES), str(SAMPLES), "--format", "json", "-o", str(out)]
        args += ["--cache", str(cache), "--no-progress"]
        cold_s, cold_rss, cold_err = run_cli(args)
        warm_s, warm_rss, _ = run_cli(args)
        hits, detections, fired = read_hits(out)
        events = load_events()
        rate = streaming_rate(events, cache)

    missing = {r: sorted(h - hits.get(r, set())) for r, h in zircolite.items()}
    missing = {r: h for r, h in missing.items() if h}
    by_key = {(Path(e.peer.split("#")[0]).name, int(e.fields["EventRecordID"])): e for e in events}
    dataset_fields = {name for e in events for name in e.fields}
    docs = rule_docs()
    extras: list[dict[str, Any]] = []
    for rule_id, rule_hits in sorted(hits.items()):
        for hit in sorted(rule_hits - zircolite.get(rule_id, set())):
            reason = classify(docs[rule_id], by_key[hit], dataset_fields)
            title = fired[rule_id]["title"]
            extras.append(
                {"rule": rule_id, "title": title, "file": hit[0], "record": hit[1], "reason": reason}
            )
    reasons = Counter(e["reason"] for e in extras)
    zircolite_s, zircolite_mb = peers["wall_s_2core_machine"], peers["peak_rss_mb"]
    result = {
        "rules_dir": str(RULES),
        "samples": str(SAMPLES),
        "events": len(events),
        "load_report": cold_err.splitlines()[0] if cold_err else "",
        "cold_s": round(cold_s, 2),
        "warm_s": round(warm_s, 2),
        "cold_peak_rss_mb": round(cold_rss),
        "warm_peak_rss_mb": round(warm_rss),
        "cold_speedup_vs_zircolite": round(zircolite_s / cold_s, 1),
        "warm_speedup_vs_zircolite": round(zircolite_s / warm_s, 1),
        "streaming_events_per_s": {k: round(v) for k, v in rate.items()},
        "rules_fired": len(hits),
        "detections": detections,
        "distinct_hits": sum(map(len, hits.values())),
        "zircolite": {
            "tool": peers["tool"],
            "wall_s": zircolite_s,
            "peak_rss_mb": zircolite_mb,
            "rules_fired": peers["rules_fired"],
            "hits": peers["hits_total"],
            "distinct_hits": sum(map(len, zircolite.values())),
        },
        "zircolite_rules_not_fired": sorted(r for r in zircolite if r not in hits),
        "missing_zircolite_hits": {f"{r} {zircolite_titles[r]}": h for r, h in missing.items()},
        "extra_hits": len(extras),
        "extra_rules": sorted({e["title"] for e in extras if e["rule"] not in zircolite}),
        "extra_by_reason": dict(reasons),
        "reasons": {k: v for k, v in EXPLANATIONS.items() if k in reasons},
        "extras": extras,
        "goals": GOALS,
    }
    path = write_result("hunt", result)
    print_table(
        "norrvakt hunt vs Zircolite 3.7 - evtx-attack-samples, all SigmaHQ Windows rules",
        [
            ("events", str(len(events))),
            ("cold wall (s)", f"{cold_s:.2f}  ({zircolite_s / cold_s:.1f}x Zircolite's {zircolite_s} s)"),
            ("warm wall (s)", f"{warm_s:.2f}  ({zircolite_s / warm_s:.1f}x)"),
            ("peak RSS cold / warm (MB)", f"{cold_rss:.0f} / {warm_rss:.0f}  (Zircolite {zircolite_mb})"),
            ("streaming, 1 core (events/s)", f"{rate['median']:,.0f} median, {rate['best']:,.0f} best"),
            ("rules fired", f"{len(hits)}  (Zircolite {peers['rules_fired']})"),
            ("detections", f"{detections}  (Zircolite {peers['hits_total']})"),
            ("Zircolite detections missing", str(sum(map(len, missing.values())))),
            ("extra detections", f"{len(extras)} on {len({e['rule'] for e in extras})} rules"),
        ],
    )
    for reason, count in reasons.most_common():
        why = EXPLANATIONS.get(reason, "NOT EXPLAINED - see extras in the JSON")
        print(f"  {count:3d} extra: {reason}: {why}")
    for e in extras:
        print(f"      {e['reason']:16s} {e['title']}  {e['file']}#{e['record']}")
    print(f"written to {path}")
    if missing or reasons.get("unexplained"):
        raise SystemExit("Zircolite detections missing or extra detections unexplained")


# -- large-corpus mode -------------------------------------------------------------------------

SUMMARY = re.compile(r"(\d+) files, (\d+) events, (\d+) rules: (\d+) detections from \d+ rules in ([\d.]+) s")
LARGE_GOAL = {"events_per_s": 25_000, "baseline_events_per_s": 12_500, "ratio": 2.0}


def build_corpus(root: Path, fmt: str, events: int, layout: str) -> tuple[Path, dict[str, Any]]:
    """The samples' records replicated to at least ``events`` events under ``root`` (reused
    if it is there from an earlier --keep run).

    jsonl: each record as one compact JSON line (the evtx package's JSON of it); evtx: the used
    64 KiB chunks of the sample files one after another behind one file header (each chunk
    parses on its own; its records keep their EventRecordIDs). ``files``: one file per replica
    of the whole sample set (9 MB JSONL, 23 MB EVTX), the last one partial; ``one``: one file.
    """
    from tests.detect.hunt_corpus import chunk_records, chunks, evtx_json_lines, write_evtx

    samples = sorted(SAMPLES.rglob("*.evtx"))
    folder = root / f"{fmt}-{layout}-{events}"
    if folder.is_dir():
        return folder, json.loads((folder.parent / f"{folder.name}.json").read_text())
    folder.mkdir(parents=True)
    written = 0
    files = 0
    if fmt == "jsonl":
        lines = list(evtx_json_lines(samples))
        fh = None
        while written < events:
            if fh is None or (layout == "files" and written % len(lines) == 0):
                if fh is not None:
                    fh.close()
                fh = open(folder / f"part-{files:04d}.jsonl", "wb")  # noqa: SIM115
                files += 1
            take = min(len(lines), events - written)
            fh.writelines(lines[:take])
            written += take
        if fh is not None:
            fh.close()
    else:
        body = list(chunks(samples))
        counts = [chunk_records(c) for c in body]

        def replicas(limit: int | None) -> Any:
            nonlocal written
            while written < events:
                for chunk, count in zip(body, counts, strict=True):
                    if written >= events:
                        return
                    yield chunk
                    written += count
                if limit is not None:
                    return

        per_file = 1 if layout == "files" else None
        while written < events:
            write_evtx(folder / f"part-{files:04d}.evtx", samples[0], replicas(per_file))
            files += 1
    size = sum(p.stat().st_size for p in folder.iterdir())
    shape = {"format": fmt, "layout": layout, "files": files, "events": written, "bytes": size}
    (folder.parent / f"{folder.name}.json").write_text(json.dumps(shape))
    return folder, shape


class TreeSampler:
    """Peak memory of a process and its descendants, sampled every 0.1 s: the sum of RSS (an
    upper bound: pages a forked worker shares with its parent count in both) and of PSS (shared
    pages split between the processes that share them). Also how long they were runnable but
    waiting for a core (/proc/PID/schedstat): on a machine shared with other work, that is the
    time the other work took from them, and the reason a ratio may stay under the core count."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss = self.pss = 0.0
        self.processes = 0
        self.waited: dict[int, float] = {}  # pid -> seconds runnable, not running (last seen)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            rss = pss = 0
            tree = process_tree(self.pid)
            for p in tree:
                try:
                    self.waited[p] = int(Path(f"/proc/{p}/schedstat").read_text().split()[1]) / 1e9
                    for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Rss:"):
                            rss += int(line.split()[1])
                        elif line.startswith("Pss:"):
                            pss += int(line.split()[1])
                except OSError:
                    continue
            self.rss, self.pss = max(self.rss, rss / 1024), max(self.pss, pss / 1024)
            self.processes = max(self.processes, len(tree))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def hunt_once(corpus: Path, workers: int, cache: Path, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "norrvakt.cli", "hunt", "--rules", str(RULES), "--cache", str(cache)]
    cmd += ["--no-progress", "--format", "json", "-o", str(out), "--workers", str(workers), str(corpus)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # usage includes the workers the command waited for
    wall = time.perf_counter() - start
    sampler.stop()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"hunt --workers {workers} failed:\n{err[-3000:]}")
    found = SUMMARY.search(err)
    if found is None:
        raise SystemExit(f"no summary line in the hunt's output:\n{err[-3000:]}")
    files, events, _, detections, seconds = found.groups()
    hunt_s = float(seconds)
    cpu = usage.ru_utime + usage.ru_stime
    digest = hashlib.sha256()
    with open(out, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return {
        "workers": workers,
        "files": int(files),
        "events": int(events),
        "detections": int(detections),
        "hunt_s": round(hunt_s, 2),
        "wall_s": round(wall, 2),
        "events_per_s": round(int(events) / hunt_s),
        "events_per_s_wall": round(int(events) / wall),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_event": round(cpu / int(events) * 1e6, 1),
        "peak_rss_parent_mb": round(usage.ru_maxrss / 1024),  # the largest single process
        "peak_rss_tree_mb": round(sampler.rss),
        "peak_pss_tree_mb": round(sampler.pss),
        "processes": sampler.processes,
        "waited_for_a_core_s": round(sum(sampler.waited.values()), 2),
        "output_sha256": digest.hexdigest(),
        "problems": "could not be read or parsed" in err,
    }


def large(events: int, workers: list[int], formats: list[str], layout: str, keep: Path | None) -> None:
    """Large-corpus mode: see the module docstring."""
    for path in (RULES, SAMPLES):
        if not path.exists():
            raise SystemExit(f"{path} is missing")
    root = keep or Path(tempfile.mkdtemp(prefix="norrvakt-hunt-large-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        cache = root / "cache"
        warm = root / "warm.jsonl"  # compile the rules into the cache before anything is timed
        warm.write_text("{}\n")
        hunt_once(warm, 1, cache, root / "warm-out.jsonl")
        runs: dict[str, Any] = {}
        for fmt in formats:
            corpus, shape = build_corpus(root, fmt, events, layout)
            mb = shape["bytes"] / 1e6
            print(f"corpus {fmt}: {shape['files']} files, {shape['events']:,} events, {mb:,.0f} MB")
            results = [hunt_once(corpus, w, cache, root / f"out-{fmt}-{w}.jsonl") for w in workers]
            one = results[0]["events_per_s"]
            for r in results:
                r["ratio_to_first"] = round(r["events_per_s"] / one, 2)
            runs[fmt] = {
                "corpus": shape,
                "identical_output": len({r["output_sha256"] for r in results}) == 1,
                "runs": results,
            }
            if keep is None:
                shutil.rmtree(corpus)  # the next format's corpus needs the room
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    result = {
        "rules_dir": str(RULES),
        "samples": str(SAMPLES),
        "events": events,
        "layout": layout,
        "workers": workers,
        "formats": runs,
        "goal": LARGE_GOAL,
        "corpus_how": build_corpus.__doc__,
    }
    path = write_result("hunt-large", result)
    rows = []
    measures = [
        ("events/s (hunt)", "events_per_s", "{:,}"),
        ("events/s (wall, with start-up)", "events_per_s_wall", "{:,}"),
        ("ratio to first", "ratio_to_first", "{}"),
        ("hunt s", "hunt_s", "{}"),
        ("wall s", "wall_s", "{}"),
        ("CPU s (all processes)", "cpu_s", "{}"),
        ("CPU µs / event", "cpu_us_per_event", "{}"),
        ("peak RSS, largest process (MB)", "peak_rss_parent_mb", "{}"),
        ("peak RSS, sum of processes (MB)", "peak_rss_tree_mb", "{}"),
        ("peak PSS, sum of processes (MB)", "peak_pss_tree_mb", "{}"),
        ("processes", "processes", "{}"),
        ("s runnable, waiting for a core", "waited_for_a_core_s", "{}"),
        ("detections", "detections", "{:,}"),
    ]
    for fmt, run in runs.items():
        for label, key, form in measures:
            rows.append([f"{fmt} {label}", *(form.format(r[key]) for r in run["runs"])])
        rows.append([f"{fmt} output identical", *(str(run["identical_output"]) for _ in run["runs"])])
    print_columns(
        f"norrvakt hunt, {events:,} events ({layout}), all SigmaHQ Windows rules, "
        f"goal {LARGE_GOAL['events_per_s']:,} events/s",
        ["measure", *(f"--workers {w}" for w in workers)],
        rows,
    )
    print(f"written to {path}")


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true", help="large-corpus mode (workers side by side)")
    ap.add_argument("--events", type=int, default=1_000_000, help="large: events in the corpus")
    ap.add_argument("--workers", default="1,2", help="large: --workers values, e.g. 1,2")
    ap.add_argument("--formats", default="jsonl,evtx", help="large: jsonl, evtx or both")
    ap.add_argument("--layout", choices=["files", "one"], default="files", help="large: many files or one")
    ap.add_argument("--keep", type=Path, help="large: build the corpus here and keep it")
    args = ap.parse_args()
    if not args.large:
        main()
        return
    formats = [f for f in args.formats.split(",") if f]
    if not formats or set(formats) - {"jsonl", "evtx"}:
        raise SystemExit(f"--formats: {args.formats!r}: jsonl, evtx or both")
    large(args.events, parse_workers(args.workers), formats, args.layout, args.keep)


if __name__ == "__main__":
    cli()
