"""The compiled-rules cache: keyed by content, used on restart, never trusted when unsafe."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from norrvakt.detect.engine import RuleSet

from .helpers import event, rule_yaml

RULE = rule_yaml("sel: {A: '1'}\ncondition: sel", "product: windows\nservice: security")


def rules_dir(tmp_path: Path, text: str = RULE) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "r.yml").write_text(text, encoding="utf-8")
    return d


def test_second_load_comes_from_the_cache(tmp_path: Path) -> None:
    d, cache = rules_dir(tmp_path), tmp_path / "cache"
    _, r1 = RuleSet.load([d], cache_dir=cache)
    second, r2 = RuleSet.load([d], cache_dir=cache)
    assert not r1.cached and r2.cached
    assert [e.state for e in r2.entries] == [e.state for e in r1.entries]
    assert second.match(event(Channel="Security", A="1"))
    assert oct(cache.stat().st_mode & 0o777) == "0o700"


def test_a_changed_rule_is_recompiled(tmp_path: Path) -> None:
    d, cache = rules_dir(tmp_path), tmp_path / "cache"
    RuleSet.load([d], cache_dir=cache)
    rules_dir(tmp_path, RULE.replace("A: '1'", "A: '2'"))
    rules, report = RuleSet.load([d], cache_dir=cache)
    assert not report.cached
    assert rules.match(event(Channel="Security", A="2"))


def test_cache_in_a_world_writable_directory_is_not_used(tmp_path: Path) -> None:
    d, cache = rules_dir(tmp_path), tmp_path / "cache"
    RuleSet.load([d], cache_dir=cache)
    os.chmod(cache, 0o777)
    _, report = RuleSet.load([d], cache_dir=cache)
    assert not report.cached
    assert "writable by group or others" in report.cache_note


def test_damaged_cache_entry_is_recompiled(tmp_path: Path) -> None:
    d, cache = rules_dir(tmp_path), tmp_path / "cache"
    RuleSet.load([d], cache_dir=cache)
    for entry in cache.glob("*.pickle"):
        entry.write_bytes(b"not a pickle")
    rules, report = RuleSet.load([d], cache_dir=cache)
    assert not report.cached and "unreadable" in report.cache_note
    assert rules.match(event(Channel="Security", A="1"))
    _, again = RuleSet.load([d], cache_dir=cache)
    assert again.cached  # the damaged entry was overwritten


def test_no_cache_writes_nothing(tmp_path: Path) -> None:
    d = rules_dir(tmp_path)
    RuleSet.load([d], cache_dir=tmp_path / "cache", use_cache=False)
    assert not (tmp_path / "cache").exists()


def test_correlations_come_from_the_cache_too(tmp_path: Path) -> None:
    from norrvakt.detect.detection import builtin_rules_dir

    cache = tmp_path / "cache"
    first, _ = RuleSet.load([builtin_rules_dir()], cache_dir=cache)
    second, report = RuleSet.load([builtin_rules_dir()], cache_dir=cache)
    # every correlation document of the built-in rules, counted from the YAML itself
    documents = [
        d for f in sorted(builtin_rules_dir().glob("*.yml")) for d in yaml.safe_load_all(f.read_text())
    ]
    expected = sum(1 for d in documents if isinstance(d, dict) and "correlation" in d)
    assert expected >= 8
    assert (
        report.cached and second.correlations == first.correlations and len(second.correlations) == expected
    )
