"""Loading rule files: every file and rule gets a status, problems name the file and line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from norrvakt.detect.cli import rules as rules_cli
from norrvakt.detect.engine import RuleSet

from .helpers import event, rule_yaml

SECURITY = "product: windows\nservice: security"
GOOD = rule_yaml("sel: {A: '1'}\ncondition: sel", SECURITY)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def statuses(tmp_path: Path) -> dict[str, tuple[bool, str, int]]:
    _, report = RuleSet.load([tmp_path], use_cache=False)
    return {Path(e.path).name: (e.loaded, e.reason, e.line) for e in report.entries}


def test_good_rule_loads(tmp_path: Path) -> None:
    write(tmp_path, "good.yml", GOOD)
    rules, report = RuleSet.load([tmp_path], use_cache=False)
    assert len(rules) == 1
    (entry,) = report.entries
    assert entry.loaded and entry.state == "loaded" and entry.line == 2  # the id: line


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "bad.yml", "title: x\ndetection:\n  sel: {A: [1, 2}\n")
    loaded, reason, line = statuses(tmp_path)["bad.yml"]
    assert not loaded
    assert reason.startswith("bad YAML") and line == 3


def test_duplicate_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, "dup.yml", GOOD.replace("condition: sel", "condition: sel\n    condition: not sel"))
    loaded, reason, line = statuses(tmp_path)["dup.yml"]
    assert not loaded
    assert "duplicate key 'condition' (first at line 11)" in reason and line == 12


def test_rule_without_detection_is_not_loaded(tmp_path: Path) -> None:
    write(
        tmp_path,
        "nodet.yml",
        "title: x\nid: 1f0e3c53-0000-4000-8000-000000000002\nlogsource: {product: windows}\n",
    )
    loaded, reason, _ = statuses(tmp_path)["nodet.yml"]
    assert not loaded and "detection" in reason


def test_correlation_rule_loads_and_its_base_rule_is_noted(tmp_path: Path) -> None:
    write(
        tmp_path,
        "corr.yml",
        GOOD
        + "---\ntitle: Many\nid: 6e8d7e0a-0000-4000-8000-000000000003\ncorrelation:\n"
        + "  type: event_count\n  rules: [5d3b6a1e-0000-4000-8000-000000000001]\n  group-by: [A]\n"
        + "  timespan: 5m\n  condition: {gte: 10}\n",
    )
    _, report = RuleSet.load([tmp_path], use_cache=False)
    kinds = {e.kind: e for e in report.entries}
    assert kinds["rule"].loaded and "(generate: false): no detections of its own" in kinds["rule"].reason
    assert kinds["correlation"].state == "loaded"
    assert "1 correlation loaded" in report.summary()


def test_sigma_filter_is_applied_to_the_rules_it_names(tmp_path: Path) -> None:
    write(tmp_path, "good.yml", GOOD)
    write(
        tmp_path,
        "filter.yml",
        "title: Not for the test host\nid: 0c6b2a51-0000-4000-8000-000000000004\n"
        "logsource: {product: windows, service: security}\n"
        "filter:\n  rules: [5d3b6a1e-0000-4000-8000-000000000001]\n  sel: {Computer: testhost}\n"
        "  condition: not sel\n",
    )
    rules, report = RuleSet.load([tmp_path], use_cache=False)
    assert rules.match(event(Channel="Security", A="1", Computer="prod"))
    assert not rules.match(event(Channel="Security", A="1", Computer="testhost"))
    assert any(e.kind == "filter" and "applied to 1 rules" in e.reason for e in report.entries)


def test_not_utf8_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "latin1.yml").write_bytes(b"title: \xe5\n")
    write(tmp_path, "empty.yml", "")
    result = statuses(tmp_path)
    assert result["latin1.yml"][:2] == (False, "not UTF-8 at byte offset 7")
    assert not result["empty.yml"][0]


def test_rules_check_shows_the_table_and_fails_on_problems(tmp_path: Path) -> None:
    write(tmp_path, "good.yml", GOOD)
    write(tmp_path, "bad.yml", rule_yaml("sel: {A|nosuchmod: '1'}\ncondition: sel", SECURITY, rule_id="x"))
    result = CliRunner().invoke(rules_cli, ["check", str(tmp_path), "--no-cache"])
    assert result.exit_code == 1
    assert "not loaded" in result.output and "nosuchmod" in result.output and "loaded" in result.output


def test_rules_check_json(tmp_path: Path) -> None:
    write(tmp_path, "good.yml", GOOD)
    result = CliRunner().invoke(rules_cli, ["check", str(tmp_path), "--no-cache", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"state": "loaded"' in result.output
