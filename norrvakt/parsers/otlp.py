"""One OpenTelemetry log record, as the OTLP/HTTP receiver (:mod:`norrvakt.sources.otlp_http`)
keeps it: the record with its resource and scope, as one JSON object.

    {"resource":{"service.name":"e-tjanst","host.name":"app01"},"scope":{"name":"kommun.login","version":"1.2"},"timeUnixNano":1795729418412345000,"severityNumber":13,"severityText":"WARN","body":"login failed for anna","attributes":{"user.name":"anna","client.address":"10.1.2.3"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}
    {"resource":{"host.name":"DC01"},"scope":{},"timeUnixNano":1795729418000000000,"body":{"channel":"Security","computer":"DC01.kommun.local","event_id":{"id":4625,"qualifiers":0},"provider":{"name":"Microsoft-Windows-Security-Auditing"},"event_data":{"data":[{"TargetUserName":"anna"},{"IpAddress":"10.1.2.3"}]}},"attributes":{}}

The receiver has already turned OTLP's typed values into plain JSON: attributes are objects
(``{"key": value}``, not OTLP's ``[{"key":..,"value":{"stringValue":..}}]``), ``bytes`` values
are base64, ``traceId``/``spanId`` are lowercase hex, times are integers of nanoseconds.

- ECS: ``service.name`` and ``host.name`` from the resource (or the record's attributes),
  ``log.level`` from ``severityText`` (or from ``severityNumber``'s range: 9–12 info,
  13–16 warn ...), ``message`` from a string body (a map body's ``message``), ``ts`` from
  ``timeUnixNano`` (else ``observedTimeUnixNano``), and the semantic-convention names that
  are ECS names or close (``client.address`` → ``source.ip``, ``process.pid``, ``url.full``,
  ``http.request.method``, ``user.name``/``enduser.id`` ...).
- fields: every resource and record attribute under its own name (a record attribute wins;
  the resource's value of the same name is kept as ``resource.<name>``); ``trace.id`` and
  ``span.id`` (hex), ``otel.scope.name``/``otel.scope.version``, ``severity_text``,
  ``severity_number``, ``event_name``; a map body flattened under ``body.``, a string body as
  ``body`` only when it is not the message.
- A map body that is the Collector's ``windowseventlog`` receiver's event becomes a Windows
  event with the field names Sigma rules use (:mod:`norrvakt.parsers.windows_otel`).
"""  # noqa: E501 - the sample lines are whole records

from __future__ import annotations

from typing import Any

from norrvakt.event import ECS_FIELD_SET, Event, RawRecord
from norrvakt.parsers.base import (
    TS_MISSING,
    ParseError,
    flatten_json,
    is_ip,
    load_json_object,
    new_event,
    scalar_str,
)
from norrvakt.parsers.windows_otel import is_windows_body, windows_otel_event

# OTLP SeverityNumber ranges (logs data model): 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN,
# 17-20 ERROR, 21-24 FATAL.
_LEVELS = ((21, "fatal"), (17, "error"), (13, "warn"), (9, "info"), (5, "debug"), (1, "trace"))
# Semantic-convention attribute → ECS name (only names Norrvakt stores).
_ECS_FROM_ATTRIBUTE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("service.name", ("service.name",)),
    ("host.name", ("host.name", "host.hostname")),
    ("user.name", ("user.name", "enduser.id")),
    ("user.id", ("user.id",)),
    ("source.ip", ("client.address", "source.address", "net.peer.ip", "network.peer.address")),
    ("source.port", ("client.port", "source.port", "network.peer.port")),
    ("destination.ip", ("server.address", "destination.address")),
    ("destination.port", ("server.port", "destination.port")),
    ("process.pid", ("process.pid",)),
    ("process.executable", ("process.executable.path",)),
    ("process.name", ("process.executable.name",)),
    ("process.command_line", ("process.command_line",)),
    ("url.full", ("url.full", "http.url")),
    ("url.path", ("url.path",)),
    ("http.request.method", ("http.request.method", "http.method")),
    ("http.response.status_code", ("http.response.status_code", "http.status_code")),
    ("user_agent.original", ("user_agent.original", "http.user_agent")),
    ("event.dataset", ("event.dataset",)),
)
_NOT_FROM_PAYLOAD = frozenset(("event.kind",))


def parse_otlp(record: RawRecord) -> Event:
    doc = load_json_object(record, "otlp")
    resource = _object(doc, "resource")
    attributes = _object(doc, "attributes")
    scope = _object(doc, "scope")
    body = doc.get("body")
    fields: dict[str, str] = {}
    _attributes(resource, attributes, fields)
    _record_fields(doc, scope, fields)
    if is_windows_body(body):
        assert isinstance(body, dict)
        event = windows_otel_event(record, body, fields)
        if TS_MISSING in event.fields:
            ts = _time(doc)
            if ts is not None:
                event.ts = ts
                del event.fields[TS_MISSING]
        _level(doc, event.ecs)
        for target in ("service.name",):
            value = resource.get(target)
            if isinstance(value, str) and value:
                event.ecs.setdefault(target, value)
        return event
    message = ""
    if isinstance(body, str):
        message = body.strip(" \r\n\x00")
        if message != body:
            fields["body"] = body
    elif isinstance(body, dict):
        flatten_json(body, "body", fields)
        inner = body.get("message") or body.get("msg")
        message = scalar_str(inner) if inner is not None and not isinstance(inner, (dict, list)) else ""
    elif body is not None:
        flatten_json(body, "body", fields)
        message = fields.get("body", "")
    if not message:
        message = _summary(doc, fields)
    ecs = _ecs(fields)
    _level(doc, ecs)
    ts = _time(doc)
    if ts is None:
        fields[TS_MISSING] = "1"
        ts = record.received_at
    return new_event(record, ts, message, ecs, fields)


def _object(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParseError(
            "otlp.bad_record",
            "OTLP record is malformed",
            f"otlp record field {key!r} is a {type(value).__name__}, expected an object",
        )
    return value


def _attributes(resource: dict[str, Any], attributes: dict[str, Any], fields: dict[str, str]) -> None:
    flatten_json(resource, "", fields)
    record: dict[str, str] = {}
    flatten_json(attributes, "", record)
    for key, value in record.items():
        old = fields.get(key)
        if old is not None and old != value:
            fields[f"resource.{key}"] = old
        fields[key] = value


def _record_fields(doc: dict[str, Any], scope: dict[str, Any], fields: dict[str, str]) -> None:
    for key, name in (("name", "otel.scope.name"), ("version", "otel.scope.version")):
        value = scope.get(key)
        if isinstance(value, str) and value:
            fields[name] = value
    scope_attrs = scope.get("attributes")
    if isinstance(scope_attrs, dict):
        flatten_json(scope_attrs, "otel.scope", fields)
    for key, name in (
        ("traceId", "trace.id"),
        ("spanId", "span.id"),
        ("severityText", "severity_text"),
        ("severityNumber", "severity_number"),
        ("eventName", "event_name"),
        ("flags", "trace.flags"),
    ):
        value = doc.get(key)
        if value is not None and not isinstance(value, (dict, list)) and value != "" and value != 0:
            fields[name] = scalar_str(value)


def _ecs(fields: dict[str, str]) -> dict[str, str]:
    ecs: dict[str, str] = {}
    for target, keys in _ECS_FROM_ATTRIBUTE:
        for key in keys:
            value = fields.get(key)
            if not value:
                continue
            if target in ("source.ip", "destination.ip") and not is_ip(value):
                if target == "destination.ip":
                    ecs.setdefault("destination.domain", value)
                continue
            if target.endswith((".port", ".pid", "status_code")) and not value.isdigit():
                continue
            ecs[target] = value
            break
    for key, value in fields.items():
        if value and key in ECS_FIELD_SET and key not in _NOT_FROM_PAYLOAD:
            ecs.setdefault(key, value)
    return ecs


def _level(doc: dict[str, Any], ecs: dict[str, str]) -> None:
    text = doc.get("severityText")
    if isinstance(text, str) and text.strip():
        ecs["log.level"] = text.strip().lower()
        return
    number = doc.get("severityNumber")
    if isinstance(number, int) and not isinstance(number, bool):
        for lowest, name in _LEVELS:
            if lowest <= number <= 24:
                ecs["log.level"] = name
                return


def _time(doc: dict[str, Any]) -> int | None:
    for key in ("timeUnixNano", "observedTimeUnixNano"):
        value = doc.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value // 1000
    return None


def _summary(doc: dict[str, Any], fields: dict[str, str]) -> str:
    name = doc.get("eventName")
    if isinstance(name, str) and name:
        return name
    parts = [f"{k}={v}" for k, v in list(fields.items())[:12]]
    text = " ".join(parts)
    return text if len(text) <= 512 else text[:512] + "…"
