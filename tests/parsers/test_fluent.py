"""The fluent parser and Fluent Bit's Windows records: SigmaHQ's Windows rules (loaded from
../shared/data/sigma/rules) fire on winevtlog records exactly as on EVTX, and stay silent on
the harmless twin of each."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from norrvakt.detect.engine import RuleSet
from norrvakt.event import KIND_PIPELINE_ERROR, Event, RawRecord
from norrvakt.parsers import parse_record
from norrvakt.parsers.windows_fluentbit import SECURITY, template_for, winevtlog_fields
from tests.conftest import shared_data

SEC = "Microsoft-Windows-Security-Auditing"


def _winevtlog(provider: str, event_id: int, channel: str, inserts: list[Any], **more: Any) -> dict[str, Any]:
    """A record shaped as Fluent Bit's winevtlog input packs it (default settings)."""
    return {
        "ProviderName": provider,
        "ProviderGuid": "",
        "Qualifiers": "",
        "EventID": event_id,
        "Version": 0,
        "Level": 4,
        "Task": 0,
        "Opcode": 0,
        "Keywords": "0x8080000000000000",
        "TimeCreated": "2026-11-26 21:43:38 +0100",
        "EventRecordID": 7731,
        "ActivityID": "",
        "RelatedActivityID": "",
        "ProcessID": 664,
        "ThreadID": 5208,
        "Channel": channel,
        "Computer": "WS-BODEN-113.boden.kommun.local",
        "UserID": "NT AUTHORITY\\SYSTEM",
        "Message": "",
        "StringInserts": inserts,
        **more,
    }


def _event(record: dict[str, Any], tag: str = "winevtlog") -> Event:
    payload = orjson.dumps({"tag": tag, "time": 1795725818, "record": record})
    return parse_record(
        RawRecord("boden", "fluent-bit", 1795729500000000, "10.9.8.7:40112", payload, "fluent")
    )


SERVICE_ANYDESK = _winevtlog(
    "Service Control Manager",
    7045,
    "System",
    ["AnyDesk Service", '"C:\\Program Files (x86)\\AnyDesk\\AnyDesk.exe" --service', "user mode service",
     "auto start", "LocalSystem"],
)  # fmt: skip
SERVICE_HARMLESS = _winevtlog(
    "Service Control Manager",
    7045,
    "System",
    ["Print Spooler Helper", "C:\\Windows\\System32\\spoolhelp.exe", "user mode service", "demand start",
     "LocalSystem"],
)  # fmt: skip
HIDDEN_USER = _winevtlog(
    SEC,
    4720,
    "Security",
    [
        "backdoor$",
        "BODEN",
        "S-1-5-21-1-2-3-1201",
        "S-1-5-21-1-2-3-500",
        "Administrator",
        "BODEN",
        "0x3e7",
        "-",
    ],
)
PLAIN_USER = _winevtlog(
    SEC,
    4720,
    "Security",
    [
        "lisa.nord",
        "BODEN",
        "S-1-5-21-1-2-3-1202",
        "S-1-5-21-1-2-3-500",
        "Administrator",
        "BODEN",
        "0x3e7",
        "-",
    ],
)
_SYSMON_1 = [
    "-",
    "2026-11-26 20:43:38.412",
    "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}",
    8612,
    "C:\\Windows\\System32\\whoami.exe",
    "10.0.19041.1",
    "whoami",
    "Microsoft Windows",
    "Microsoft Corporation",
    "whoami.exe",
    "whoami /priv",
    "C:\\Users\\lisa\\",
    "BODEN\\lisa.nord",
    "{5770385f-0000-0000-0000-000000000001}",
    "0x8b0f2a1",
    1,
    "Medium",
    "SHA1=1915FBFDB73FDD200C47880C7E9B6A28B9C1F4C5",
    "{5770385f-c22a-43e0-bf4c-06f5698ffbd8}",
    7984,
    "C:\\Windows\\System32\\cmd.exe",
    "cmd.exe",
    "BODEN\\lisa.nord",
]
WHOAMI_PRIV = _winevtlog("Microsoft-Windows-Sysmon", 1, "Microsoft-Windows-Sysmon/Operational", _SYSMON_1)
WHOAMI_PLAIN = copy.deepcopy(WHOAMI_PRIV)
WHOAMI_PLAIN["StringInserts"][10] = "whoami"

_DNS = [
    "-",
    "2026-11-26 20:43:40.001",
    "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}",
    4242,
    "userstorage.mega.co.nz",
    "0",
    "::ffff:89.44.169.135;",
    "C:\\Users\\lisa\\AppData\\Local\\MEGAsync\\MEGAsync.exe",
    "BODEN\\lisa.nord",
]
DNS_MEGA = _winevtlog("Microsoft-Windows-Sysmon", 22, "Microsoft-Windows-Sysmon/Operational", _DNS)
DNS_PLAIN = copy.deepcopy(DNS_MEGA)
DNS_PLAIN["StringInserts"][4] = "www.boden.se"


def _rules(*relative: str) -> RuleSet:
    texts = [shared_data("sigma", "rules", *r.split("/")).read_text() for r in relative]
    rules, report = RuleSet.from_yaml(*texts)
    assert not report.not_loaded, [e.reason for e in report.not_loaded]
    return rules


@pytest.mark.parametrize(
    ("rule", "positive", "negative"),
    [
        (
            "windows/builtin/system/service_control_manager/win_system_service_install_anydesk.yml",
            SERVICE_ANYDESK,
            SERVICE_HARMLESS,
        ),
        ("windows/builtin/security/win_security_hidden_user_creation.yml", HIDDEN_USER, PLAIN_USER),
        ("windows/process_creation/proc_creation_win_whoami_priv_discovery.yml", WHOAMI_PRIV, WHOAMI_PLAIN),
        ("windows/dns_query/dns_query_win_mega_nz.yml", DNS_MEGA, DNS_PLAIN),
    ],
)
def test_sigma_rule_fires_on_the_positive_case_only(
    rule: str, positive: dict[str, Any], negative: Any
) -> None:
    rules = _rules(rule)
    fired = rules.match(_event(positive))
    assert [m.rule.title for m in fired], f"{rule} did not fire on {_event(positive).fields}"
    assert rules.match(_event(negative)) == []


def test_the_same_rule_sees_the_same_fields_as_for_evtx() -> None:
    # the EVTX form of the positive 7045 case, as the evtx package renders it
    evtx = {
        "Event": {
            "System": {"Provider": {"#attributes": {"Name": "Service Control Manager"}}, "EventID": 7045,
                       "Channel": "System", "Computer": "WS-BODEN-113.boden.kommun.local"},
            "EventData": dict(zip(("ServiceName", "ImagePath", "ServiceType", "StartType", "AccountName"),
                                  SERVICE_ANYDESK["StringInserts"], strict=True)),
        }
    }  # fmt: skip
    from_evtx = parse_record(RawRecord("boden", "evtx", 1, "file", orjson.dumps(evtx), "windows"))
    from_fluent = _event(SERVICE_ANYDESK)
    for key in ("EventID", "Channel", "Provider_Name", "Computer", *evtx["Event"]["EventData"]):
        assert from_fluent.fields[key] == from_evtx.fields[key], key
    for key in ("event.action", "service.name", "host.name", "event.code"):
        assert from_fluent.ecs[key] == from_evtx.ecs[key], key


def test_every_security_template_has_unique_names() -> None:
    for event_id, names in SECURITY.items():
        assert len(names) == len(set(names)), event_id


def test_a_shorter_security_list_names_what_it_has() -> None:
    # 4688 version 0 (before CommandLine) had 8 values
    fields = winevtlog_fields(_winevtlog(SEC, 4688, "Security", ["S-1-5-18", "WS$", "BODEN", "0x3e7", "0x1a",
                                                                 "C:\\x.exe", "%%1936", "0x4"]))  # fmt: skip
    assert (
        fields["NewProcessName"] == "C:\\x.exe"
        and fields["ProcessId"] == "0x4"
        and "CommandLine" not in fields
    )


def test_values_beyond_the_template_are_kept_indexed() -> None:
    fields = winevtlog_fields(
        _winevtlog(SEC, 4634, "Security", ["S-1-5-18", "anna", "BODEN", "0x1", 3, "extra"])
    )
    assert fields["LogonType"] == "3" and fields["StringInserts.5"] == "extra"


def test_sysmon_list_of_unknown_length_is_not_guessed() -> None:
    fields = winevtlog_fields(_winevtlog("Microsoft-Windows-Sysmon", 1, "x", _SYSMON_1[:20]))
    assert "Image" not in fields and fields["StringInserts.4"] == "C:\\Windows\\System32\\whoami.exe"
    assert "no insertion-string template known" in fields["_inserts"]
    assert template_for("Microsoft-Windows-Sysmon", 1, 22) is not None


def test_sysmon_templates_that_only_grew_at_the_end() -> None:
    base = [
        "-",
        "2026-11-26 20:43:40.001",
        "{g}",
        4242,
        "C:\\x.exe",
        "C:\\Temp\\a.ps1",
        "2026-11-26 20:43:40.001",
    ]
    old = winevtlog_fields(_winevtlog("Microsoft-Windows-Sysmon", 11, "x", base))
    new = winevtlog_fields(_winevtlog("Microsoft-Windows-Sysmon", 11, "x", [*base, "BODEN\\lisa"]))
    assert old["TargetFilename"] == new["TargetFilename"] == "C:\\Temp\\a.ps1"
    assert "User" not in old and new["User"] == "BODEN\\lisa"


def test_insert_named_like_a_system_key_keeps_both() -> None:
    fields = winevtlog_fields(
        _winevtlog(
            "Microsoft-Windows-Eventlog",
            1102,
            "Security",
            ["S-1-5-21-1", "anna", "BODEN", "0x1"],
            SubjectUserName="system-said",
        )
    )
    assert fields["SubjectUserName"] == "system-said" and fields["EventData.SubjectUserName"] == "anna"


def test_fluent_bit_local_time_with_offset() -> None:
    assert _event(HIDDEN_USER).ts == 1795725818000000  # 21:43:38 +0100 = 20:43:38Z


def test_unreadable_time_created_falls_back_to_the_entry_time() -> None:
    record = dict(HIDDEN_USER, TimeCreated="sometime")
    payload = orjson.dumps({"tag": "w", "time": 1795729418, "nanos": 5000, "record": record})
    event = parse_record(RawRecord("boden", "fb", 1, "p", payload, "fluent"))
    assert event.ts == 1795729418000005


def test_not_json_is_a_pipeline_error() -> None:
    event = parse_record(RawRecord("boden", "fb", 1, "p", b"\x93\xa1t", "fluent"))
    assert event.kind == KIND_PIPELINE_ERROR and event.ecs["error.type"].startswith("fluent.")


def test_metadata_is_kept() -> None:
    payload = orjson.dumps(
        {"tag": "otel", "time": 1, "metadata": {"otlp": {"trace_id": "ab"}}, "record": {"a": 1}}
    )
    event = parse_record(RawRecord("boden", "fb", 1, "p", payload, "fluent"))
    assert event.fields["fluent.metadata.otlp.trace_id"] == "ab" and event.fields["a"] == "1"


def test_samples_folder_has_cases() -> None:
    assert len(list((Path(__file__).parents[1] / "samples" / "fluent").glob("*.yml"))) >= 1
