"""End-to-end HTTP ingest of real Windows events: HEC (or `_bulk`) → parse → journal → chDB.

The records of evtx-attack-samples (../shared/data, read here at bench time with the ``evtx``
package as `norrvakt import` does; never copied into the repo) are sent to a real
`norrvakt serve` (tests/e2e/harness.py; fsync on, live detection on with the built-in rules):

- default: Splunk HEC JSON, ``{"event": <record>, "host": <Computer>, "sourcetype":
  "XmlWinEventLog"}`` per record, to /services/collector/event;
- ``--bulk``: Elasticsearch ``_bulk`` with Winlogbeat 8 documents (``winlog.*`` as Winlogbeat
  emits them, see :func:`winlogbeat_doc`), to /_bulk.

``--batch`` records per POST (500), ``--posters`` concurrent posters (4, httpx with keep-alive),
``--events`` in all (200,000; the 8,255 records repeated as needed). Measured per run: events/s
acknowledged (the posters' view: the last answer), events/s stored and searchable (the count is
polled until all are stored, then searched), until live detection has matched them all, the
server's peak RSS (the main process, and the sum over its processes), and the CPU seconds of
the server's processes (user + system, children included) — so CPU-µs per event.

``--workers 1,2`` starts the server once per value (the setting ``server.workers``, which issue
#12 adds; until it exists only 1 runs) and prints the runs side by side with their ratio.
``--profile`` attaches py-spy to the server (bench/profile_server.py) and adds the stage table.
``--ingest-port`` sets ``server.ingest_port`` and posts there: the requests are received, read and
parsed in the worker processes instead of the node's web server (norrvakt/node/ingest_port.py).

``--detection builtin,sigma,none`` runs once per mode, side by side with the ratio (the live
cost): ``builtin`` is live detection as it starts (built-in rules), ``sigma`` adds the SigmaHQ
rules of ``--sigma-rules`` (../shared/data/sigma/rules/windows) with the live-set policy opened
to every status, level and pack, so every loaded rule runs live (the count is printed), ``none``
turns detection off (``--no-detection`` is ``--detection none``).

``--enrichment on,off`` runs once per value (issue 17's cost: enrichment must cost ingest at most
10 %): ``on`` is the default ingest enrichment (Windows codes in words, country/AS of public
addresses) plus named ranges for the tenant, ``off`` sets ``[enrich] enabled = false``; with both,
``enrichment_cost`` gives the off/on ratios of the rates and CPU per event.

    .venv/bin/python bench/ingest_http.py [--events 200000] [--bulk] [--workers 1,2] [--ingest-port]
                                          [--profile] [--detection sigma,none] [--sigma-rules DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
from _common import (
    REPO,
    SHARED,
    CpuClock,
    bench_server,
    is_python_thread,
    parse_workers,
    print_columns,
    print_table,
    tree_peak_rss_mb,
    tree_rss_mb,
    workers_toml,
    write_result,
)
from profile_server import CpuCost, print_profile, profile_with_cpu, read_profile, recording

SAMPLES = SHARED / "evtx-attack-samples"
TENANT = "lulea"
GOAL = 25_000  # Windows events/s end to end on this 2-core machine (issue #12)
SIGMA_RULES = SHARED / "sigma" / "rules" / "windows"
DETECTION_MODES = ("builtin", "sigma", "none")
LIVE_COST_GOAL = 0.8  # ingest rate with every SigmaHQ Windows rule live / without detection (issue 15)
ENRICH_MODES = ("on", "off")
ENRICH_COST_GOAL = 0.9  # ingest rate with enrichment / without (issue 17): at most 10 % slower
# named ranges for the bench tenant, so the "on" run also looks up the tenant's networks
ENRICH_ON_TOML = (
    '[enrich.networks.lulea]\n"Kommunnät" = ["10.0.0.0/8", "172.16.0.0/12"]\n"VPN-pool" = ["10.8.0.0/16"]\n'
)


# -- the records and the two shapes they are sent in -------------------------------------------


def read_records() -> list[dict[str, Any]]:
    """Every record of evtx-attack-samples as the JSON object `norrvakt import` reads."""
    import evtx

    if not SAMPLES.exists():
        raise SystemExit(f"{SAMPLES} is missing: this bench needs the evtx-attack-samples records")
    out: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.rglob("*.evtx")):
        for rec in evtx.PyEvtxParser(str(path)).records_json():
            out.append(orjson.loads(rec["data"]))  # type: ignore[index]  # evtx has no types
    return out


def hec_event(rec: dict[str, Any]) -> bytes:
    computer = rec["Event"]["System"].get("Computer") or "unknown"
    return orjson.dumps({"event": rec, "host": computer, "sourcetype": "XmlWinEventLog"})


def _attrs(node: Any) -> dict[str, Any]:
    return node.get("#attributes", {}) if isinstance(node, dict) else {}


def _text(value: Any) -> str:
    """A value as Winlogbeat renders it from the event's XML: a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    if isinstance(value, dict):
        return _text(value.get("#text"))
    return str(value)


# The standard keyword bits (winmeta.xml) Winlogbeat names; other bits are channel masks.
_KEYWORDS = {
    0x0001000000000000: "Response Time",
    0x0004000000000000: "WDI Diag",
    0x0008000000000000: "SQM",
    0x0010000000000000: "Audit Failure",
    0x0020000000000000: "Audit Success",
    0x0040000000000000: "Correlation Hint",
    0x0080000000000000: "Classic",
}
_LEVELS = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information", 5: "verbose"}
_OPCODES = {0: "Info", 1: "Start", 2: "Stop"}


def _event_data(data: Any) -> dict[str, str]:
    """EventData → winlog.event_data: named values by name, unnamed ones param1, param2, …"""
    out: dict[str, str] = {}
    if not isinstance(data, dict):
        return out
    for key, value in data.items():
        if key == "#attributes":
            continue
        if key == "Data":  # unnamed <Data> elements
            texts = value.get("#text") if isinstance(value, dict) else value
            for i, v in enumerate(texts if isinstance(texts, list) else [texts], start=1):
                out[f"param{i}"] = _text(v)
        else:
            out[key] = _text(value)
    return out


def _user_data(data: dict[str, Any]) -> dict[str, Any]:
    """UserData → winlog.user_data: the element's values and its name as xml_name."""
    name, body = next(iter(data.items()))
    out: dict[str, Any] = {"xml_name": name}
    if isinstance(body, dict):
        for key, value in body.items():
            if key != "#attributes":
                out[key] = _user_data({key: value}) if isinstance(value, dict) else _text(value)
    return out


def winlogbeat_doc(rec: dict[str, Any]) -> dict[str, Any]:
    """The document Winlogbeat 8 sends to Elasticsearch for this EVTX record.

    Shape from Winlogbeat's exported fields and its collection golden files (elastic/beats
    x-pack/winlogbeat/module/*/test/testdata/collection): ``winlog.event_id`` and
    ``event.code`` as strings, ``event_data`` values as strings, ``keywords`` and ``opcode``
    by name, ``provider_guid`` in braces, ``user_data`` with ``xml_name``. Not reproduced, as
    they need the publisher's message files on Windows: the rendered ``message`` and the
    ``task`` name.
    """
    ev = rec["Event"]
    system = ev["System"]
    provider = _attrs(system.get("Provider"))
    event_id = system.get("EventID")
    if isinstance(event_id, dict):
        event_id = event_id.get("#text")
    computer = system.get("Computer") or ""
    winlog: dict[str, Any] = {
        "api": "wineventlog",
        "channel": system.get("Channel") or "",
        "computer_name": computer,
        "event_id": _text(event_id),
        "provider_name": provider.get("Name", ""),
        "record_id": system.get("EventRecordID"),
    }
    if guid := provider.get("Guid"):
        winlog["provider_guid"] = guid if guid.startswith("{") else "{" + guid + "}"
    execution = _attrs(system.get("Execution"))
    if "ProcessID" in execution:
        winlog["process"] = {"pid": execution["ProcessID"], "thread": {"id": execution.get("ThreadID")}}
    if sid := _attrs(system.get("Security")).get("UserID"):
        winlog["user"] = {"identifier": sid}
    correlation = _attrs(system.get("Correlation"))
    if correlation.get("ActivityID"):
        winlog["activity_id"] = correlation["ActivityID"]
    if correlation.get("RelatedActivityID"):
        winlog["related_activity_id"] = correlation["RelatedActivityID"]
    if system.get("Version") is not None:
        winlog["version"] = system["Version"]
    if isinstance(system.get("Opcode"), int):
        winlog["opcode"] = _OPCODES.get(system["Opcode"], str(system["Opcode"]))
    try:
        mask = int(str(system.get("Keywords", "0")), 0)
    except ValueError:
        mask = 0
    if names := [name for bit, name in _KEYWORDS.items() if mask & bit]:
        winlog["keywords"] = names
    if "EventData" in ev:
        winlog["event_data"] = _event_data(ev["EventData"])
    for key in ("UserData", "ProcessingErrorData"):
        if isinstance(ev.get(key), dict) and ev[key]:
            winlog["user_data"] = _user_data(ev[key] if key == "UserData" else {key: ev[key]})
    doc: dict[str, Any] = {
        "@timestamp": _attrs(system.get("TimeCreated")).get("SystemTime", ""),
        "agent": {"type": "winlogbeat", "version": "8.11.3", "name": computer},
        "ecs": {"version": "8.0.0"},
        "event": {"code": _text(event_id), "kind": "event", "provider": provider.get("Name", "")},
        "host": {"name": computer},
        "winlog": winlog,
    }
    if isinstance(system.get("Level"), int):
        doc["log"] = {"level": _LEVELS.get(system["Level"], str(system["Level"]))}
    return doc


_BULK_ACTION = orjson.dumps({"create": {"_index": "winlogbeat-8.11.3"}})


def bulk_lines(rec: dict[str, Any]) -> bytes:
    return _BULK_ACTION + b"\n" + orjson.dumps(winlogbeat_doc(rec)) + b"\n"


def check_shapes(records: list[dict[str, Any]], encoded: list[bytes], bulk: bool) -> int:
    """How many of the encoded records today's parsers read as Windows events (the bench is
    only worth its figures if the server parses what it is sent as a Windows event)."""
    from norrvakt.event import RawRecord
    from norrvakt.parsers import parse_record

    ok = 0
    for data in encoded:
        payload = data.split(b"\n")[1] if bulk else data
        ev = parse_record(RawRecord(TENANT, "check", 0, "127.0.0.1:0", payload, "json" if bulk else "hec"))
        # EventID, not Channel: 415 of the records (ETW providers) have no channel
        ok += ev.ecs.get("event.kind") != "pipeline_error" and "EventID" in ev.fields
    return ok


# -- sending -----------------------------------------------------------------------------------


class Posters:
    """``posters`` threads, each with its own keep-alive client, POST the batches in turn."""

    def __init__(self, url: str, token: str, encoded: list[bytes], args: argparse.Namespace) -> None:
        self.url, self.token, self.encoded, self.args = url, token, encoded, args
        self.batches = iter(range(0, args.events, args.batch))
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.retries = 0
        self.acked = 0
        self.acked_at = 0.0

    def _next(self) -> int | None:
        with self.lock:
            return next(self.batches, None)

    def _body(self, start: int) -> bytes:
        n = len(self.encoded)
        count = min(self.args.batch, self.args.events - start)
        sep = b"" if self.args.bulk else b"\n"
        return sep.join(self.encoded[(start + i) % n] for i in range(count))

    def run_one(self) -> None:
        if self.args.bulk:
            client = httpx.Client(auth=("winlogbeat", self.token), timeout=300)
            path, headers = "/_bulk", {"Content-Type": "application/x-ndjson"}
        else:
            client = httpx.Client(timeout=300)
            path, headers = "/services/collector/event", {"Authorization": f"Splunk {self.token}"}
        with client:
            while (start := self._next()) is not None:
                body = self._body(start)
                count = min(self.args.batch, self.args.events - start)
                while True:
                    t = time.monotonic()
                    resp = client.post(self.url + path, content=body, headers=headers)
                    if resp.status_code == 503:  # the journal cannot take records now: retry
                        with self.lock:
                            self.retries += 1
                        time.sleep(0.5)
                        continue
                    break
                answer = (
                    resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
                )
                good = resp.status_code == 200 and (
                    answer.get("errors") is False if self.args.bulk else answer.get("code") == 0
                )
                if not good:
                    raise SystemExit(f"POST {path} at event {start}: {resp.status_code} {resp.text[:500]}")
                with self.lock:
                    self.latencies.append(time.monotonic() - t)
                    self.acked += count
                    self.acked_at = time.monotonic()

    def start(self) -> tuple[ThreadPoolExecutor, list[Any]]:
        pool = ThreadPoolExecutor(self.args.posters, thread_name_prefix="poster")
        return pool, [pool.submit(self.run_one) for _ in range(self.args.posters)]


# -- one run -----------------------------------------------------------------------------------


def detection_toml(mode: str, sigma_rules: Path) -> str:
    """The [detection] table of a detection mode (see the module docstring)."""
    if mode == "none":
        return "[detection]\nenabled = false\n"
    if mode == "builtin":
        return ""
    if not sigma_rules.is_dir():
        raise SystemExit(f"--sigma-rules {sigma_rules}: no such folder (the SigmaHQ rules are needed)")
    from norrvakt.detect.live_policy import LEVELS, PACKS, STATUSES

    return (
        f"[detection]\nrule_dirs = [{orjson.dumps(str(sigma_rules.resolve())).decode()}]\n"
        f"live_status = {orjson.dumps(list(STATUSES)).decode()}\n"
        f'live_min_level = "{LEVELS[0]}"\n'
        f"live_packs = {orjson.dumps(list(PACKS[1:])).decode()}\n"
    )


def live_rules(srv: Any, sigma_rules: Path) -> dict[str, int]:
    """Rules live in the server (GET /api/rules), and how many of them are from ``sigma_rules``."""
    listing = srv.api("GET", "/api/rules", params={"status": "loaded"}).json()
    rows = [r for r in listing["rules"] if r["kind"] == "rule" and r.get("live", True)]
    folder = str(sigma_rules.resolve())
    return {"live_rules": len(rows), "live_sigma_rules": sum(1 for r in rows if r["path"].startswith(folder))}


def _wait_receiving(srv: Any, timeout: float = 60.0) -> None:
    """Until every worker accepts on the ingest port (the node serves it meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = srv.api("GET", "/api/stats").json()["workers"]["workers"]
        if workers and all(w["receiving"] for w in workers):
            return
        time.sleep(0.2)
    raise SystemExit(f"the workers did not take the ingest port within {timeout:.0f} s")


def run(
    workers: int,
    encoded: list[bytes],
    args: argparse.Namespace,
    detection: str = "builtin",
    enrichment: str = "on",
) -> dict[str, Any]:
    events = args.events
    server_toml = workers_toml(workers)
    ingest_port = 0
    if args.ingest_port:
        from tests.e2e.harness import free_port

        ingest_port = free_port()
        server_toml += f"ingest_port = {ingest_port}\n"
    with (
        tempfile.TemporaryDirectory(prefix="norrvakt-bench-") as tmp,
        bench_server(
            Path(tmp),
            server_toml=server_toml,
            extra_toml=detection_toml(detection, Path(args.sigma_rules))
            + (ENRICH_ON_TOML if enrichment == "on" else "[enrich]\nenabled = false\n"),
        ) as srv,
    ):
        rules = live_rules(srv, Path(args.sigma_rules)) if detection != "none" else {"live_rules": 0}
        print(f"detection {detection}: {rules}", flush=True)
        assert srv.proc is not None
        pid = srv.proc.pid
        url = srv.url
        if ingest_port:
            url = f"http://127.0.0.1:{ingest_port}"
            _wait_receiving(srv)
        token = srv.ingest_token(TENANT, "bench-winlogbeat" if args.bulk else "bench-hec")
        profile_path = Path(args.profile_dir) / f"profile-{args.name}-w{workers}-{detection}.txt"
        with ExitStack() as stack:
            if args.profile:
                stack.enter_context(recording(pid, profile_path, rate=args.profile_rate))
            posters = Posters(url, token, encoded, args)
            clock = CpuClock(pid)
            start = time.monotonic()
            pool, futures = posters.start()
            stored_at = detected_at = None
            rss_sum_peak = 0.0
            stats: dict[str, Any] = {}
            while True:
                time.sleep(0.25)
                for f in futures:
                    if f.done() and f.exception() is not None:
                        raise SystemExit(f"a poster failed: {f.exception()}")
                rss_sum_peak = max(rss_sum_peak, tree_rss_mb(pid))
                stats = srv.api("GET", "/api/stats").json()
                tenant = stats["tenants"].get(TENANT, {"journaled": 0, "stored": 0})
                if stored_at is None and tenant["stored"] >= events:
                    stored_at = time.monotonic()
                if stored_at is not None and stats.get("detection", {}).get("backlog", 0) == 0:
                    detected_at = time.monotonic()
                    break
                if time.monotonic() - start > args.timeout:
                    raise SystemExit(f"timed out after {args.timeout} s: {tenant}, {stats.get('detection')}")
            cpu_server, cpu_client, by_thread = clock.server(), clock.client(), clock.threads()
            pool.shutdown()
        searchable = srv.count("")
        peaks = tree_peak_rss_mb(pid)
        errors = stats["pipeline"]["pipeline_errors"]
        received_in_workers = sum(int(w.get("received_events", 0)) for w in stats["workers"]["workers"])
    acked_s = posters.acked_at - start
    stored_s = stored_at - start
    detected_s = detected_at - start
    lat = sorted(posters.latencies)
    chdb_s = sum(v for k, v in by_thread.items() if not is_python_thread(k))
    result: dict[str, Any] = {
        "workers": workers,
        "workers_setting": server_toml.strip() or "(absent: one process)",
        "posted_to": "server.ingest_port (received in the workers)"
        if ingest_port
        else "server.port (the node)",
        "events_received_in_workers": received_in_workers,
        "events": events,
        "sent": "Elasticsearch _bulk, Winlogbeat 8 documents" if args.bulk else "Splunk HEC JSON",
        "batch": args.batch,
        "posters": args.posters,
        "fsync": True,
        "detection": detection,
        "enrichment": enrichment,
        **rules,
        "seconds_to_acknowledged": round(acked_s, 2),
        "events_per_s_acknowledged": round(events / acked_s),
        "seconds_to_stored": round(stored_s, 2),
        "events_per_s_stored": round(events / stored_s),
        "seconds_to_detected": round(detected_s, 2),
        "events_per_s_detected": round(events / detected_s),
        "post_latency_ms_p50": round(1000 * statistics.median(lat), 1),
        "post_latency_ms_p99": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1),
        "retries_503": posters.retries,
        "detection_backlog_reported": "detection" in stats,
        "searchable_count": searchable,
        "pipeline_errors": errors,
        "server_cpu_s": round(cpu_server, 2),
        "server_cpu_s_chdb_threads": round(chdb_s, 2),
        "server_cpu_s_by_thread_name": {k: round(v, 2) for k, v in list(by_thread.items())[:10]},
        "server_cpu_us_per_event": round(cpu_server / events * 1e6, 1),
        "server_cores_busy": round(cpu_server / detected_s, 2),
        "bench_client_cpu_s": round(cpu_client, 2),
        "server_processes": len(peaks),
        "server_peak_rss_mb": round(peaks.get(pid, 0.0), 1),
        "server_peak_rss_mb_sum_of_processes": round(sum(peaks.values()), 1),
        "server_rss_mb_sampled_peak_sum": round(rss_sum_peak, 1),
        "goal_events_per_s": GOAL,
    }
    if args.profile:
        prof = read_profile(profile_path)
        cost = CpuCost(cpu_server, chdb_s, events)
        print_profile(prof, cost)
        result["profile"] = {"file": str(profile_path), **profile_with_cpu(prof, cost)}
        result["profile_note"] = (
            "py-spy sampled the server during this run (non-blocking; its own CPU is not counted "
            "as the server's, but it shares the cores)"
        )
    if searchable != events:
        raise SystemExit(f"count mismatch: {searchable} searchable, {events} sent ({result})")
    return result


_COMPARED = (
    "events_per_s_acknowledged",
    "events_per_s_stored",
    "events_per_s_detected",
    "server_cpu_us_per_event",
    "server_cores_busy",
    "server_peak_rss_mb_sum_of_processes",
    "post_latency_ms_p99",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500, help="records per POST")
    ap.add_argument("--posters", type=int, default=4, help="concurrent posters")
    ap.add_argument("--bulk", action="store_true", help="_bulk with Winlogbeat 8 documents instead of HEC")
    ap.add_argument("--workers", default="1", help="comma-separated server.workers values, e.g. 1,2")
    ap.add_argument(
        "--ingest-port", action="store_true", help="post to server.ingest_port (received in the workers)"
    )
    ap.add_argument("--profile", action="store_true", help="py-spy the server (bench/profile_server.py)")
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    ap.add_argument("--profile-dir", default=tempfile.gettempdir(), help="where py-spy's raw file goes")
    ap.add_argument(
        "--detection",
        default="builtin",
        help="comma-separated modes run side by side: builtin, sigma (every SigmaHQ rule live), none",
    )
    ap.add_argument("--no-detection", action="store_true", help="the same as --detection none")
    ap.add_argument("--sigma-rules", default=str(SIGMA_RULES), help="SigmaHQ rules for --detection sigma")
    ap.add_argument("--enrichment", default="on", help="comma-separated on,off: one run each (issue 17)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    args.name = args.name or ("ingest-http-bulk" if args.bulk else "ingest-http") + (
        "-port" if args.ingest_port else ""
    )
    workers = parse_workers(args.workers)
    modes = ["none"] if args.no_detection else [m.strip() for m in args.detection.split(",") if m.strip()]
    if not modes or any(m not in DETECTION_MODES for m in modes):
        raise SystemExit(f"--detection {args.detection!r}: comma-separated {', '.join(DETECTION_MODES)}")
    enrich_modes = [m.strip() for m in args.enrichment.split(",") if m.strip()]
    if not enrich_modes or any(m not in ENRICH_MODES for m in enrich_modes):
        raise SystemExit(f"--enrichment {args.enrichment!r}: comma-separated {', '.join(ENRICH_MODES)}")
    for w in workers:
        workers_toml(w)  # refuse a value this code cannot run before anything starts
    records = read_records()
    encoded = [bulk_lines(r) if args.bulk else hec_event(r) for r in records]
    recognised = check_shapes(records, encoded, args.bulk)
    print(f"{len(records)} records read; {recognised} parse as Windows events here")
    runs = [run(w, encoded, args, mode, e) for w in workers for mode in modes for e in enrich_modes]
    result: dict[str, Any] = {
        "records": len(records),
        "records_parsed_as_windows": recognised,
        **({"runs": runs} if len(runs) > 1 else runs[0]),
    }
    if len(runs) > 1:
        base = runs[0]
        result["ratios_to_first"] = {
            _label(r, modes, enrich_modes): {k: round(r[k] / base[k], 2) for k in _COMPARED if base[k]}
            for r in runs
        }
        cost = live_cost(runs)
        if cost is not None:
            result["live_cost"] = cost
        enriched = enrichment_cost(runs)
        if enriched is not None:
            result["enrichment_cost"] = enriched
    path = write_result(args.name, result)
    if len(runs) == 1:
        pairs = [(k, _show(v)) for k, v in runs[0].items() if k != "profile"]
        print_table(f"{args.name} ({path.relative_to(REPO)})", pairs)
    else:
        headers = ["measure", *[_label(r, modes, enrich_modes) for r in runs], "ratio last/first"]
        rows = [
            [k, *[_show(r[k]) for r in runs], f"{runs[-1][k] / runs[0][k]:.2f}" if runs[0][k] else "-"]
            for k in _COMPARED
        ]
        rows.append(["live_rules", *[str(r["live_rules"]) for r in runs], "-"])
        print_columns(f"{args.name} ({path.relative_to(REPO)})", headers, rows)
        if "live_cost" in result:
            c = result["live_cost"]
            print(
                f"live cost: {c['live_sigma_rules']} SigmaHQ rules live ({c['live_rules']} in all): "
                f"{c['ratio_stored']:.2f}x the stored rate and {c['ratio_detected']:.2f}x the detected "
                f"rate without detection (goal >= {LIVE_COST_GOAL})"
            )
        if "enrichment_cost" in result:
            c = result["enrichment_cost"]
            print(
                f"enrichment cost: with enrichment {c['ratio_acknowledged']:.3f}x the acknowledged, "
                f"{c['ratio_stored']:.3f}x the stored rate and {c['ratio_cpu_per_event']:.3f}x the CPU per "
                f"event of the run without (goal: rates >= {ENRICH_COST_GOAL})"
            )


def _label(run: dict[str, Any], modes: list[str], enrich_modes: list[str] | None = None) -> str:
    label = f"workers={run['workers']}" + (f" detection={run['detection']}" if len(modes) > 1 else "")
    return label + (f" enrichment={run['enrichment']}" if enrich_modes and len(enrich_modes) > 1 else "")


def enrichment_cost(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Enrichment on against off, at the same workers and detection (issue 17's cost)."""
    for on in (r for r in runs if r["enrichment"] == "on"):
        off = next(
            (r for r in runs if r["enrichment"] == "off" and r["workers"] == on["workers"]
             and r["detection"] == on["detection"]),
            None,
        )  # fmt: skip
        if off is None:
            continue
        return {
            "workers": on["workers"],
            "detection": on["detection"],
            "ratio_acknowledged": round(
                on["events_per_s_acknowledged"] / off["events_per_s_acknowledged"], 3
            ),
            "ratio_stored": round(on["events_per_s_stored"] / off["events_per_s_stored"], 3),
            "ratio_detected": round(on["events_per_s_detected"] / off["events_per_s_detected"], 3),
            "ratio_cpu_per_event": round(on["server_cpu_us_per_event"] / off["server_cpu_us_per_event"], 3),
            "goal": ENRICH_COST_GOAL,
        }
    return None


def live_cost(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Every SigmaHQ rule live against no detection, at the same workers (issue 15's live cost)."""
    for sigma in (r for r in runs if r["detection"] == "sigma"):
        none = next((r for r in runs if r["detection"] == "none" and r["workers"] == sigma["workers"]), None)
        if none is None:
            continue
        return {
            "workers": sigma["workers"],
            "live_rules": sigma["live_rules"],
            "live_sigma_rules": sigma["live_sigma_rules"],
            "ratio_acknowledged": round(
                sigma["events_per_s_acknowledged"] / none["events_per_s_acknowledged"], 3
            ),
            "ratio_stored": round(sigma["events_per_s_stored"] / none["events_per_s_stored"], 3),
            "ratio_detected": round(sigma["events_per_s_detected"] / none["events_per_s_detected"], 3),
            "goal": LIVE_COST_GOAL,
        }
    return None


def _show(value: Any) -> str:
    return orjson.dumps(value).decode() if isinstance(value, dict) else str(value)


if __name__ == "__main__":
    main()
