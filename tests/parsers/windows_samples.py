"""Windows events as JSON, written for the fast-path tests and the micro-benchmark.

Shaped like what ``evtx``'s ``PyEvtxParser(path).records_json()`` gives for real EVTX files
(``#attributes``, ``#text``, null System members, unnamed ``<Data>`` lists, UserData) and
like Winlogbeat and NXLog documents — but made up here: hosts, users, hashes and command
lines are invented, none is copied from ../shared/data.

``evtx_records(n)`` cycles through the templates with a varying record id, time, user and
process id, so a body of 500 is not 500 copies of one event.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

_XMLNS = {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"}
_SECURITY = ("Microsoft-Windows-Security-Auditing", "54849625-5478-4994-A5BA-3E3B0328C30D")
_SYSMON = ("Microsoft-Windows-Sysmon", "5770385F-C22A-43E0-BF4C-06F5698FFBD9")
_POWERSHELL = ("Microsoft-Windows-PowerShell", "A0C1853B-5C40-4B15-8766-3CF1C58F985A")
_SCM = ("Service Control Manager", "555908D1-A6D7-4695-8E1E-26931D2012F4")
_EVENTLOG = ("Microsoft-Windows-Eventlog", "FC65DDD8-D6EF-4962-83D5-6E5CFE9CE148")
_HOSTS = ("DC01.lulea.kommun.local", "SRV-FIL02.boden.kommun.local", "WS-4711.kiruna.kommun.local")
_USERS = ("anna.berg", "lars.nilsson", "svc_backup", "Administratör", "lisa.öberg")


def _system(provider: tuple[str, str], eid: Any, channel: str, i: int, **extra: Any) -> dict[str, Any]:
    sec = extra.pop("security", {"#attributes": {"UserID": "S-1-5-18"}})
    return {
        "Provider": {"#attributes": {"Name": provider[0], "Guid": provider[1]}},
        "EventID": eid,
        "Version": extra.pop("version", 0),
        "Level": extra.pop("level", 0),
        "Task": extra.pop("task", 12544),
        "Opcode": 0,
        "Keywords": extra.pop("keywords", "0x8020000000000000"),
        "TimeCreated": {
            "#attributes": {"SystemTime": f"2026-11-26T21:{i % 60:02d}:{i * 7 % 60:02d}.{i % 999999:06d}Z"}
        },
        "EventRecordID": 4_000_000 + i,
        "Correlation": None,
        "Execution": {"#attributes": {"ProcessID": 664 + i % 3, "ThreadID": 2000 + i % 97}},
        "Channel": channel,
        "Computer": _HOSTS[i % len(_HOSTS)],
        "Security": sec,
        **extra,
    }


def _evtx(system: dict[str, Any], **parts: Any) -> dict[str, Any]:
    return {"Event": {"#attributes": _XMLNS, "System": system, **parts}}


def _user(i: int) -> str:
    return _USERS[i % len(_USERS)]


def _logon(i: int) -> dict[str, Any]:
    return _evtx(
        _system(_SECURITY, 4624, "Security", i, security=None, version=2),
        EventData={
            "SubjectUserSid": "S-1-5-18",
            "SubjectUserName": "DC01$",
            "SubjectDomainName": "LULEA",
            "SubjectLogonId": "0x3e7",
            "TargetUserSid": f"S-1-5-21-1111-2222-3333-{1100 + i % 50}",
            "TargetUserName": _user(i),
            "TargetDomainName": "LULEA",
            "TargetLogonId": f"0x{0x1A2B3 + i:x}",
            "LogonType": 3,
            "LogonProcessName": "NtLmSsp ",
            "AuthenticationPackageName": "NTLM",
            "WorkstationName": "WS-4711",
            "LogonGuid": "{00000000-0000-0000-0000-000000000000}",
            "TransmittedServices": "-",
            "LmPackageName": "NTLM V2",
            "KeyLength": 128,
            "ProcessId": "0x0",
            "ProcessName": "-",
            "IpAddress": f"::ffff:10.12.{i % 250}.{i % 200 + 1}",
            "IpPort": str(49152 + i % 10000),
            "ImpersonationLevel": "%%1833",
        },
    )


def _failed(i: int) -> dict[str, Any]:
    return _evtx(
        _system(_SECURITY, 4625, "Security", i, security=None, keywords="0x8010000000000000"),
        EventData={
            "SubjectUserSid": "S-1-0-0",
            "SubjectUserName": "-",
            "SubjectDomainName": "-",
            "SubjectLogonId": "0x0",
            "TargetUserSid": "S-1-0-0",
            "TargetUserName": _user(i),
            "TargetDomainName": "LULEA",
            "Status": "0xc000006d",
            "FailureReason": "%%2313",
            "SubStatus": "0xc000006a",
            "LogonType": 3,
            "LogonProcessName": "NtLmSsp ",
            "AuthenticationPackageName": "NTLM",
            "WorkstationName": "-",
            "ProcessId": "0x0",
            "ProcessName": "-",
            "IpAddress": f"192.0.2.{i % 250 + 1}",
            "IpPort": "0",
        },
    )


def _process(i: int) -> dict[str, Any]:
    return _evtx(
        _system(_SECURITY, 4688, "Security", i, version=2, task=13312),
        EventData={
            "SubjectUserSid": "S-1-5-21-1111-2222-3333-1104",
            "SubjectUserName": _user(i),
            "SubjectDomainName": "BODEN",
            "SubjectLogonId": "0x4f1c2",
            "NewProcessId": f"0x{0x1000 + i:x}",
            "NewProcessName": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "TokenElevationType": "%%1937",
            "ProcessId": "0x2a8c",
            "CommandLine": f"powershell.exe -NoProfile -EncodedCommand SQBFAFgAIAAoAE4AZQB3AC{i}",
            "TargetUserSid": "S-1-0-0",
            "TargetUserName": "-",
            "TargetDomainName": "-",
            "TargetLogonId": "0x0",
            "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
            "MandatoryLabel": "S-1-16-12288",
        },
    )


def _sysmon_process(i: int) -> dict[str, Any]:
    return _evtx(
        _system(
            _SYSMON,
            1,
            "Microsoft-Windows-Sysmon/Operational",
            i,
            version=5,
            level=4,
            task=1,
            keywords="0x8000000000000000",
        ),
        EventData={
            "RuleName": "technique_id=T1059.001,technique_name=PowerShell",
            "UtcTime": f"2026-11-26 21:{i % 60:02d}:07.123",
            "ProcessGuid": "{4A1B2C3D-0001-6560-1A00-000000001000}",
            "ProcessId": 4000 + i % 3000,
            "Image": "C:\\Windows\\System32\\rundll32.exe",
            "FileVersion": "10.0.19041.1 (WinBuild.160101.0800)",
            "Description": "Windows host process (Rundll32)",
            "Product": "Microsoft® Windows® Operating System",
            "Company": "Microsoft Corporation",
            "OriginalFileName": "RUNDLL32.EXE",
            "CommandLine": f"rundll32.exe C:\\Users\\Public\\x{i}.dll,DllMain",
            "CurrentDirectory": "C:\\Users\\Public\\",
            "User": f"KIRUNA\\{_user(i)}",
            "LogonGuid": "{4A1B2C3D-0001-6560-2B1C-0A0000000000}",
            "LogonId": "0xa1c2b",
            "TerminalSessionId": 1,
            "IntegrityLevel": "Medium",
            "Hashes": "SHA1=0B5C5A1D2E3F40516273849506A7B8C9D0E1F203,MD5=9A8B7C6D5E4F30211203F4E5D6C7B8A9,"
            "SHA256=ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
            "ParentProcessGuid": "{4A1B2C3D-0001-6560-1900-000000001000}",
            "ParentProcessId": 3120,
            "ParentImage": "C:\\Windows\\explorer.exe",
            "ParentCommandLine": "C:\\Windows\\Explorer.EXE",
            "ParentUser": f"KIRUNA\\{_user(i)}",
        },
    )


def _sysmon_network(i: int) -> dict[str, Any]:
    return _evtx(
        _system(
            _SYSMON,
            3,
            "Microsoft-Windows-Sysmon/Operational",
            i,
            version=5,
            level=4,
            task=3,
            keywords="0x8000000000000000",
        ),
        EventData={
            "RuleName": "-",
            "UtcTime": f"2026-11-26 21:{i % 60:02d}:09.456",
            "ProcessGuid": "{4A1B2C3D-0001-6560-1A00-000000001000}",
            "ProcessId": 4000 + i % 3000,
            "Image": "C:\\Program Files\\Mozilla Firefox\\firefox.exe",
            "User": f"KIRUNA\\{_user(i)}",
            "Protocol": "tcp",
            "Initiated": True,
            "SourceIsIpv6": False,
            "SourceIp": f"10.20.{i % 200}.5",
            "SourceHostname": "WS-4711.kiruna.kommun.local",
            "SourcePort": 50000 + i % 15000,
            "SourcePortName": "-",
            "DestinationIsIpv6": False,
            "DestinationIp": "198.51.100.23",
            "DestinationHostname": "-",
            "DestinationPort": 443,
            "DestinationPortName": "https",
        },
    )


def _sysmon_access(i: int) -> dict[str, Any]:
    trace = "|".join(f"C:\\Windows\\SYSTEM32\\ntdll.dll+{0x9C534 + k * 0x1F3:x}" for k in range(12))
    return _evtx(
        _system(
            _SYSMON,
            10,
            "Microsoft-Windows-Sysmon/Operational",
            i,
            version=3,
            level=4,
            task=10,
            keywords="0x8000000000000000",
        ),
        EventData={
            "RuleName": "",
            "UtcTime": f"2026-11-26 21:{i % 60:02d}:11.001",
            "SourceProcessGUID": "{4A1B2C3D-0001-6560-3C00-000000001000}",
            "SourceProcessId": 6120,
            "SourceThreadId": 4732,
            "SourceImage": "C:\\Users\\Public\\tools\\dump64.exe",
            "TargetProcessGUID": "{4A1B2C3D-0001-6560-0C00-000000001000}",
            "TargetProcessId": 712,
            "TargetImage": "C:\\Windows\\system32\\lsass.exe",
            "GrantedAccess": "0x1010",
            "CallTrace": trace,
        },
    )


def _sysmon_file(i: int) -> dict[str, Any]:
    return _evtx(
        _system(
            _SYSMON,
            11,
            "Microsoft-Windows-Sysmon/Operational",
            i,
            version=2,
            level=4,
            task=11,
            keywords="0x8000000000000000",
        ),
        EventData={
            "RuleName": "-",
            "UtcTime": f"2026-11-26 21:{i % 60:02d}:13.777",
            "ProcessGuid": "{4A1B2C3D-0001-6560-1A00-000000001000}",
            "ProcessId": 4000 + i % 3000,
            "Image": "C:\\Windows\\System32\\svchost.exe",
            "TargetFilename": f"C:\\Users\\{_user(i)}\\AppData\\Local\\Temp\\~DF{i:04X}.tmp",
            "CreationUtcTime": "2026-11-26 21:00:00.000",
            "User": "NT AUTHORITY\\SYSTEM",
        },
    )


def _script_block(i: int) -> dict[str, Any]:
    script = "\n".join(f"$x{k} = Get-Item -Path 'HKLM:\\SOFTWARE\\Kommun\\{k}' # rad {k}" for k in range(30))
    return _evtx(
        _system(
            _POWERSHELL,
            4104,
            "Microsoft-Windows-PowerShell/Operational",
            i,
            version=1,
            level=5,
            task=2,
            keywords="0x0",
            security={"#attributes": {"UserID": "S-1-5-21-1111-2222-3333-1104"}},
        ),
        EventData={
            "MessageNumber": 1,
            "MessageTotal": 1,
            "ScriptBlockText": script,
            "ScriptBlockId": "1f2e3d4c-5b6a-4789-9abc-def012345678",
            "Path": "",
        },
    )


def _service(i: int) -> dict[str, Any]:
    return _evtx(
        _system(
            _SCM,
            {"#attributes": {"Qualifiers": 16384}, "#text": 7045},
            "System",
            i,
            level=4,
            task=0,
            keywords="0x8080000000000000",
            security={"#attributes": {"UserID": "S-1-5-21-1111-2222-3333-500"}},
            Provider={"#attributes": {"Name": _SCM[0], "Guid": _SCM[1], "EventSourceName": _SCM[0]}},
        ),
        EventData={
            "ServiceName": f"svc{i % 17}",
            "ImagePath": "%COMSPEC% /b /c start /b /min powershell -nop",
            "ServiceType": "user mode service",
            "StartType": "demand start",
            "AccountName": "LocalSystem",
        },
    )


def _cleared(i: int) -> dict[str, Any]:
    return _evtx(
        _system(_EVENTLOG, 104, "System", i, level=4, task=104, keywords="0x8000000000000000"),
        UserData={
            "LogFileCleared": {
                "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
                "SubjectUserName": _user(i),
                "SubjectDomainName": "BODEN",
                "Channel": "System",
                "BackupPath": None,
            }
        },
    )


def _unnamed(i: int) -> dict[str, Any]:
    return _evtx(
        _system(
            ("MSSQLSERVER", ""),
            {"#attributes": {"Qualifiers": 16384}, "#text": 15457},
            "Application",
            i,
            level=4,
            task=2,
            keywords="0x80000000000000",
            security={"#attributes": {"UserID": "S-1-5-18"}},
        ),
        EventData={
            "Data": {"#text": ["show advanced options", str(i % 2), str(1 - i % 2)]},
            "Binary": "613C0000090000000B0000004D005300530051004C00530045005200560045005200000000000000",
        },
    )


def _kerberos(i: int) -> dict[str, Any]:
    return _evtx(
        _system(_SECURITY, 4769, "Security", i, security=None, task=14337),
        EventData={
            "TargetUserName": f"{_user(i)}@LULEA.KOMMUN.LOCAL",
            "TargetDomainName": "LULEA.KOMMUN.LOCAL",
            "ServiceName": "krbtgt",
            "ServiceSid": "S-1-5-21-1111-2222-3333-502",
            "TicketOptions": "0x40810000",
            "TicketEncryptionType": "0x17",
            "IpAddress": "::ffff:10.12.3.44",
            "IpPort": "51234",
            "Status": "0x0" if i % 5 else "0x20",
            "LogonGuid": "{5E6F7A8B-0000-1111-2222-333344445555}",
            "TransmittedServices": "-",
        },
    )


def _group_member(i: int) -> dict[str, Any]:
    return _evtx(
        _system(_SECURITY, 4732, "Security", i, security=None, task=13826),
        EventData={
            "MemberName": "-",
            "MemberSid": f"S-1-5-21-1111-2222-3333-{1100 + i % 50}",
            "TargetUserName": "Administrators",
            "TargetDomainName": "Builtin",
            "TargetSid": "S-1-5-32-544",
            "SubjectUserSid": "S-1-5-21-1111-2222-3333-500",
            "SubjectUserName": "admin.erik",
            "SubjectDomainName": "LULEA",
            "SubjectLogonId": "0x8c2b1",
            "PrivilegeList": "-",
        },
    )


EVTX_TEMPLATES: tuple[Callable[[int], dict[str, Any]], ...] = (
    _logon,
    _failed,
    _process,
    _sysmon_process,
    _sysmon_network,
    _sysmon_access,
    _sysmon_file,
    _script_block,
    _service,
    _cleared,
    _unnamed,
    _kerberos,
    _group_member,
)


def evtx_records(n: int) -> list[dict[str, Any]]:
    """``n`` EVTX-shaped records, cycling through every template."""
    return [EVTX_TEMPLATES[i % len(EVTX_TEMPLATES)](i) for i in range(n)]


def winlogbeat_docs(n: int) -> list[dict[str, Any]]:
    """``n`` Winlogbeat-shaped documents (what a Winlogbeat → ``_bulk`` sender writes)."""
    out = []
    for i, rec in zip(range(n), itertools.cycle(evtx_records(len(EVTX_TEMPLATES))), strict=False):
        system = rec["Event"]["System"]
        eid = system["EventID"]
        eid = eid["#text"] if isinstance(eid, dict) else eid
        winlog: dict[str, Any] = {
            "channel": system["Channel"],
            "event_id": str(eid),
            "provider_name": system["Provider"]["#attributes"]["Name"],
            "provider_guid": "{" + system["Provider"]["#attributes"]["Guid"] + "}",
            "computer_name": system["Computer"],
            "record_id": 9_000_000 + i,
            "process": {"pid": 664, "thread": {"id": 2000 + i % 97}},
            "keywords": ["Audit Success"],
            "opcode": "Info",
            "task": "Logon",
            "api": "wineventlog",
        }
        if "EventData" in rec["Event"]:
            winlog["event_data"] = {k: str(v) for k, v in rec["Event"]["EventData"].items() if k != "Data"}
        if "UserData" in rec["Event"]:
            winlog["user_data"] = rec["Event"]["UserData"]
        out.append(
            {
                "@timestamp": f"2026-11-26T20:{i % 60:02d}:38.{i % 1000:03d}Z",
                "agent": {"type": "winlogbeat", "version": "8.15.0", "hostname": system["Computer"]},
                "ecs": {"version": "8.0.0"},
                "host": {"name": system["Computer"].split(".")[0]},
                "event": {
                    "code": str(eid),
                    "kind": "event",
                    "provider": winlog["provider_name"],
                    "created": "2026-11-26T20:43:39.001Z",
                },
                "log": {"level": "information"},
                "message": f"Windows event {eid}",
                "winlog": winlog,
            }
        )
    return out


def nxlog_docs(n: int) -> list[dict[str, Any]]:
    """``n`` NXLog om_json-shaped documents (flat keys, ``Keywords`` a signed integer)."""
    out = []
    for i, rec in zip(range(n), itertools.cycle(evtx_records(len(EVTX_TEMPLATES))), strict=False):
        system = rec["Event"]["System"]
        eid = system["EventID"]
        doc: dict[str, Any] = {
            "EventTime": f"2026-11-26 21:{i % 60:02d}:38",
            "Hostname": system["Computer"],
            "Keywords": -9214364837600034816,
            "EventType": "AUDIT_SUCCESS",
            "SeverityValue": 2,
            "Severity": "INFO",
            "EventID": eid["#text"] if isinstance(eid, dict) else eid,
            "SourceName": system["Provider"]["#attributes"]["Name"],
            "ProviderGuid": "{" + system["Provider"]["#attributes"]["Guid"] + "}",
            "Channel": system["Channel"],
            "RecordNumber": 7_000_000 + i,
        }
        for k, v in rec["Event"].get("EventData", {}).items():
            if k != "Data":
                doc.setdefault(k, v)
        out.append(doc)
    return out


def hec_envelopes(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The records as the issue's benchmark sends them: Splunk HEC envelopes."""
    for i, rec in enumerate(records):
        host = rec["Event"]["System"]["Computer"] if "Event" in rec else "relay01"
        yield {"event": rec, "host": host, "sourcetype": "XmlWinEventLog", "time": 1_795_729_970 + i}
