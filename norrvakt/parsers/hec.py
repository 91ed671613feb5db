"""One Splunk HTTP Event Collector envelope.

    {"time":1795729970,"sourcetype":"syslog","source":"syslog","host":"vm","event":{"severity":"warning","program":"sshd","message":"Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2"}}
    {"time":"1795729970.412","host":"srv01","sourcetype":"linux_secure","event":"Nov 26 21:52:50 srv01 sshd[4123]: Accepted password for anna from 10.1.2.3 port 51234 ssh2"}
    {"event":"<134>1 2026-11-26T21:52:50Z fw01 - - - - CEF:0|Fortinet|Fortigate|v7.2.5|13|traffic:forward deny|3|src=10.1.2.3","index":"network"}
    {"time":1795729970.5,"host":"dc01","sourcetype":"_json","event":{"Event":{"System":{"EventID":4624,"Channel":"Security"}}},"fields":{"kommun":"lulea"}}

``event`` is required and must not be blank (Splunk refuses both; we keep the record as a
pipeline error instead). An object ``event`` is read as a JSON document (so Windows events,
syslog-ng and ECS documents are recognised); a string ``event`` is read as syslog when it
starts with ``<PRI>`` or the sourcetype says syslog (``syslog``, ``linux_secure``,
``linux_messages_syslog``), as JSON when it is one, otherwise it is the message.

The envelope has the last word, as in Splunk: ``time`` (epoch seconds, fraction allowed) is
``ts``, ``host`` is ``host.name``. ``sourcetype``, ``source`` and ``index`` are kept in
``fields`` under those names (the event's own keys win a collision), ``sourcetype`` is
also ``event.dataset``, and the indexed ``fields`` object is merged into ``fields``. Query
string hints (``?host=``, ``?sourcetype=``, ``?source=``) fill what the envelope leaves out.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

from typing import Any

import orjson

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import (
    TS_INVALID,
    TS_MISSING,
    ParseError,
    abbrev,
    flatten_json,
    load_json_object,
    new_event,
    scalar_str,
)
from norrvakt.parsers.json_event import json_event
from norrvakt.parsers.rfc3164 import parse_3164
from norrvakt.parsers.syslog import parse_syslog_text
from norrvakt.parsers.timestamps import epoch_to_us

_SYSLOG_SOURCETYPES = ("syslog", "linux_secure", "linux_messages_syslog", "linux:auth", "linux:syslog")


def parse_hec(record: RawRecord) -> Event:
    doc = load_json_object(record, "hec")
    if "event" not in doc:
        raise ParseError(
            "hec.missing_event",
            "HEC envelope without an event",
            'HEC envelope has no "event" key (Splunk requires it); got keys '
            f"{abbrev(', '.join(list(doc)[:10]), 80)}",
        )
    inner = doc["event"]
    if inner is None or (isinstance(inner, str) and not inner.strip()):
        raise ParseError(
            "hec.blank_event",
            "HEC envelope with a blank event",
            f'HEC envelope "event" is blank: got {"null" if inner is None else abbrev(inner)}',
        )
    hints = record.hints or {}
    sourcetype = _meta(doc, "sourcetype") or hints.get("sourcetype", "")
    if isinstance(inner, dict):
        event = json_event(record, inner)
    elif isinstance(inner, str):
        event = _string_event(record, inner, sourcetype)
    else:
        text = _list_text(inner) if isinstance(inner, list) else scalar_str(inner)
        event = new_event(record, record.received_at, text, fields={TS_MISSING: "1"})

    fields = event.fields
    ecs = event.ecs
    if "time" in doc:
        ts = _time(doc["time"])
        if ts is not None:
            event.ts = ts
            fields.pop(TS_MISSING, None)
            fields.pop(TS_INVALID, None)
        else:
            fields[TS_INVALID] = abbrev(scalar_str(doc["time"]), 60)
    host = _meta(doc, "host") or hints.get("host", "")
    if host:
        ecs["host.name"] = host
    if sourcetype:
        fields.setdefault("sourcetype", sourcetype)
        ecs.setdefault("event.dataset", sourcetype)
    source = _meta(doc, "source") or hints.get("source", "")
    if source:
        fields.setdefault("source", source)
    index = _meta(doc, "index") or hints.get("index", "")
    if index:
        fields.setdefault("index", index)
    extra = doc.get("fields")
    if isinstance(extra, dict):
        flat: dict[str, str] = {}
        flatten_json(extra, "", flat)
        for key, value in flat.items():
            fields.setdefault(key, value)
    return event


def _list_text(inner: list[Any]) -> str:
    try:
        return orjson.dumps(inner).decode("utf-8")
    except orjson.JSONEncodeError:
        # orjson reads 1024 levels but writes only 254: a deeper array cannot be the message.
        raise ParseError(
            "hec.too_deep",
            "HEC event nested too deep",
            'HEC envelope "event" is a JSON array nested more than 254 levels deep (the most '
            "that is written back as a message); the record is kept whole in raw",
        ) from None


def _meta(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if value is None or isinstance(value, (dict, list)):
        return ""
    return scalar_str(value)


def _time(value: Any) -> int | None:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return epoch_to_us(value)
    return None


def _string_event(record: RawRecord, text: str, sourcetype: str) -> Event:
    if text.startswith("<"):
        try:
            return parse_syslog_text(record, text, False)
        except ParseError:
            # "<" that opens no syslog PRI: the string is just the message.
            return new_event(record, record.received_at, text.rstrip("\r\n"), fields={TS_MISSING: "1"})
    if text.startswith("{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            return json_event(record, doc)
    if sourcetype.startswith(_SYSLOG_SOURCETYPES):
        return parse_3164(record, text, 0, False)
    return new_event(record, record.received_at, text.rstrip("\r\n"), fields={TS_MISSING: "1"})
