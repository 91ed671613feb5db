"""Log source mapping (pipelines/windows.yml) and the rule index built on it."""

from __future__ import annotations

import pytest

from norrvakt.detect.logsource import PipelineError, load_pipeline, parse_pipeline

from .helpers import SYSMON, event, load, rule_yaml

PROC = "category: process_creation\nproduct: windows"
RUNDLL = "sel: {Image|endswith: '\\rundll32.exe', ParentImage|endswith: '\\winword.exe'}\ncondition: sel"


def proc_rule() -> str:
    return rule_yaml(RUNDLL, PROC)


def test_process_creation_is_sysmon_1() -> None:
    rules, _ = load(proc_rule())
    fields = {"Image": "C:\\x\\rundll32.exe", "ParentImage": "C:\\o\\WINWORD.EXE"}
    assert rules.match(event(Channel=SYSMON, EventID="1", **fields))
    assert not rules.match(event(Channel=SYSMON, EventID="3", **fields))
    assert not rules.match(event(Channel="Application", EventID="1", **fields))
    assert not rules.match(event(EventID="1", **fields))


def test_process_creation_is_also_security_4688_with_renamed_fields() -> None:
    rules, _ = load(proc_rule())
    fields = {"NewProcessName": "C:\\x\\rundll32.exe", "ParentProcessName": "C:\\o\\WINWORD.EXE"}
    assert rules.match(event(Channel="Security", EventID="4688", **fields))
    # the Sysmon names do not apply to 4688: the renamed fields must be there
    assert not rules.match(
        event(
            Channel="Security", EventID="4688", Image="C:\\x\\rundll32.exe", ParentImage="C:\\o\\winword.exe"
        )
    )


def test_channel_comparison_is_case_insensitive() -> None:
    rules, _ = load(proc_rule())
    assert rules.match(
        event(Channel=SYSMON.lower(), EventID="1", Image="a\\rundll32.exe", ParentImage="b\\winword.exe")
    )


def test_service_maps_to_channel() -> None:
    rules, _ = load(rule_yaml("sel: {EventID: 1102}\ncondition: sel", "product: windows\nservice: security"))
    assert rules.match(event(Channel="Security", EventID="1102"))
    assert not rules.match(event(Channel="System", EventID="1102"))


@pytest.mark.parametrize(
    ("category", "channel", "event_id"),
    [
        ("ps_script", "Microsoft-Windows-PowerShell/Operational", "4104"),
        ("ps_script", "PowerShellCore/Operational", "4104"),
        ("ps_module", "Microsoft-Windows-PowerShell/Operational", "4103"),
        ("ps_classic_start", "Windows PowerShell", "400"),
        ("registry_set", SYSMON, "13"),
        ("registry_event", SYSMON, "14"),
        ("pipe_created", SYSMON, "18"),
        ("dns_query", SYSMON, "22"),
        ("file_delete", SYSMON, "26"),
    ],
)
def test_category_mappings(category: str, channel: str, event_id: str) -> None:
    rules, _ = load(rule_yaml("sel: {X: 'y'}\ncondition: sel", f"category: {category}\nproduct: windows"))
    assert rules.match(event(Channel=channel, EventID=event_id, X="y"))
    assert not rules.match(event(Channel=channel, EventID="999", X="y"))


def test_unmapped_logsource_loads_with_a_note_and_meets_every_event() -> None:
    rules, report = load(
        rule_yaml("sel: {X: 'y'}\ncondition: sel", "category: file_access\nproduct: windows")
    )
    (status,) = report.rules
    assert status.loaded and "not mapped" in status.reason
    assert rules.match(event(Channel="Anything", EventID="1", X="y"))


def test_index_skips_rules_whose_channel_cannot_match() -> None:
    rules, _ = load(
        proc_rule(), rule_yaml("sel: {EventID: 4624}\ncondition: sel", "product: windows\nservice: security")
    )
    rules.match(event(Channel="Application", EventID="1", Image="rundll32.exe"))
    rules.match(event(Channel="Security", EventID="4625"))  # the rule's own EventID is indexed too
    assert rules.stats.tested == 0


def test_index_admits_the_rules_that_can_match() -> None:
    rules, _ = load(
        rule_yaml("sel: {EventID: 4624, LogonType: 3}\ncondition: sel", "product: windows\nservice: security")
    )
    assert rules.match(event(Channel="Security", EventID="4624", LogonType="3"))
    assert not rules.match(event(Channel="Security", EventID="4624", LogonType="2"))


def test_match_many_keeps_event_order() -> None:
    rules, _ = load(rule_yaml("sel: {A: '1'}\ncondition: sel"))
    events = [event(A="1", n="1"), event(A="2"), event(A="1", n="3")]
    assert [m.event.fields.get("n") for m in rules.match_many(events)] == ["1", "3"]


def test_builtin_pipeline_loads() -> None:
    pipeline = load_pipeline()
    assert pipeline.index_fields == ("Channel", "EventID", "Provider_Name", "norrvakt.family")
    sysmon = pipeline.resolve("windows", "process_creation", None).variants[0]
    assert dict(sysmon.where) == {"Channel": (SYSMON,), "EventID": ("1",)}


def test_pipeline_errors_say_where() -> None:
    with pytest.raises(PipelineError, match=r"bad\.yml:2:\d+: not valid YAML"):
        parse_pipeline("name: x\nproducts: {windows: [a: b: c]}\n", "bad.yml")
    with pytest.raises(PipelineError, match="service 'nosuch' is not defined"):
        parse_pipeline(
            "name: x\nproducts:\n  windows:\n    categories:\n      c: [{service: nosuch}]\n", "bad.yml"
        )
