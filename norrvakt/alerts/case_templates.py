"""Case templates: per incident type, the checklist of tasks a case of that type works through.

Templates are data — one YAML file each under ``norrvakt/alerts/templates/`` (the five
built-in ones: account compromise, malware on a host, improper record access, lost device,
ransomware), plus the files of ``cases.templates_dir``, where a file with the id of a built-in
template replaces it::

    id: lost_device
    title: {sv: Förlorad eller stulen enhet, en: Lost or stolen device}
    tags: []                       # alert tags (prefixes) that suggest the template
    tasks:                         # in the order they are done
      - key: lock_device
        title: {sv: Lokalisera och lås enheten via MDM, en: Locate and lock the device through MDM}

A template that does not read is refused with the file, the task and the reason
(:class:`TemplateError`); loading collects every problem of every file before raising.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BUILTIN_DIR = Path(__file__).with_name("templates")
LANGUAGES = ("sv", "en")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


class TemplateError(ValueError):
    """Templates that cannot be used; ``problems`` names each file, task and reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class TemplateTask:
    key: str
    title_sv: str
    title_en: str

    def title(self, lang: str) -> str:
        return self.title_sv if lang == "sv" else self.title_en


@dataclass(frozen=True, slots=True)
class CaseTemplate:
    id: str
    title_sv: str
    title_en: str
    tags: tuple[str, ...]
    tasks: tuple[TemplateTask, ...]
    path: str

    def title(self, lang: str) -> str:
        return self.title_sv if lang == "sv" else self.title_en

    def suits(self, alert_tags: Iterable[str]) -> bool:
        """Whether alerts with ``alert_tags`` suggest this template: a template tag equal to a
        tag of theirs or a prefix of one (``attack.t1110`` suits ``attack.t1110.003``)."""
        wanted = [_tag(t) for t in self.tags]
        for tag in alert_tags:
            have = _tag(tag)
            if any(have == w or have.startswith(w + ".") for w in wanted):
                return True
        return False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": {"sv": self.title_sv, "en": self.title_en},
            "tags": list(self.tags),
            "tasks": [{"key": t.key, "title": {"sv": t.title_sv, "en": t.title_en}} for t in self.tasks],
        }


def _tag(tag: str) -> str:
    # Sigma wrote tactics with underscores before it used hyphens; both name the same tactic.
    return tag.strip().lower().replace("_", "-")


def load_templates(extra_dirs: Sequence[Path] = ()) -> dict[str, CaseTemplate]:
    """The built-in templates and those of ``extra_dirs`` (later ones replace earlier ones with
    the same id), by id, in file-name order. Raises :class:`TemplateError` with every problem."""
    problems: list[str] = []
    found: dict[str, CaseTemplate] = {}
    for directory in (BUILTIN_DIR, *extra_dirs):
        if not directory.is_dir():
            problems.append(f"{directory}: not a directory of case templates")
            continue
        seen_here: dict[str, str] = {}
        for path in sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")]):
            template = _read(path, problems)
            if template is None:
                continue
            if template.id in seen_here:
                problems.append(f"{path}: id {template.id!r} is also the id of {seen_here[template.id]}")
                continue
            seen_here[template.id] = str(path)
            found[template.id] = template
    if problems:
        raise TemplateError(problems)
    return found


def _read(path: Path, problems: list[str]) -> CaseTemplate | None:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(f"{path}: cannot be read: {exc}")
        return None
    before = len(problems)
    if not isinstance(doc, dict):
        problems.append(f"{path}: a template is a mapping with id, title and tasks, not {type(doc).__name__}")
        return None
    unknown = sorted(set(doc) - {"id", "title", "tags", "tasks"})
    if unknown:
        problems.append(
            f"{path}: unknown key(s) {', '.join(map(str, unknown))} (known: id, title, tags, tasks)"
        )
    template_id = doc.get("id")
    if not isinstance(template_id, str) or not _KEY.fullmatch(template_id):
        problems.append(f"{path}: id {template_id!r} — lower-case letters, digits and _, at most 64")
    title = _titles(doc.get("title"), f"{path}: title", problems)
    tags = doc.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        problems.append(f"{path}: tags {tags!r} — a list of alert tags")
        tags = []
    raw_tasks = doc.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        problems.append(f"{path}: tasks — a list of at least one task (key and title)")
        raw_tasks = []
    tasks: list[TemplateTask] = []
    keys: set[str] = set()
    for i, raw in enumerate(raw_tasks):
        where = f"{path}: tasks[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: a task is a mapping with key and title, not {raw!r}")
            continue
        key = raw.get("key")
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            problems.append(f"{where}: key {key!r} — lower-case letters, digits and _, at most 64")
            continue
        if key in keys:
            problems.append(f"{where}: key {key!r} twice in the template")
            continue
        extra = sorted(set(raw) - {"key", "title"})
        if extra:
            problems.append(f"{where} ({key}): unknown key(s) {', '.join(map(str, extra))}")
        keys.add(key)
        sv, en = _titles(raw.get("title"), f"{where} ({key}): title", problems)
        tasks.append(TemplateTask(key, sv, en))
    if len(problems) > before:
        return None
    return CaseTemplate(str(template_id), title[0], title[1], tuple(tags), tuple(tasks), str(path))


def _titles(raw: Any, where: str, problems: list[str]) -> tuple[str, str]:
    """(sv, en): a template speaks both languages of the console."""
    if not isinstance(raw, dict):
        problems.append(f"{where}: a mapping with sv and en, not {raw!r}")
        return "", ""
    out = []
    for lang in LANGUAGES:
        text = raw.get(lang)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: no {lang} text")
            text = ""
        elif len(text) > 512:
            problems.append(f"{where}: the {lang} text is longer than 512 characters")
        out.append(text.strip())
    return out[0], out[1]
