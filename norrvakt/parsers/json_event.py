"""One JSON object: NDJSON/JSONL lines, Elasticsearch ``_bulk`` documents, syslog-ng and
rsyslog JSON, ECS documents, journald and GELF — and Windows events in any of their JSON forms.

    {"PROGRAM":"sshd","PRIORITY":"warning","MESSAGE":"Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2","ISODATE":"2026-11-26T21:52:50+00:00","HOST":"vm","FACILITY":"auth","DATE":"Nov 26 21:52:50"}
    {"@timestamp":"2026-11-26T21:52:50.576954+00:00", "host.name":"rs-testhost", "process.name":"sshd", "log.syslog.severity.code":4, "log.syslog.facility.code":4, "message":" Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2"}
    {"@timestamp":"2026-11-26T20:43:38.123Z","host":{"name":"web01"},"user":{"name":"anna"},"source":{"ip":"10.1.2.3"},"event":{"action":"login","outcome":"failure"},"message":"login failed"}
    {"__REALTIME_TIMESTAMP":"1795729418412345","_HOSTNAME":"srv01","SYSLOG_IDENTIFIER":"sudo","_PID":"4242","PRIORITY":"5","MESSAGE":"pam_unix(sudo:session): session closed for user root"}

Windows events (EVTX ``{"Event": ...}``, Winlogbeat ``winlog.*``, NXLog ``EventID`` +
``Channel``) are handed to :mod:`norrvakt.parsers.windows`; Microsoft 365 / Entra ID records
(Management API, Graph, an Azure Monitor export) to :mod:`norrvakt.parsers.m365`. Everything else:

- Every key is kept in ``fields``, nested objects flattened with dots (see
  :func:`~norrvakt.parsers.base.flatten_json` for lists).
- A key that is an ECS name Norrvakt stores (``host.name``, ``source.ip``, whether written
  dotted or nested) also goes to ``ecs`` — except ``event.kind``, which Norrvakt owns (a
  payload cannot pose as a pipeline error or an alert).
- The usual other spellings fill the ECS names that are still empty: time (``@timestamp``,
  ``timestamp``, ``time``, ``ISODATE``, ``EventTime``, ``__REALTIME_TIMESTAMP``; ISO 8601 or
  epoch numbers), host, message, program, pid, user, syslog severity and facility (names
  like ``warning``/``auth`` or numbers).
- With no message key, ``message`` lists the first top-level values as ``key=value`` (up to
  512 characters), so a document is still found by full-text search.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

from typing import Any

from norrvakt.event import ECS_FIELD_SET, Event, RawRecord
from norrvakt.parsers.base import (
    TS_INVALID,
    TS_MISSING,
    flatten_json,
    is_ip,
    load_json_object,
    new_event,
    scalar_str,
)
from norrvakt.parsers.beats_shapes import beats_shape
from norrvakt.parsers.m365 import m365_event
from norrvakt.parsers.syslog import FACILITY_CODES, SEVERITY_CODES, SEVERITY_NAMES
from norrvakt.parsers.timestamps import epoch_to_us, parse_iso
from norrvakt.parsers.windows import windows_event, windows_shape

_TIME_KEYS = ("@timestamp", "timestamp", "time", "ISODATE", "EventTime", "datetime", "date",
              "__REALTIME_TIMESTAMP", "ts", "event.created")  # fmt: skip
_ALIASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("host.name", ("host", "HOST", "hostname", "Hostname", "HOSTNAME", "_HOSTNAME", "host.hostname")),
    ("process.name", ("program", "PROGRAM", "appname", "app_name", "APP_NAME", "SYSLOG_IDENTIFIER", "ident")),
    ("process.pid", ("pid", "PID", "_PID", "SYSLOG_PID")),
    ("user.name", ("user", "username", "user_name", "userName", "USER_NAME")),
    ("source.ip", ("src_ip", "source_ip", "client_ip", "clientip", "remote_addr", "REMOTE_ADDR")),
)
_MESSAGE_KEYS = ("message", "MESSAGE", "msg", "Message", "short_message", "log", "full_message")
_SEVERITY_KEYS = ("PRIORITY", "severity", "SEVERITY", "syslog_severity", "level", "log.level")
_FACILITY_KEYS = ("FACILITY", "facility", "SYSLOG_FACILITY", "syslog_facility")
_NOT_FROM_PAYLOAD = frozenset(("event.kind",))
_SUMMARY_LIMIT = 512


def parse_json(record: RawRecord) -> Event:
    return json_event(record, load_json_object(record, "json"))


def json_event(record: RawRecord, doc: dict[str, Any]) -> Event:
    """The event of a decoded JSON object (also used for HEC ``event`` objects)."""
    shape = windows_shape(doc)
    if shape is not None:
        return windows_event(record, doc, shape)
    cloud = m365_event(record, doc)  # Entra / M365 records posted as JSON (an Event Hub export)
    if cloud is not None:
        return cloud
    fields: dict[str, str] = {}
    flatten_json(doc, "", fields)
    ecs: dict[str, str] = {}
    for key, text in fields.items():
        if text and key in ECS_FIELD_SET and key not in _NOT_FROM_PAYLOAD:
            ecs[key] = text
    for target, keys in _ALIASES:
        if target not in ecs:
            for key in keys:
                value = fields.get(key)
                if value:
                    if target == "source.ip" and not is_ip(value):
                        continue
                    if target == "process.pid" and not value.isdigit():
                        continue
                    ecs[target] = value
                    break
    _syslog_levels(fields, ecs)
    ts = _time(record, doc, fields)
    message = ""
    for key in _MESSAGE_KEYS:
        found = fields.get(key)
        if found:
            message = found.strip(" \r\n\x00")
            break
    else:
        message = _summary(doc)
    message = beats_shape(record, doc, fields, ecs, message)  # Filebeat/Auditbeat: beats_shapes.py
    return new_event(record, ts, message, ecs, fields)


def _time(record: RawRecord, doc: dict[str, Any], fields: dict[str, str]) -> int:
    invalid = ""
    for key in _TIME_KEYS:
        text = fields.get(key)
        if not text:
            continue
        raw = doc.get(key)
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            ts = epoch_to_us(raw)
        elif text[0].isdigit() and (text.isdigit() or text.replace(".", "", 1).isdigit()):
            ts = epoch_to_us(text)
        else:
            ts = parse_iso(text, record.timezone)
        if ts is not None:
            return ts
        invalid = invalid or text
    fields[TS_MISSING] = "1"
    if invalid:
        fields[TS_INVALID] = invalid
    return record.received_at


def _syslog_levels(fields: dict[str, str], ecs: dict[str, str]) -> None:
    if "log.syslog.severity.code" not in ecs:
        for key in _SEVERITY_KEYS:
            value = fields.get(key)
            if not value:
                continue
            code = _code(value, SEVERITY_CODES, 7)
            if code is not None:
                ecs["log.syslog.severity.code"] = str(code)
                ecs.setdefault("log.level", SEVERITY_NAMES[code])
            elif key in ("level", "log.level"):
                ecs.setdefault("log.level", value.lower())
            break
    if "log.syslog.facility.code" not in ecs:
        for key in _FACILITY_KEYS:
            value = fields.get(key)
            if value:
                code = _code(value, FACILITY_CODES, 23)
                if code is not None:
                    ecs["log.syslog.facility.code"] = str(code)
                break


def _code(value: str, names: dict[str, int], highest: int) -> int | None:
    if value.isdigit():
        n = int(value)
        return n if n <= highest else None
    return names.get(value.lower())


def _summary(doc: dict[str, Any]) -> str:
    parts: list[str] = []
    size = 0
    for key, value in doc.items():
        if isinstance(value, (dict, list)) or value is None:
            continue
        part = f"{key}={scalar_str(value)}"
        parts.append(part)
        size += len(part) + 1
        if size >= _SUMMARY_LIMIT:
            break
    text = " ".join(parts)
    return text if len(text) <= _SUMMARY_LIMIT else text[:_SUMMARY_LIMIT] + "…"
