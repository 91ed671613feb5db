"""What changes between two content versions, per rule (by its Sigma ``id``).

- new: the id is only in the newer version;
- removed: only in the older one;
- deprecated: ``status: deprecated`` in the newer version, or the file moved into a
  ``deprecated`` folder, where it was neither before;
- changed: the rule's file differs — with the unified diff of its YAML.

Rules are read from the package folders a version loads (:meth:`ContentStore.rule_dirs`), so a
rule kept in several overlapping packages counts once. Files are read as YAML only to find each
document's ``id``, ``title`` and ``status``; parsing the rule itself is the loader's business.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from norrvakt.detect.content.store import ContentError, ContentStore
from norrvakt.detect.loader import find_rule_files


@dataclass(frozen=True)
class RuleText:
    id: str
    title: str
    status: str
    path: str  # relative to its package folder, e.g. rules/windows/.../x.yml
    text: str

    @property
    def deprecated(self) -> bool:
        return self.status == "deprecated" or "deprecated" in Path(self.path).parts


@dataclass(frozen=True)
class RuleChange:
    change: str  # new | changed | removed | deprecated
    id: str
    title: str
    path: str
    old_path: str = ""
    diff: str = ""  # unified YAML diff (changed, deprecated)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rule_files(dirs: list[Path]) -> dict[str, bytes]:
    """Relative path (to its package folder) -> content, over the rule files under ``dirs``."""
    files: dict[str, bytes] = {}
    for base in dirs:
        for path in find_rule_files([base]) if base.is_dir() else []:
            try:
                files.setdefault(str(path.relative_to(base)), path.read_bytes())
            except OSError:
                continue  # unreadable now: the loader named it when the version was taken
    return files


def rules_of(files: dict[str, bytes]) -> dict[str, RuleText]:
    """Rule id -> its text; files without ids are skipped (a file with no ``id`` cannot be
    followed across versions)."""
    found: dict[str, RuleText] = {}
    for rel, data in sorted(files.items()):
        try:
            text = data.decode("utf-8")
            docs = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
        except (UnicodeDecodeError, yaml.YAMLError):
            continue  # the loader reports it, with its line, when the version is taken
        for doc in docs:
            if not isinstance(doc, dict) or not doc.get("id"):
                continue
            rid = str(doc["id"])
            found.setdefault(
                rid, RuleText(rid, str(doc.get("title") or ""), str(doc.get("status") or ""), rel, text)
            )
    return found


def diff_files(old: dict[str, bytes], new: dict[str, bytes]) -> list[RuleChange]:
    """The changes between two sets of rule files; a file the same at the same path on both
    sides holds no change and is not parsed (a release changes a few dozen of ~3,000)."""
    same = {rel for rel, data in old.items() if new.get(rel) == data}
    return diff_rules(
        rules_of({r: d for r, d in old.items() if r not in same}),
        rules_of({r: d for r, d in new.items() if r not in same}),
    )


def diff_rules(old: dict[str, RuleText], new: dict[str, RuleText]) -> list[RuleChange]:
    changes: list[RuleChange] = []
    for rid in sorted(old.keys() | new.keys(), key=lambda r: ((new.get(r) or old[r]).path, r)):
        before, after = old.get(rid), new.get(rid)
        if before is None and after is not None:
            kind = "deprecated" if after.deprecated else "new"
            changes.append(RuleChange(kind, rid, after.title, after.path))
        elif after is None and before is not None:
            changes.append(RuleChange("removed", rid, before.title, before.path))
        elif (
            before is not None
            and after is not None
            and (before.text != after.text or before.path != after.path)
        ):
            text = "".join(
                difflib.unified_diff(
                    before.text.splitlines(keepends=True),
                    after.text.splitlines(keepends=True),
                    fromfile=f"a/{before.path}",
                    tofile=f"b/{after.path}",
                )
            )
            kind = "deprecated" if after.deprecated and not before.deprecated else "changed"
            old_path = before.path if before.path != after.path else ""
            changes.append(RuleChange(kind, rid, after.title, after.path, old_path, text))
    return changes


def diff_versions(store: ContentStore, old: str, new: str) -> list[RuleChange]:
    return diff_files(rule_files(store.rule_dirs(old)), rule_files(store.rule_dirs(new)))


def default_pair(store: ContentStore, old: str | None, new: str | None) -> tuple[str, str]:
    """FROM and TO when not given: from the version in use to the newest kept after it (an
    update waiting for review); when the one in use is the newest, from the one kept before it."""
    names = [v.name for v in store.versions()]
    if not names:
        raise ContentError("no content versions kept (norrvakt rules update / import)")
    current = store.current_name()
    if old is None and new is None:
        if current is not None and current != names[-1] and current in names:
            return current, names[-1]
        new = current or names[-1]
    if new is None:
        new = names[-1]
    if old is None:
        before = names[: names.index(new)] if new in names else []
        if not before:
            raise ContentError(f"no version kept before {new}; give FROM")
        old = before[-1]
    return old, new
