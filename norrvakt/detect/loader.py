"""Loading Sigma rule files: YAML -> pySigma -> compiled rules, with a status for every rule.

    compiled, report = load_rules([Path("rules/windows")], cache_dir=Path("~/.cache/norrvakt"))

Files are ``*.yml`` / ``*.yaml`` found under the given paths (recursively), read once; their
content hash is the cache key (:mod:`norrvakt.detect.cache`). On a miss every file is parsed
with a YAML loader that rejects duplicate keys (naming the line), handed to pySigma
(``SigmaCollection.from_dicts`` with errors collected per rule, so one bad rule never hides
the others), Sigma filters are applied to the rules they name, and each rule is compiled
(:mod:`norrvakt.detect.sigma`). Every file and rule gets a :class:`RuleStatus`.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from norrvakt.detect import cache as rule_cache
from norrvakt.detect.cache import CompiledSet
from norrvakt.detect.correlation import (
    CorrelationSpec,
    Ref,
    UnsupportedCorrelation,
    compile_correlation,
    reference_names,
)
from norrvakt.detect.ir import CompiledRule
from norrvakt.detect.logsource import Pipeline
from norrvakt.detect.plan import make_plan
from norrvakt.detect.report import LoadReport, RuleStatus

RULE_SUFFIXES = (".yml", ".yaml")


class RulesError(ValueError):
    """Rule paths that cannot be read at all (missing path, unreadable directory)."""


def find_rule_files(paths: list[Path]) -> list[Path]:
    """Rule files under ``paths``; hidden directories (``.git``, ``.github`` workflows) are not
    rule folders and are left out. A file named explicitly is always taken."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = (
                p
                for p in path.rglob("*")
                if p.suffix.lower() in RULE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and p.is_file()
            )
            files.extend(sorted(found))
        elif path.is_file():
            files.append(path)
        else:
            raise RulesError(f"{path}: no such rule file or directory")
    return files


def load_rules(
    paths: list[Path], pipeline: Pipeline, cache_dir: Path | None = None
) -> tuple[CompiledSet, LoadReport]:
    """Compiled rules and the per-rule report; ``cache_dir`` None disables the cache."""
    start = time.perf_counter()
    files = []
    for path in find_rule_files(paths):
        try:
            files.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise RulesError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    report = LoadReport(files=len(files), pipeline=pipeline.source)
    key = rule_cache.cache_key(files, pipeline.digest)
    compiled: CompiledSet | None = None
    if cache_dir is not None:
        compiled, report.cache_note = rule_cache.load(cache_dir, key)
    if compiled is not None:
        report.cached = True
    else:
        compiled = compile_files(files, pipeline)
        if cache_dir is not None:
            problem = rule_cache.store(cache_dir, key, compiled)
            report.cache_note = report.cache_note or problem
    report.entries = list(compiled.statuses)
    report.seconds = time.perf_counter() - start
    return compiled, report


# --- compiling ------------------------------------------------------------------------------


class _RuleYAMLLoader(yaml.CSafeLoader):
    """Safe YAML that rejects duplicate keys with their line (a silent overwrite changes a rule)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: the base class reports it
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def compile_files(files: list[tuple[str, bytes]], pipeline: Pipeline) -> CompiledSet:
    from sigma.correlations import SigmaCorrelationRule
    from sigma.filters import SigmaFilter
    from sigma.rule import SigmaRule

    statuses: list[RuleStatus] = []
    pending: list[tuple[str, list[str], Any]] = []  # (path, lines, SigmaRule)
    correlations: list[tuple[str, list[str], Any]] = []  # (path, lines, SigmaCorrelationRule)
    filters: list[tuple[str, list[str], SigmaFilter]] = []
    for path, data in files:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            statuses.append(RuleStatus(path, 0, "file", False, f"not UTF-8 at byte offset {exc.start}"))
            continue
        lines = text.splitlines()
        try:
            docs = [d for d in yaml.load_all(text, Loader=_RuleYAMLLoader) if d is not None]
        except yaml.YAMLError as exc:
            line, reason = _yaml_problem(exc)
            statuses.append(RuleStatus(path, line, "file", False, f"bad YAML: {reason}"))
            continue
        if not docs:
            statuses.append(RuleStatus(path, 0, "file", False, "no YAML documents (empty file)"))
            continue
        if not all(isinstance(d, dict) for d in docs):
            statuses.append(RuleStatus(path, 1, "file", False, "bad rule file: a document is not a mapping"))
            continue
        collection = _collection(docs, path, lines, statuses)
        rule_errors = {id(e) for r in (*collection.rules, *collection.filters) for e in r.errors}
        for error in collection.errors:
            if id(error) not in rule_errors:
                statuses.append(RuleStatus(path, 1, "file", False, f"bad rule file: {_message(error)}"))
        for item in collection.rules:
            if isinstance(item, SigmaCorrelationRule):
                correlations.append((path, lines, item))
            elif isinstance(item, SigmaRule):
                pending.append((path, lines, item))
        for flt in collection.filters:
            if flt.errors:
                statuses.append(_status(flt, path, lines, "filter", False, _errors(flt.errors, lines)))
            else:
                filters.append((path, lines, flt))
    compiled = _compile_pending(pending, filters, pipeline, statuses)
    specs = _compile_correlations(correlations, compiled, statuses)
    return CompiledSet(make_plan(compiled, pipeline.index_fields), tuple(statuses), specs)


def _collection(docs: list[Any], path: str, lines: list[str], statuses: list[RuleStatus]) -> Any:
    """pySigma's collection of a file's documents. pySigma collects most errors per rule, but a
    few (an extended correlation condition that leaves out a listed rule) it raises: then each
    document is parsed on its own, so one bad rule is reported and the others still load."""
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError, SigmaRuleLocation

    import norrvakt.detect.sigma  # registers modifier aliases before rules are parsed; POLICY

    def parse(part: list[Any]) -> Any:
        return SigmaCollection.from_dicts(
            part,
            collect_errors=True,
            source=SigmaRuleLocation(Path(path)),
            collect_filters=True,
            resolve_references=False,
            policy=norrvakt.detect.sigma.POLICY,  # regexes checked by the RE2 the matcher uses
        )

    try:
        return parse(docs)
    except SigmaError:
        pass
    items: list[Any] = []
    errors: list[Any] = []
    for doc in docs:
        try:
            one = parse([doc])
        except SigmaError as exc:
            kind = "correlation" if "correlation" in doc else "filter" if "filter" in doc else "rule"
            row = _status(_Doc(doc), path, lines, kind, False, _errors([exc], lines))
            statuses.append(row)
            continue
        items.extend([*one.rules, *one.filters])
        errors.extend(one.errors)
    return SigmaCollection(items, errors, collect_filters=True, resolve_references=False)


class _Doc:
    """A rule document pySigma could not parse, as _status reads it (id, title, level)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.id = doc.get("id")
        self.title = str(doc.get("title") or "")
        self.name = doc.get("name")
        self.level = None


def _compile_correlations(
    items: list[tuple[str, list[str], Any]], compiled: list[CompiledRule], statuses: list[RuleStatus]
) -> tuple[CorrelationSpec, ...]:
    """Resolve references (rules by id or name, then correlations, which may chain) and compile."""
    from sigma.exceptions import SigmaError

    from norrvakt.detect.sigma import rule_info

    known: dict[str, Ref] = {}
    for number, rule in enumerate(compiled):
        known[rule.info.id] = ("rule", number)
        if rule.info.name:
            known[rule.info.name] = ("rule", number)
    not_loaded = {s.id for s in statuses if not s.loaded and s.id}
    waiting = {}
    for path, lines, item in items:
        if item.errors:
            statuses.append(_status(item, path, lines, "correlation", False, _errors(item.errors, lines)))
            continue
        waiting[id(item)] = (path, lines, item)
    names_waiting = {
        str(n) for _, _, item in waiting.values() for n in (item.id, item.name) if n is not None and n != ""
    }
    specs: list[CorrelationSpec] = []
    progress = True
    while waiting and progress:
        progress = False
        for key, (path, lines, item) in list(waiting.items()):
            names = reference_names(item)
            unknown = [n for n in names if n not in known]
            if any(n in names_waiting for n in unknown):
                continue  # a correlation it references is not compiled yet
            del waiting[key]
            progress = True
            line = _rule_line(lines, item)
            if not names:
                statuses.append(_status(item, path, lines, "correlation", False, "references no rules"))
                continue
            if unknown:
                why = ", ".join(
                    f"{n} ({'did not load' if n in not_loaded else 'no such rule'})" for n in unknown
                )
                statuses.append(_status(item, path, lines, "correlation", False, f"references {why}"))
                continue
            info = rule_info(item, path, line, f"{path}#correlation")
            try:
                spec = compile_correlation(item, info, tuple(known[n] for n in names), names)
            except (UnsupportedCorrelation, SigmaError) as exc:
                statuses.append(_status(item, path, lines, "correlation", False, f"unsupported: {exc}"))
                continue
            specs.append(spec)
            for name in (info.id, info.name):
                if name:
                    known[name] = ("correlation", len(specs) - 1)
            statuses.append(_status(item, path, lines, "correlation", True, ""))
    for path, lines, item in waiting.values():
        names = [n for n in reference_names(item) if n not in known]
        statuses.append(
            _status(
                item,
                path,
                lines,
                "correlation",
                False,
                f"references correlations in a cycle: {', '.join(names)}",
            )
        )
    _note_quiet_rules(specs, compiled, statuses)
    return tuple(specs)


def _note_quiet_rules(
    specs: list[CorrelationSpec], compiled: list[CompiledRule], statuses: list[RuleStatus]
) -> None:
    """Rules only used by correlations with ``generate: false`` give no detections of their
    own (Sigma's default); their report row says so, so nobody waits for their alerts."""
    quiet = quiet_refs(specs)
    by_place = {(s.path, s.id): i for i, s in enumerate(statuses) if s.kind in ("rule", "correlation")}
    for kind, number in sorted(quiet):
        info = compiled[number].info if kind == "rule" else specs[number].info
        users = [s.info.title or s.info.id for s in specs if (kind, number) in s.refs]
        i = by_place.get((info.path, info.id))
        if i is None:
            continue
        note = f"used by correlation {', '.join(users)} (generate: false): no detections of its own"
        old = statuses[i]
        statuses[i] = replace(old, reason="; ".join(x for x in (old.reason, note) if x))


def quiet_refs(specs: list[CorrelationSpec] | tuple[CorrelationSpec, ...]) -> set[Ref]:
    """Rules and correlations referenced only by correlations with ``generate: false``."""
    used: set[Ref] = set()
    loud: set[Ref] = set()
    for spec in specs:
        used.update(spec.refs)
        if spec.generate:
            loud.update(spec.refs)
    return used - loud


def _compile_pending(
    pending: list[tuple[str, list[str], Any]],
    filters: list[tuple[str, list[str], Any]],
    pipeline: Pipeline,
    statuses: list[RuleStatus],
) -> list[CompiledRule]:
    from sigma.exceptions import SigmaError

    from norrvakt.detect.sigma import UnsupportedRule, compile_rule, rule_info

    applied = [0] * len(filters)
    compiled: list[CompiledRule] = []
    for number, (path, lines, rule) in enumerate(pending, start=1):
        line = _rule_line(lines, rule)
        if rule.errors:
            statuses.append(_status(rule, path, lines, "rule", False, _errors(rule.errors, lines)))
            continue
        notes: list[str] = []
        try:
            for i, (_, _, flt) in enumerate(filters):
                # apply_on_rule changes the rule in place; ask first so the report can say so.
                if flt._should_apply_on_rule(rule):
                    rule = flt.apply_on_rule(rule)
                    applied[i] += 1
                    notes.append(f"filtered by {flt.title or flt.id}")
            info = rule_info(rule, path, line, f"{path}#{number}")
            result = compile_rule(rule, pipeline, info)
        except UnsupportedRule as exc:
            statuses.append(_status(rule, path, lines, "rule", False, f"unsupported: {exc}"))
            continue
        except SigmaError as exc:
            statuses.append(_status(rule, path, lines, "rule", False, _errors([exc], lines)))
            continue
        compiled.append(result)
        statuses.append(_status(rule, path, lines, "rule", True, "; ".join([*result.notes, *notes])))
    for (fpath, flines, flt), count in zip(filters, applied, strict=True):
        statuses.append(_status(flt, fpath, flines, "filter", True, f"filter applied to {count} rules"))
    return compiled


def _status(item: Any, path: str, lines: list[str], kind: str, loaded: bool, reason: str) -> RuleStatus:
    level = getattr(item, "level", None)
    return RuleStatus(
        path=path,
        line=_rule_line(lines, item),
        kind=kind,
        loaded=loaded,
        reason=reason,
        id=str(item.id) if getattr(item, "id", None) is not None else (getattr(item, "name", None) or ""),
        title=getattr(item, "title", "") or "",
        level=level.name.lower() if level is not None else "",
    )


def _rule_line(lines: list[str], item: Any) -> int:
    """The line of the rule's ``id:`` (or ``title:``) key: where a reader finds the rule."""
    for key, value in (("id", getattr(item, "id", None)), ("title", getattr(item, "title", None))):
        if value is None or value == "":
            continue
        text = str(value)
        for number, line in enumerate(lines, start=1):
            if line.startswith(f"{key}:") and text in line:
                return number
    return 1 if lines else 0


def _yaml_problem(exc: yaml.YAMLError) -> tuple[int, str]:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    reason = f"{context}, {problem}" if context else str(problem)
    if mark is None:
        return 0, reason
    return mark.line + 1, f"{reason} (line {mark.line + 1}, column {mark.column + 1})"


_MODIFIER = re.compile(r"Unknown modifier '([^']*)'")


def _errors(errors: list[Any], lines: list[str]) -> str:
    return "; ".join(_located(_message(e), lines) for e in errors)


def _located(message: str, lines: list[str]) -> str:
    """Add the line of an unknown modifier to pySigma's message, which names only the file."""
    m = _MODIFIER.search(message)
    if m:
        for number, line in enumerate(lines, start=1):
            if f"|{m.group(1)}" in line:
                return f"{message} (line {number})"
    return message


def _message(error: Any) -> str:
    args = getattr(error, "args", ())
    return str(args[0]) if args else type(error).__name__
