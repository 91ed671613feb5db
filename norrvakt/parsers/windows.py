"""Windows events as JSON: EVTX records, Winlogbeat documents and NXLog's flat JSON.

    {"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Security-Auditing"}},"EventID":4624,"TimeCreated":{"#attributes":{"SystemTime":"2020-09-09T13:18:25.377120Z"}},"Channel":"Security","Computer":"MSEDGEWIN10"},"EventData":{"TargetUserName":"SYSTEM","LogonType":5,"IpAddress":"-"}}}
    {"Event":{"System":{"EventID":{"#attributes":{"Qualifiers":16384},"#text":15457},"Channel":"Application"},"EventData":{"Data":{"#text":["show advanced options","0","1"]},"Binary":"613C0000"}}}
    {"Event":{"System":{"EventID":104,"Channel":"System"},"UserData":{"LogFileCleared":{"SubjectUserName":"user01","Channel":"System","BackupPath":null}}}}
    {"@timestamp":"2026-11-26T20:43:38.123Z","winlog":{"channel":"Security","event_id":4625,"provider_name":"Microsoft-Windows-Security-Auditing","computer_name":"DC01","event_data":{"TargetUserName":"anna","IpAddress":"10.1.2.3"}}}
    {"EventTime":"2026-11-26 21:43:38","Hostname":"DC01.kommun.local","EventID":4688,"SourceName":"Microsoft-Windows-Security-Auditing","Channel":"Security","NewProcessName":"C:\\\\Windows\\\\System32\\\\cmd.exe"}

The EVTX form is what the ``evtx`` package's ``PyEvtxParser(path).records_json()`` gives as
``data``. All three are flattened to the field names SigmaHQ rules use:

- System: ``EventID`` (an ``{"#text": N, "#attributes": {"Qualifiers": Q}}`` EventID gives
  ``EventID`` and ``Qualifiers``), ``Channel``, ``Computer``, ``Provider_Name``,
  ``Provider_Guid``, ``Provider_EventSourceName``, ``EventRecordID``, ``Level``, ``Task``,
  ``Opcode``, ``Keywords``, ``Version``, ``SystemTime``, ``ProcessID``/``ThreadID``,
  ``UserID``, ``ActivityID``/``RelatedActivityID``.
- EventData: named values under their own names (``CommandLine``, ``TargetUserName``).
  Unnamed ``<Data>`` values are ``Data_1``, ``Data_2``, ... in order, and ``Data`` holds all
  of them joined with a newline — Sigma's ``Data|contains`` treats ``Data`` as the event data
  as a whole. ``Binary`` stays hex as given.
- UserData (and ProcessingErrorData): every leaf under its own name (``SubjectUserName``);
  a name already taken (``Channel`` in a log-cleared event) is stored under its path instead
  (``LogFileCleared.Channel``). The same rule applies to an EventData name that collides
  with a System one: the System value keeps the plain name.
- Values: numbers in decimal, booleans ``true``/``false`` (as the XML renders them and
  Sigma rules match: ``Initiated: 'true'``), null as "", hex strings as given.
- Winlogbeat: ``winlog.event_data.X`` → ``X``, ``winlog.user_data`` leaves as above,
  ``winlog.channel`` → ``Channel``, ``winlog.event_id``/``event.code`` → ``EventID``,
  ``winlog.provider_name`` → ``Provider_Name``, ... other keys kept flattened with dots.
- NXLog: keys are already flat; ``SourceName`` also gives ``Provider_Name``, ``Hostname``
  gives ``Computer``, ``RecordNumber`` gives ``EventRecordID``, a signed integer
  ``Keywords`` is written in hex like EVTX does.

ECS: event.code, event.provider, winlog.channel/record_id/computer_name, host.name,
user.name/domain/id (the target user for logon events, else the subject), user.target.*
for account management, source.ip/port/domain, destination.*, process.*, file.path and
file.hash.* (Sysmon ``Hashes``), event.action/category/type/outcome for the common event
ids (see the tables below), log.level, and ``message``, a one-line summary such as
``4625 Microsoft-Windows-Security-Auditing: An account failed to log on (logon-failed)
TargetUserName=anna IpAddress=10.1.2.3 LogonType=3``.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

from typing import Any

import orjson

from norrvakt.event import ECS_FIELD_SET, Event, RawRecord
from norrvakt.parsers.base import (
    MAX_JSON_DEPTH,
    TS_MISSING,
    ParseError,
    abbrev,
    flatten_json,
    load_json_object,
    new_event,
    scalar_str,
)
from norrvakt.parsers.timestamps import parse_iso

SYSMON = "Microsoft-Windows-Sysmon"
_SECURITY = "Microsoft-Windows-Security-Auditing"
_EVENTLOG = "Microsoft-Windows-Eventlog"
_SCM = "Service Control Manager"
_POWERSHELL = "Microsoft-Windows-PowerShell"

# (action, category, type, title) per event id; category/type "" when ECS has none that fits.
_Info = tuple[str, str, str, str]
_SECURITY_IDS: dict[str, _Info] = {
    "4624": ("logged-in", "authentication", "start", "An account was successfully logged on"),
    "4625": ("logon-failed", "authentication", "start", "An account failed to log on"),
    "4634": ("logged-out", "authentication", "end", "An account was logged off"),
    "4647": ("logged-out", "authentication", "end", "User initiated logoff"),
    "4648": (
        "logged-in-explicit",
        "authentication",
        "start",
        "A logon was attempted using explicit credentials",
    ),
    "4672": ("logged-in-special", "iam", "admin", "Special privileges assigned to new logon"),
    "4688": ("process-created", "process", "start", "A new process has been created"),
    "4689": ("process-terminated", "process", "end", "A process has exited"),
    "4697": ("service-installed", "configuration", "creation", "A service was installed in the system"),
    "4698": ("scheduled-task-created", "configuration", "creation", "A scheduled task was created"),
    "4699": ("scheduled-task-deleted", "configuration", "deletion", "A scheduled task was deleted"),
    "4702": ("scheduled-task-updated", "configuration", "change", "A scheduled task was updated"),
    "4719": ("changed-audit-config", "configuration", "change", "System audit policy was changed"),
    "4720": ("user-created", "iam", "creation", "A user account was created"),
    "4722": ("user-enabled", "iam", "change", "A user account was enabled"),
    "4723": (
        "password-change-attempt",
        "iam",
        "change",
        "An attempt was made to change an account's password",
    ),
    "4724": ("password-reset", "iam", "change", "An attempt was made to reset an account's password"),
    "4725": ("user-disabled", "iam", "change", "A user account was disabled"),
    "4726": ("user-deleted", "iam", "deletion", "A user account was deleted"),
    "4728": (
        "added-member-to-group",
        "iam",
        "change",
        "A member was added to a security-enabled global group",
    ),
    "4729": (
        "removed-member-from-group",
        "iam",
        "change",
        "A member was removed from a security-enabled global group",
    ),
    "4732": (
        "added-member-to-group",
        "iam",
        "change",
        "A member was added to a security-enabled local group",
    ),
    "4733": (
        "removed-member-from-group",
        "iam",
        "change",
        "A member was removed from a security-enabled local group",
    ),
    "4738": ("user-changed", "iam", "change", "A user account was changed"),
    "4740": ("user-locked-out", "iam", "change", "A user account was locked out"),
    "4756": (
        "added-member-to-group",
        "iam",
        "change",
        "A member was added to a security-enabled universal group",
    ),
    "4757": (
        "removed-member-from-group",
        "iam",
        "change",
        "A member was removed from a security-enabled universal group",
    ),
    "4767": ("user-unlocked", "iam", "change", "A user account was unlocked"),
    "4768": (
        "kerberos-authentication-ticket-requested",
        "authentication",
        "start",
        "A Kerberos authentication ticket (TGT) was requested",
    ),
    "4769": (
        "kerberos-service-ticket-requested",
        "authentication",
        "start",
        "A Kerberos service ticket was requested",
    ),
    "4771": ("kerberos-preauth-failed", "authentication", "start", "Kerberos pre-authentication failed"),
    "4776": (
        "credential-validated",
        "authentication",
        "start",
        "The computer attempted to validate the credentials for an account",
    ),
    "4778": (
        "session-reconnected",
        "authentication",
        "start",
        "A session was reconnected to a Window Station",
    ),
    "4779": (
        "session-disconnected",
        "authentication",
        "end",
        "A session was disconnected from a Window Station",
    ),
    "4794": (
        "set-dsrm-password",
        "iam",
        "change",
        "An attempt was made to set the Directory Services Restore Mode administrator password",
    ),
    "5140": ("network-share-accessed", "network", "access", "A network share object was accessed"),
    "5145": (
        "network-share-object-checked",
        "network",
        "access",
        "A network share object was checked for access",
    ),
    "5156": (
        "network-connection-allowed",
        "network",
        "connection",
        "The Windows Filtering Platform has permitted a connection",
    ),
}
_OTHER_IDS: dict[tuple[str, str], _Info] = {
    (_EVENTLOG, "1102"): ("audit-log-cleared", "configuration", "deletion", "The audit log was cleared"),
    (_EVENTLOG, "104"): ("audit-log-cleared", "configuration", "deletion", "The event log was cleared"),
    (_SCM, "7045"): (
        "service-installed",
        "configuration",
        "creation",
        "A service was installed in the system",
    ),
    (_SCM, "7036"): ("service-state-changed", "configuration", "change", "A service entered a new state"),
    (_POWERSHELL, "4104"): ("script-block-logged", "process", "info", "PowerShell script block logged"),
    (_POWERSHELL, "4103"): ("module-logged", "process", "info", "PowerShell module logging"),
}
_SYSMON_IDS: dict[str, _Info] = {
    "1": ("process-created", "process", "start", "Process Create"),
    "2": ("file-creation-time-changed", "file", "change", "File creation time changed"),
    "3": ("network-connection", "network", "connection", "Network connection detected"),
    "4": ("sysmon-state-changed", "", "", "Sysmon service state changed"),
    "5": ("process-terminated", "process", "end", "Process terminated"),
    "6": ("driver-loaded", "driver", "start", "Driver loaded"),
    "7": ("image-loaded", "process", "change", "Image loaded"),
    "8": ("remote-thread-created", "process", "change", "CreateRemoteThread detected"),
    "9": ("raw-access-read", "file", "access", "RawAccessRead detected"),
    "10": ("process-accessed", "process", "access", "Process accessed"),
    "11": ("file-created", "file", "creation", "File created"),
    "12": ("registry-object-added-or-deleted", "registry", "change", "Registry object added or deleted"),
    "13": ("registry-value-set", "registry", "change", "Registry value set"),
    "14": ("registry-object-renamed", "registry", "change", "Registry object renamed"),
    "15": ("file-stream-created", "file", "creation", "File stream created"),
    "16": ("sysmon-config-changed", "configuration", "change", "Sysmon config state changed"),
    "17": ("pipe-created", "file", "creation", "Pipe Created"),
    "18": ("pipe-connected", "file", "access", "Pipe Connected"),
    "19": ("wmi-filter-registered", "configuration", "creation", "WmiEventFilter activity detected"),
    "20": ("wmi-consumer-registered", "configuration", "creation", "WmiEventConsumer activity detected"),
    "21": ("wmi-consumer-bound", "configuration", "creation", "WmiEventConsumerToFilter activity detected"),
    "22": ("dns-query", "network", "protocol", "Dns query"),
    "23": ("file-deleted", "file", "deletion", "File Delete archived"),
    "24": ("clipboard-changed", "", "", "Clipboard changed"),
    "25": ("process-tampering", "process", "change", "Process Tampering"),
    "26": ("file-delete-detected", "file", "deletion", "File Delete logged"),
    "27": ("file-executable-blocked", "file", "denied", "File Block Executable"),
    "28": ("file-shredding-blocked", "file", "denied", "File Block Shredding"),
    "29": ("file-executable-detected", "file", "creation", "File Executable Detected"),
}

# Logon-type events describe the user that logs on (Target*); others the acting user (Subject*).
_TARGET_IS_USER = frozenset(
    ("4624", "4625", "4634", "4647", "4648", "4768", "4769", "4771", "4776", "4778", "4779")
)
_ACCOUNT_MGMT = frozenset(
    ("4720", "4722", "4723", "4724", "4725", "4726", "4738", "4740", "4767", "4781", "4794")
)
_GROUP_MEMBER = frozenset(("4728", "4729", "4732", "4733", "4746", "4747", "4751", "4752", "4756", "4757"))
_LEVELS = {
    "0": "information",
    "1": "critical",
    "2": "error",
    "3": "warning",
    "4": "information",
    "5": "verbose",
}
_TRANSPORTS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp"}
_SUMMARY_KEYS = (
    "TargetUserName", "TargetDomainName", "SubjectUserName", "User", "LogonType", "IpAddress",
    "WorkstationName", "Status", "SubStatus", "Image", "NewProcessName", "CommandLine",
    "ParentImage", "ParentProcessName", "TargetFilename", "TargetObject", "Details", "ImageLoaded",
    "SourceIp", "DestinationIp", "DestinationPort", "QueryName", "PipeName", "ServiceName",
    "TaskName", "MemberName", "MemberSid", "ShareName", "RelativeTargetName", "ScriptBlockText",
    "param1", "param2", "Data",
)  # fmt: skip
_SUMMARY_MAX_ITEMS = 8
_SKIP = ("", "-")

_SYSTEM_ATTR_PREFIX = {"Provider": "Provider_"}
_WINLOGBEAT_MAP = {
    "winlog.channel": "Channel",
    "winlog.event_id": "EventID",
    "winlog.provider_name": "Provider_Name",
    "winlog.provider_guid": "Provider_Guid",
    "winlog.computer_name": "Computer",
    "winlog.record_id": "EventRecordID",
    "winlog.process.pid": "ProcessID",
    "winlog.process.thread.id": "ThreadID",
    "winlog.keywords": "Keywords",
    "winlog.opcode": "Opcode",
    "winlog.task": "Task",
    "winlog.version": "Version",
    "winlog.user.identifier": "UserID",
    "winlog.activity_id": "ActivityID",
    "winlog.related_activity_id": "RelatedActivityID",
}
_NXLOG_ALIASES = {"SourceName": "Provider_Name", "ProviderGuid": "Provider_Guid", "Hostname": "Computer",
                  "RecordNumber": "EventRecordID"}  # fmt: skip


# --- recognising the three shapes ---------------------------------------------------------


def windows_shape(doc: dict[str, Any]) -> str | None:
    """The Windows JSON shape of ``doc`` ("evtx", "winlogbeat", "nxlog"), or None."""
    ev = doc.get("Event")
    if isinstance(ev, dict) and isinstance(ev.get("System"), dict):
        return "evtx"
    if isinstance(doc.get("winlog"), dict) or "winlog.event_id" in doc or "winlog.channel" in doc:
        return "winlogbeat"
    if "EventID" in doc and ("SourceName" in doc or "Channel" in doc or "ProviderGuid" in doc):
        return "nxlog"
    return None


def parse_windows(record: RawRecord) -> Event:
    doc = load_json_object(record, "windows")
    shape = windows_shape(doc)
    if shape is None:
        raise ParseError(
            "windows.unrecognized",
            "not a Windows event",
            "windows payload at byte offset 0 is a JSON object but no Windows event: expected "
            '{"Event": {"System": ...}} (EVTX), a Winlogbeat document (winlog.*) or NXLog keys '
            f"(EventID with Channel/SourceName); got keys {abbrev(', '.join(list(doc)[:8]), 80)}",
        )
    return windows_event(record, doc, shape)


def windows_event(record: RawRecord, doc: dict[str, Any], shape: str) -> Event:
    fields, stamp = windows_fields(doc, shape)
    ecs: dict[str, str] = {}
    message = map_ecs(fields, ecs)
    if shape == "winlogbeat":
        _winlogbeat_ecs(fields, ecs)
    ts = parse_iso(stamp, record.timezone) if stamp else None
    if ts is None:
        ts = record.received_at
        fields[TS_MISSING] = "1"
    return new_event(record, ts, message, ecs, fields)


def windows_fields(doc: dict[str, Any], shape: str) -> tuple[dict[str, str], str]:
    """Sigma-named fields of a Windows event, and its time as written (ISO 8601)."""
    if shape == "evtx":
        fields = _evtx_fields(doc["Event"])
        return fields, fields.get("SystemTime", "")
    if shape == "winlogbeat":
        fields = _winlogbeat_fields(doc)
        return fields, fields.get("@timestamp", "")
    fields = _nxlog_fields(doc)
    return fields, fields.get("EventTime") or fields.get("TimeCreated", "")


# --- EVTX ---------------------------------------------------------------------------------


def _evtx_fields(ev: dict[str, Any]) -> dict[str, str]:
    f: dict[str, str] = {}
    for key, value in ev["System"].items():
        if value is None:
            continue
        if not isinstance(value, dict):
            f[key] = scalar_str(value)
            continue
        attrs = value.get("#attributes")
        if "#text" in value:
            f[key] = scalar_str(value["#text"])
        if isinstance(attrs, dict):
            prefix = _SYSTEM_ATTR_PREFIX.get(key, "")
            for name, attr in attrs.items():
                f[prefix + name] = scalar_str(attr)
    for key, value in ev.items():
        if key == "System" or key == "#attributes" or value is None:
            continue
        if key == "EventData":
            _event_data(value, f)
        elif isinstance(value, dict):
            _leaves(value, "", f)
        else:
            _put(f, key, scalar_str(value), key)
    return f


def _event_data(data: Any, f: dict[str, str]) -> None:
    if not isinstance(data, dict):
        _unnamed(data, f)
        return
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            if key == "Data":
                _unnamed(value, f)
            elif key != "#attributes":
                _leaves(value if isinstance(value, dict) else {key: value}, key, f)
            continue
        text = scalar_str(value)
        if key in f and f[key] != text:
            f["EventData." + key] = text
        else:
            f[key] = text


def _unnamed(value: Any, f: dict[str, str]) -> None:
    if isinstance(value, dict):
        value = value.get("#text")
    if value is None:
        return
    items = value if isinstance(value, list) else [value]
    texts = [scalar_str(v) if not isinstance(v, (dict, list)) else flat_text(v) for v in items]
    for i, text in enumerate(texts, start=1):
        f[f"Data_{i}"] = text
    f["Data"] = "\n".join(texts)


def flat_text(value: Any) -> str:
    out: dict[str, str] = {}
    flatten_json(value, "", out)
    return " ".join(f"{k}={v}" for k, v in out.items())


def _put(f: dict[str, str], name: str, text: str, path: str) -> None:
    if name in f and f[name] != text:
        f[path] = text
    else:
        f[name] = text


def _leaves(node: dict[str, Any], path: str, f: dict[str, str], depth: int = 0) -> None:
    """UserData-style XML as JSON: every leaf under its own name, its path if the name is taken."""
    if depth >= MAX_JSON_DEPTH:
        f[path or "UserData"] = flat_text(node)
        return
    for key, value in node.items():
        sub = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            if key == "#attributes":
                for name, attr in value.items():
                    if not name.startswith("xmlns"):
                        _put(f, name, scalar_str(attr), f"{path}.{name}" if path else name)
            else:
                _leaves(value, sub, f, depth + 1)
        elif isinstance(value, list):
            if all(not isinstance(v, (dict, list)) for v in value):
                _put(f, key, "\n".join(scalar_str(v) for v in value), sub)
            else:
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        _leaves(item, f"{sub}.{i}", f, depth + 1)
                    else:
                        f[f"{sub}.{i}"] = scalar_str(item) if not isinstance(item, list) else flat_text(item)
        elif key == "#text":
            name = path.rsplit(".", 1)[-1] if path else "#text"
            _put(f, name, scalar_str(value), path or "#text")
        else:
            _put(f, key, scalar_str(value), sub)


# --- Winlogbeat and NXLog -----------------------------------------------------------------


def _winlogbeat_fields(doc: dict[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}
    flatten_json(doc, "", flat)
    f: dict[str, str] = {}
    rest: dict[str, str] = {}
    for key, value in flat.items():
        if key.startswith("winlog.event_data."):
            f[key[18:]] = value
        elif key.startswith("winlog.user_data."):
            continue  # below, with the UserData collision rule
        else:
            target = _WINLOGBEAT_MAP.get(key)
            if target is not None:
                f[target] = value
            else:
                rest[key] = value
    user_data = _dig(doc, "winlog", "user_data")
    if isinstance(user_data, dict):
        _leaves(user_data, "", f)
    if "EventID" not in f and "event.code" in rest:
        f["EventID"] = rest["event.code"]
    for key, value in rest.items():
        f.setdefault(key, value)
    return f


def _dig(doc: dict[str, Any], *path: str) -> Any:
    node: Any = doc
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    if node is None:
        node = doc.get(".".join(path))
    return node


def _winlogbeat_ecs(fields: dict[str, str], ecs: dict[str, str]) -> None:
    # Winlogbeat already wrote some ECS (host.name, event.outcome, ...): keep what we did not set.
    for key, value in fields.items():
        if value and key in ECS_FIELD_SET and key != "event.kind" and key not in ecs:
            ecs[key] = value


def _nxlog_fields(doc: dict[str, Any]) -> dict[str, str]:
    f: dict[str, str] = {}
    flatten_json(doc, "", f)
    for src, dst in _NXLOG_ALIASES.items():
        value = f.get(src)
        if value and dst not in f:
            f[dst] = value
    keywords = doc.get("Keywords")
    if isinstance(keywords, int) and not isinstance(keywords, bool):
        f["Keywords"] = f"0x{keywords & 0xFFFFFFFFFFFFFFFF:016x}"
    return f


# --- ECS ----------------------------------------------------------------------------------


def _good(value: str | None) -> str | None:
    return None if value is None or value in _SKIP else value


def _basename(path: str) -> str:
    return path.rsplit("\\", 1)[-1]


def _pid(value: str | None) -> str | None:
    if not value or value in _SKIP:
        return None
    if value.startswith(("0x", "0X")):
        try:
            number = int(value, 16)
        except ValueError:
            return None
    elif value.isdigit():
        number = int(value)
    else:
        return None
    # 0 is "no process" (a network logon's ProcessId 0x0), not the idle process.
    return str(number) if number else None


def map_ecs(f: dict[str, str], ecs: dict[str, str]) -> str:
    """Fill ``ecs`` from Sigma-named ``f``; return the one-line summary message."""
    get = f.get
    eid = get("EventID", "")
    provider = get("Provider_Name", "")
    if eid:
        ecs["event.code"] = eid
    if provider:
        ecs["event.provider"] = provider
    channel = get("Channel")
    if channel:
        ecs["winlog.channel"] = channel
    record_id = get("EventRecordID")
    if record_id:
        ecs["winlog.record_id"] = record_id
    computer = get("Computer")
    if computer:
        ecs["winlog.computer_name"] = computer
        ecs["host.name"] = computer
    level = _LEVELS.get(get("Level", ""))
    if level:
        ecs["log.level"] = level

    sysmon = provider == SYSMON
    ecs["event.module"] = "sysmon" if sysmon else "windows"
    if sysmon:
        info = _SYSMON_IDS.get(eid)
    else:
        info = _SECURITY_IDS.get(eid) if provider in (_SECURITY, "") else None
        if info is None:
            info = _OTHER_IDS.get((provider, eid))
    if info is not None:
        action, category, type_, title = info
        ecs["event.action"] = action
        if category:
            ecs["event.category"] = category
            ecs["event.type"] = type_
    else:
        title = ""

    _users(f, ecs, eid)
    _network(f, ecs)
    _process(f, ecs, sysmon)
    _outcome(f, ecs, eid)
    return _summary(f, eid, provider, title, info[0] if info else "")


def _users(f: dict[str, str], ecs: dict[str, str], eid: str) -> None:
    get = f.get
    prefix = "Target" if eid in _TARGET_IS_USER else "Subject"
    name = _good(get(prefix + "UserName"))
    domain = _good(get(prefix + "DomainName"))
    sid = _good(get(prefix + "UserSid"))
    if eid in _ACCOUNT_MGMT:
        _set(ecs, "user.target.name", get("TargetUserName"))
        _set(ecs, "user.target.domain", get("TargetDomainName"))
    elif eid in _GROUP_MEMBER:
        _set(ecs, "user.target.name", _good(get("MemberName")) or get("MemberSid"))
    if name is None:
        # Sysmon "User": "NT AUTHORITY\\SYSTEM"; NXLog "AccountName" + "Domain".
        user = _good(get("User")) or _good(get("AccountName"))
        if user is not None and "\\" in user:
            domain, _, name = user.partition("\\")
        elif user is not None:
            name, domain = user, _good(get("Domain"))
    if name:
        ecs["user.name"] = name
        if domain:
            ecs["user.domain"] = domain
    # System/Security/UserID is the account the *logging* process runs as: only a fallback.
    user_id = sid or (None if name else _good(get("UserID")))
    if user_id:
        ecs["user.id"] = user_id


def _set(ecs: dict[str, str], key: str, value: str | None) -> None:
    if value and value not in _SKIP:
        ecs[key] = value


def _network(f: dict[str, str], ecs: dict[str, str]) -> None:
    get = f.get
    ip = (
        _good(get("IpAddress"))
        or _good(get("SourceAddress"))
        or _good(get("SourceIp"))
        or _good(get("ClientAddress"))
    )
    if ip is not None:
        ecs["source.ip"] = ip[7:] if ip.startswith("::ffff:") else ip
    port = _good(get("IpPort")) or _good(get("SourcePort"))
    if port is not None and port != "0":
        ecs["source.port"] = port
    _set(ecs, "source.domain", get("WorkstationName") or get("Workstation") or get("SourceHostname"))
    dst = _good(get("DestinationIp")) or _good(get("DestAddress")) or _good(get("DestinationAddress"))
    if dst is not None:
        ecs["destination.ip"] = dst[7:] if dst.startswith("::ffff:") else dst
    dport = _good(get("DestinationPort")) or _good(get("DestPort"))
    if dport is not None and dport != "0":
        ecs["destination.port"] = dport
    _set(ecs, "destination.domain", get("DestinationHostname") or get("QueryName"))
    proto = _good(get("Protocol"))
    if proto is not None and (proto.isalpha() or proto in _TRANSPORTS):
        ecs["network.transport"] = _TRANSPORTS.get(proto, proto.lower())


def _process(f: dict[str, str], ecs: dict[str, str], sysmon: bool) -> None:
    get = f.get
    exe = (
        _good(get("Image"))
        or _good(get("NewProcessName"))
        or _good(get("ProcessName"))
        or _good(get("Application"))
    )
    if exe is not None:
        ecs["process.executable"] = exe
        ecs["process.name"] = _basename(exe)
    _set(ecs, "process.command_line", get("CommandLine"))
    pid = _pid(get("NewProcessId")) or _pid(get("ProcessId"))
    if pid is not None:
        ecs["process.pid"] = pid
    parent = _good(get("ParentImage")) or _good(get("ParentProcessName"))
    if parent is not None:
        ecs["process.parent.executable"] = parent
        ecs["process.parent.name"] = _basename(parent)
    _set(ecs, "process.parent.command_line", get("ParentCommandLine"))
    _set(ecs, "file.path", get("TargetFilename") or get("ImageLoaded"))
    _set(ecs, "service.name", get("ServiceName"))
    if sysmon:
        _set(ecs, "rule.name", get("RuleName"))
    hashes = get("Hashes") or get("Hash")
    if hashes:
        for part in hashes.split(","):
            kind, _, digest = part.partition("=")
            target = _HASHES.get(kind.strip().upper())
            if target and digest:
                ecs[target] = digest.lower()


_HASHES = {"MD5": "file.hash.md5", "SHA1": "file.hash.sha1", "SHA256": "file.hash.sha256"}


def _outcome(f: dict[str, str], ecs: dict[str, str], eid: str) -> None:
    if eid == "4624":
        ecs["event.outcome"] = "success"
        return
    if eid in ("4625", "4771"):
        ecs["event.outcome"] = "failure"
        return
    status = f.get("Status")
    if eid in ("4768", "4769", "4776") and status:
        ecs["event.outcome"] = "success" if status in ("0x0", "0") else "failure"
        return
    keywords = f.get("Keywords", "")
    if keywords.startswith(("0x", "0X")):
        try:
            bits = int(keywords, 16)
        except ValueError:
            return
        # Audit Success / Audit Failure keyword bits of the Security log.
        if bits & 0x20000000000000:
            ecs["event.outcome"] = "success"
        elif bits & 0x10000000000000:
            ecs["event.outcome"] = "failure"


def _summary(f: dict[str, str], eid: str, provider: str, title: str, action: str) -> str:
    if not title:
        rendered = f.get("Message") or f.get("message") or ""
        title = rendered.split("\n", 1)[0].strip()[:200]
    head = f"{eid or '?'} {provider or f.get('Channel') or 'Windows'}"
    parts = [f"{head}: {title}" if title else head]
    if action:
        parts.append(f"({action})")
    n = 0
    for key in _SUMMARY_KEYS:
        value = f.get(key)
        if value and value not in _SKIP:
            if len(value) > 160:
                value = value[:160] + "…"
            if "\n" in value:
                value = value.replace("\r", "").replace("\n", " ")
            parts.append(f"{key}={value}")
            n += 1
            if n == _SUMMARY_MAX_ITEMS:
                break
    return " ".join(parts)


# --- Windows JSON inside another message (syslog, HEC) ------------------------------------


def recognize_windows_json(event: Event, record: RawRecord) -> bool:
    """A syslog/HEC message that is a Windows event as JSON (NXLog om_json, Winlogbeat to syslog)."""
    msg = event.message
    if not msg.startswith("{") or ('"EventID"' not in msg and '"Event"' not in msg and '"winlog' not in msg):
        return False
    try:
        doc = orjson.loads(msg)
    except orjson.JSONDecodeError:
        return False  # looked like JSON but is not: the message stays as text
    if not isinstance(doc, dict):
        return False
    shape = windows_shape(doc)
    if shape is None:
        return False
    fields, stamp = windows_fields(doc, shape)
    ecs: dict[str, str] = {}
    event.message = map_ecs(fields, ecs)
    if shape == "winlogbeat":
        _winlogbeat_ecs(fields, ecs)
    # The envelope's host is the relay's view; the event's own Computer is more precise.
    for key, value in ecs.items():
        event.ecs[key] = value
    event.fields.update(fields)
    ts = parse_iso(stamp, record.timezone) if stamp else None
    if ts is not None:
        event.ts = ts
        event.fields.pop(TS_MISSING, None)
    return True
