"""OTLP/HTTP logs on the API server: ``POST /v1/logs`` from the OpenTelemetry SDK's exporter
or the Collector's ``otlphttp`` exporter.

    POST /v1/logs   Content-Type: application/x-protobuf   Authorization: Bearer <token>
                    Content-Encoding: gzip                 (ExportLogsServiceRequest)

The ingest token decides the tenant and the source id, as for HEC (any header
:func:`~norrvakt.sources.http.extract_token` reads; the exporters send ``Authorization:
Bearer <token>`` when configured with that header). Bodies are ``application/x-protobuf`` or
``application/json`` (OTLP JSON, hex ids), plain or gzip, read within
``server.max_body_bytes`` and, after gzip, ``server.max_decompressed_bytes``.

Answers, as the OTLP specification says, in the request's encoding:

- 200 with an ``ExportLogsServiceResponse`` once every record is durably journaled; when some
  records could not be kept as they are (:mod:`norrvakt.sources.otlp_decode`) its
  ``partial_success`` has ``rejected_log_records`` and an ``error_message`` naming the first
  of them — those records are journaled as ``pipeline_error`` events, not dropped.
- 400 with a ``google.rpc.Status`` for a body that is not an ExportLogsServiceRequest (or bad
  gzip), 413 over a limit, 415 for another content type; each also a ``pipeline_error``
  event. The exporter does not retry these.
- 429 with ``Retry-After`` when more than :data:`MAX_REQUESTS_IN_FLIGHT` export requests are
  already being taken in by this process, 503 with ``Retry-After`` when the journal refuses
  (the exporters retry both, honouring the header).
- 401/403 for a missing or refused token.

Each log record is one :class:`~norrvakt.event.RawRecord` of format ``otlp``
(:mod:`norrvakt.parsers.otlp`).
"""

from __future__ import annotations

import logging

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from norrvakt.event import Event, RawRecord, now_us
from norrvakt.node.pipeline import PipelineUnavailable, pipeline_error_event
from norrvakt.sources.http import RETRY_AFTER_S, IngestAuthError, authenticate_ingest
from norrvakt.sources.http_body import BodyError, BodyLimits
from norrvakt.sources.otlp_decode import Decoded, OtlpDecodeError, decode_json, decode_protobuf
from norrvakt.state.accounts import IngestToken

log = logging.getLogger(__name__)

router = APIRouter(tags=["ingest"])

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# Export requests this process takes in at once before it answers 429: each holds its body
# (up to server.max_decompressed_bytes) and its decoded records while they are journaled.
MAX_REQUESTS_IN_FLIGHT = 32
_in_flight = 0

# google.rpc.Code of each HTTP status we answer with (the Status message carries one).
_RPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 429: 8, 503: 14}


def _status_body(kind: str, status: int, message: str) -> bytes:
    """A ``google.rpc.Status`` (code, message), encoded as protobuf or JSON by hand: the module
    that defines it (googleapis-common-protos) is no dependency of Norrvakt's."""
    code = _RPC_CODES.get(status, 2)
    if kind == PROTOBUF:
        text = message.encode("utf-8")
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
    return orjson.dumps({"code": code, "message": message})


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _error(kind: str, status: int, message: str, retry: bool = False) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if retry else None
    return Response(_status_body(kind, status, message), status_code=status, media_type=kind, headers=headers)


def _success(kind: str, rejected: int, message: str) -> Response:
    resp = ExportLogsServiceResponse()
    if rejected:
        resp.partial_success.rejected_log_records = rejected
        resp.partial_success.error_message = message
    if kind == PROTOBUF:
        return Response(resp.SerializeToString(), media_type=PROTOBUF)
    body: dict[str, object] = {}
    if rejected:  # proto3 JSON writes int64 as a string
        body["partialSuccess"] = {"rejectedLogRecords": str(rejected), "errorMessage": message}
    return Response(orjson.dumps(body), media_type=JSON)


def _peer(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "unknown:0"


def _record(tok: IngestToken, request: Request, payload: bytes) -> RawRecord:
    return RawRecord(
        tenant=tok.tenant,
        source_id=tok.source_id,
        received_at=now_us(),
        peer=_peer(request),
        payload=payload,
        format="otlp",
        timezone=request.app.state.runtime.settings.timezone,
    )


def _error_event(tok: IngestToken, request: Request, payload: bytes, error_type: str, why: str) -> Event:
    runtime = request.app.state.runtime
    message = f"{why} (peer {_peer(request)})"
    log.warning("%s: %s", tok.source_id, message)
    runtime.pipeline.transport_error(tok.source_id, error_type)
    payload = payload[: runtime.settings.server.max_event_bytes]
    return pipeline_error_event(_record(tok, request, payload), error_type, message)


async def _keep_error(tok: IngestToken, request: Request, payload: bytes, error_type: str, why: str) -> None:
    """Journal a refused body's pipeline_error event; the answer is an error either way."""
    try:
        await request.app.state.runtime.pipeline.commit(
            [_error_event(tok, request, payload, error_type, why)]
        )
    except PipelineUnavailable:
        pass  # the log line and the counter remain


def _content_kind(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@router.post("/v1/logs")
async def otlp_logs(request: Request) -> Response:
    global _in_flight
    kind = _content_kind(request)
    answer_kind = kind if kind in (PROTOBUF, JSON) else JSON
    try:
        tok = authenticate_ingest(request)
    except IngestAuthError as exc:
        return _error(answer_kind, exc.status, exc.message)
    if _in_flight >= MAX_REQUESTS_IN_FLIGHT:
        request.app.state.runtime.pipeline.transport_error(tok.source_id, "otlp.overloaded")
        return _error(
            answer_kind,
            429,
            f"{MAX_REQUESTS_IN_FLIGHT} export requests are being taken in; retry later",
            True,
        )
    _in_flight += 1
    try:
        return await _export(request, tok, kind)
    finally:
        _in_flight -= 1


async def _export(request: Request, tok: IngestToken, kind: str) -> Response:
    runtime = request.app.state.runtime
    if kind not in (PROTOBUF, JSON):
        why = (
            f"OTLP/HTTP body of Content-Type {request.headers.get('content-type', '')[:80]!r} refused: "
            f"use {PROTOBUF} or {JSON}"
        )
        await _keep_error(tok, request, b"", "otlp.unsupported_content_type", why)
        return _error(JSON, 415, why)
    try:
        body = await BodyLimits.from_settings(runtime.settings.server).build().read(request)
    except BodyError as exc:
        await _keep_error(tok, request, exc.excerpt, exc.error_type, f"OTLP/HTTP body refused: {exc.message}")
        return _error(kind, exc.status, exc.message)
    max_event = runtime.settings.server.max_event_bytes
    try:
        decoded: Decoded = (
            decode_protobuf(body, max_event) if kind == PROTOBUF else decode_json(body, max_event)
        )
    except OtlpDecodeError as exc:
        what = "protobuf" if kind == PROTOBUF else "JSON"
        why = f"OTLP/HTTP {what} body refused: {exc}"
        await _keep_error(
            tok, request, body[:1024], f"otlp.bad_{'protobuf' if kind == PROTOBUF else 'json'}", why
        )
        return _error(kind, 400, why)
    extra = [
        _error_event(tok, request, bad.data, "otlp.bad_record", f"OTLP log record {bad.where}: {bad.reason}")
        for bad in decoded.bad
    ]
    records = [_record(tok, request, p) for p in decoded.payloads]
    try:
        events = await runtime.pipeline.parse_async(records)
        await runtime.pipeline.commit(events + extra)
    except PipelineUnavailable as exc:
        return _error(kind, 503, f"the journal cannot take records now: {exc}", True)
    message = ""
    if decoded.bad:
        first = decoded.bad[0]
        message = (
            f"{len(decoded.bad)} of {decoded.total} log records kept only as pipeline errors; "
            f"first: {first.where}: {first.reason}"
        )
    return _success(kind, len(decoded.bad), message)
