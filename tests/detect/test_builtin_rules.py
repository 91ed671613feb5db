"""The built-in rules against their golden cases (samples/builtin_rules.yml), end to end: raw
records -> parse_record -> DetectionEngine with only the built-in rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from norrvakt.detect.detection import DetectionEngine, builtin_rules_dir
from norrvakt.detect.engine import RuleSet
from norrvakt.detect.loader import quiet_refs
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record

SAMPLES = Path(__file__).parent / "samples" / "builtin_rules.yml"
CASES: list[dict[str, Any]] = yaml.safe_load(SAMPLES.read_text(encoding="utf-8"))
RECEIVED = 1_795_726_801_000_000  # 2026-11-26T21:00:01Z: RFC 3164 lines take their year from it
_COUNTER = re.compile(r"\{i(?::([^}]*))?\}")


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    rules, report = RuleSet.load([builtin_rules_dir()], use_cache=False)
    assert not report.not_loaded, [(e.location, e.reason) for e in report.not_loaded]
    return rules


def records(case: dict[str, Any]) -> list[Event]:
    out = []
    for spec in case["records"]:
        payload = spec["payload"]
        text = payload if isinstance(payload, str) else orjson.dumps(payload).decode("utf-8")
        for i in range(spec.get("repeat", 1)):
            body = _COUNTER.sub(lambda m, i=i: format(i, m.group(1) or ""), text)
            record = RawRecord(
                "lulea", "test", RECEIVED, "10.20.1.9:514", body.encode("utf-8"), spec["format"]
            )
            event = parse_record(record)
            assert event.kind != "pipeline_error", (case["case"], event.ecs.get("error.message"))
            out.append(event)
    for seq, event in enumerate(out, start=1):
        event.seq = seq
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_golden_case(rules: RuleSet, case: dict[str, Any]) -> None:
    engine = DetectionEngine(rules)
    detections = engine.process(records(case)) + engine.flush()
    fired = {d.rule_id for d in detections}
    assert (case["rule"] in fired) is case["fires"], sorted(d.title for d in detections)


def test_every_reporting_rule_has_positive_and_negative_cases(rules: RuleSet) -> None:
    quiet = quiet_refs(rules.correlations)
    reporting = {r.id for i, r in enumerate(rules.rules) if ("rule", i) not in quiet}
    reporting |= {s.info.id for i, s in enumerate(rules.correlations) if ("correlation", i) not in quiet}
    positive = {c["rule"] for c in CASES if c["fires"]}
    negative = {c["rule"] for c in CASES if not c["fires"]}
    assert reporting - positive == set()
    assert reporting - negative == set()
    assert {c["rule"] for c in CASES} <= reporting, "a case names a rule that does not exist or never reports"


def test_correlation_links_the_events_that_made_it(rules: RuleSet) -> None:
    case = next(c for c in CASES if c["case"] == "ssh brute force, then the password works")
    engine = DetectionEngine(rules)
    found = [d for d in engine.process(records(case)) if d.rule_id == case["rule"]]
    assert len(found) == 1
    d = found[0]
    assert d.kind == "correlation" and d.level == "high" and "attack.t1110.001" in d.tags
    assert dict(d.group) == {"source.ip": "185.220.101.45", "user.name": "anna"}
    # ten failures of the burst that completed it, then the success (seq 13)
    assert d.refs == tuple(("lulea", s) for s in (*range(1, 11), 13))
    assert d.event is not None and d.event.seq == 1


def test_building_blocks_do_not_report_on_their_own(rules: RuleSet) -> None:
    case = next(c for c in CASES if c["case"] == "sshd failures for one account, 10 times")
    detections = DetectionEngine(rules).process(records(case))
    assert {d.title for d in detections} == {"Brute force against one account"}


def test_builtin_rules_carry_attack_tags_levels_and_false_positives(rules: RuleSet) -> None:
    for info in rules.rules:
        assert (info.level and info.falsepositives) or info.name, info.title
    for spec in rules.correlations:
        assert spec.info.level, spec.info.title
    for info in [*rules.rules, *(s.info for s in rules.correlations)]:
        if info.name or "norrvakt.physical" in info.tags:
            continue  # building blocks; doors and keys have no ATT&CK technique
        assert any(t.startswith("attack.t") for t in info.tags), info.title


def test_every_builtin_rule_and_derived_field_is_documented(rules: RuleSet) -> None:
    from norrvakt.detect.derived import DerivedFields

    docs = (Path(__file__).parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    quiet = quiet_refs(rules.correlations)
    for i, info in enumerate(rules.rules):
        assert (info.id in docs) if ("rule", i) not in quiet else (info.name in docs), info.title
    for spec in rules.correlations:
        assert spec.info.id in docs or spec.info.name in docs, spec.info.title
    for name in DerivedFields().names:
        assert f"`{name}`" in docs, name
