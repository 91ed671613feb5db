"""The Windows parser as it was before issue #12's fast path — the oracle of test_json_fast.

A frozen copy of ``scalar_str`` and ``flatten_json`` (norrvakt/parsers/base.py),
``windows_fields`` (norrvakt/parsers/windows.py) and ``map_ecs`` /
``winlogbeat_ecs`` (norrvakt/parsers/windows_ecs.py) at commit 267ee2b, before their per-event
overhead was removed. tests/parsers/test_json_fast.py checks that the live parser gives the
same fields, ECS and message as this copy on every record it is given. Do not "fix" this file:
when the parser's output is meant to change, change the test's expectation instead (and say so).
"""

from __future__ import annotations

from typing import Any

import orjson

from norrvakt.event import ECS_FIELD_SET, Event, RawRecord
from norrvakt.parsers.base import MAX_JSON_DEPTH, TS_MISSING, new_event
from norrvakt.parsers.timestamps import parse_iso
from norrvakt.parsers.windows_ids import (
    ACCOUNT_MGMT,
    GROUP_MEMBER,
    LEVELS,
    OTHER_IDS,
    SECURITY,
    SECURITY_IDS,
    SKIP,
    SUMMARY_KEYS,
    SUMMARY_MAX_ITEMS,
    SYSMON,
    SYSMON_IDS,
    TARGET_IS_USER,
    TRANSPORTS,
)


def scalar_str(value: Any) -> str:
    """A JSON scalar as the string stored in ``fields`` (true/false, decimal numbers, "" for null)."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def flatten_json(value: Any, prefix: str, out: dict[str, str], depth: int = 0) -> None:
    """Flatten a JSON value into ``out`` under dotted keys.

    Objects nest with dots (``{"host": {"name": "x"}}`` → ``host.name``). A list of scalars is
    one value, its items joined with ", " (what a person would type to search it); a list that
    holds objects or lists is indexed (``tags.0.name``) so nothing is lost. Empty objects vanish.
    """
    if isinstance(value, dict):
        if depth >= MAX_JSON_DEPTH:
            out[prefix] = _json_text(value)
            return
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(item, (dict, list)):
                flatten_json(item, name, out, depth + 1)
            else:
                out[name] = scalar_str(item)
    elif isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            out[prefix] = ", ".join(scalar_str(item) for item in value)
        elif depth >= MAX_JSON_DEPTH:
            out[prefix] = _json_text(value)
        else:
            for i, item in enumerate(value):
                flatten_json(item, f"{prefix}.{i}" if prefix else str(i), out, depth + 1)
    else:
        out[prefix] = scalar_str(value)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError: nested beyond orjson's own limit (254 levels)
        return "(JSON nested too deep to keep as a field value; see raw)"


def windows_event(record: RawRecord, doc: dict[str, Any], shape: str) -> Event:
    fields, stamp = windows_fields(doc, shape)
    ecs: dict[str, str] = {}
    message = map_ecs(fields, ecs)
    if shape == "winlogbeat":
        winlogbeat_ecs(fields, ecs)
    ts = parse_iso(stamp, record.timezone) if stamp else None
    if ts is None:
        ts = record.received_at
        fields[TS_MISSING] = "1"
    return new_event(record, ts, message, ecs, fields)


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


# --- ECS (windows_ecs.py) ---------------------------------------------------------------


def _good(value: str | None) -> str | None:
    return None if value is None or value in SKIP else value


def _basename(path: str) -> str:
    return path.rsplit("\\", 1)[-1]


def _pid(value: str | None) -> str | None:
    if not value or value in SKIP:
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
    level = LEVELS.get(get("Level", ""))
    if level:
        ecs["log.level"] = level

    sysmon = provider == SYSMON
    ecs["event.module"] = "sysmon" if sysmon else "windows"
    if sysmon:
        info = SYSMON_IDS.get(eid)
    else:
        info = SECURITY_IDS.get(eid) if provider in (SECURITY, "") else None
        if info is None:
            info = OTHER_IDS.get((provider, eid))
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
    prefix = "Target" if eid in TARGET_IS_USER else "Subject"
    name = _good(get(prefix + "UserName"))
    domain = _good(get(prefix + "DomainName"))
    sid = _good(get(prefix + "UserSid"))
    if eid in ACCOUNT_MGMT:
        _set(ecs, "user.target.name", get("TargetUserName"))
        _set(ecs, "user.target.domain", get("TargetDomainName"))
    elif eid in GROUP_MEMBER:
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
    if value and value not in SKIP:
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
    if proto is not None and (proto.isalpha() or proto in TRANSPORTS):
        ecs["network.transport"] = TRANSPORTS.get(proto, proto.lower())


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
    for key in SUMMARY_KEYS:
        value = f.get(key)
        if value and value not in SKIP:
            if len(value) > 160:
                value = value[:160] + "…"
            if "\n" in value:
                value = value.replace("\r", "").replace("\n", " ")
            parts.append(f"{key}={value}")
            n += 1
            if n == SUMMARY_MAX_ITEMS:
                break
    return " ".join(parts)


def winlogbeat_ecs(fields: dict[str, str], ecs: dict[str, str]) -> None:
    # Winlogbeat already wrote some ECS (host.name, event.outcome, ...): keep what we did not set.
    for key, value in fields.items():
        if value and key in ECS_FIELD_SET and key != "event.kind" and key not in ecs:
            ecs[key] = value
