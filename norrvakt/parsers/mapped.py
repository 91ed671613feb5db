"""Sources described by mapping files, not code: JSON, key-value, CSV or regex → the schema.

A mapping file (YAML) says how to recognize a source's records, how to read fields out of
the message, and which ECS fields, message and time to derive — the source's own fields are
always kept as they are. The municipalities' seed systems ship as built-in mappings
(``norrvakt/parsers/mappings/*.yml``); an operator adds a source by dropping a file into a
mapping directory (docs/sources.md)::

    id: door_locks
    title: Digital keys and door locks (home care and premises)
    dataset: locks.access
    match:
      any:
        - {field: log.syslog.appname, equals: phoniro}
        - {fields_present: [key_id, door_id, result]}
    parse: {from: message, format: kv}
    timestamp: {field: time, format: iso8601}
    ecs:
      event.action: "{event}"
      user.name: "{user}"
      event.outcome: {field: result, map: {granted: success, denied: failure}}
    message: "{event} {door_id} by {user} ({result})"

A mapping runs as a message recognizer: after the envelope (syslog, JSON, HEC …) is parsed,
the first mapping whose ``match`` holds claims the event.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from norrvakt.event import ECS_FIELD_SET, Event, RawRecord
from norrvakt.parsers.mapped_index import MappingIndex
from norrvakt.parsers.timestamps import epoch_to_us, local_to_us, parse_iso

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).with_name("mappings")
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_KV = re.compile(r'([\w.@-]+)=("(?:[^"\\]|\\.)*"|\S*)')


class MappingError(ValueError):
    """A mapping file is invalid; the message names the file and the key."""


@dataclass
class Mapping:
    id: str
    title: str
    dataset: str
    path: str
    match_any: list[dict[str, Any]]
    parse: dict[str, Any] | None
    timestamp: dict[str, Any] | None
    ecs: dict[str, Any]
    fields: dict[str, Any]
    message: str | None
    regex: re.Pattern[str] | None = None
    description: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)

    # -- recognizing ----------------------------------------------------------------------

    def matches(self, event: Event) -> bool:
        return any(_condition(cond, event) for cond in self.match_any)

    # -- applying -------------------------------------------------------------------------

    def apply(self, event: Event, record: RawRecord) -> bool:
        values: dict[str, str] = dict(event.fields)
        if self.parse is not None:
            parsed = self._parse_text(event)
            if parsed is None:
                return False
            event.fields.update(parsed)
            values.update(parsed)
        for name, value in event.ecs.items():
            values.setdefault(name, value)
        values.setdefault("message", event.message)
        for name, spec in self.ecs.items():
            value = _derive(spec, values)
            if value:
                event.ecs[name] = value
                values[name] = value
        for name, spec in self.fields.items():
            value = _derive(spec, values)
            if value:
                event.fields[name] = value
                values[name] = value
        event.ecs["event.dataset"] = _render(self.dataset, values) or self.dataset
        event.ecs.setdefault("event.module", self.id)
        if self.timestamp is not None:
            ts = self._timestamp(values, record.timezone)
            if ts is not None:
                event.ts = ts
                event.fields.pop("_ts_missing", None)
        if self.message:
            event.message = _render(self.message, values)
        return True

    def _parse_text(self, event: Event) -> dict[str, str] | None:
        assert self.parse is not None
        source = self.parse.get("from", "message")
        text = event.message if source == "message" else event.fields.get(source, "")
        fmt = self.parse.get("format", "kv")
        if fmt == "kv":
            pairs = _KV.findall(text)
            if not pairs:
                return None
            return {k: _unquote(v) for k, v in pairs}
        if fmt == "csv":
            columns = self.parse["columns"]
            row = next(csv.reader(io.StringIO(text), delimiter=self.parse.get("delimiter", ",")), None)
            if row is None or len(row) != len(columns):
                return None
            return {c: v for c, v in zip(columns, row, strict=True) if c}
        if fmt == "regex":
            assert self.regex is not None
            m = self.regex.search(text)
            return {k: v for k, v in m.groupdict().items() if v is not None} if m else None
        return None

    def _timestamp(self, values: dict[str, str], timezone: str) -> int | None:
        assert self.timestamp is not None
        text = values.get(self.timestamp["field"], "")
        if not text:
            return None
        fmt = self.timestamp.get("format", "iso8601")
        if fmt == "iso8601":
            return parse_iso(text, self.timestamp.get("timezone", timezone))
        if fmt == "epoch":
            return epoch_to_us(text)
        try:
            naive = datetime.strptime(text, fmt)
        except ValueError:
            return None
        zone = self.timestamp.get("timezone", timezone)
        return local_to_us(
            zone,
            naive.year,
            naive.month,
            naive.day,
            naive.hour,
            naive.minute,
            naive.second,
            naive.microsecond,
        )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _render(template: str, values: dict[str, str]) -> str:
    return _TEMPLATE.sub(lambda m: values.get(m.group(1), ""), template).strip()


def _derive(spec: Any, values: dict[str, str]) -> str:
    """A value from a template string, ``{field, map|contains, default}``, ``{first: [...], default}``,
    ``{list_contains: {list, value}}`` or ``{time_within: {time, start, end, slack_minutes}}``."""
    if isinstance(spec, str):
        return _render(spec, values) if "{" in spec else spec
    if isinstance(spec, dict):
        if "list_contains" in spec:  # is the user one of the case's assigned users?
            args = spec["list_contains"]
            items = re.split(r"[,;\s]+", values.get(args["list"], ""))
            value = values.get(args["value"], "")
            if not value or not any(items):
                return ""
            return "true" if value.lower() in (i.lower() for i in items if i) else "false"
        if "time_within" in spec:  # did it happen inside the scheduled window?
            args = spec["time_within"]
            when, start, end = (parse_iso(values.get(args[k], "")) for k in ("time", "start", "end"))
            if when is None or start is None or end is None:
                return ""
            slack = int(args.get("slack_minutes", 0)) * 60_000_000
            return "true" if start - slack <= when <= end + slack else "false"
        if "first" in spec:
            for option in spec["first"]:
                value = _derive(option, values)
                if value:
                    return value
            return str(spec.get("default", ""))
        raw = values.get(spec["field"], "")
        if "contains" in spec:  # the first listed word found in the value decides
            lowered = raw.lower()
            for word, mapped in spec["contains"].items():
                if str(word).lower() in lowered:
                    return str(mapped)
            return str(spec.get("default", ""))
        table = spec.get("map")
        if table is None:
            return raw or str(spec.get("default", ""))
        lowered = raw.lower()
        for key, mapped in table.items():
            if str(key).lower() == lowered:
                return str(mapped)
        if "*" in table and raw:
            return str(table["*"])
        return str(spec.get("default", ""))
    return str(spec)


def _condition(cond: dict[str, Any], event: Event) -> bool:
    if "fields_present" in cond:
        return all(name in event.fields for name in cond["fields_present"])
    name = cond.get("field", "")
    value = (
        event.ecs.get(name)
        if name in ECS_FIELD_SET
        else event.message
        if name == "message"
        else event.fields.get(name)
    )
    if value is None:
        return False
    if "equals" in cond:
        wanted = cond["equals"]
        return (
            value.lower() in (str(w).lower() for w in wanted)
            if isinstance(wanted, list)
            else value.lower() == str(wanted).lower()
        )
    if "startswith" in cond:
        return value.startswith(str(cond["startswith"]))
    if "contains" in cond:
        return str(cond["contains"]) in value
    if "regex" in cond:
        return re.search(str(cond["regex"]), value) is not None
    return False


# -- loading -----------------------------------------------------------------------------------

_KNOWN_KEYS = {
    "id",
    "title",
    "description",
    "dataset",
    "match",
    "parse",
    "timestamp",
    "ecs",
    "fields",
    "message",
    "samples",
}


def load_mapping(path: Path) -> Mapping:
    where = str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MappingError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise MappingError(f"{where}: a mapping file is a YAML mapping (id, match, ecs, …)")
    unknown = set(doc) - _KNOWN_KEYS
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("id", "dataset", "match"):
        if key not in doc:
            raise MappingError(f"{where}: '{key}' is required")
    match = doc["match"]
    match_any = match.get("any") if isinstance(match, dict) and "any" in match else [match]
    if not isinstance(match_any, list) or not all(isinstance(c, dict) for c in match_any):
        raise MappingError(f"{where}: 'match' must be a condition or {{any: [conditions]}}")
    ecs = doc.get("ecs") or {}
    bad = [k for k in ecs if k not in ECS_FIELD_SET]
    if bad:
        raise MappingError(
            f"{where}: ecs: {', '.join(bad)} not ECS fields Norrvakt stores (put them under fields:)"
        )
    parse = doc.get("parse")
    regex = None
    if parse is not None:
        fmt = parse.get("format")
        if fmt not in {"kv", "csv", "regex"}:
            raise MappingError(f"{where}: parse.format {fmt!r} — one of kv, csv, regex")
        if fmt == "csv" and not parse.get("columns"):
            raise MappingError(f"{where}: parse.columns is required for csv")
        if fmt == "regex":
            try:
                regex = re.compile(parse["pattern"])
            except (KeyError, re.error) as exc:
                raise MappingError(f"{where}: parse.pattern: {exc}") from exc
    return Mapping(
        id=str(doc["id"]),
        title=str(doc.get("title", doc["id"])),
        dataset=str(doc["dataset"]),
        path=where,
        match_any=match_any,
        parse=parse,
        timestamp=doc.get("timestamp"),
        ecs=ecs,
        fields=doc.get("fields") or {},
        message=doc.get("message"),
        regex=regex,
        description=str(doc.get("description", "")),
        samples=list(doc.get("samples") or []),
    )


def load_mappings(directories: Iterable[Path]) -> tuple[list[Mapping], list[str]]:
    """Every mapping in the directories (built-ins first); problems are returned, not hidden."""
    mappings: list[Mapping] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for directory in directories:
        if not directory.exists():
            continue
        for path in sorted(directory.glob("*.y*ml")):
            try:
                m = load_mapping(path)
            except MappingError as exc:
                problems.append(str(exc))
                continue
            if m.id in seen:
                problems.append(f"{path}: id {m.id!r} is already defined in {seen[m.id]}; the later one wins")
                mappings = [x for x in mappings if x.id != m.id]
            seen[m.id] = str(path)
            mappings.append(m)
    return mappings, problems


class MappedSources:
    """The active mappings; the recognizer registered in ``norrvakt.parsers`` uses these.

    Recognizing goes through a :class:`MappingIndex` of them (mapped_index.py), rebuilt
    whenever the mappings are replaced; the same mapping claims the same event as trying
    each in turn (``any(m.matches(e) and m.apply(e, r) for m in mappings)``) would.
    """

    def __init__(self) -> None:
        self.mappings, problems = load_mappings([BUILTIN_DIR])
        for p in problems:
            log.error("built-in mapping: %s", p)

    @property
    def mappings(self) -> list[Mapping]:
        return self._mappings

    @mappings.setter
    def mappings(self, mappings: list[Mapping]) -> None:
        self._mappings = mappings
        self._index = MappingIndex(mappings)

    def use(self, directories: Iterable[Path]) -> list[str]:
        """Load the built-ins plus the operator's directories; returns problems to report."""
        self.mappings, problems = load_mappings([BUILTIN_DIR, *directories])
        return problems

    def recognize(self, event: Event, record: RawRecord) -> bool:
        # A mapping whose parse step finds nothing leaves the event alone; the next may fit.
        return self._index.recognize(event, record)


sources = MappedSources()


def recognize_mapped(event: Event, record: RawRecord) -> bool:
    return sources.recognize(event, record)
