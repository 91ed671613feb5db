"""Windows events from the OpenTelemetry Collector's ``windowseventlog`` receiver: the body of
the OTLP log record is a map (shaped after the receiver's documentation)::

    {"channel":"Security","computer":"DC01.kommun.local","event_id":{"id":4732,"qualifiers":0},"provider":{"name":"Microsoft-Windows-Security-Auditing","guid":"{54849625-5478-4994-a5ba-3e3b0328c30d}","event_source":""},"record_id":88213,"system_time":"2026-11-26T21:43:38.1234567Z","level":"Information","task":"Security Group Management","opcode":"Info","keywords":["Audit Success"],"event_data":{"data":[{"MemberSid":"S-1-5-21-1-2-3-1104"},{"TargetUserName":"Administratörer"},{"TargetSid":"S-1-5-32-544"},{"SubjectUserName":"anna"}]},"execution":{"process_id":712,"thread_id":1244},"security":{"user_id":"S-1-5-18"},"message":"A member was added to a security-enabled local group."}

Older Collector versions write ``event_data`` as one map (``{"TargetUserName": "anna"}``);
newer ones as ``{"data": [{"Name": "value"}, ...], "name": .., "binary": ..}``, where an
unnamed ``<Data>`` is ``{"": "value"}``. Both become the names the EVTX form has (see
:mod:`norrvakt.parsers.windows`), so the Windows Sigma rules match the same way:

    channel → Channel           event_id.id → EventID     event_id.qualifiers → Qualifiers
    computer → Computer         provider.name → Provider_Name, .guid → Provider_Guid,
    record_id → EventRecordID   .event_source → Provider_EventSourceName
    system_time → SystemTime    execution.process_id/thread_id → ProcessID/ThreadID
    security.user_id → UserID   correlation.activity_id/related_activity_id → ActivityID/...
    level/task/opcode → Level/Task/Opcode (the receiver gives the rendered names when it has
    them: ``Information``, not ``4``); keywords → Keywords (joined with ", ")
    event_data names → themselves; unnamed ones → Data_1, Data_2 ... and Data (joined with
    newlines); event_data.binary → Binary; message → Message (the rendered text);
    details (the receiver's parse of a Security message) → details.*

Any other body key is kept flattened under ``winlog_otel.<key>``; a name an attribute already
holds with another value keeps the body's value (the event's own) and the other goes under
``otel.<name>``.
"""  # noqa: E501 - the sample is one whole body

from __future__ import annotations

from typing import Any

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import TS_MISSING, flatten_json, new_event, scalar_str
from norrvakt.parsers.timestamps import parse_iso
from norrvakt.parsers.windows_ecs import map_ecs

_PLAIN = {
    "channel": "Channel",
    "computer": "Computer",
    "record_id": "EventRecordID",
    "system_time": "SystemTime",
    "level": "Level",
    "task": "Task",
    "opcode": "Opcode",
    "message": "Message",
    "version": "Version",
}
_NESTED = {
    ("event_id", "id"): "EventID",
    ("event_id", "qualifiers"): "Qualifiers",
    ("provider", "name"): "Provider_Name",
    ("provider", "guid"): "Provider_Guid",
    ("provider", "event_source"): "Provider_EventSourceName",
    ("execution", "process_id"): "ProcessID",
    ("execution", "thread_id"): "ThreadID",
    ("security", "user_id"): "UserID",
    ("correlation", "activity_id"): "ActivityID",
    ("correlation", "related_activity_id"): "RelatedActivityID",
}
_DONE = frozenset(["event_id", "provider", "execution", "security", "correlation", "event_data",
                   "keywords", "details", *_PLAIN])  # fmt: skip


def is_windows_body(body: Any) -> bool:
    """Whether an OTLP body is a windowseventlog receiver event (a map with a channel and an
    event id, and a provider or computer)."""
    return (
        isinstance(body, dict)
        and isinstance(body.get("channel"), str)
        and "event_id" in body
        and ("provider" in body or "computer" in body)
    )


def windows_otel_event(record: RawRecord, body: dict[str, Any], extra: dict[str, str]) -> Event:
    """The Windows event of a windowseventlog ``body``; ``extra`` holds the record's other
    fields (resource, attributes, trace ids), kept under names the event does not use."""
    f = windows_otel_fields(body)
    for key, value in extra.items():
        if key not in f:
            f[key] = value
        elif f[key] != value:
            f[f"otel.{key}"] = value
    ecs: dict[str, str] = {}
    message = map_ecs(f, ecs)
    stamp = f.get("SystemTime", "")
    ts = parse_iso(stamp, record.timezone) if stamp else None
    if ts is None:
        ts = record.received_at
        f[TS_MISSING] = "1"
    return new_event(record, ts, message, ecs, f)


def windows_otel_fields(body: dict[str, Any]) -> dict[str, str]:
    f: dict[str, str] = {}
    for key, name in _PLAIN.items():
        value = body.get(key)
        if value is not None and not isinstance(value, (dict, list)) and value != "":
            f[name] = scalar_str(value)
    for (outer, inner), name in _NESTED.items():
        node = body.get(outer)
        value = node.get(inner) if isinstance(node, dict) else (node if inner == "id" else None)
        if value is not None and not isinstance(value, (dict, list)) and value != "":
            f[name] = scalar_str(value)
    keywords = body.get("keywords")
    if isinstance(keywords, list):
        f["Keywords"] = ", ".join(scalar_str(k) for k in keywords if not isinstance(k, (dict, list)))
    elif keywords is not None and not isinstance(keywords, dict):
        f["Keywords"] = scalar_str(keywords)
    _event_data(body.get("event_data"), f)
    details = body.get("details")
    if isinstance(details, dict):
        flatten_json(details, "details", f)
    for key, value in body.items():
        if key not in _DONE:
            flatten_json(value, f"winlog_otel.{key}", f)
    return f


def _event_data(data: Any, f: dict[str, str]) -> None:
    if not isinstance(data, dict):
        return
    entries = data.get("data")
    if isinstance(entries, list):  # the newer form: a list of one-member maps
        unnamed: list[str] = []
        for entry in entries:
            if not isinstance(entry, dict):
                unnamed.append(scalar_str(entry) if not isinstance(entry, list) else "")
                continue
            for name, value in entry.items():
                text = _text(value)
                if name == "":
                    unnamed.append(text)
                else:
                    _put(f, name, text)
        for i, text in enumerate(unnamed, start=1):
            f[f"Data_{i}"] = text
        if unnamed:
            f["Data"] = "\n".join(unnamed)
        for key, name in (("binary", "Binary"), ("name", "EventData_Name")):
            value = data.get(key)
            if isinstance(value, str) and value:
                f[name] = value
        return
    for name, value in data.items():  # the older form: one map of names
        _put(f, name, _text(value))


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        out: dict[str, str] = {}
        flatten_json(value, "", out)
        return " ".join(f"{k}={v}" for k, v in out.items())
    return scalar_str(value)


def _put(f: dict[str, str], name: str, text: str) -> None:
    # An event-data name System already has (with another value) is kept under its path,
    # as in the EVTX form.
    if name in f and f[name] != text:
        f[f"EventData.{name}"] = text
    else:
        f[name] = text
