"""HTTP ingest on the API server: Splunk HEC, Elasticsearch ``_bulk`` and plain JSON/NDJSON.

Senders seen here: syslog-ng 3.38 ``http()`` (HEC, ``_bulk``, plain JSON) and rsyslog
``omelasticsearch`` (``_bulk``)::

    POST /services/collector/event   Authorization: Splunk <token>
    {"time":1795729970,"sourcetype":"syslog","host":"vm","event":{"program":"sshd","message":"..."}}

    POST /_bulk                      Authorization: Basic base64(any-user:<token>)
    {"index":{"_index":"siem-raw"}}
    {"@timestamp":"2026-11-26T21:52:50.576954+00:00","host.name":"rs-testhost","message":"..."}

The token decides the tenant and the source id; the body never does. The response is sent
only after the records are durably journaled. Malformed parts of a body are kept as
``pipeline_error`` events (so nothing is silently lost) and reported in the response in the
protocol's own error format; well-formed parts before them are accepted.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from norrvakt.event import Event, RawRecord, now_us
from norrvakt.pipeline import PipelineUnavailable, pipeline_error_event
from norrvakt.state.accounts import IngestToken, ingest_token

if TYPE_CHECKING:
    from norrvakt.runtime import Runtime

log = logging.getLogger(__name__)

router = APIRouter(tags=["ingest"])

MAX_BODY_BYTES = 64 * 1024 * 1024
_TOKEN_CACHE_SECONDS = 10.0


class IngestAuthError(Exception):
    def __init__(self, status: int, message: str, hec_code: int) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hec_code = hec_code


def extract_token(request: Request) -> str | None:
    """The ingest token from any header a log shipper can send."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme in {"splunk", "bearer", "apikey"} and value:
        return value
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        _user, _, password = decoded.partition(":")
        return password or None
    return request.headers.get("x-norrvakt-token") or request.query_params.get("token")


class TokenCache:
    """Ingest tokens, cached briefly so a busy sender does not hit the state DB per request."""

    def __init__(self, lookup: Callable[[str], IngestToken | None]) -> None:
        self.lookup = lookup
        self._cache: dict[str, tuple[float, IngestToken | None]] = {}

    def get(self, token: str) -> IngestToken | None:
        hit = self._cache.get(token)
        now = time.monotonic()
        if hit is not None and now - hit[0] < _TOKEN_CACHE_SECONDS:
            return hit[1]
        found = self.lookup(token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now, found)
        return found


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def authenticate_ingest(request: Request) -> IngestToken:
    token = extract_token(request)
    if not token:
        raise IngestAuthError(401, "Token is required", 2)
    runtime = _runtime(request)
    if runtime.token_cache is None:
        runtime.token_cache = TokenCache(lambda t: ingest_token(runtime.state, t))
    found: IngestToken | None = runtime.token_cache.get(token)
    if found is None:
        raise IngestAuthError(403, "Invalid token", 4)
    return found


async def _read_body(request: Request) -> bytes:
    body = await request.body()
    if request.headers.get("content-encoding", "").lower() == "gzip":
        import gzip

        body = gzip.decompress(body)
    return body


def _peer(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "unknown:0"


def _record(
    tok: IngestToken, request: Request, payload: bytes, fmt: str, hints: dict[str, str] | None = None
) -> RawRecord:
    runtime = _runtime(request)
    return RawRecord(
        tenant=tok.tenant,
        source_id=tok.source_id,
        received_at=now_us(),
        peer=_peer(request),
        payload=payload,
        format=fmt,
        timezone=runtime.settings.timezone,
        hints=hints,
    )


def _bad_body_event(tok: IngestToken, request: Request, payload: bytes, error_type: str, why: str) -> Event:
    message = f"{why} (peer {_peer(request)})"
    log.warning("%s: %s", tok.source_id, message)
    runtime = _runtime(request)
    runtime.pipeline.transport_error(tok.source_id, error_type)
    return pipeline_error_event(_record(tok, request, payload, "json"), error_type, message)


def split_json_objects(body: bytes) -> tuple[list[bytes], int | None, str]:
    """Split concatenated or newline-separated JSON objects (HEC allows both).

    Returns (objects as their original bytes, index of the first bad object or None,
    reason). Objects after a bad one are not returned."""
    objs: list[bytes] = []
    # Fast path: one object per line.
    lines = [ln for ln in body.split(b"\n") if ln.strip()]
    ok = True
    for ln in lines:
        try:
            value = orjson.loads(ln)
        except orjson.JSONDecodeError:
            ok = False
            break
        if not isinstance(value, dict):
            return objs, len(objs), f"event {len(objs)} is {type(value).__name__}, not a JSON object"
        objs.append(ln.strip())
    if ok:
        return objs, None, ""
    objs = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], 0, f"body is not UTF-8 (byte offset {exc.start})"
    decoder = json.JSONDecoder()
    pos = 0
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            return objs, None, ""
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            return objs, len(objs), f"event {len(objs)}: {exc.msg} at character {exc.pos}"
        if not isinstance(value, dict):
            return objs, len(objs), f"event {len(objs)} is {type(value).__name__}, not a JSON object"
        objs.append(text[pos:end].encode("utf-8"))
        pos = end


def _hec_error(status: int, text: str, code: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"text": text, "code": code, **extra}, status_code=status)


async def _commit(
    request: Request, records: list[RawRecord], extra: list[Event] | None = None
) -> list[Event]:
    pipeline = _runtime(request).pipeline
    events = pipeline.parse(records) + list(extra or [])
    await pipeline.commit(events)
    return events


@router.get("/services/collector/health")
@router.get("/services/collector/health/1.0")
async def hec_health() -> JSONResponse:
    return _hec_error(200, "HEC is healthy", 17)


@router.post("/services/collector")
@router.post("/services/collector/event")
@router.post("/services/collector/event/1.0")
async def hec_event(request: Request) -> Response:
    try:
        tok = authenticate_ingest(request)
    except IngestAuthError as exc:
        return _hec_error(exc.status, exc.message, exc.hec_code)
    body = await _read_body(request)
    if not body.strip():
        return _hec_error(400, "No data", 5)
    objs, bad_index, why = split_json_objects(body)
    hints = _hints(request)
    records = [_record(tok, request, o, "hec", hints) for o in objs]
    extra: list[Event] = []
    if bad_index is not None:
        consumed = sum(len(o) for o in objs)
        rest = body[consumed:] if consumed < len(body) else body
        extra.append(_bad_body_event(tok, request, rest[:1_000_000], "hec.invalid_event", f"HEC body: {why}"))
    try:
        await _commit(request, records, extra)
    except PipelineUnavailable as exc:
        return _hec_error(503, f"Server is busy: {exc}", 9)
    if bad_index is not None:
        return _hec_error(400, "Invalid data format", 6, **{"invalid-event-number": bad_index})
    return _hec_error(200, "Success", 0)


def _hints(request: Request) -> dict[str, str] | None:
    q = request.query_params
    hints = {k: q[k] for k in ("host", "source", "sourcetype", "index") if k in q}
    return hints or None


@router.post("/services/collector/raw")
@router.post("/services/collector/raw/1.0")
async def hec_raw(request: Request) -> Response:
    try:
        tok = authenticate_ingest(request)
    except IngestAuthError as exc:
        return _hec_error(exc.status, exc.message, exc.hec_code)
    body = await _read_body(request)
    lines = [ln.rstrip(b"\r") for ln in body.split(b"\n") if ln.strip()]
    if not lines:
        return _hec_error(400, "No data", 5)
    hints = _hints(request)
    fmt = "syslog" if (hints or {}).get("sourcetype", "").startswith("syslog") else "text"
    try:
        await _commit(request, [_record(tok, request, ln, fmt, hints) for ln in lines])
    except PipelineUnavailable as exc:
        return _hec_error(503, f"Server is busy: {exc}", 9)
    return _hec_error(200, "Success", 0)


@router.get("/_bulk")
async def es_root_probe() -> JSONResponse:
    return JSONResponse({"error": "use POST"}, status_code=405)


@router.post("/_bulk")
@router.post("/{index}/_bulk")
async def es_bulk(request: Request, index: str | None = None) -> Response:
    try:
        tok = authenticate_ingest(request)
    except IngestAuthError as exc:
        return JSONResponse(
            {"error": {"type": "security_exception", "reason": exc.message}, "status": exc.status},
            status_code=exc.status,
        )
    body = await _read_body(request)
    lines = [ln for ln in body.split(b"\n") if ln.strip()]
    if not lines:
        return JSONResponse(
            {"error": {"type": "parse_exception", "reason": "request body is required"}, "status": 400},
            status_code=400,
        )
    records: list[RawRecord] = []
    extra: list[Event] = []
    items: list[dict[str, Any]] = []  # per action, in order; "record" marks ones filled after commit
    i = 0
    while i < len(lines):
        line_no = i + 1
        try:
            action = orjson.loads(lines[i])
        except orjson.JSONDecodeError as exc:
            extra.append(
                _bad_body_event(tok, request, lines[i], "bulk.bad_action", f"_bulk line {line_no}: {exc}")
            )
            items.append({"index": {"status": 400, "error": {"type": "parse_exception", "reason": str(exc)}}})
            i += 1
            continue
        op = next(iter(action), "") if isinstance(action, dict) and len(action) == 1 else ""
        meta = action.get(op) if isinstance(action, dict) else None
        target = (meta or {}).get("_index", index or "") if isinstance(meta, dict) else (index or "")
        if op in {"index", "create"}:
            if i + 1 >= len(lines):
                why = f"_bulk line {line_no}: action {op!r} without a document"
                extra.append(_bad_body_event(tok, request, lines[i], "bulk.missing_document", why))
                items.append(
                    {
                        op: {
                            "_index": target,
                            "status": 400,
                            "error": {"type": "illegal_argument_exception", "reason": why},
                        }
                    }
                )
                i += 1
                continue
            doc = lines[i + 1]
            try:
                parsed = orjson.loads(doc)
                good = isinstance(parsed, dict)
                reason = "" if good else "document is not a JSON object"
            except orjson.JSONDecodeError as exc:
                good, reason = False, str(exc)
            if good:
                records.append(
                    _record(tok, request, doc.strip(), "json", {"index": target} if target else None)
                )
                items.append({op: {"_index": target, "record": len(records) - 1}})
            else:
                why = f"_bulk line {line_no + 1}: {reason}"
                extra.append(_bad_body_event(tok, request, doc, "bulk.bad_document", why))
                items.append(
                    {
                        op: {
                            "_index": target,
                            "status": 400,
                            "error": {"type": "mapper_parsing_exception", "reason": why},
                        }
                    }
                )
            i += 2
            continue
        why = f"_bulk line {line_no}: action {op or action!r} is not supported (the log is append-only)"
        extra.append(_bad_body_event(tok, request, lines[i], "bulk.unsupported_action", why))
        items.append(
            {
                op or "unknown": {
                    "_index": target,
                    "status": 400,
                    "error": {"type": "illegal_argument_exception", "reason": why},
                }
            }
        )
        # update carries a document line; delete does not
        i += 2 if op == "update" else 1
    started = time.monotonic()
    try:
        events = await _commit(request, records, extra)
    except PipelineUnavailable as exc:
        return JSONResponse(
            {"error": {"type": "unavailable", "reason": str(exc)}, "status": 503}, status_code=503
        )
    errors = False
    for item in items:
        (op, meta) = next(iter(item.items()))
        if "record" in meta:
            ev = events[meta.pop("record")]
            meta.update({"_id": f"{ev.tenant}-{ev.seq}", "_version": 1, "result": "created", "status": 201})
        else:
            errors = True
    return JSONResponse({"took": int((time.monotonic() - started) * 1000), "errors": errors, "items": items})


@router.post("/ingest")
@router.post("/api/ingest")
async def json_ingest(request: Request) -> Response:
    """Plain JSON: one object, an array of objects, or NDJSON (one object per line)."""
    try:
        tok = authenticate_ingest(request)
    except IngestAuthError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    body = await _read_body(request)
    stripped = body.strip()
    if not stripped:
        return JSONResponse({"error": "empty body"}, status_code=400)
    payloads: list[bytes] = []
    rejected: list[dict[str, Any]] = []
    extra: list[Event] = []
    if stripped.startswith(b"["):
        try:
            array = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            extra.append(_bad_body_event(tok, request, stripped, "json.bad_body", f"JSON array body: {exc}"))
            rejected.append({"line": 1, "error": str(exc)})
            array = []
        for n, item in enumerate(array):
            if isinstance(item, dict):
                payloads.append(orjson.dumps(item))
            else:
                why = f"array element {n} is {type(item).__name__}, not an object"
                extra.append(_bad_body_event(tok, request, orjson.dumps(item), "json.not_object", why))
                rejected.append({"element": n, "error": why})
    else:
        for n, line in enumerate(body.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                why = f"line {n}: {exc}"
                extra.append(_bad_body_event(tok, request, line, "json.bad_line", why))
                rejected.append({"line": n, "error": str(exc)})
                continue
            if not isinstance(value, dict):
                why = f"line {n} is {type(value).__name__}, not an object"
                extra.append(_bad_body_event(tok, request, line, "json.not_object", why))
                rejected.append({"line": n, "error": why})
                continue
            payloads.append(line.strip())
    hints = (
        {"program": request.headers["x-syslog-program"]} if "x-syslog-program" in request.headers else None
    )
    try:
        await _commit(request, [_record(tok, request, p, "json", hints) for p in payloads], extra)
    except PipelineUnavailable as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    status = 400 if rejected else 200
    return JSONResponse({"accepted": len(payloads), "rejected": rejected}, status_code=status)
