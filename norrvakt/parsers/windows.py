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

ECS (:mod:`norrvakt.parsers.windows_ecs`, tables in :mod:`norrvakt.parsers.windows_ids`):
event.code, event.provider, winlog.channel/record_id/computer_name, host.name,
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

from norrvakt.event import Event, RawRecord
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
from norrvakt.parsers.windows_ecs import map_ecs, winlogbeat_ecs
from norrvakt.parsers.winlogbeat_params import add_unnamed_data

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
        winlogbeat_ecs(fields, ecs)
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
    # The hot loop of Windows ingest (every System member of every event): a str or int value
    # is turned into text inline, without a call to scalar_str (the same text, see _text).
    f: dict[str, str] = {}
    for key, value in ev["System"].items():
        kind = type(value)
        if kind is str:
            f[key] = value
        elif kind is int:
            f[key] = str(value)
        elif value is None:
            continue
        elif not isinstance(value, dict):
            f[key] = scalar_str(value)
        else:
            attrs = value.get("#attributes")
            if "#text" in value:
                f[key] = _text(value["#text"])
            if isinstance(attrs, dict):
                if key == "Provider":  # Provider_Name, Provider_Guid, Provider_EventSourceName
                    for name, attr in attrs.items():
                        f["Provider_" + name] = _text(attr)
                else:
                    for name, attr in attrs.items():
                        f[name] = _text(attr)
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


def _text(value: Any) -> str:
    """scalar_str(value), with the two common kinds first."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    return scalar_str(value)


def _event_data(data: Any, f: dict[str, str]) -> None:
    if not isinstance(data, dict):
        _unnamed(data, f)
        return
    setdefault = f.setdefault
    for key, value in data.items():
        kind = type(value)
        if kind is str:
            text = value
        elif kind is int:
            text = str(value)
        elif isinstance(value, (dict, list)):
            if key == "Data":
                _unnamed(value, f)
            elif key != "#attributes":
                _leaves(value if isinstance(value, dict) else {key: value}, key, f)
            continue
        else:
            text = scalar_str(value)
        # A name System already has (with another value) is kept under its path instead.
        taken = setdefault(key, text)
        if taken is not text and taken != text:
            f["EventData." + key] = text


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
    """Every leaf of the document as flatten_json names it, sorted as :func:`_winlogbeat_leaf`
    says; then UserData, and the rest under the names that are still free."""
    f: dict[str, str] = {}
    rest: dict[str, str] = {}
    _winlogbeat_object(doc, "", f, rest, 0)
    user_data = _dig(doc, "winlog", "user_data")
    if isinstance(user_data, dict):
        _leaves(user_data, "", f)
    if "EventID" not in f and "event.code" in rest:
        f["EventID"] = rest["event.code"]
    add_unnamed_data(f)  # param1, param2, ... as EVTX's Data (norrvakt/parsers/winlogbeat_params.py)
    for key, value in rest.items():
        f.setdefault(key, value)
    return f


def _winlogbeat_leaf(name: str, value: str, f: dict[str, str], rest: dict[str, str]) -> None:
    """Where one flattened leaf goes: ``winlog.event_data.X`` is ``X``, ``winlog.user_data.*``
    is left to the UserData rule, a name in _WINLOGBEAT_MAP is its Sigma name, else ``rest``.
    (No name in the map starts with winlog.event_data. or winlog.user_data., so the map is
    asked first: most winlog.* leaves are in it.)"""
    target = _WINLOGBEAT_MAP.get(name)
    if target is not None:
        f[target] = value
    elif not name.startswith("winlog."):
        rest[name] = value
    elif name.startswith("event_data.", 7):
        f[name[18:]] = value
    elif not name.startswith("user_data.", 7):
        rest[name] = value


def _winlogbeat_object(
    node: dict[str, Any], prefix: str, f: dict[str, str], rest: dict[str, str], depth: int
) -> None:
    """flatten_json(node, prefix) with each leaf passed to _winlogbeat_leaf, in the same order —
    but an object whose leaves all go one way (``winlog.event_data``, ``agent``, ``host``, ...)
    is flattened straight into ``f`` or ``rest``, without a test per leaf: most of a Winlogbeat
    document is such objects."""
    dotted = f"{prefix}." if prefix else ""
    for key, item in node.items():
        name = dotted + key if type(key) is str else f"{dotted}{key}"
        if not isinstance(item, (dict, list)):
            _winlogbeat_leaf(name, scalar_str(item), f, rest)
            continue
        # flatten_json cuts an object this deep to JSON text under its own name; and an empty
        # name or a list is named differently inside (no dot, or the list as one value).
        if depth + 1 < MAX_JSON_DEPTH and name and isinstance(item, dict):
            if not name.startswith("winlog") and not "winlog.".startswith(name):
                flatten_json(item, name, rest, depth + 1)  # no leaf can start with "winlog."
                continue
            if name == "winlog":
                _winlogbeat_object(item, name, f, rest, depth + 1)
                continue
            if name == "winlog.event_data" and "" not in item:
                flatten_json(item, "", f, depth + 1)  # its leaves lose exactly "winlog.event_data."
                continue
            if name.startswith("winlog.event_data.") and len(name) > 18:
                flatten_json(item, name[18:], f, depth + 1)
                continue
            if name == "winlog.user_data" or name.startswith("winlog.user_data."):
                continue  # every leaf is a winlog.user_data.* one
        leaves: dict[str, str] = {}
        flatten_json(item, name, leaves, depth + 1)
        for leaf, value in leaves.items():
            _winlogbeat_leaf(leaf, value, f, rest)


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
        winlogbeat_ecs(fields, ecs)
    # The envelope's host is the relay's view; the event's own Computer is more precise.
    event.ecs.update(ecs)
    event.fields.update(fields)
    ts = parse_iso(stamp, record.timezone) if stamp else None
    if ts is not None:
        event.ts = ts
        event.fields.pop(TS_MISSING, None)
    return True
