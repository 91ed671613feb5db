"""An OTLP ``ExportLogsServiceRequest`` (protobuf or JSON) into one JSON payload per log record.

What the OpenTelemetry SDK's OTLP/HTTP exporter sends (protobuf; the JSON form is the same
message in the OTLP JSON encoding)::

    {"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"e-tjanst"}}]},
      "scopeLogs":[{"scope":{"name":"kommun.login"},"logRecords":[{"timeUnixNano":"1795729418412345000",
      "severityNumber":13,"severityText":"WARN","body":{"stringValue":"login failed"},
      "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}

Each record becomes the payload :mod:`norrvakt.parsers.otlp` reads: its resource and scope
attributes and its own as plain JSON objects, ``bytes`` values in base64, ids in lowercase hex,
times as integers. The JSON form is read here, not with ``google.protobuf.json_format``:
OTLP JSON writes ``traceId``/``spanId`` in hex where protobuf's JSON mapping expects base64,
and ``json_format`` would decode the hex as base64 without a word — wrong ids, silently.

A record that cannot be kept as it is — an id of the wrong length or not hex, a value nested
deeper than :data:`MAX_DEPTH`, a payload over ``server.max_event_bytes``, a JSON record that is
not an object or has a time that is not a number — is a :class:`BadRecord`: the receiver
keeps it as a ``pipeline_error`` event and counts it in ``partial_success``. A body that is not
an ``ExportLogsServiceRequest`` at all raises :class:`OtlpDecodeError` (answered with 400).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

# OTLP values nested deeper than this are refused per record (nothing real nests so deep; it
# keeps the conversion's recursion far from Python's limit).
MAX_DEPTH = 32


class OtlpDecodeError(Exception):
    """The body is not an ExportLogsServiceRequest; ``message`` says where and why."""


@dataclass(frozen=True)
class BadRecord:
    """A log record that is kept only as a pipeline_error: where it was, why, what it held."""

    where: str  # resourceLogs[0].scopeLogs[1].logRecords[7]
    reason: str
    data: bytes


@dataclass
class Decoded:
    payloads: list[bytes]
    bad: list[BadRecord]

    @property
    def total(self) -> int:
        return len(self.payloads) + len(self.bad)


class _Bad(Exception):
    pass


# --- protobuf --------------------------------------------------------------------------------


def decode_protobuf(body: bytes, max_event_bytes: int) -> Decoded:
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OtlpDecodeError(
            f"body of {len(body)} bytes is not a protobuf ExportLogsServiceRequest ({exc}); "
            f"first bytes {body[:16].hex(' ')}"
        ) from None
    out = Decoded([], [])
    for i, rl in enumerate(request.resource_logs):
        try:
            resource = _pb_attributes(rl.resource.attributes, 0)
        except _Bad as exc:
            resource, resource_problem = {}, str(exc)
        else:
            resource_problem = ""
        for j, sl in enumerate(rl.scope_logs):
            scope: dict[str, Any] = {}
            scope_problem = resource_problem
            try:
                scope = _scope(sl.scope.name, sl.scope.version, _pb_attributes(sl.scope.attributes, 0))
            except _Bad as exc:
                scope_problem = scope_problem or str(exc)
            for k, lr in enumerate(sl.log_records):
                where = f"resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]"
                if scope_problem:
                    out.bad.append(BadRecord(where, scope_problem, lr.SerializeToString()[:1024]))
                    continue
                try:
                    doc = _pb_record(lr)
                except _Bad as exc:
                    out.bad.append(BadRecord(where, str(exc), lr.SerializeToString()[:1024]))
                    continue
                _keep(out, where, _payload(resource, scope, doc), max_event_bytes)
    return out


def _pb_record(lr: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if lr.time_unix_nano:
        doc["timeUnixNano"] = lr.time_unix_nano
    if lr.observed_time_unix_nano:
        doc["observedTimeUnixNano"] = lr.observed_time_unix_nano
    if lr.severity_number:
        doc["severityNumber"] = lr.severity_number
    if lr.severity_text:
        doc["severityText"] = lr.severity_text
    if lr.HasField("body"):
        doc["body"] = _pb_value(lr.body, 0)
    doc["attributes"] = _pb_attributes(lr.attributes, 0)
    if lr.dropped_attributes_count:
        doc["droppedAttributesCount"] = lr.dropped_attributes_count
    if lr.flags:
        doc["flags"] = lr.flags
    if lr.trace_id:
        doc["traceId"] = _id_bytes(lr.trace_id, 16, "traceId")
    if lr.span_id:
        doc["spanId"] = _id_bytes(lr.span_id, 8, "spanId")
    if lr.event_name:
        doc["eventName"] = lr.event_name
    return doc


def _id_bytes(raw: bytes, size: int, name: str) -> str:
    if len(raw) != size:
        raise _Bad(f"{name} is {len(raw)} bytes ({raw[:32].hex()}), expected {size}")
    return raw.hex()


def _pb_attributes(kvs: Any, depth: int) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value, depth + 1) for kv in kvs}


def _pb_value(v: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _Bad(f"a value is nested deeper than {MAX_DEPTH} levels")
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "double_value":
        return _double(v.double_value)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    if kind == "array_value":
        return [_pb_value(x, depth + 1) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(v.kvlist_value.values, depth)
    return None


def _double(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)  # JSON has no NaN or Infinity


# --- JSON ------------------------------------------------------------------------------------


def decode_json(body: bytes, max_event_bytes: int) -> Decoded:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpDecodeError(
            f"body is not JSON at byte offset {exc.pos} ({exc.msg}): "
            f"near {body[max(0, exc.pos - 20) : exc.pos + 20]!r}"
        ) from None
    if not isinstance(doc, dict):
        raise OtlpDecodeError(
            f"body is a JSON {type(doc).__name__}, expected an ExportLogsServiceRequest object"
        )
    out = Decoded([], [])
    resource_logs = _list(doc, "resourceLogs", "resource_logs", where="the request")
    for i, rl in enumerate(resource_logs):
        if not isinstance(rl, dict):
            raise OtlpDecodeError(f"resourceLogs[{i}] is a JSON {type(rl).__name__}, expected an object")
        try:
            res = rl.get("resource") or {}
            resource = _json_attributes(res.get("attributes") if isinstance(res, dict) else None, 0)
            resource_problem = ""
        except _Bad as exc:
            resource, resource_problem = {}, f"resourceLogs[{i}].resource: {exc}"
        scope_logs = _list(rl, "scopeLogs", "scope_logs", where=f"resourceLogs[{i}]")
        for j, sl in enumerate(scope_logs):
            if not isinstance(sl, dict):
                raise OtlpDecodeError(
                    f"resourceLogs[{i}].scopeLogs[{j}] is a JSON {type(sl).__name__}, expected an object"
                )
            scope: dict[str, Any] = {}
            scope_problem = resource_problem
            try:
                sc = sl.get("scope") or {}
                if not isinstance(sc, dict):
                    raise _Bad("scope is not an object")
                scope = _scope(
                    _str(sc.get("name")), _str(sc.get("version")), _json_attributes(sc.get("attributes"), 0)
                )
            except _Bad as exc:
                scope_problem = scope_problem or f"scope: {exc}"
            records = _list(sl, "logRecords", "log_records", where=f"resourceLogs[{i}].scopeLogs[{j}]")
            for k, lr in enumerate(records):
                where = f"resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]"
                if scope_problem:
                    out.bad.append(BadRecord(where, scope_problem, _excerpt(lr)))
                    continue
                try:
                    rec = _json_record(lr)
                except _Bad as exc:
                    out.bad.append(BadRecord(where, str(exc), _excerpt(lr)))
                    continue
                _keep(out, where, _payload(resource, scope, rec), max_event_bytes)
    return out


def _list(obj: dict[str, Any], camel: str, snake: str, *, where: str) -> list[Any]:
    value = obj.get(camel, obj.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpDecodeError(f"{where}: {camel} is a JSON {type(value).__name__}, expected an array")
    return value


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj[camel] if camel in obj else obj.get(snake)


def _str(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Bad(f"expected a string, got {_show(value, 40)}")
    return value


def _uint(value: Any, name: str) -> int:
    """An OTLP JSON (u)int64: a number or a decimal string (proto3 JSON writes 64-bit as strings)."""
    if value is None:
        return 0
    if isinstance(value, str) and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64:
        return value
    raise _Bad(f"{name} is {_show(value, 40)}, expected a non-negative integer")


def _hex_id(value: Any, size: int, name: str) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) != 2 * size:
        raise _Bad(f"{name} is {_show(value, 60)}, expected {2 * size} hex digits")
    try:
        return bytes.fromhex(value).hex()
    except ValueError:
        raise _Bad(f"{name} is {value!r}, expected {2 * size} hex digits") from None


def _json_record(lr: Any) -> dict[str, Any]:
    if not isinstance(lr, dict):
        raise _Bad(f"log record is a JSON {type(lr).__name__}, expected an object")
    doc: dict[str, Any] = {}
    for camel, snake in (
        ("timeUnixNano", "time_unix_nano"),
        ("observedTimeUnixNano", "observed_time_unix_nano"),
    ):
        n = _uint(_get(lr, camel, snake), camel)
        if n:
            doc[camel] = n
    severity = _get(lr, "severityNumber", "severity_number")
    if isinstance(severity, str) and severity.startswith("SEVERITY_NUMBER_"):
        severity = _SEVERITY_NAMES.get(severity)  # the enum by name is valid proto3 JSON too
    number = _uint(severity, "severityNumber")
    if number:
        doc["severityNumber"] = number
    text = _str(_get(lr, "severityText", "severity_text"))
    if text:
        doc["severityText"] = text
    if "body" in lr:
        doc["body"] = _json_value(lr["body"], 0)
    doc["attributes"] = _json_attributes(lr.get("attributes"), 0)
    dropped = _uint(_get(lr, "droppedAttributesCount", "dropped_attributes_count"), "droppedAttributesCount")
    if dropped:
        doc["droppedAttributesCount"] = dropped
    flags = _uint(lr.get("flags"), "flags")
    if flags:
        doc["flags"] = flags
    for camel, snake, size in (("traceId", "trace_id", 16), ("spanId", "span_id", 8)):
        ident = _hex_id(_get(lr, camel, snake), size, camel)
        if ident:
            doc[camel] = ident
    name = _str(_get(lr, "eventName", "event_name"))
    if name:
        doc["eventName"] = name
    return doc


_SEVERITY_NAMES = {
    f"SEVERITY_NUMBER_{name}{n if n > 1 else ''}": base + n - 1
    for base, name in ((1, "TRACE"), (5, "DEBUG"), (9, "INFO"), (13, "WARN"), (17, "ERROR"), (21, "FATAL"))
    for n in range(1, 5)
}


def _json_attributes(kvs: Any, depth: int) -> dict[str, Any]:
    if kvs is None:
        return {}
    if not isinstance(kvs, list):
        raise _Bad(f"attributes are a JSON {type(kvs).__name__}, expected an array of key/value objects")
    out: dict[str, Any] = {}
    for n, kv in enumerate(kvs):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise _Bad(f'attribute {n} is {_show(kv, 60)}, expected {{"key": .., "value": ..}}')
        out[kv["key"]] = _json_value(kv.get("value"), depth + 1)
    return out


_JSON_KINDS = {
    "stringValue": "string_value",
    "boolValue": "bool_value",
    "intValue": "int_value",
    "doubleValue": "double_value",
    "bytesValue": "bytes_value",
    "arrayValue": "array_value",
    "kvlistValue": "kvlist_value",
}


def _json_value(v: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _Bad(f"a value is nested deeper than {MAX_DEPTH} levels")
    if v is None or v == {}:
        return None
    if not isinstance(v, dict):
        raise _Bad(f"value {_show(v, 60)} is not an AnyValue object")
    for camel, snake in _JSON_KINDS.items():
        if camel in v or snake in v:
            x = v[camel] if camel in v else v[snake]
            return _json_kind(camel, x, depth)
    raise _Bad(f"value {_show(v, 60)} has none of {', '.join(_JSON_KINDS)}")


def _json_kind(kind: str, x: Any, depth: int) -> Any:
    if kind == "stringValue":
        return _str(x)
    if kind == "boolValue":
        if not isinstance(x, bool):
            raise _Bad(f"boolValue is {_show(x, 40)}")
        return x
    if kind == "intValue":
        if isinstance(x, str) and x.lstrip("-").isdigit() and len(x) <= 20:
            x = int(x)
        if isinstance(x, int) and not isinstance(x, bool) and -(2**63) <= x < 2**63:
            return x
        raise _Bad(f"intValue is {_show(x, 40)}, expected an integer")
    if kind == "doubleValue":
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            return _double(float(x))
        if x in ("NaN", "Infinity", "-Infinity"):
            return x
        raise _Bad(f"doubleValue is {_show(x, 40)}, expected a number")
    if kind == "bytesValue":
        try:
            return base64.b64encode(base64.b64decode(_str(x), validate=True)).decode("ascii")
        except binascii.Error:
            raise _Bad(f"bytesValue is not base64: {str(x)[:40]!r}") from None
    inner = x.get("values") if isinstance(x, dict) else None
    if inner is None:
        inner = []
    if not isinstance(inner, list):
        raise _Bad(f"{kind}.values is not an array")
    if kind == "arrayValue":
        return [_json_value(item, depth + 1) for item in inner]
    return _json_attributes(inner, depth)


# --- shared ----------------------------------------------------------------------------------


def _scope(name: str, version: str, attributes: dict[str, Any]) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    if name:
        scope["name"] = name
    if version:
        scope["version"] = version
    if attributes:
        scope["attributes"] = attributes
    return scope


def _payload(resource: dict[str, Any], scope: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "scope": scope, **record}


def _show(value: Any, limit: int) -> str:
    return _excerpt(value)[:limit].decode("utf-8", "replace")


def _excerpt(value: Any) -> bytes:
    try:
        return orjson.dumps(value)[:1024]
    except TypeError:  # an integer beyond 64 bits, or nested beyond orjson's limit
        return repr(value)[:1024].encode("utf-8", "replace")


def _keep(out: Decoded, where: str, doc: dict[str, Any], max_event_bytes: int) -> None:
    payload = orjson.dumps(doc)
    if len(payload) > max_event_bytes:
        out.bad.append(
            BadRecord(
                where,
                f"log record of {len(payload)} bytes (as JSON) is over "
                f"server.max_event_bytes = {max_event_bytes}",
                payload[:1024],
            )
        )
        return
    out.payloads.append(payload)
