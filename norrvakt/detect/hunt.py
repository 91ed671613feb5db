"""Hunting: the live detection engine run over EVTX / JSONL files, without a server.

    engine, report = DetectionEngine.load([Path("sigma/rules/windows")], builtin=False)
    summary = hunt(engine, [Path("evtx-attack-samples")], on_detection=print)

Rules, correlation rules (their windows are judged at the end of the run too) and threat
intel run exactly as in ``serve``; source health does not (files have no arrival rhythm).
Each event gets a hunt-local ``seq`` that encodes where it came from (file number and EVTX
record id or JSONL line), so a correlation's contributing events can be named by file and
record without keeping them.

Files are read with :mod:`norrvakt.sources.files` and parsed with
:func:`norrvakt.parsers.parse_record`, exactly as ``norrvakt import`` and the live pipeline do,
so a rule that fires here fires on the same event in ``serve``. Records that cannot be read or
parsed are counted and named in the summary, never skipped silently.

With ``workers`` > 1, whole files or pieces of big ones (:mod:`norrvakt.detect.hunt_split`) are
read, parsed and matched in worker processes (:mod:`norrvakt.detect.hunt_pool`); this process
merges what they found piece by piece, in file order, and runs the correlations and the output
as the one-process hunt does, so the detections and the summary are the same, in the same order.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from norrvakt.detect.detection import Detection as EngineDetection
from norrvakt.detect.detection import DetectionEngine
from norrvakt.detect.engine import RuleSet
from norrvakt.detect.hunt_pool import End, run_pieces
from norrvakt.detect.hunt_split import (
    UNKNOWN_ID_PEER,
    Deferred,
    EvtxTally,
    Piece,
    line_number,
    plan_pieces,
    worth_workers,
)
from norrvakt.detect.ir import RuleInfo
from norrvakt.event import KIND_PIPELINE_ERROR, Event
from norrvakt.parsers import parse_record
from norrvakt.sources.files import read_file

HUNT_SUFFIXES = (".evtx", ".json", ".jsonl", ".ndjson")
LEVELS = ("critical", "high", "medium", "low", "informational", "")
HUNT_TENANT = "hunt"


# seq = file number << _FILE_SHIFT | (EventRecordID for EVTX, line for JSON lines)
_FILE_SHIFT = 40
_NUMBER_MASK = (1 << _FILE_SHIFT) - 1

Place = tuple[str, int | None, int | None]  # file path, EventRecordID, line


@dataclass(frozen=True, slots=True)
class Detection:
    rule: RuleInfo
    event: Event
    path: Path
    record_id: int | None  # Windows EventRecordID
    line: int | None  # line number for JSONL input
    kind: str = "rule"  # rule | correlation | intel
    group: tuple[tuple[str, str], ...] = ()  # correlation group-by values; intel: the indicator
    related: tuple[Place, ...] = ()  # a correlation's contributing events
    detail: str = ""

    def to_dict(self, rule: Any = None, fields: Any = None) -> dict[str, Any]:
        """The detection as the JSON output has it. ``rule`` and ``fields``: what to put in
        their place instead (a writer's ``orjson.Fragment`` of :func:`rule_dict` of the rule or
        of the event's fields, serialized once for many detections)."""
        doc: dict[str, Any] = {
            "rule": rule_dict(self.rule) if rule is None else rule,
            "timestamp": iso_time(self.event.ts),
            "file": self.path.name,
            "path": str(self.path),
            "event_record_id": self.record_id,
        }
        if self.line is not None:
            doc["line"] = self.line
        if self.kind != "rule":
            doc["kind"] = self.kind
            doc["group"] = dict(self.group)
            doc["detail"] = self.detail
        if self.related:
            doc["events"] = [
                {k: v for k, v in (("path", p), ("event_record_id", r), ("line", n)) if v is not None}
                for p, r, n in self.related
            ]
        doc["fields"] = self.event.fields if fields is None else fields
        if self.event.message:
            doc["message"] = self.event.message
        return doc


@dataclass
class HuntSummary:
    files: int = 0
    events: int = 0
    detections: int = 0
    seconds: float = 0.0
    by_rule: Counter[str] = field(default_factory=Counter)  # rule id -> hits
    rules: dict[str, RuleInfo] = field(default_factory=dict)
    by_level: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # unreadable records/files, parse errors
    parse_errors: int = 0

    def add(self, detection: Detection) -> None:
        self.detections += 1
        self.by_rule[detection.rule.id] += 1
        self.rules[detection.rule.id] = detection.rule
        self.by_level[detection.rule.level] += 1

    def level_rows(self) -> list[tuple[str, int, int]]:
        """(level, rules fired, hits), most severe first."""
        rules_per_level = Counter(self.rules[r].level for r in self.by_rule)
        return [
            (lv or "(none)", rules_per_level[lv], self.by_level[lv]) for lv in LEVELS if self.by_level[lv]
        ]

    def rule_rows(self) -> list[tuple[RuleInfo, int]]:
        order = {lv: i for i, lv in enumerate(LEVELS)}
        rows = [(self.rules[r], n) for r, n in self.by_rule.items()]
        rows.sort(key=lambda x: (order.get(x[0].level, len(LEVELS)), -x[1], x[0].title))
        return rows


def rule_dict(rule: RuleInfo) -> dict[str, Any]:
    """A detection's rule as the JSON output has it."""
    return {
        "id": rule.id,
        "title": rule.title,
        "level": rule.level,
        "tags": list(rule.tags),
        "status": rule.status,
    }


@lru_cache(maxsize=4096)  # an event that meets several rules is written several times
def iso_time(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def find_hunt_files(paths: list[Path]) -> list[Path]:
    """EVTX and JSON lines files under ``paths`` (a file given by name is taken whatever its name)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and p.name.lower().removesuffix(".gz").endswith(HUNT_SUFFIXES)
                )
            )
        elif path.exists():
            out.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return out


def hunt(
    engine: DetectionEngine | RuleSet,
    paths: list[Path],
    on_detection: Callable[[Detection], None],
    progress: Callable[[Path, float], None] | None = None,
    min_level: str = "",
    workers: int = 1,
    piece_bytes: int | None = None,
) -> HuntSummary:
    """Match every event in ``paths``; ``progress(file, fraction_done)``. A bare
    :class:`RuleSet` runs with its correlation rules and no intel.

    ``min_level`` drops detections below that level (they are still matched). ``workers`` > 1
    reads, parses and matches in that many forked processes (:mod:`norrvakt.detect.hunt_pool`;
    whole files, or pieces of a big one — ``piece_bytes`` sets their size, for tests) with the
    same detections, in the same order, and the same summary as ``workers=1``, which runs in
    this process (as does a corpus under a piece's size, or of one small file). Fork with no
    other thread running (a progress display starts on its first update).
    """
    if isinstance(engine, RuleSet):
        engine = DetectionEngine(engine)
    start = time.perf_counter()
    summary = HuntSummary()
    files = find_hunt_files(paths)
    out = _Output(files, summary, on_detection, min_level)
    parallel = workers > 1 and (piece_bytes is not None or worth_workers(files))
    pieces = plan_pieces(files, workers, piece_bytes) if parallel else []
    if min(workers, len(pieces)) > 1:
        _merge(engine, pieces, out, progress, workers)
    else:
        _in_process(engine, files, out, progress)
    out.emit(engine.flush())
    summary.seconds = time.perf_counter() - start
    return summary


class _Output:
    """Detections from the engine to ``on_detection``, with their file and place."""

    def __init__(
        self,
        files: list[Path],
        summary: HuntSummary,
        on_detection: Callable[[Detection], None],
        min_level: str,
    ) -> None:
        self.files, self.summary, self.on_detection = files, summary, on_detection
        self.allowed = set(LEVELS[: LEVELS.index(min_level) + 1]) if min_level else None
        self.lines_numbered: list[bool] = []  # per file: seq numbers are lines (JSONL), else record ids

    def seq(self, number: int, event: Event, ordinal: int) -> None:
        """The hunt-local seq of the ``ordinal``-th event of file ``number``."""
        line = line_number(event)
        self.lines_numbered[number] = line is not None
        place = line if line is not None else (_record_id(event) or ordinal)
        event.seq = (number << _FILE_SHIFT) | (place & _NUMBER_MASK)

    def emit(self, found: list[EngineDetection]) -> None:
        files, lines_numbered, allowed = self.files, self.lines_numbered, self.allowed
        for d in found:
            if d.event is None or (allowed is not None and d.rule.level not in allowed):
                continue
            event = d.event
            related = (
                tuple(_decode(seq, files, lines_numbered) for _, seq in d.refs)
                if d.kind == "correlation"
                else ()
            )
            detection = Detection(
                d.rule,
                event,
                files[event.seq >> _FILE_SHIFT],
                _record_id(event),
                line_number(event),
                d.kind,
                d.group,
                related,
                d.detail,
            )
            self.summary.add(detection)
            self.on_detection(detection)


def _in_process(
    engine: DetectionEngine,
    files: list[Path],
    out: _Output,
    progress: Callable[[Path, float], None] | None,
) -> None:
    summary = out.summary
    for number, path in enumerate(files):
        summary.files += 1
        out.lines_numbered.append(False)
        for ordinal, (event, fraction) in enumerate(_events(path, summary), start=1):
            summary.events += 1
            out.seq(number, event, ordinal)
            out.emit(engine.process((event,)))
            if progress is not None and summary.events % 256 == 0:
                progress(path, fraction)
        if progress is not None:
            progress(path, 1.0)


@dataclass
class _FileState:
    """What the pieces of one file merged so far read: the bases of their successors' numbers."""

    tally: EvtxTally = field(default_factory=EvtxTally)
    events: int = 0
    failed: bool = False  # a piece could not be read: the file ends there, as in one process
    total: int = 1  # progress units of the whole file


def _merge(
    engine: DetectionEngine,
    pieces: list[Piece],
    out: _Output,
    progress: Callable[[Path, float], None] | None,
    workers: int,
) -> None:
    """The pieces' results from the workers, in order, through the same steps as _in_process."""
    summary, correlator = out.summary, engine.correlations
    state, number = _FileState(), -1
    for index, message in run_pieces(engine, pieces, workers, HUNT_TENANT):
        piece = pieces[index]
        if piece.number != number:  # a file's first message
            number = piece.number
            state = _FileState(total=piece.total if progress is not None else 1)
            summary.files += 1
            out.lines_numbered.append(False)
        base = state.tally
        if isinstance(message, End):
            if not state.failed:
                state.events += message.events
                if message.lines is not None:
                    out.lines_numbered[number] = message.lines
                base.tried += message.tally.tried
                base.done += message.tally.done
                if message.tally.last_id is not None:
                    base.last_id = message.tally.last_id
            if piece.last and progress is not None:
                progress(piece.path, 1.0)
            continue
        if state.failed:
            continue
        summary.events += message.events
        for problem in message.problems:
            if isinstance(problem, Deferred):  # its text needs what the earlier pieces read
                text = problem.render(base.tried, base.last_id or 0)
                if problem.kind != "parse":
                    summary.problems.append(text)
                    continue
                problem = ("parse", text)
            if isinstance(problem, str):
                summary.problems.append(problem)
            elif problem[0] == "parse":
                summary.parse_errors += 1
                if len(summary.problems) < 1000 and problem[1] is not None:
                    summary.problems.append(problem[1])
            else:  # the piece could not be read on: nor can the rest of the file
                summary.problems.append(str(problem[1]))
                state.failed = True
        for hit in message.hits:
            for tenant, ts in hit.advance:
                correlator.advance(tenant, ts)
            event = hit.event
            if event.peer.endswith(UNKNOWN_ID_PEER):
                event.peer = f"file:{piece.path}#{base.last_id or 0}"
            out.seq(number, event, state.events + hit.ordinal)
            out.emit(engine.process_matched(event, hit.hits, hit.found))
        for tenant, ts in message.advance:
            correlator.advance(tenant, ts)
        if progress is not None:
            units = message.progress + (base.done if piece.fmt == "evtx" else 0)
            progress(piece.path, min(1.0, units / state.total))


def _decode(seq: int, files: list[Path], lines_numbered: list[bool]) -> Place:
    number, place = seq >> _FILE_SHIFT, seq & _NUMBER_MASK
    if lines_numbered[number]:
        return str(files[number]), None, place
    return str(files[number]), place, None


def _events(path: Path, summary: HuntSummary) -> Iterator[tuple[Event, float]]:
    from norrvakt.sources.files import detect_format, progress_total

    fmt = detect_format(path)
    total = progress_total(path, fmt) or 1
    try:
        for item in read_file(path, HUNT_TENANT, "hunt", fmt):
            if item.error_type is not None:  # damaged record, cut line: named, not matched
                summary.problems.append(item.error)
                continue
            event = parse_record(item.record)
            if event.kind == KIND_PIPELINE_ERROR:
                summary.parse_errors += 1
                if len(summary.problems) < 1000:
                    summary.problems.append(f"{item.record.peer}: {event.ecs.get('error.message', '')}")
                continue
            yield event, min(1.0, item.progress / total)
    except OSError as exc:
        summary.problems.append(f"{path}: cannot read: {exc.strerror or exc}")


def _record_id(event: Event) -> int | None:
    value = event.fields.get("EventRecordID")
    if value is None or not value.isdigit():
        return None
    return int(value)
