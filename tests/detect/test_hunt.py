"""`norrvakt hunt` over EVTX and JSONL files: outputs, summary, levels."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from norrvakt.detect.cli import hunt
from tests.conftest import shared_data

from .helpers import rule_yaml
from .sigma_suite import cases, rule_files

WHOAMI = rule_yaml(
    "sel: {Image|endswith: '\\whoami.exe'}\ncondition: sel",
    "category: process_creation\nproduct: windows",
    title="Whoami Execution",
    level="high",
    tags="[attack.discovery, attack.t1033]",
)


def sysmon_1(record_id: int, image: str) -> str:
    event = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "EventRecordID": record_id,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "ws01.lulea.local",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-11-20T08:15:00.000000Z"}},
            },
            "EventData": {"Image": image, "CommandLine": image, "User": "LULEA\\anna"},
        }
    }
    return json.dumps(event)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "whoami.yml").write_text(WHOAMI, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [sysmon_1(10, "C:\\Windows\\System32\\whoami.exe"), sysmon_1(11, "C:\\Windows\\notepad.exe")]
    lines.append(sysmon_1(12, "C:\\Windows\\System32\\WHOAMI.EXE"))
    (logs / "ws01.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rules, logs


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(hunt, [*args, "--no-progress", "--no-cache"])
    return result.exit_code, result.stdout, result.stderr


def test_json_output_one_object_per_detection(files: tuple[Path, Path]) -> None:
    rules, logs = files
    code, out, err = run("--rules", str(rules), str(logs), "--format", "json")
    assert code == 0, err
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["event_record_id"] for d in docs] == [10, 12]
    first = docs[0]
    assert first["rule"]["title"] == "Whoami Execution"
    assert first["rule"]["level"] == "high"
    assert first["rule"]["tags"] == ["attack.discovery", "attack.t1033"]
    assert first["rule"]["id"] == "5d3b6a1e-0000-4000-8000-000000000001"
    assert first["file"] == "ws01.jsonl" and first["line"] == 1
    assert first["fields"]["Image"] == "C:\\Windows\\System32\\whoami.exe"
    assert first["timestamp"] == "2026-11-20T08:15:00.000000Z"
    assert "2 detections from 1 rules" in err


def test_csv_output(files: tuple[Path, Path]) -> None:
    rules, logs = files
    code, out, _ = run("--rules", str(rules), str(logs), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["event_record_id"] for r in rows] == ["10", "12"]
    assert rows[0]["rule_title"] == "Whoami Execution" and rows[0]["computer"] == "ws01.lulea.local"


def test_table_output_with_summary_by_rule_and_level(files: tuple[Path, Path]) -> None:
    rules, logs = files
    code, out, _ = run("--rules", str(rules), str(logs))
    assert code == 0
    assert "2 detections" in out and "Whoami Execution" in out
    assert "Detections by level" in out and "Detections by rule" in out


def test_output_file_and_min_level(files: tuple[Path, Path], tmp_path: Path) -> None:
    rules, logs = files
    target = tmp_path / "out.jsonl"
    code, _, err = run("--rules", str(rules), str(logs), "--format", "json", "-o", str(target))
    assert code == 0 and len(target.read_text().splitlines()) == 2
    code, _, err = run(
        "--rules", str(rules), str(logs), "--format", "json", "-o", str(target), "--min-level", "critical"
    )
    assert code == 0 and target.read_text() == ""
    assert "0 detections" in err


def test_unparsable_lines_are_reported(files: tuple[Path, Path]) -> None:
    rules, logs = files
    with open(logs / "ws01.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"Event": broken\n')
    code, _, err = run("--rules", str(rules), str(logs), "--format", "json")
    assert code == 0
    assert "1 records could not be read or parsed" in err and "ws01.jsonl:4" in err


def test_evtx_file_from_the_regression_suite(tmp_path: Path) -> None:
    shared_data("sigma", "regression_data")
    case = next(c for c in cases() if c.rule_id in rule_files())
    code, out, err = run("--rules", str(rule_files()[case.rule_id]), str(case.evtx), "--format", "json")
    assert code == 0, err
    docs = [json.loads(line) for line in out.splitlines()]
    assert docs and all(d["rule"]["id"] == case.rule_id for d in docs)
    assert all(isinstance(d["event_record_id"], int) and d["file"] == case.evtx.name for d in docs)


def test_hunt_reports_correlations_with_their_events(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {
                "EventTime": f"2026-11-26 21:00:{i:02d}",
                "Hostname": "lulea-dc01",
                "EventID": 4625,
                "SourceName": "Microsoft-Windows-Security-Auditing",
                "Channel": "Security",
                "RecordNumber": 500 + i,
                "TargetUserName": f"user{i}",
                "IpAddress": "185.220.101.45",
            }
        )
        for i in range(12)
    ]
    (tmp_path / "dc01.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, _ = run("--builtin", str(tmp_path), "--format", "json")
    assert code == 0
    [spray] = [json.loads(line) for line in out.splitlines()]
    assert spray["rule"]["title"] == "Password spraying from one address" and spray["kind"] == "correlation"
    assert spray["group"] == {"source.ip": "185.220.101.45"}
    assert [e["line"] for e in spray["events"]] == list(range(1, 11))
    assert spray["line"] == 1


def test_hunt_needs_some_rules(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path))
    assert code == 2 and "no rules" in err
