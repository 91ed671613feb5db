"""Small builders for detection tests: a rule from its detection block, an event from fields."""

from __future__ import annotations

import textwrap

from norrvakt.detect.engine import RuleSet
from norrvakt.detect.report import LoadReport
from norrvakt.event import Event

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def rule_yaml(
    detection: str,
    logsource: str = "category: norrvakt_test",
    *,
    title: str = "Test rule",
    rule_id: str = "5d3b6a1e-0000-4000-8000-000000000001",
    level: str = "high",
    tags: str = "[attack.execution, attack.t1059]",
) -> str:
    """A complete rule around ``detection`` (YAML text, any indentation). The default log source
    is not mapped, so the rule is tested against every event."""
    body = textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ")
    ls = textwrap.indent(textwrap.dedent(logsource).strip("\n"), "    ")
    return (
        f"title: {title}\nid: {rule_id}\nstatus: test\nlevel: {level}\ntags: {tags}\n"
        f"logsource:\n{ls}\ndetection:\n{body}\n"
    )


def event(message: str = "", **fields: str) -> Event:
    return Event(
        tenant="lulea", ts=0, ingested=0, source="test", peer="test", fields=dict(fields), message=message
    )


def load(*texts: str) -> tuple[RuleSet, LoadReport]:
    return RuleSet.from_yaml(*texts)


def fires(
    detection: str, message: str = "", logsource: str = "category: norrvakt_test", **fields: str
) -> bool:
    """Whether a rule with ``detection`` fires on an event with ``fields``; the rule must load."""
    rules, report = load(rule_yaml(detection, logsource))
    assert not report.not_loaded, [e.reason for e in report.not_loaded]
    return bool(rules.match(event(message, **fields)))


def not_loaded_reason(detection: str, logsource: str = "category: norrvakt_test") -> str:
    rules, report = load(rule_yaml(detection, logsource))
    assert len(rules) == 0, "the rule loaded"
    return "; ".join(e.reason for e in report.not_loaded)
