"""Windows parsing against real EVTX files (../shared/data/evtx-attack-samples) read with the
``evtx`` package exactly as the file source does: ``PyEvtxParser(path).records_json()``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from norrvakt.event import ECS_FIELD_SET, RawRecord, canonical_bytes
from norrvakt.parsers import parse_record
from tests.conftest import shared_data

evtx = pytest.importorskip("evtx")

RECEIVED_AT = 1_795_729_500_000_000


def _record(path: Path, record_id: int) -> RawRecord:
    for rec in evtx.PyEvtxParser(str(path)).records_json():
        if rec["event_record_id"] == record_id:
            return RawRecord(
                tenant="lulea",
                source_id="evtx-import",
                received_at=RECEIVED_AT,
                peer=f"file:{path.name}#{record_id}",
                payload=rec["data"].encode("utf-8"),
                format="windows",
            )
    raise AssertionError(f"record {record_id} not in {path}")


def _parse(*parts: str, record_id: int = 1) -> tuple[dict[str, str], dict[str, str], str, int]:
    path = shared_data("evtx-attack-samples", *parts)
    event = parse_record(_record(path, record_id))
    assert event.kind == "event", event.ecs.get("error.message")
    return event.ecs, event.fields, event.message, event.ts


def test_4624_network_logon() -> None:
    ecs, fields, message, ts = _parse("Command and Control", "DE_RDP_Tunneling_4624.evtx", record_id=17)
    assert fields["EventID"] == "4624"
    assert fields["Channel"] == "Security"
    assert fields["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert fields["LogonType"] == "3"
    assert fields["LogonProcessName"] == "NtLmSsp "  # trailing space as Windows writes it
    assert ecs["event.action"] == "logged-in"
    assert ecs["event.outcome"] == "success"
    assert ecs["user.name"] == "ANONYMOUS LOGON"
    assert ecs["user.domain"] == "NT AUTHORITY"
    assert ecs["source.ip"] == "10.0.2.17"
    assert ecs["source.port"] == "49168"
    assert "process.pid" not in ecs  # ProcessId 0x0
    assert message.startswith(
        "4624 Microsoft-Windows-Security-Auditing: An account was successfully logged on"
    )
    assert ts > 0


def test_4688_process_creation_with_hex_pids() -> None:
    ecs, fields, _, _ = _parse("Credential Access", "tutto_malseclogon.evtx")
    assert fields["EventID"] == "4688"
    assert fields["NewProcessId"] == "0x21a4"
    assert ecs["process.pid"] == str(0x21A4)
    assert ecs["process.executable"].endswith("\\MalSeclogon.exe")
    assert ecs["process.name"] == "MalSeclogon.exe"
    assert ecs["process.parent.executable"] == "C:\\Windows\\System32\\cmd.exe"
    assert fields["CommandLine"] == ""
    assert "process.command_line" not in ecs
    assert ecs["user.name"] == "IEUser"
    assert ecs["event.action"] == "process-created"


def test_sysmon_1_process_create() -> None:
    ecs, fields, message, _ = _parse("AutomatedTestingTools", "Malware", "rundll32_cmd_schtask.evtx")
    assert fields["EventID"] == "1"
    assert fields["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert fields["Image"] == "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe"
    assert fields["CommandLine"] == "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding"
    assert fields["ParentImage"] == "?"
    assert fields["TerminalSessionId"] == "0"
    assert ecs["event.module"] == "sysmon"
    assert ecs["event.action"] == "process-created"
    assert ecs["process.pid"] == "8796"
    assert (ecs["user.domain"], ecs["user.name"]) == ("NT AUTHORITY", "NETWORK SERVICE")
    assert ecs["file.hash.sha256"] == "b5c78bef3883e3099f7ef844da1446db29107e5c0223b97f29e7fafab5527f15"
    assert "Process Create" in message


def test_sysmon_3_booleans_render_as_windows_does() -> None:
    _, fields, _, _ = _parse("AutomatedTestingTools", "PanacheSysmon_vs_AtomicRedTeam01.evtx", record_id=186)
    assert fields["EventID"] == "3"
    assert fields["Initiated"] == "true"
    assert fields["SourceIsIpv6"] == "false"
    assert fields["DestinationPort"] == "80"


def test_1102_security_log_cleared_from_user_data() -> None:
    ecs, fields, _, _ = _parse("Defense Evasion", "DE_1102_security_log_cleared.evtx")
    assert fields["EventID"] == "1102"
    assert fields["SubjectUserName"] == "user01"
    assert fields["SubjectDomainName"] == "EXAMPLE"
    assert ecs["event.action"] == "audit-log-cleared"
    assert ecs["user.name"] == "user01"
    assert not any(k.startswith("xmlns") for k in fields)


def test_104_user_data_channel_collision_keeps_system_channel() -> None:
    ecs, fields, _, _ = _parse("Defense Evasion", "DE_104_system_log_cleared.evtx")
    assert fields["EventID"] == "104"
    assert fields["Channel"] == "System"
    assert ecs["winlog.channel"] == "System"
    # The UserData Channel says "System" too, so there is nothing to keep under its path.
    assert "LogFileCleared.Channel" not in fields
    assert fields["BackupPath"] == ""
    assert ecs["event.action"] == "audit-log-cleared"


def test_unnamed_data_and_qualifiers() -> None:
    _, fields, _, _ = _parse("Defense Evasion", "DE_xp_cmdshell_enabled_MSSQL_EID_15457.evtx")
    assert fields["EventID"] == "15457"
    assert fields["Qualifiers"] == "16384"
    assert [fields["Data_1"], fields["Data_2"], fields["Data_3"]] == ["show advanced options", "0", "1"]
    assert fields["Data"] == "show advanced options\n0\n1"
    assert fields["Binary"].startswith("613C0000")


@pytest.mark.slow
def test_every_evtx_record_parses() -> None:
    """All 8,255 records of evtx-attack-samples parse, with no pipeline errors, in < 20 s."""
    root = shared_data("evtx-attack-samples")
    files = sorted(root.rglob("*.evtx"))
    count = 0
    failures: list[str] = []
    started = time.monotonic()
    for path in files:
        for rec in evtx.PyEvtxParser(str(path)).records_json():
            record = RawRecord(
                "lulea", "evtx-import", RECEIVED_AT, f"file:{path.name}", rec["data"].encode(), "windows"
            )
            event = parse_record(record)
            count += 1
            if event.kind != "event" or "_ts_missing" in event.fields or not event.fields.get("EventID"):
                failures.append(f"{path.name}#{rec['event_record_id']}: {event.ecs.get('error.message')}")
            assert set(event.ecs) <= ECS_FIELD_SET
            canonical_bytes(event)
    elapsed = time.monotonic() - started
    assert failures == []
    assert count == 8255
    assert elapsed < 20, f"{count} records took {elapsed:.1f} s"
