"""The Collector's windowseventlog bodies, arriving over OTLP, meet SigmaHQ's Windows rules
exactly as EVTX events do: the rules are loaded from the SigmaHQ snapshot (skipped with the
reason when ../shared/data is absent) and must fire on a positive body and not on a negative."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from norrvakt.detect.engine import RuleSet
from norrvakt.event import RawRecord
from norrvakt.parsers import parse_record
from tests.conftest import shared_data

SECURITY = "windows/builtin/security"


def _otlp(body: dict[str, Any]) -> RawRecord:
    doc = {"resource": {"host.name": "otelcol01"}, "scope": {}, "timeUnixNano": 1795729418000000000,
           "body": body, "attributes": {}}  # fmt: skip
    return RawRecord("lulea", "otlp-test", 1795729500000000, "192.0.2.7:4318", orjson.dumps(doc), "otlp")


def _body(event_id: int, provider: str, data: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "channel": "Security",
        "computer": "DC01.kommun.local",
        "event_id": {"id": event_id, "qualifiers": 0},
        "provider": {"name": provider, "guid": "", "event_source": ""},
        "record_id": 4711,
        "system_time": "2026-11-26T21:43:38.1234567Z",
        "level": "Information",
        "event_data": {"data": data},
    }


def _rule(*parts: str) -> RuleSet:
    rules, report = RuleSet.from_yaml(shared_data("sigma", "rules", *parts).read_text())
    assert not report.not_loaded, [e.reason for e in report.not_loaded]
    assert len(rules) == 1
    return rules


@pytest.mark.parametrize(
    "data,fires",
    [
        (
            [
                {"TargetUserName": "Administrators"},
                {"TargetSid": "S-1-5-32-544"},
                {"SubjectUserName": "anna"},
            ],
            True,
        ),
        # a computer account is filtered out by the rule
        (
            [
                {"TargetUserName": "Administrators"},
                {"TargetSid": "S-1-5-32-544"},
                {"SubjectUserName": "WS01$"},
            ],
            False,
        ),
        ([{"TargetUserName": "Users"}, {"TargetSid": "S-1-5-32-545"}, {"SubjectUserName": "anna"}], False),
    ],
)
def test_user_added_to_local_administrators(data: list[dict[str, str]], fires: bool) -> None:
    rules = _rule(SECURITY, "win_security_user_added_to_local_administrators.yml")
    event = parse_record(_otlp(_body(4732, "Microsoft-Windows-Security-Auditing", data)))
    assert event.kind == "event" and event.fields["EventID"] == "4732"
    assert bool(rules.match(event)) is fires


@pytest.mark.parametrize("provider,fires", [("Microsoft-Windows-Eventlog", True), ("Some-Other", False)])
def test_audit_log_cleared(provider: str, fires: bool) -> None:
    rules = _rule(SECURITY, "win_security_audit_log_cleared.yml")
    body = _body(1102, provider, [])
    body["event_data"] = {}
    event = parse_record(_otlp(body))
    assert bool(rules.match(event)) is fires
