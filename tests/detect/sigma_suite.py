"""SigmaHQ's regression data: the cases, the rule each names, and the outcome of each run.

Each case directory holds an ``info.yml`` naming a rule (``rule_metadata[0].id``) and an EVTX
file on which that rule must fire. Rules are looked up by id in every ``rules*`` folder of the
SigmaHQ snapshot. Outcomes are collected here and printed as "N/N" at the end of the run
(tests/detect/conftest.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.conftest import SHARED_DATA

SIGMA = SHARED_DATA / "sigma"
REGRESSION = SIGMA / "regression_data"


@dataclass(frozen=True)
class Case:
    name: str  # path of the case directory below regression_data
    rule_id: str
    rule_title: str
    evtx: Path
    match_count: int | None


@dataclass
class Outcomes:
    passed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    cannot_run: list[tuple[str, str]] = field(default_factory=list)
    count_differs: list[tuple[str, int, int]] = field(default_factory=list)  # case, expected, got


OUTCOMES = Outcomes()


def cases() -> list[Case]:
    if not REGRESSION.exists():
        return []
    out = []
    for info in sorted(REGRESSION.rglob("info.yml")):
        doc = yaml.safe_load(info.read_text(encoding="utf-8"))
        meta = doc["rule_metadata"][0]
        for test in doc.get("regression_tests_info") or []:  # some cases have theirs commented out
            if test.get("type") != "evtx":
                continue
            out.append(
                Case(
                    name=str(info.parent.relative_to(REGRESSION)),
                    rule_id=str(meta["id"]),
                    rule_title=str(meta.get("title", "")),
                    evtx=SIGMA / test["path"],
                    match_count=test.get("match_count"),
                )
            )
    return out


@functools.cache
def rule_files() -> dict[str, Path]:
    """Rule id -> rule file, over rules/, rules-emerging-threats/, rules-threat-hunting/ ..."""
    found: dict[str, Path] = {}
    pattern = re.compile(r"^id:\s*['\"]?([0-9a-fA-F-]{36})", re.MULTILINE)
    for folder in sorted(SIGMA.glob("rules*")):
        for path in folder.rglob("*.yml"):
            m = pattern.search(path.read_text(encoding="utf-8", errors="replace"))
            if m:
                found.setdefault(m.group(1), path)
    return found


def rule_folders() -> list[str]:
    return sorted(p.name for p in SIGMA.glob("rules*"))
