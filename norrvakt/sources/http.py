"""HTTP ingest on the API server: Splunk HEC, Elasticsearch ``_bulk`` and plain JSON/NDJSON.

Senders seen here: syslog-ng 3.38 ``http()`` (HEC, ``_bulk``, plain JSON) and rsyslog
``omelasticsearch`` (``_bulk``)::

    POST /services/collector/event   Authorization: Splunk <token>
    {"time":1795729970,"sourcetype":"syslog","host":"vm","event":{"program":"sshd","message":"..."}}

    POST /_bulk                      Authorization: Basic base64(any-user:<token>)
    {"index":{"_index":"siem-raw"}}
    {"@timestamp":"2026-11-26T21:52:50.576954+00:00","host.name":"rs-testhost","message":"..."}

The token decides the tenant and the source id; the body never does. It is read from a
header only — a token in the URL ends up in proxy and access logs, so ``?token=`` is refused.
A token whose stored tenant is not exactly a configured tenant is refused too.

The body is read within ``server.max_body_bytes`` (as sent) and ``server.max_decompressed_bytes``
(after gzip/deflate); see :mod:`norrvakt.sources.http_body`. Each event is checked against
``server.max_event_bytes`` and the JSON nesting limit (:mod:`norrvakt.sources.http_json`).

The response is sent only after the records are durably journaled. Malformed, oversized or
too deeply nested parts of a body are kept as ``pipeline_error`` events (so nothing is
silently lost) and reported in the response in the protocol's own error format; well-formed
parts are accepted.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from norrvakt.event import SYSTEM_TENANT, Event, RawRecord, now_us
from norrvakt.node.pipeline import PipelineUnavailable, pipeline_error_event
from norrvakt.sources.http_body import BodyError, BodyLimits
from norrvakt.sources.http_json import (
    object_problem,
    split_json_array,
    too_large,
)
from norrvakt.state.accounts import IngestToken, ingest_token
from norrvakt.state.versions import TOKENS, VersionWatch
from norrvakt.tenant_ids import TenantIdError, exact_tenant

if TYPE_CHECKING:
    from norrvakt.node.runtime import Runtime

log = logging.getLogger(__name__)

router = APIRouter(tags=["ingest"])

_TOKEN_CACHE_SECONDS = 10.0
# Counted under this name when a request is refused before its token says which source it is.
_UNKNOWN_SOURCE = "http-ingest"
TOKEN_IN_URL = (
    "ingest tokens are not accepted in the URL (URLs end up in proxy and access logs); send the "
    "token in a header: Authorization: Splunk <token>, Bearer <token>, ApiKey <token>, Basic "
    "with the token as password, or X-Norrvakt-Token: <token>"
)


class IngestAuthError(Exception):
    def __init__(self, status: int, message: str, hec_code: int) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hec_code = hec_code


def extract_token(request: Request) -> str | None:
    """The ingest token from any header a log shipper can send (never from the URL)."""
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
    return request.headers.get("x-norrvakt-token") or None


class TokenCache:
    """Ingest tokens, cached briefly so a busy sender does not hit the state DB per request.

    Creating or revoking an ingest token bumps the ``tokens`` version in the state database
    (:mod:`norrvakt.state.versions`); with a ``watch`` the cache looks at it at most once a
    second and forgets every lookup when it moved. So a token revoked through any node —
    web node, CLI, another server on the same state database — is refused by every node
    within about a second; without a watch, within ``_TOKEN_CACHE_SECONDS``."""

    def __init__(
        self, lookup: Callable[[str], IngestToken | None], watch: VersionWatch | None = None
    ) -> None:
        self.lookup = lookup
        self.watch = watch
        self._cache: dict[str, tuple[float, IngestToken | None]] = {}

    def get(self, token: str) -> IngestToken | None:
        if self.watch is not None and self.watch.moved():
            self._cache.clear()
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
    runtime = _runtime(request)
    if "token" in request.query_params:
        log.warning("HTTP ingest from %s: token in the URL refused (%s)", _peer(request), request.url.path)
        runtime.pipeline.transport_error(_UNKNOWN_SOURCE, "http.token_in_url")
        raise IngestAuthError(401, TOKEN_IN_URL, 16)  # HEC 16: query string authorization is off
    token = extract_token(request)
    if not token:
        raise IngestAuthError(401, "Token is required", 2)
    if runtime.token_cache is None:
        runtime.token_cache = TokenCache(
            lambda t: ingest_token(runtime.state, t), VersionWatch(runtime.state, TOKENS)
        )
    found: IngestToken | None = runtime.token_cache.get(token)
    if found is None:
        raise IngestAuthError(403, "Invalid token", 4)
    try:
        exact_tenant(found.tenant, runtime.settings.tenants, what=f"ingest token {found.name!r}")
    except TenantIdError as exc:
        # Defence in depth: tokens are checked when they are made, but one stored before that
        # check (or for a tenant since removed from the configuration) must not write into a
        # pseudo-tenant nobody can search, nor into the audit trail.
        log.warning("HTTP ingest from %s refused: %s", _peer(request), exc)
        runtime.pipeline.transport_error(found.source_id, "http.token_tenant_refused")
        what = (
            "the system tenant (Norrvakt's own audit trail)"
            if found.tenant == SYSTEM_TENANT
            else "no configured tenant exactly"
        )
        raise IngestAuthError(
            403,
            f"ingest token {found.name!r} is refused: its tenant {found.tenant!r} is {what}; "
            "nothing is accepted with it — an administrator must issue a new token",
            1,  # HEC 1: token disabled
        ) from None
    return found


def _peer(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "unknown:0"


def _max_event_bytes(request: Request) -> int:
    return _runtime(request).settings.server.max_event_bytes


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
    _runtime(request).pipeline.transport_error(tok.source_id, error_type)
    payload = payload[: _max_event_bytes(request)]  # never journal more than an event
    return pipeline_error_event(_record(tok, request, payload, "json"), error_type, message)


async def _read_body(tok: IngestToken, request: Request) -> bytes | BodyError:
    """The body, or the error that refused it — kept as a pipeline_error event and counted."""
    try:
        return await BodyLimits.from_settings(_runtime(request).settings.server).build().read(request)
    except BodyError as exc:
        event = _bad_body_event(
            tok, request, exc.excerpt, exc.error_type, f"HTTP body refused: {exc.message}"
        )
        try:
            await _runtime(request).pipeline.commit([event])
        except PipelineUnavailable:
            pass  # the answer is an error anyway; the log line and the counter remain
        return exc


RETRY_AFTER_S = 5  # what a 503 asks a sender to wait: the journal (or the cluster's log) refused


def _retry_later(resp: JSONResponse) -> JSONResponse:
    """A 503 that tells the sender when to try again (HEC clients, Beats and Fluent Bit honour it)."""
    resp.headers["Retry-After"] = str(RETRY_AFTER_S)
    return resp


def _hec_error(status: int, text: str, code: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"text": text, "code": code, **extra}, status_code=status)


def _bulk_error(status: int, error_type: str, reason: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": error_type, "reason": reason}, "status": status}, status_code=status
    )


_BULK_BODY_ERRORS = {413: "content_too_long_exception", 415: "illegal_argument_exception"}


async def _commit(
    request: Request, records: list[RawRecord], extra: list[Event] | None = None
) -> list[Event]:
    pipeline = _runtime(request).pipeline
    events = await pipeline.parse_async(records) + list(extra or [])  # in a parse worker
    await pipeline.commit(events)
    return events


@router.get("/services/collector/health")
@router.get("/services/collector/health/1.0")
async def hec_health() -> JSONResponse:
    return _hec_error(200, "HEC is healthy", 17)


_HEC_ERROR_TYPES = {
    "too_large": "hec.event_too_large",
    "too_deep": "hec.too_deep",
    "malformed": "hec.invalid_event",
    "not_object": "hec.invalid_event",
}


@router.post("/services/collector")
@router.post("/services/collector/event")
@router.post("/services/collector/event/1.0")
async def hec_event(request: Request) -> Response:
    try:
        tok = authenticate_ingest(request)
    except IngestAuthError as exc:
        return _hec_error(exc.status, exc.message, exc.hec_code)
    body = await _read_body(tok, request)
    if isinstance(body, BodyError):
        return _hec_error(body.status, body.message, 6)
    if not body.strip():
        return _hec_error(400, "No data", 5)
    pipeline = _runtime(request).pipeline
    # Split, checked and parsed in a parse worker (the body is most of the work of a POST).
    template = _record(tok, request, b"", "hec", _hints(request))
    events, bad = await pipeline.parse_hec(body, _max_event_bytes(request), template)
    extra: list[Event] = []
    for part in bad:
        why = f"HEC event {part.number} (byte offset {part.offset}): {part.reason}"
        extra.append(_bad_body_event(tok, request, part.data, _HEC_ERROR_TYPES[part.kind], why))
    first_bad = bad[0].number if bad else None
    try:
        await pipeline.commit(events + extra)
    except PipelineUnavailable as exc:
        return _retry_later(_hec_error(503, f"Server is busy: {exc}", 9))
    if first_bad is not None:
        return _hec_error(400, "Invalid data format", 6, **{"invalid-event-number": first_bad})
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
    body = await _read_body(tok, request)
    if isinstance(body, BodyError):
        return _hec_error(body.status, body.message, 6)
    limit = _max_event_bytes(request)
    hints = _hints(request)
    fmt = "syslog" if (hints or {}).get("sourcetype", "").startswith("syslog") else "text"
    records: list[RawRecord] = []
    extra: list[Event] = []
    first_bad: int | None = None
    for line_no, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        line = line.rstrip(b"\r")
        if len(line) > limit:
            first_bad = len(records) + len(extra) if first_bad is None else first_bad
            why = f"HEC raw line {line_no}: {too_large(len(line), limit).reason}"
            extra.append(_bad_body_event(tok, request, line, "hec.event_too_large", why))
        else:
            records.append(_record(tok, request, line, fmt, hints))
    if not records and not extra:
        return _hec_error(400, "No data", 5)
    try:
        await _commit(request, records, extra)
    except PipelineUnavailable as exc:
        return _retry_later(_hec_error(503, f"Server is busy: {exc}", 9))
    if first_bad is not None:
        return _hec_error(400, "Invalid data format", 6, **{"invalid-event-number": first_bad})
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
        return _bulk_error(exc.status, "security_exception", exc.message)
    body = await _read_body(tok, request)
    if isinstance(body, BodyError):
        return _bulk_error(body.status, _BULK_BODY_ERRORS.get(body.status, "parse_exception"), body.message)
    if not body.strip():
        return _bulk_error(400, "parse_exception", "request body is required")
    pipeline = _runtime(request).pipeline
    # The actions read, the documents checked and parsed in a parse worker (most of a POST's work).
    template = _record(tok, request, b"", "json")
    started = time.monotonic()
    plan, events = await pipeline.parse_bulk(body, _max_event_bytes(request), index, template)
    extra = [_bad_body_event(tok, request, p.data, p.error_type, p.reason) for p in plan.problems]
    try:
        await pipeline.commit(events + extra)
    except PipelineUnavailable as exc:
        return _retry_later(_bulk_error(503, "unavailable", str(exc)))
    items = plan.items
    errors = False
    for item in items:
        (_op, meta) = next(iter(item.items()))
        if "record" in meta:
            ev = events[meta.pop("record")]
            meta.update({"_id": f"{ev.tenant}-{ev.seq}", "_version": 1, "result": "created", "status": 201})
        else:
            errors = True
    return JSONResponse({"took": int((time.monotonic() - started) * 1000), "errors": errors, "items": items})


_JSON_ERROR_TYPES = {
    "too_large": "json.event_too_large",
    "too_deep": "json.too_deep",
    "malformed": "json.bad_line",
    "not_object": "json.not_object",
}


@router.post("/ingest")
@router.post("/api/ingest")
async def json_ingest(request: Request) -> Response:
    """Plain JSON: one object, an array of objects, or NDJSON (one object per line)."""
    try:
        tok = authenticate_ingest(request)
    except IngestAuthError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    body = await _read_body(tok, request)
    if isinstance(body, BodyError):
        return JSONResponse({"error": body.message}, status_code=body.status)
    stripped = body.strip()
    if not stripped:
        return JSONResponse({"error": "empty body"}, status_code=400)
    limit = _max_event_bytes(request)
    payloads: list[bytes] = []
    rejected: list[dict[str, Any]] = []
    extra: list[Event] = []
    if stripped.startswith(b"["):
        # One array is one batch (held to the body's limits); each element is an event.
        elements, problem = split_json_array(stripped, limit)
        if problem is not None:
            error_type = "json.too_deep" if problem.kind == "too_deep" else "json.bad_body"
            extra.append(
                _bad_body_event(tok, request, stripped, error_type, f"JSON array body: {problem.reason}")
            )
            rejected.append({"line": 1, "error": problem.reason})
        for part in elements:
            if part.problem is None:
                payloads.append(part.data)
                continue
            why = f"array element {part.number} (byte offset {part.offset}): {part.problem.reason}"
            extra.append(_bad_body_event(tok, request, part.data, _JSON_ERROR_TYPES[part.problem.kind], why))
            rejected.append({"element": part.number, "error": why})
    else:
        for n, line in enumerate(body.split(b"\n"), start=1):
            if not line.strip():
                continue
            problem = object_problem(line, limit)
            if problem is not None:
                why = f"line {n}: {problem.reason}"
                extra.append(_bad_body_event(tok, request, line, _JSON_ERROR_TYPES[problem.kind], why))
                rejected.append({"line": n, "error": problem.reason})
                continue
            payloads.append(line.strip())
    hints = (
        {"program": request.headers["x-syslog-program"]} if "x-syslog-program" in request.headers else None
    )
    try:
        await _commit(request, [_record(tok, request, p, "json", hints) for p in payloads], extra)
    except PipelineUnavailable as exc:
        return _retry_later(JSONResponse({"error": str(exc)}, status_code=503))
    status = 400 if rejected else 200
    return JSONResponse({"accepted": len(payloads), "rejected": rejected}, status_code=status)
