"""ArcSight Common Event Format, alone or inside a syslog message.

    CEF:0|Fortinet|Fortigate|v7.2.5|0000000013|traffic:forward deny|3|deviceExternalId=FG100FTK21000001 src=10.1.2.3 spt=55123 dst=203.0.113.7 dpt=443 proto=6 act=deny
    CEF:0|Palo Alto Networks|PAN-OS|10.2.4|url|THREAT|5|rt=Nov 26 2026 21:43:38 GMT suser=kommun\\\\anna request=http://evil.example/a?b=1 cs2Label=Rule cs2=block-malware
    CEF:0|Check Point|VPN-1 & FireWall-1|Check Point|Log|https|Unknown|act=Accept src=10.1.2.3 dst=192.0.2.10 msg=allowed by rule 12
    CEF:1|Security|threatmanager|1.0|100|detected a \\| in message|10|src=10.0.0.1 act=blocked a \\| dst=1.1.1.1

Header: ``CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|``
with ``\\|`` and ``\\\\`` escaped; it goes to ``cef.version``, ``cef.vendor``, ``cef.product``,
``cef.device_version``, ``cef.signature_id``, ``cef.name``, ``cef.severity``.

Extension: ``key=value`` pairs separated by spaces; a value runs to the next `` key=`` so it
may contain spaces; ``\\=``, ``\\\\``, ``\\n`` and ``\\r`` are unescaped. Every key is kept in
``fields`` under its own name; custom strings/numbers are also stored under their label
(``cs2Label=Rule cs2=block-malware`` → ``fields["Rule"] = "block-malware"``, unless that name is
taken). ECS: src/dst/spt/dpt, suser (else duser) → user.name, duser → user.target.name,
shost/dhost → source/destination.domain, act → event.action, proto → network.transport,
app → network.protocol, request → url.full, requestMethod → http.request.method,
requestClientApplication → user_agent.original, fname/filePath → file.path, fileHash,
dvchost → observer.name, outcome → event.outcome, rt → ts; observer.vendor/product from
the header, event.code = Signature ID, event.severity = Severity (Low/Medium/High/Very-High
read as 3/6/8/10), message = msg or else Name.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

import re

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import TS_MISSING
from norrvakt.parsers.timestamps import MONTHS, day_seconds, epoch_to_us, parse_iso

_HEADER = re.compile(
    r"CEF:\s*(\d+)\|((?:[^|\\]|\\.)*)\|((?:[^|\\]|\\.)*)\|((?:[^|\\]|\\.)*)\|((?:[^|\\]|\\.)*)"
    r"\|((?:[^|\\]|\\.)*)\|((?:[^|\\]|\\.)*)\|",
    re.DOTALL,
)
_HEADER_ESCAPE = re.compile(r"\\([|\\])")
# A key starts the string or follows a space and begins with a letter; it cannot contain '\',
# so an escaped "\=" is never mistaken for the end of a key, and the unescaped "1=1" that
# some senders leave in a URL is not taken for one either.
_EXT_KEY = re.compile(r"(?:^|(?<= ))([A-Za-z][A-Za-z0-9_.\[\]-]*)=")
_EXT_ESCAPE = re.compile(r"\\([\\=nr|])")
_ESC_VALUES = {"\\": "\\", "=": "=", "n": "\n", "r": "\r", "|": "|"}
_HEADER_FIELDS = ("cef.version", "cef.vendor", "cef.product", "cef.device_version", "cef.signature_id",
                  "cef.name", "cef.severity")  # fmt: skip
_SEVERITY_WORDS = {"low": "3", "medium": "6", "high": "8", "very-high": "10", "veryhigh": "10"}
_ECS_MAP = {
    "src": "source.ip",
    "dst": "destination.ip",
    "spt": "source.port",
    "dpt": "destination.port",
    "shost": "source.domain",
    "dhost": "destination.domain",
    "act": "event.action",
    "request": "url.full",
    "requestMethod": "http.request.method",
    "requestClientApplication": "user_agent.original",
    "fname": "file.path",
    "filePath": "file.path",
    "dvchost": "observer.name",
    "sproc": "process.name",
}
_TRANSPORTS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp", "47": "gre", "50": "esp"}
_OUTCOMES = {"success": "success", "failure": "failure", "failed": "failure", "fail": "failure",
             "unknown": "unknown", "allowed": "success", "blocked": "failure"}  # fmt: skip
_RT = re.compile(
    r"([A-Z][a-z]{2}) +(\d{1,2}) (\d{4}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?: (\S+))?$", re.ASCII
)


def _unescape_header(value: str) -> str:
    return _HEADER_ESCAPE.sub(r"\1", value) if "\\" in value else value


def _unescape_value(value: str) -> str:
    return _EXT_ESCAPE.sub(lambda m: _ESC_VALUES[m.group(1)], value) if "\\" in value else value


def parse_extension(ext: str) -> dict[str, str]:
    """CEF extension ``k=v k2=v with spaces`` → {key: unescaped value}."""
    out: dict[str, str] = {}
    matches = list(_EXT_KEY.finditer(ext))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(ext)
        out[m.group(1)] = _unescape_value(ext[m.end() : end].rstrip(" "))
    return out


def recognize_cef(event: Event, record: RawRecord) -> bool:
    msg = event.message
    start = msg.find("CEF:")
    if start < 0:
        return False
    m = _HEADER.match(msg, start)
    if m is None:
        return False
    fields = event.fields
    ecs = event.ecs
    header = [_unescape_header(g) for g in m.groups()]
    for name, value in zip(_HEADER_FIELDS, header, strict=True):
        fields[name] = value
    if start > 0:
        # Text some senders put before "CEF:" (a host name, a date) is kept, not lost.
        fields["cef.prefix"] = msg[:start].rstrip()
    ext = parse_extension(msg[m.end() :].rstrip("\r\n\x00 "))
    fields.update(ext)
    _labels(ext, fields)

    vendor, product = header[1], header[2]
    if vendor:
        ecs["observer.vendor"] = vendor
    if product:
        ecs["observer.product"] = product
    if header[4]:
        ecs["event.code"] = header[4]
    severity = header[6].strip()
    if severity:
        ecs["event.severity"] = _SEVERITY_WORDS.get(severity.lower(), severity)
    ecs["event.module"] = "cef"
    for key, target in _ECS_MAP.items():
        mapped = ext.get(key)
        if mapped:
            ecs[target] = mapped
    spid = ext.get("spid")
    if spid and spid.isdigit():
        ecs["process.pid"] = spid
    dvchost = ext.get("dvchost")
    if dvchost:
        ecs.setdefault("host.name", dvchost)
    user = ext.get("suser") or ext.get("duser")
    if user:
        ecs["user.name"] = user
    if ext.get("duser"):
        ecs["user.target.name"] = ext["duser"]
    proto = ext.get("proto")
    if proto:
        ecs["network.transport"] = _TRANSPORTS.get(proto, proto.lower())
    app = ext.get("app")
    if app:
        ecs["network.protocol"] = app.lower()
    outcome = ext.get("outcome")
    if outcome:
        ecs["event.outcome"] = _OUTCOMES.get(outcome.lower(), outcome.lower())
    file_hash = ext.get("fileHash")
    if file_hash:
        kind = {32: "file.hash.md5", 40: "file.hash.sha1", 64: "file.hash.sha256"}.get(len(file_hash))
        if kind:
            ecs[kind] = file_hash
    rt = ext.get("rt")
    if rt:
        ts = _receipt_time(rt, record.timezone)
        if ts is not None:
            event.ts = ts
            event.fields.pop(TS_MISSING, None)
    event.message = ext.get("msg") or header[5]
    return True


# (value key, label key) of the custom fields a sender may label.
_LABELLED = tuple(
    (f"{prefix}{n}", f"{prefix}{n}Label")
    for prefix, count in (("cs", 6), ("cn", 3), ("cfp", 4), ("flexString", 2), ("deviceCustomDate", 2))
    for n in range(1, count + 1)
)


def _labels(ext: dict[str, str], fields: dict[str, str]) -> None:
    for key, label_key in _LABELLED:
        if key in ext:
            label = ext.get(label_key)
            if label and label not in fields:
                fields[label] = ext[key]


def _receipt_time(rt: str, zone_name: str) -> int | None:
    """``rt``: epoch milliseconds, ``MMM dd yyyy HH:mm:ss[.SSS][ zone]`` or ISO 8601."""
    if rt.isdigit():
        return epoch_to_us(int(rt))
    m = _RT.match(rt)
    if m is not None:
        month = MONTHS.get(m.group(1))
        base = day_seconds(int(m.group(3)), month, int(m.group(2))) if month else None
        if base is None:
            return None
        zone = m.group(8)
        offset = 0
        if zone and zone not in ("GMT", "UTC", "Z"):
            if len(zone) == 5 and zone[0] in "+-" and zone[1:].isdigit():
                offset = int(zone[1:3]) * 3600 + int(zone[3:5]) * 60
                offset = -offset if zone[0] == "-" else offset
            else:
                return None  # a zone abbreviation (CET, EST) is ambiguous: keep the syslog time
        hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6))
        if hour > 23 or minute > 59 or second > 60:
            return None
        frac = m.group(7)
        seconds = base + hour * 3600 + minute * 60 + second - offset
        return seconds * 1_000_000 + (int((frac + "000000")[:6]) if frac else 0)
    return parse_iso(rt, zone_name)
