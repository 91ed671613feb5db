"""Shared helpers for the benchmarks: results as JSON plus a printed table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"
SHARED = REPO.parent / "shared" / "data"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "commit": _commit(),
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
    }


def _commit() -> str:
    """The commit measured, with "+changes" when the tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "norrvakt"], cwd=REPO, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+changes" if dirty.stdout.strip() else "")


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2, ensure_ascii=False))
    return path


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a running process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the server's processes (the node will soon run worker processes) ---------------------------


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (found through the parent ids in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every descendant: the live ones' own time plus
    what each has collected from children it reaped (cutime/cstime), so a worker that exited
    is still counted."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        # fields 14-17 of stat(5): utime stime cutime cstime; f[0] is field 3 (state)
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / tick


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` and its descendants now, summed (an upper bound: pages a
    forked worker shares with its parent are counted in both)."""
    return sum(_status_kb(p, "VmRSS:") for p in process_tree(pid)) / 1024


def tree_peak_rss_mb(pid: int) -> dict[int, float]:
    """Peak RSS (VmHWM) of ``pid`` and of each live descendant, in MB, by pid."""
    return {p: _status_kb(p, "VmHWM:") / 1024 for p in process_tree(pid)}


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of the live threads of ``pid`` and its descendants, by thread name. Python
    threads keep the process's name ("python"); chDB's own threads are named by ClickHouse
    (e.g. "QueryPipelineEx", "MergeMutate"), and py-spy cannot see them."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for p in process_tree(pid):
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                name = (task / "comm").read_text().strip()
                stat = (task / "stat").read_text()
            except OSError:
                continue
            f = stat[stat.rindex(")") + 2 :].split()
            out[name] = out.get(name, 0.0) + (int(f[11]) + int(f[12])) / tick
    return out


def is_python_thread(name: str) -> bool:
    return name.startswith("python")


class CpuClock:
    """The server's CPU seconds (all its processes) and the bench's own, from a start mark;
    also by thread name, to tell Python threads (which py-spy samples) from chDB's."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.server0 = cpu_seconds(pid)
        self.threads0 = thread_cpu_seconds(pid)
        self.client0 = _own_cpu()

    def server(self) -> float:
        return cpu_seconds(self.pid) - self.server0

    def threads(self) -> dict[str, float]:
        """CPU seconds since the mark by thread name (live threads only: a thread that ended
        meanwhile is missing here, though counted in server())."""
        now = thread_cpu_seconds(self.pid)
        return {k: v - self.threads0.get(k, 0.0) for k, v in sorted(now.items(), key=lambda kv: -kv[1])}

    def client(self) -> float:
        return _own_cpu() - self.client0


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


# -- a server with settings of its own [server] table -------------------------------------------


def server_setting_exists(name: str) -> bool:
    """Whether this code knows the setting ``name`` (e.g. "server.workers"), as the settings
    reference `norrvakt config defaults` prints it."""
    out = subprocess.run(
        [sys.executable, "-m", "norrvakt.cli", "config", "defaults", "--format", "markdown"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return f"| `{name}` |" in out.stdout


def parse_workers(text: str) -> list[int]:
    """``--workers 1,2`` → [1, 2]."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--workers: {text!r} is not a comma-separated list of numbers") from None
    if not values or any(v < 1 for v in values):
        raise SystemExit(f"--workers: {text!r}: each value must be at least 1")
    return values


def workers_toml(workers: int) -> str:
    """The [server] line for ``--workers N``. Until `server.workers` exists (issue #12 adds it)
    the node is one process: 1 runs it as it is, another value is refused here."""
    if server_setting_exists("server.workers"):
        return f"workers = {workers}\n"
    if workers == 1:
        return ""
    raise SystemExit(
        f"--workers {workers}: this code has no setting server.workers yet (issue #12 adds it); "
        "only --workers 1 (today's single process) can run"
    )


@contextmanager
def bench_server(tmp: Path, *, extra_toml: str = "", server_toml: str = "") -> Iterator[Any]:
    """tests/e2e/harness.py's running_server, with ``server_toml`` added to its [server] table
    (the harness writes that table itself, so extra_toml cannot add keys to it). A harness
    whose Server takes ``server_toml`` writes it; an older one gets it added here."""
    from tests.e2e.harness import Server, free_ports

    server_cls: type[Any] = Server
    if not any(f.name == "server_toml" for f in fields(Server)):

        @dataclass
        class BenchServer(Server):  # type: ignore[misc]
            server_toml: str = ""

            def write_config(self) -> Path:
                cfg: Path = super().write_config()
                text = cfg.read_text()
                cfg.write_text(text.replace("[server]\n", f"[server]\n{self.server_toml}", 1))
                return cfg

        server_cls = BenchServer
    u, t, s, r, h = free_ports(5)
    server = server_cls(
        tmp / "data",
        h,
        {"udp": u, "tcp": t, "tls": s, "relp": r},
        extra_toml=extra_toml,
        server_toml=server_toml,
    )
    server.data_dir.mkdir(parents=True, exist_ok=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def print_columns(title: str, headers: list[str], rows: list[list[str]]) -> None:
    """A table with several value columns (e.g. one per --workers value)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
