"""Hunting: the live rule engine run over EVTX / JSONL files, without a server.

    rules, report = RuleSet.load([Path("sigma/rules/windows")])
    summary = hunt(rules, [Path("evtx-attack-samples")], on_detection=print)

Files are read with :mod:`norrvakt.sources.files` and parsed with
:func:`norrvakt.parsers.parse_record`, exactly as ``norrvakt import`` and the live pipeline do,
so a rule that fires here fires on the same event in ``serve``. Records that cannot be read or
parsed are counted and named in the summary, never skipped silently.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from norrvakt.detect.engine import RuleSet
from norrvakt.detect.ir import RuleInfo
from norrvakt.event import KIND_PIPELINE_ERROR, Event
from norrvakt.parsers import parse_record
from norrvakt.sources.files import read_file

HUNT_SUFFIXES = (".evtx", ".json", ".jsonl", ".ndjson")
LEVELS = ("critical", "high", "medium", "low", "informational", "")
HUNT_TENANT = "hunt"


@dataclass(frozen=True, slots=True)
class Detection:
    rule: RuleInfo
    event: Event
    path: Path
    record_id: int | None  # Windows EventRecordID
    line: int | None  # line number for JSONL input

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "rule": {
                "id": self.rule.id,
                "title": self.rule.title,
                "level": self.rule.level,
                "tags": list(self.rule.tags),
                "status": self.rule.status,
            },
            "timestamp": iso_time(self.event.ts),
            "file": self.path.name,
            "path": str(self.path),
            "event_record_id": self.record_id,
        }
        if self.line is not None:
            doc["line"] = self.line
        doc["fields"] = self.event.fields
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
    rules: RuleSet,
    paths: list[Path],
    on_detection: Callable[[Detection], None],
    progress: Callable[[Path, float], None] | None = None,
    min_level: str = "",
) -> HuntSummary:
    """Match every event in ``paths`` against ``rules``; ``progress(file, fraction_done)``.

    ``min_level`` drops detections of rules below that level (they are still matched).
    """
    start = time.perf_counter()
    summary = HuntSummary()
    allowed = set(LEVELS[: LEVELS.index(min_level) + 1]) if min_level else None
    for path in find_hunt_files(paths):
        summary.files += 1
        for event, fraction in _events(path, summary):
            summary.events += 1
            for r in rules.matching_rules(event):
                rule = rules.rules[r]
                if allowed is not None and rule.level not in allowed:
                    continue
                detection = Detection(rule, event, path, _record_id(event), _line(event))
                summary.add(detection)
                on_detection(detection)
            if progress is not None and summary.events % 256 == 0:
                progress(path, fraction)
        if progress is not None:
            progress(path, 1.0)
    summary.seconds = time.perf_counter() - start
    return summary


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


def _line(event: Event) -> int | None:
    # JSONL records carry "file:<path>:<line>" as their peer (norrvakt.sources.files).
    _, sep, tail = event.peer.rpartition(":")
    return int(tail) if sep and tail.isdigit() and "#" not in event.peer else None
