"""ECS for a Windows event from its Sigma-named fields (see :mod:`norrvakt.parsers.windows`).

    EventID=4625 TargetUserName=anna IpAddress=::ffff:10.1.2.3 IpPort=51123
        → event.action=logon-failed event.outcome=failure user.name=anna source.ip=10.1.2.3
    EventID=4688 NewProcessId=0x21a4 NewProcessName=C:\\Windows\\System32\\whoami.exe
        → process.pid=8612 process.executable=... process.name=whoami.exe
    Provider_Name=Microsoft-Windows-Sysmon EventID=1 User=KIRUNA\\lisa Hashes=SHA1=..,MD5=..
        → user.domain=KIRUNA user.name=lisa file.hash.sha1=.. file.hash.md5=..

Values Windows writes as "no value" (``-``, empty) never reach ECS; ``::ffff:`` is cut from
IPv4-mapped addresses; hex process ids become decimal (``process.pid`` is a number in ECS);
port and pid 0 mean "none". ``fields`` keep every value exactly as written.
"""

from __future__ import annotations

from norrvakt.event import ECS_FIELD_SET
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


# Every field _network reads: an event with none of them (most Sysmon and process events)
# skips the two dozen look-ups.
_NETWORK_FIELDS = frozenset(
    ("IpAddress", "SourceAddress", "SourceIp", "ClientAddress", "IpPort", "SourcePort",
     "WorkstationName", "Workstation", "SourceHostname", "DestinationIp", "DestAddress",
     "DestinationAddress", "DestinationPort", "DestPort", "DestinationHostname", "QueryName", "Protocol")
)  # fmt: skip


def _network(f: dict[str, str], ecs: dict[str, str]) -> None:
    if f.keys().isdisjoint(_NETWORK_FIELDS):
        return
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
