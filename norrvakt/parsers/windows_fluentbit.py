"""Windows events as Fluent Bit's ``winevtlog`` (and older ``winlog``) inputs send them.

    {"ProviderName":"Microsoft-Windows-Security-Auditing","ProviderGuid":"{54849625-5478-4994-A5BA-3E3B0328C30D}","Qualifiers":"","EventID":4720,"Version":0,"Level":0,"Task":13824,"Opcode":0,"Keywords":"0x8020000000000000","TimeCreated":"2026-11-26 21:43:38 +0100","EventRecordID":884213,"ActivityID":"","RelatedActivityID":"","ProcessID":640,"ThreadID":712,"Channel":"Security","Computer":"DC01.lulea.kommun.local","UserID":"","Message":"A user account was created. ...","StringInserts":["svc-backup$","LULEA","S-1-5-21-1-2-3-1120","S-1-5-21-1-2-3-500","Administrator","LULEA","0x3e7","-"]}
    {"RecordNumber":5512,"TimeGenerated":"2026-11-26 21:43:38 +0100","TimeWritten":"2026-11-26 21:43:38 +0100","EventId":1073748869,"EventType":"Information","EventCategory":0,"Channel":"System","SourceName":"Service Control Manager","ComputerName":"WS01","Data":"","Sid":"","Message":"A service was installed ...","StringInserts":["AnyDesk Service","C:\\\\AnyDesk.exe --service","user mode service","auto start","LocalSystem"]}

Fluent Bit gives the event's insertion strings as a positional list, ``StringInserts`` — the
values of the event's template in order, without their names (it skips array-typed values).
Where Microsoft documents the template order (the ``<EventData>`` schema on each event's
page: Security 4624 ... 4776, 1102; System 7045; Sysmon 1, 3, 11, 13, 22; PowerShell 4104) the values
get their names — ``TargetUserName``, ``ImagePath`` — so the Windows Sigma rules match exactly
as on EVTX records; the Security templates only ever grew at the end between versions, so a
shorter list names what it has. Values beyond the template, and all values of an event with
no known template, are kept as ``StringInserts.0``, ``StringInserts.1``, ...; ``_inserts``
says which template named them, or that none is known.

System keys get their Sigma names: ``ProviderName`` (``SourceName``) is ``Provider_Name``,
``ProviderGuid`` is ``Provider_Guid``; for ``winlog``, ``EventId`` (qualifiers cut off) is
``EventID``, ``ComputerName`` is ``Computer``, ``RecordNumber`` is ``EventRecordID``. Every key
is also kept under its own name. Time: ``TimeCreated`` (``TimeGenerated``), written by Fluent
Bit as local time with its offset, else the Forward entry's time.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

import re
from typing import Any

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import TS_MISSING, flatten_json, new_event, scalar_str
from norrvakt.parsers.timestamps import parse_iso
from norrvakt.parsers.windows_ecs import map_ecs

# -- insertion-string templates, from Microsoft's event pages (EventData, in order) ----------


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_SUBJECT = "SubjectUserSid SubjectUserName SubjectDomainName SubjectLogonId"
_TARGET_ACCOUNT = f"TargetUserName TargetDomainName TargetSid {_SUBJECT}"
_GROUP_MEMBER = f"MemberName MemberSid TargetUserName TargetDomainName TargetSid {_SUBJECT} PrivilegeList"

SECURITY: dict[int, tuple[str, ...]] = {
    eid: _names(names)
    for eid, names in {
        4624: f"""{_SUBJECT} TargetUserSid TargetUserName TargetDomainName TargetLogonId LogonType
            LogonProcessName AuthenticationPackageName WorkstationName LogonGuid TransmittedServices
            LmPackageName KeyLength ProcessId ProcessName IpAddress IpPort ImpersonationLevel
            RestrictedAdminMode TargetOutboundUserName TargetOutboundDomainName VirtualAccount
            TargetLinkedLogonId ElevatedToken""",
        4625: f"""{_SUBJECT} TargetUserSid TargetUserName TargetDomainName Status FailureReason SubStatus
            LogonType LogonProcessName AuthenticationPackageName WorkstationName TransmittedServices
            LmPackageName KeyLength ProcessId ProcessName IpAddress IpPort""",
        4634: "TargetUserSid TargetUserName TargetDomainName TargetLogonId LogonType",
        4648: f"""{_SUBJECT} LogonGuid TargetUserName TargetDomainName TargetLogonGuid TargetServerName
            TargetInfo ProcessId ProcessName IpAddress IpPort""",
        4672: f"{_SUBJECT} PrivilegeList",
        4688: f"""{_SUBJECT} NewProcessId NewProcessName TokenElevationType ProcessId CommandLine
            TargetUserSid TargetUserName TargetDomainName TargetLogonId ParentProcessName MandatoryLabel""",
        4697: f"{_SUBJECT} ServiceName ServiceFileName ServiceType ServiceStartType ServiceAccount",
        4698: f"{_SUBJECT} TaskName TaskContent",
        4720: f"""{_TARGET_ACCOUNT} PrivilegeList SamAccountName DisplayName UserPrincipalName HomeDirectory
            HomePath ScriptPath ProfilePath UserWorkstations PasswordLastSet AccountExpires PrimaryGroupId
            AllowedToDelegateTo OldUacValue NewUacValue UserAccountControl UserParameters SidHistory
            LogonHours""",
        4722: _TARGET_ACCOUNT,
        4724: _TARGET_ACCOUNT,
        4726: f"{_TARGET_ACCOUNT} PrivilegeList",
        4728: _GROUP_MEMBER,
        4732: _GROUP_MEMBER,
        4740: _TARGET_ACCOUNT,
        4756: _GROUP_MEMBER,
        4768: """TargetUserName TargetDomainName TargetSid ServiceName ServiceSid TicketOptions Status
            TicketEncryptionType PreAuthType IpAddress IpPort CertIssuerName CertSerialNumber
            CertThumbprint""",
        4769: """TargetUserName TargetDomainName ServiceName ServiceSid TicketOptions TicketEncryptionType
            IpAddress IpPort Status LogonGuid TransmittedServices""",
        4771: """TargetUserName TargetSid ServiceName TicketOptions Status PreAuthType IpAddress IpPort
            CertIssuerName CertSerialNumber CertThumbprint""",
        4776: "PackageName TargetUserName Workstation Status",
    }.items()
}

# Sysmon's templates changed in the middle between versions (OriginalFileName, ParentUser), so
# a list is named only when its length is that of a template known here.
_SYSMON_1 = """RuleName UtcTime ProcessGuid ProcessId Image FileVersion Description Product Company
    OriginalFileName CommandLine CurrentDirectory User LogonGuid LogonId TerminalSessionId IntegrityLevel
    Hashes ParentProcessGuid ParentProcessId ParentImage ParentCommandLine"""
_SYSMON_11 = "RuleName UtcTime ProcessGuid ProcessId Image TargetFilename CreationUtcTime"
_SYSMON_13 = "RuleName EventType UtcTime ProcessGuid ProcessId Image TargetObject Details"
_SYSMON_22 = "RuleName UtcTime ProcessGuid ProcessId QueryName QueryStatus QueryResults Image"
SYSMON: dict[int, dict[int, tuple[str, ...]]] = {
    1: {22: _names(_SYSMON_1), 23: _names(_SYSMON_1 + " ParentUser")},
    3: {
        18: _names(
            """RuleName UtcTime ProcessGuid ProcessId Image User Protocol Initiated SourceIsIpv6 SourceIp
            SourceHostname SourcePort SourcePortName DestinationIsIpv6 DestinationIp DestinationHostname
            DestinationPort DestinationPortName"""
        )
    },
    # file created, registry value set, DNS query: later Sysmon versions appended User to each
    11: {7: _names(_SYSMON_11), 8: _names(_SYSMON_11 + " User")},
    13: {8: _names(_SYSMON_13), 9: _names(_SYSMON_13 + " User")},
    22: {8: _names(_SYSMON_22), 9: _names(_SYSMON_22 + " User")},
}

# (provider, event id) -> template, for the other providers; a template is a prefix like Security's.
OTHER: dict[tuple[str, int], tuple[str, ...]] = {
    ("microsoft-windows-eventlog", 1102): _names(_SUBJECT),
    ("service control manager", 7045): _names("ServiceName ImagePath ServiceType StartType AccountName"),
    ("microsoft-windows-powershell", 4104): _names(
        "MessageNumber MessageTotal ScriptBlockText ScriptBlockId Path"
    ),
}

_SECURITY_PROVIDER = "microsoft-windows-security-auditing"
_SYSMON_PROVIDER = "microsoft-windows-sysmon"
INSERTS_NOTE = "_inserts"

_ALIASES = {"ProviderName": "Provider_Name", "SourceName": "Provider_Name", "ProviderGuid": "Provider_Guid",
            "ComputerName": "Computer", "RecordNumber": "EventRecordID"}  # fmt: skip
_FLB_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d+)?) ?([+-]\d\d):?(\d\d)")


def is_fluentbit_windows(record: dict[str, Any]) -> bool:
    """A winevtlog record (``ProviderName`` + ``EventID``) or a winlog one (``EventId`` + ``SourceName``)."""
    if "EventID" in record and "ProviderName" in record and "Channel" in record:
        return True
    return "EventId" in record and "SourceName" in record and "StringInserts" in record


def template_for(provider: str, event_id: int, count: int) -> tuple[str, tuple[str, ...]] | None:
    """The name and field names of the insertion strings of this event, if known."""
    key = provider.lower()
    if key == _SECURITY_PROVIDER and event_id in SECURITY:
        return f"Security {event_id}", SECURITY[event_id]
    if key == _SYSMON_PROVIDER and event_id in SYSMON:
        names = SYSMON[event_id].get(count)
        return (f"Sysmon {event_id} ({count} values)", names) if names else None
    names = OTHER.get((key, event_id))
    return (f"{provider} {event_id}", names) if names else None


def winevtlog_fields(record: dict[str, Any]) -> dict[str, str]:
    """Sigma-named fields of a Fluent Bit Windows record; every key also under its own name."""
    f: dict[str, str] = {}
    rest = {k: v for k, v in record.items() if k != "StringInserts"}
    flatten_json(rest, "", f)
    for src, dst in _ALIASES.items():
        value = f.get(src)
        if value and dst not in f:
            f[dst] = value
    if "EventID" not in f:
        legacy = record.get("EventId")  # winlog: the 32-bit id, qualifiers in the high bits
        if isinstance(legacy, int) and not isinstance(legacy, bool):
            f["EventID"] = str(legacy & 0xFFFF)
        elif legacy is not None:
            f["EventID"] = scalar_str(legacy)
    inserts = record.get("StringInserts")
    if not isinstance(inserts, list):
        if inserts is not None:
            f["StringInserts"] = scalar_str(inserts) if not isinstance(inserts, dict) else str(inserts)
        return f
    values = [v if isinstance(v, str) else scalar_str(v) if not isinstance(v, (dict, list)) else str(v)
              for v in inserts]  # fmt: skip
    eid = f.get("EventID", "")
    found = (
        template_for(f.get("Provider_Name", ""), int(eid), len(values))
        if eid.isascii() and eid.isdigit() and len(eid) < 10
        else None
    )
    names: tuple[str, ...] = found[1] if found else ()
    for i, value in enumerate(values):
        if i < len(names):
            name = names[i]
            # A name System already has (with another value) is kept under its path instead.
            if f.setdefault(name, value) != value:
                f["EventData." + name] = value
        else:
            f[f"StringInserts.{i}"] = value
    if found:
        f[INSERTS_NOTE] = f"named by the {found[0]} template"
    elif values:
        f[INSERTS_NOTE] = (
            f"no insertion-string template known for {f.get('Provider_Name') or 'this provider'} event "
            f"{eid or '?'} ({len(values)} values): kept as StringInserts.0..{len(values) - 1}"
        )
    return f


def winevtlog_event(record: RawRecord, body: dict[str, Any], entry_ts: int | None) -> Event:
    fields = winevtlog_fields(body)
    ecs: dict[str, str] = {}
    message = map_ecs(fields, ecs)
    ts = _time(fields.get("TimeCreated") or fields.get("TimeGenerated") or "", record.timezone)
    if ts is None:
        ts = entry_ts
    if ts is None:
        ts = record.received_at
        fields[TS_MISSING] = "1"
    return new_event(record, ts, message, ecs, fields)


def _time(text: str, timezone: str) -> int | None:
    """Fluent Bit's ``%Y-%m-%d %H:%M:%S %z`` (local time with its offset), or ISO 8601."""
    if not text:
        return None
    m = _FLB_TIME.fullmatch(text.strip())
    if m is not None:
        text = f"{m.group(1)}T{m.group(2)}{m.group(3)}:{m.group(4)}"
    return parse_iso(text, timezone)
