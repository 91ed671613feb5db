"""Where a running `norrvakt serve` spends its CPU: py-spy samples grouped into ingest stages.

py-spy (``pip install py-spy`` into .venv) samples the server process and its children
(``--subprocesses``: the node's worker processes) without changing them. Only samples of
threads that are running count (py-spy leaves out idle ones unless ``--idle``), so a stage's
share of the samples is close to its share of the node's CPU time.

Each sample is given to a stage by its innermost frame that says which stage it is (a frame of
``re``, ``logging`` or ``canonical_bytes`` says nothing by itself: it takes the stage of what
called it). The stages are those of issue #12's profile:

    receive                    norrvakt/sources/*, uvicorn, starlette/fastapi, h11, httptools, socket reads
    JSON decode                json's decoder, norrvakt/sources/http_json.py, the parsers' JSON loads
    mapped-source recognition  norrvakt/parsers/mapped*.py
    parse                      the other parsers, Pipeline.parse
    journal                    norrvakt/journal/*, Pipeline.commit*, integrity
    store insert               norrvakt/store/*, the indexer
    detection                  norrvakt/detect/*, norrvakt/alerts/*, alerts and cases in the state DB
    hand-off                   between the node's processes: norrvakt/node/ wire, *pool*, *worker*, msgpack
    other                      the event loop itself (asyncio, selectors), the web API, the rest

Attach to any running server (e.g. the one `make run` starts), or use a bench's ``--profile``:

    .venv/bin/python bench/profile_server.py record --pid PID --duration 15 [--out FILE]
    .venv/bin/python bench/profile_server.py summarise FILE      # raw or speedscope output
    .venv/bin/python bench/ingest_http.py --events 50000 --profile
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = (
    "receive",
    "JSON decode",
    "mapped-source recognition",
    "parse",
    "journal",
    "store insert",
    "detection",
    "hand-off",
    "other",
)

# py-spy's raw format: one line per distinct stack, frames root first, joined with ";", then
# the sample count. A frame is "function (file:line)"; with --subprocesses the stack starts
# with 'process PID:"command line"' frames.
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_PROCESS = re.compile(r'^process (?P<pid>\d+):"(?P<cmd>.*)"$')
_SPEEDSCOPE_PROCESS = re.compile(r"^Process (?P<pid>\d+) ")

_RECEIVE_LIBS = ("uvicorn/", "starlette/", "fastapi/", "h11/", "httptools/", "anyio/")
_HAND_OFF = ("wire", "pool", "worker")
_JSON_FUNC = re.compile(r"(^|[._])(loads?|load_json\w*|decode\w*|split_json\w*)$")


def frame_stage(func: str, file: str) -> str | None:
    """The stage a frame says it belongs to, or None when it belongs to its caller's."""
    f = file.replace("\\", "/")
    if f.startswith("json/"):
        return "JSON decode" if "decoder" in f or func in {"loads", "load"} else None
    if "norrvakt/" not in f:
        if f.startswith("msgpack/"):
            return "hand-off"
        if f.startswith("asyncio/selector_events") and "_read_ready" in func:
            return "receive"  # bytes read off a socket by the event loop
        return "receive" if f.startswith(_RECEIVE_LIBS) else None
    f = f[f.index("norrvakt/") :]
    if f.startswith("norrvakt/sources/http_json"):
        return "JSON decode"
    if f.startswith("norrvakt/parsers/mapped"):
        return "mapped-source recognition"
    if f.startswith("norrvakt/parsers/"):
        return "JSON decode" if _JSON_FUNC.search(func) else "parse"
    if f.startswith("norrvakt/sources/"):
        return "receive"
    if f.endswith("/pipeline.py"):
        if "parse" in func or "submit" in func:
            return "parse"
        return "journal" if "commit" in func or "refuse" in func else None
    if f.startswith(("norrvakt/journal/", "norrvakt/integrity")):
        return "journal"
    if f.startswith("norrvakt/node/") and any(w in f[len("norrvakt/node/") :] for w in _HAND_OFF):
        return "hand-off"  # records and events passed between the node's processes
    if f.startswith("norrvakt/store/") or f.endswith("/indexer.py"):
        return "store insert"
    if f.startswith(
        ("norrvakt/detect/", "norrvakt/alerts/", "norrvakt/state/alerts", "norrvakt/state/cases")
    ):
        return "detection"
    if f.startswith("norrvakt/web/api/"):
        return "other"  # the API (e.g. a bench polling /api/stats), not ingest
    if f == "norrvakt/event.py" or f.startswith(
        ("norrvakt/web/", "norrvakt/cli/", "norrvakt/state/accounts")
    ):
        # canonical bytes and Event helpers, the HTTP middleware, the event loop's caller,
        # token look-ups: the stage of what calls them
        return None
    return "other"


def waiting(func: str, file: str) -> bool:
    """A thread blocked in a C wait, seen as running: py-spy's blocking mode (it stops the
    process to sample) now and then misses that a thread is idle; --nonblocking does not."""
    if file.startswith("selectors.py"):
        return func.endswith("select")
    if file.startswith("threading.py"):
        return func.endswith("wait")
    return func == "_worker" and file.startswith("concurrent/futures/thread.py")


def stack_stage(frames: list[tuple[str, str]]) -> str:
    """The stage of one sample; ``frames`` innermost first, as (function, file)."""
    for func, file in frames:
        stage = frame_stage(func, file)
        if stage is not None:
            return stage
    return "other"


@dataclass
class Profile:
    """Samples by stage, by innermost function and by process."""

    samples: int = 0
    waiting: int = 0  # samples of threads blocked in a wait (see waiting()), not counted
    stages: Counter[str] = field(default_factory=Counter)
    leaves: Counter[tuple[str, str]] = field(default_factory=Counter)  # (function (file), stage)
    ours: Counter[tuple[str, str]] = field(default_factory=Counter)  # innermost norrvakt frame
    processes: Counter[str] = field(default_factory=Counter)

    def add(self, process: str, frames_root_first: list[str], count: int) -> None:
        parsed: list[tuple[str, str]] = []
        for raw in reversed(frames_root_first):
            m = _FRAME.match(raw)
            parsed.append((m["func"], m["file"]) if m else (raw, ""))
        if not parsed:
            return
        if waiting(*parsed[0]):
            self.waiting += count
            return
        stage = stack_stage(parsed)
        self.samples += count
        self.stages[stage] += count
        func, file = parsed[0]
        self.leaves[(f"{func} ({file})" if file else func, stage)] += count
        mine = next((f"{fn} ({fl[fl.index('norrvakt/') :]})" for fn, fl in parsed if "norrvakt/" in fl), "-")
        self.ours[(mine, stage)] += count
        self.processes[process] += count

    def share(self, stage: str) -> float:
        return self.stages[stage] / self.samples if self.samples else 0.0

    def as_dict(self, top: int = 15) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "waiting_samples_left_out": self.waiting,
            "stages_pct": {s: round(100 * self.share(s), 1) for s in STAGES},
            "top_frames": [
                {"frame": f, "stage": s, "pct": round(100 * n / self.samples, 1)}
                for (f, s), n in self.leaves.most_common(top)
            ],
            "top_norrvakt_frames": [
                {"frame": f, "stage": s, "pct": round(100 * n / self.samples, 1)}
                for (f, s), n in self.ours.most_common(top)
            ],
            "processes": dict(self.processes),
        }


def read_profile(path: Path) -> Profile:
    """A py-spy output file, raw (flamegraph) or speedscope JSON."""
    text = path.read_text(errors="replace")
    prof = Profile()
    if text.lstrip().startswith("{"):
        doc = json.loads(text)
        frames = doc["shared"]["frames"]
        names = [f"{f['name']} ({f.get('file') or ''}:{f.get('line') or 0})" for f in frames]
        for p in doc["profiles"]:
            m = _SPEEDSCOPE_PROCESS.match(p.get("name", ""))
            process = m["pid"] if m else "?"
            for sample in p["samples"]:  # weights are seconds (1/rate each): count samples
                prof.add(process, [_short(names[i]) for i in sample], 1)
        return prof
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        process = "?"
        while frames and (m := _PROCESS.match(frames[0])):
            process = _process_name(m["pid"], m["cmd"])  # the innermost one is the one sampled
            frames = frames[1:]
        frames = [f for f in frames if not f.startswith("thread (")]
        prof.add(process, frames, int(count))
    return prof


def _process_name(pid: str, cmd: str) -> str:
    """'PID module' for ``python -m module …`` (the server, its workers), else PID and the
    command line's end."""
    words = cmd.split()
    if "-m" in words[:-1]:
        module = words[words.index("-m") + 1]
        return f"{pid} {module}" + (" serve" if "serve" in words else "")
    return f"{pid} {cmd[-50:]}"


def _short(name: str) -> str:
    """Speedscope frames carry full paths; keep from the package or library folder on, as the
    raw format does."""
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in name:
            head, _, tail = name.partition(marker)
            if marker == "/lib/python3.":
                tail = tail.split("/", 1)[1] if "/" in tail else tail
            return head[: head.rfind("(") + 1] + tail
    if "/norrvakt/" in name:
        head, _, tail = name.partition("/norrvakt/")
        return head[: head.rfind("(") + 1] + "norrvakt/" + tail
    return name


def py_spy() -> str:
    exe = Path(sys.executable).parent / "py-spy"
    found = str(exe) if exe.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy is missing: .venv/bin/python -m pip install py-spy")
    return found


@contextmanager
def recording(
    pid: int,
    out: Path,
    *,
    rate: int = 100,
    fmt: str = "raw",
    idle: bool = False,
    blocking: bool = False,
) -> Iterator[Path]:
    """py-spy records ``pid`` and its children while the block runs; the file is complete
    when the block ends (py-spy writes it on SIGINT). Non-blocking by default: py-spy reads
    the process's memory without stopping it, so the server runs at its own speed and idle
    threads are recognised as idle (a stack read mid-change is rare and only adds noise)."""
    cmd = [py_spy(), "record", "--pid", str(pid), "--subprocesses", "--rate", str(rate)]
    cmd += ["--format", fmt, "--output", str(out)]
    if idle:
        cmd.append("--idle")
    if not blocking:
        cmd.append("--nonblocking")
    log = out.with_suffix(out.suffix + ".log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT)
    time.sleep(0.5)  # attached before the work starts
    if proc.poll() is not None:
        raise SystemExit(f"py-spy did not start: {log.read_text(errors='replace')[-2000:]}")
    try:
        yield out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not out.exists():
        raise SystemExit(f"py-spy wrote no profile: {log.read_text(errors='replace')[-2000:]}")


UNSAMPLED = "store: chDB's own threads"


@dataclass(frozen=True)
class CpuCost:
    """What the node's processes used while the profile ran: ``total_s`` CPU seconds, of which
    ``unsampled_s`` in threads py-spy cannot see (chDB's native ones), for ``events``."""

    total_s: float
    unsampled_s: float
    events: int

    def us_per_event(self, prof: Profile, stage: str) -> float:
        """A stage's CPU-µs per event: its share of the samples times the sampled threads' CPU."""
        if stage == UNSAMPLED:
            return self.unsampled_s / self.events * 1e6
        return (self.total_s - self.unsampled_s) * prof.share(stage) / self.events * 1e6


def stage_rows(prof: Profile, cost: CpuCost | None = None) -> list[list[str]]:
    """Rows of the stage table; with the CPU cost, each stage's CPU-µs per event too."""
    rows = []
    for s in STAGES:
        row = [s, str(prof.stages[s]), f"{100 * prof.share(s):.1f}"]
        if cost is not None:
            row.append(f"{cost.us_per_event(prof, s):.1f}")
        rows.append(row)
    if cost is not None:
        rows.append([UNSAMPLED, "-", "-", f"{cost.us_per_event(prof, UNSAMPLED):.1f}"])
    total = ["total", str(prof.samples), "100.0"]
    if cost is not None:
        total.append(f"{cost.total_s / cost.events * 1e6:.1f}")
    return [*rows, total]


def print_profile(
    prof: Profile, cost: CpuCost | None = None, top: int = 15, stage: str | None = None
) -> None:
    """The stage table, then the top innermost frames and the top Norrvakt frames (the
    innermost frame of ours on each stack: which of our functions, with what they call);
    ``stage`` limits those two to one stage."""
    from _common import print_columns

    if not prof.samples:
        print("the profile holds no samples (was the server busy while py-spy ran?)")
        return
    headers = ["stage", "samples", "% of samples"]
    if cost is not None:
        headers.append("CPU-µs/event")
    title = f"server CPU by stage (py-spy; {prof.waiting} samples of waiting threads left out)"
    print_columns(title, headers, stage_rows(prof, cost))
    for what, counter in (("innermost frames", prof.leaves), ("Norrvakt frames", prof.ours)):
        rows = [(f, s, n) for (f, s), n in counter.most_common() if stage is None or s == stage][:top]
        print_columns(
            f"top {top} {what}" + (f" of {stage}" if stage else ""),
            ["frame", "stage", "%"],
            [[f, s, f"{100 * n / prof.samples:.1f}"] for f, s, n in rows],
        )
    if len(prof.processes) > 1:
        print_columns(
            "samples by process",
            ["process", "samples", "%"],
            [[p, str(n), f"{100 * n / prof.samples:.1f}"] for p, n in prof.processes.most_common()],
        )


def profile_with_cpu(prof: Profile, cost: CpuCost) -> dict[str, Any]:
    """The profile for a bench's JSON result, with CPU-µs per event by stage."""
    doc = prof.as_dict()
    doc["cpu_us_per_event"] = {s: round(cost.us_per_event(prof, s), 1) for s in (*STAGES, UNSAMPLED)}
    return doc


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="sample a running server (and its children)")
    rec.add_argument("--pid", type=int, required=True)
    rec.add_argument("--duration", type=float, default=15.0, help="seconds (default 15)")
    rec.add_argument("--rate", type=int, default=100, help="samples per second (default 100)")
    rec.add_argument("--format", choices=["raw", "speedscope"], default="raw")
    rec.add_argument("--idle", action="store_true", help="also count idle threads")
    rec.add_argument("--blocking", action="store_true", help="stop the process for each sample")
    rec.add_argument("--out", type=Path, default=Path("/tmp/norrvakt-profile.txt"))
    summ = sub.add_parser("summarise", help="the stage table of a py-spy raw or speedscope file")
    summ.add_argument("file", type=Path)
    summ.add_argument("--top", type=int, default=15)
    summ.add_argument("--stage", choices=STAGES, help="top frames of this stage only")
    args = ap.parse_args()
    if args.command == "record":
        with recording(
            args.pid, args.out, rate=args.rate, fmt=args.format, idle=args.idle, blocking=args.blocking
        ):
            time.sleep(args.duration)
        print(f"profile: {args.out}")
        print_profile(read_profile(args.out))
    else:
        print_profile(read_profile(args.file), top=args.top, stage=args.stage)


if __name__ == "__main__":
    main()
