"""``norrvakt hunt`` and ``norrvakt rules check``: thin click commands over the detection library.

Registered in :mod:`norrvakt.cli` with one line each; usable on their own for tests::

    python -c "from norrvakt.detect.cli import hunt; hunt()" --rules rules/ samples/
"""

from __future__ import annotations

import codecs
import csv
import os
import sys
from pathlib import Path
from typing import IO, Any, cast

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from norrvakt.csv_safe import safe_row
from norrvakt.detect.detection import DetectionEngine
from norrvakt.detect.hunt import LEVELS, Detection, HuntSummary, find_hunt_files, iso_time, rule_dict
from norrvakt.detect.hunt import hunt as run_hunt
from norrvakt.detect.hunt_pool import HuntWorkerError, default_workers
from norrvakt.detect.ir import RuleInfo
from norrvakt.detect.loader import RulesError
from norrvakt.detect.logsource import PipelineError, load_pipeline
from norrvakt.detect.report import LoadReport
from norrvakt.event import Event

_LEVEL_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
_CSV_COLUMNS = (
    "timestamp",
    "level",
    "rule_id",
    "rule_title",
    "tags",
    "file",
    "event_record_id",
    "computer",
    "channel",
    "event_id",
    "fields",
)


def _console(stderr: bool = False) -> Console:
    """Messages carry paths: never wrap them; tables get room when output is not a terminal."""
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, soft_wrap=True, width=200)
    return console


def _load(
    paths: tuple[Path, ...],
    pipeline_path: Path | None,
    cache: Path | None,
    no_cache: bool,
    err: Console,
    *,
    builtin: bool = False,
    intel: Path | None = None,
) -> tuple[DetectionEngine, LoadReport]:
    if not paths and not builtin:
        err.print("[red]no rules: give --rules PATH and/or --builtin[/red]")
        sys.exit(2)
    try:
        pipeline = load_pipeline(pipeline_path)
        return DetectionEngine.load(
            list(paths),
            builtin=builtin,
            pipeline=pipeline,
            cache_dir=cache,
            use_cache=not no_cache,
            intel_dir=intel,
        )
    except (RulesError, PipelineError) as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(2)


_rules_option = click.option(
    "--rules",
    "-r",
    "rule_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Sigma rule file or directory (*.yml, recursively); repeatable.",
)
_builtin_option = click.option(
    "--builtin", is_flag=True, help="Also the built-in rules (norrvakt/detect/rules, docs/rules.md)."
)
_intel_option = click.option(
    "--intel",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory of threat intel lists (*.csv, STIX 2.1 / MISP *.json) to match too.",
)
_pipeline_option = click.option(
    "--pipeline",
    "pipeline_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Log source mapping (YAML); default: the built-in Windows mapping.",
)
_cache_option = click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for compiled rule sets (default: $XDG_CACHE_HOME/norrvakt or ~/.cache/norrvakt).",
)
_no_cache_option = click.option("--no-cache", is_flag=True, help="Compile the rules afresh; write no cache.")


@click.command()
@_rules_option
@_builtin_option
@_intel_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="json: one object per detection per line; csv: one row per detection.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write detections here."
)
@click.option(
    "--min-level", type=click.Choice([lv for lv in LEVELS if lv]), help="Report only this level and up."
)
@_pipeline_option
@_cache_option
@_no_cache_option
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option(
    "--workers",
    "-j",
    type=click.IntRange(min=1),
    help="Processes that read, parse and match (whole files, or pieces of a big one); "
    "default: one per core. 1: all in this process. The output is the same either way.",
)
def hunt(
    rule_paths: tuple[Path, ...],
    builtin: bool,
    intel: Path | None,
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    min_level: str | None,
    pipeline_path: Path | None,
    cache: Path | None,
    no_cache: bool,
    no_progress: bool,
    workers: int | None,
) -> None:
    """Run Sigma rules over EVTX / JSONL files (PATHS: files or directories), without a server.

    The same engine as `norrvakt serve`: rules, correlation rules and (with --intel) threat
    intel. Detections go to stdout (or --output); the load report, progress and the summary by
    rule and level go to stderr. Files (or pieces of a big file) are read and matched by
    --workers processes; detections come out in file order, as with --workers 1.
    """
    err = _console(stderr=True)
    engine, report = _load(rule_paths, pipeline_path, cache, no_cache, err, builtin=builtin, intel=intel)
    _print_load(report, err)
    files = find_hunt_files(list(paths))
    sink: IO[str] = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
    writer = _writer(fmt, sink)
    total = sum(max(p.stat().st_size, 1) for p in files)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[hits]} detections"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=no_progress or not err.is_terminal,
    )
    bar = _Bar(progress, progress.add_task("hunting", total=total, hits=0))

    def on_detection(d: Detection) -> None:
        bar.hits += 1
        writer(d)

    try:
        try:
            summary = run_hunt(
                engine, list(paths), on_detection, bar, min_level or "", workers or default_workers()
            )
        finally:
            progress.stop()
        writer.close()
    except HuntWorkerError as exc:
        err.print(str(exc), style="red", markup=False)
        sys.exit(1)
    finally:
        if output:
            sink.close()
    count = len(engine.rules) + len(engine.rules.correlations)
    _print_summary(summary, count, err if fmt != "table" or output else _console())


class _Bar:
    """Progress over all files by bytes; within a file by the reader's own progress fraction.

    The display (and its refresh thread) starts on the first update: the hunt forks its worker
    processes before that, and a fork must not copy a thread that may hold a lock."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress, self.task = progress, task
        self.base = 0  # bytes of the files already done
        self.path: Path | None = None
        self.size = 0
        self.hits = 0

    def __call__(self, path: Path, fraction: float) -> None:
        if not self.progress.live.is_started:
            self.progress.start()
        if path != self.path:
            self.base += self.size
            self.path, self.size = path, max(path.stat().st_size, 1)
        done = self.base + int(self.size * fraction)
        self.progress.update(self.task, completed=done, description=path.name[:40], hits=self.hits)


def _writer(fmt: str, sink: IO[str]) -> Any:
    if fmt == "json":
        return _JsonWriter(sink)
    if fmt == "csv":
        return _CsvWriter(sink)
    return _TableWriter(sink)


class _JsonWriter:
    """``orjson.dumps(d.to_dict())`` and a newline per detection, the same bytes for less work:
    a rule's object is serialized once, an event's fields once for all the rules it met in a
    row, and the bytes go to the UTF-8 stream under ``sink`` without a round trip through str."""

    def __init__(self, sink: IO[str]) -> None:
        self.sink = sink
        self.out: IO[bytes] | None = _utf8_bytes(sink)
        self.rules: dict[int, tuple[RuleInfo, orjson.Fragment]] = {}  # id(rule) -> (rule, its JSON)
        self.event: Event | None = None  # the last detection's event, and its fields' JSON
        self.fields = orjson.Fragment(b"{}")

    def __call__(self, d: Detection) -> None:
        known = self.rules.get(id(d.rule))
        if known is None or known[0] is not d.rule:
            if len(self.rules) >= 100_000:  # intel rules are made per list and level: bounded
                self.rules.clear()
            known = self.rules[id(d.rule)] = (d.rule, orjson.Fragment(orjson.dumps(rule_dict(d.rule))))
        if d.event is not self.event:
            self.event, self.fields = d.event, orjson.Fragment(orjson.dumps(d.event.fields))
        line = orjson.dumps(d.to_dict(known[1], self.fields), option=orjson.OPT_APPEND_NEWLINE)
        if self.out is not None:
            self.out.write(line)
        else:
            self.sink.write(line.decode("utf-8"))

    def close(self) -> None:
        if self.out is not None:
            self.out.flush()
        self.sink.flush()


def _utf8_bytes(sink: IO[str]) -> IO[bytes] | None:
    """The byte stream under a text stream that writes str as UTF-8 bytes unchanged (no other
    encoding, no newline translation but "\n" itself), flushed so that bytes may follow;
    None for any other (the text is written to it then)."""
    buffer = getattr(sink, "buffer", None)
    encoding = getattr(sink, "encoding", None)
    if buffer is None or not encoding or codecs.lookup(encoding).name != "utf-8":
        return None
    if getattr(sink, "errors", "strict") != "strict" or os.linesep != "\n":
        return None
    sink.flush()
    return cast(IO[bytes], buffer)


class _CsvWriter:
    def __init__(self, sink: IO[str]) -> None:
        self.sink = sink
        self.csv = csv.writer(sink)
        self.csv.writerow(_CSV_COLUMNS)

    def __call__(self, d: Detection) -> None:
        f = d.event.fields
        self.csv.writerow(  # the files' own text (a command line, a user name) must not become formulas
            safe_row(
                [
                    iso_time(d.event.ts),
                    d.rule.level,
                    d.rule.id,
                    d.rule.title,
                    ";".join(d.rule.tags),
                    d.path.name,
                    "" if d.record_id is None else d.record_id,
                    f.get("Computer", d.event.ecs.get("host.name", "")),
                    f.get("Channel", ""),
                    f.get("EventID", ""),
                    orjson.dumps(f).decode("utf-8"),
                ]
            )
        )

    def close(self) -> None:
        self.sink.flush()


class _TableWriter:
    """Collects detections and prints them as one table at the end (rich needs all rows)."""

    def __init__(self, sink: IO[str]) -> None:
        self.sink = sink
        self.rows: list[tuple[str, ...]] = []

    def __call__(self, d: Detection) -> None:
        f = d.event.fields
        self.rows.append(
            (
                iso_time(d.event.ts)[:19].replace("T", " "),
                d.rule.level,
                d.rule.title,
                f.get("Computer", d.event.ecs.get("host.name", "")),
                f"{f.get('Channel', '')} {f.get('EventID', '')}".strip(),
                d.path.name,
                "" if d.record_id is None else str(d.record_id),
            )
        )

    def close(self) -> None:
        table = Table(title=f"{len(self.rows)} detections", title_justify="left")
        for name in ("time (UTC)", "level", "rule", "computer", "channel / event", "file", "record"):
            table.add_column(name, overflow="fold")
        for row in self.rows:
            style = _LEVEL_STYLE.get(row[1], "")
            table.add_row(*row, style=style)
        Console(file=self.sink, width=200 if not self.sink.isatty() else None).print(table)


def _print_load(report: LoadReport, err: Console) -> None:
    err.print(report.summary())
    if report.not_loaded or report.noted:
        err.print(report.table(only_problems=True))


def _print_summary(summary: HuntSummary, rule_count: int, out: Console) -> None:
    levels = Table(title="Detections by level", title_justify="left")
    for name in ("level", "rules fired", "detections"):
        levels.add_column(name, justify="right" if name != "level" else "left")
    for level, fired, n in summary.level_rows():
        levels.add_row(level, str(fired), str(n), style=_LEVEL_STYLE.get(level, ""))
    by_rule = Table(title="Detections by rule", title_justify="left")
    for name in ("level", "rule", "id", "detections"):
        by_rule.add_column(name, justify="right" if name == "detections" else "left", overflow="fold")
    for info, n in summary.rule_rows():
        by_rule.add_row(info.level, info.title, info.id, str(n), style=_LEVEL_STYLE.get(info.level, ""))
    if summary.detections:
        out.print(by_rule)
        out.print(levels)
    rate = summary.events / summary.seconds if summary.seconds else 0.0
    out.print(
        f"{summary.files} files, {summary.events} events, {rule_count} rules: "
        f"{summary.detections} detections from {len(summary.by_rule)} rules "
        f"in {summary.seconds:.2f} s ({rate:,.0f} events/s)"
    )
    if summary.problems or summary.parse_errors:
        out.print(
            f"[yellow]{len(summary.problems)} records could not be read or parsed "
            f"({summary.parse_errors} parse errors):[/yellow]"
        )
        for problem in summary.problems[:20]:
            out.print(f"  {problem}")
        if len(summary.problems) > 20:
            out.print(f"  ... and {len(summary.problems) - 20} more")


@click.group()
def rules() -> None:
    """Sigma rules: check that they load."""


@rules.command("check")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@_builtin_option
@_intel_option
@click.option("--problems", is_flag=True, help="Only rules that did not load or loaded with a note.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_pipeline_option
@_cache_option
@_no_cache_option
def check(
    paths: tuple[Path, ...],
    builtin: bool,
    intel: Path | None,
    problems: bool,
    fmt: str,
    pipeline_path: Path | None,
    cache: Path | None,
    no_cache: bool,
) -> None:
    """Load the rules in PATHS (and/or --builtin, --intel lists) and show, per rule and list,
    loaded / not loaded and why.

    Exits 1 when any rule, list or file did not load.
    """
    err = _console(stderr=True)
    _, report = _load(paths, pipeline_path, cache, no_cache, err, builtin=builtin, intel=intel)
    if fmt == "json":
        click.echo(orjson.dumps(report.to_dicts(), option=orjson.OPT_INDENT_2).decode("utf-8"))
    else:
        _console().print(report.table(only_problems=problems))
    err.print(report.summary())
    if report.not_loaded:
        sys.exit(1)
