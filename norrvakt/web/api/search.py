"""GET /api/search — the search language over the caller's tenants — with its histogram,
facets, field names, the live tail and the export (CSV / NDJSON, streamed).

Every search (here and in the console) runs inside :func:`searching`: the caller's tenant
scope, the query limits (``[search]`` settings), a per-user slot (``search.max_concurrent``
searches, ``search.max_live_tails`` tails; 429 beyond) — and an audit record with
``outcome=failure`` and the reason whenever it fails, so probing shows in the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from norrvakt import audit
from norrvakt.errors import StatusError
from norrvakt.search import run_search, store_call
from norrvakt.state.accounts import Principal
from norrvakt.store.query import parse_query
from norrvakt.web.api.export_stream import ExportResponse, ExportStream
from norrvakt.web.auth import current_principal, peer, tenant_scope
from norrvakt.web.limits import Slot, UserLimiter

router = APIRouter(prefix="/api", tags=["search"])
log = logging.getLogger(__name__)

LIMITER = "search_limiter"  # runtime.extras key (made by create_app)


def limiter(request: Request) -> UserLimiter:
    found: UserLimiter = request.app.state.runtime.extras[LIMITER]
    return found


@dataclass
class Searching:
    """A search in progress: its scope and its slot (``keep`` = the caller frees the slot)."""

    scope: list[str] = field(default_factory=list)
    slot: Slot | None = None
    keep: bool = False


def _audited(q: str, most: int = 10_000) -> str:
    """The query as the audit trail keeps it: whole up to ``most`` characters, then cut and
    measured (a refused 60,000-character query need not fill the trail)."""
    return q if len(q) <= most else f"{q[:most]}… ({len(q):,} characters)"


def _failure(exc: Exception) -> tuple[int | None, str]:
    """(HTTP status, reason) of a failed search; status None = unexpected (stays a 500)."""
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    if isinstance(exc, StatusError):
        return exc.status_code, str(exc)
    if isinstance(exc, ValueError):  # QueryError: the query, a time or a too-big query
        return 400, str(exc)
    return None, f"{type(exc).__name__}: {exc}"[:500]


async def audit_failure(
    request: Request, principal: Principal, q: str, tenants: str, mode: str, status: int | None, reason: str
) -> None:
    """A search that failed, in the audit trail with why (``status`` None: an internal error)."""
    await audit.record(
        request.app.state.runtime.pipeline,
        principal.username,
        "search",
        peer=peer(request),
        outcome="failure",
        query=_audited(q),
        tenants=tenants,
        mode=mode,
        status=status or 500,
        reason=reason,
    )


@contextlib.asynccontextmanager
async def searching(
    request: Request,
    principal: Principal,
    q: str,
    tenant: str | None,
    mode: str,
    kind: str = "search",
) -> AsyncIterator[Searching]:
    """Scope, query limits and a slot for one search; a failure inside is audited and
    answered as an HTTPException with the reason (429 for limits, 400 for queries)."""
    rt = request.app.state.runtime
    limits = rt.settings.search
    state = Searching()
    try:
        state.scope = tenant_scope(principal, rt.tenants, tenant)
        if not state.scope:
            raise HTTPException(403, "no tenants in scope")
        parse_query(q, max_length=limits.max_query_length, max_depth=limits.max_query_depth)
        state.slot = limiter(request).slot(kind, principal.username)
        yield state
    except Exception as exc:
        status, reason = _failure(exc)
        tenants = ",".join(state.scope) or (tenant or "")
        await audit_failure(request, principal, q, tenants, mode, status, reason)
        if status is None:
            raise
        headers = {"Retry-After": "2"} if status == 429 else None
        raise HTTPException(status, reason, headers=headers) from exc
    finally:
        if state.slot is not None and not state.keep:
            state.slot.release()


@router.get("/search")
async def search(
    request: Request,
    q: str = Query(
        "", description="Query, e.g. `event.code:4625 source.ip:10.0.0.0/8 | stats count by user.name`"
    ),
    tenant: str | None = Query(None, description="Tenant id(s), comma-separated; default all you may read"),
    since: str | None = Query(None, description="15m, 2h, 7d, now-1h, ISO 8601 or epoch seconds"),
    until: str | None = Query(None, description="Same forms as since"),
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    rt = request.app.state.runtime
    async with searching(request, principal, q, tenant, "api") as s:
        result = await asyncio.to_thread(
            run_search, rt.store, s.scope, q, since=since, until=until, limit=limit, offset=offset
        )
    await audit.record(
        rt.pipeline,
        principal.username,
        "search",
        peer=peer(request),
        query=q,
        tenants=",".join(s.scope),
        since=since or "",
        until=until or "",
        hits=result["total"],
    )
    return result


def _window(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    from norrvakt.event import now_us
    from norrvakt.store.query import parse_time

    now = now_us()
    return (parse_time(since, now) if since else None, parse_time(until, now) if until else None)


@router.get("/search/histogram")
async def search_histogram(
    request: Request,
    q: str = Query(""),
    tenant: str | None = Query(None),
    since: str | None = Query(None),
    until: str | None = Query(None),
    buckets: int = Query(60, ge=1, le=500),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Hits over time for a query (the bars above the search results)."""
    from norrvakt.store.analytics import histogram

    rt = request.app.state.runtime
    async with searching(request, principal, q, tenant, "histogram") as s:
        since_us, until_us = _window(since, until)
        return await asyncio.to_thread(
            store_call, histogram, rt.store, s.scope, q, since_us, until_us, buckets
        )


@router.get("/search/facets")
async def search_facets(
    request: Request,
    q: str = Query(""),
    field: list[str] = Query(["host.name", "user.name", "source.ip", "event.code", "event.dataset"]),
    tenant: str | None = Query(None),
    since: str | None = Query(None),
    until: str | None = Query(None),
    top: int = Query(8, ge=1, le=100),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Top values of fields among the matching events."""
    from norrvakt.store.analytics import facets

    rt = request.app.state.runtime
    async with searching(request, principal, q, tenant, "facets") as s:
        since_us, until_us = _window(since, until)
        return await asyncio.to_thread(
            store_call, facets, rt.store, s.scope, q, since_us, until_us, field[:20], top
        )


@router.get("/search/fields")
async def search_fields(
    request: Request, tenant: str | None = Query(None), principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Field names for autocompletion: ECS and base fields, then the sources' own fields."""
    from norrvakt.store.analytics import field_names

    rt = request.app.state.runtime
    scope = tenant_scope(principal, rt.tenants, tenant)
    return {"fields": await asyncio.to_thread(field_names, rt.store, scope)}


class _TailResponse(StreamingResponse):
    """Frees the tail's slot when the response ends, however it ends (the client went away,
    the stream failed, or it never started)."""

    def __init__(self, content: AsyncIterator[bytes], slot: Slot) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


@router.get("/tail")
async def live_tail(
    request: Request,
    q: str = Query(""),
    tenant: str | None = Query(None),
    principal: Principal = Depends(current_principal),
) -> StreamingResponse:
    """Server-sent events: every matching event as it becomes searchable (polled each second)."""
    from norrvakt.event import now_us
    from norrvakt.store.analytics import newer_events

    rt = request.app.state.runtime
    async with searching(request, principal, q, tenant, "live-tail", kind="tail") as s:
        s.keep = True  # held until the stream ends (see _TailResponse)
        scope, slot = s.scope, s.slot
    assert slot is not None  # searching() yields only with a slot
    try:
        await audit.record(
            rt.pipeline,
            principal.username,
            "search",
            peer=peer(request),
            query=q,
            tenants=",".join(scope),
            mode="live-tail",
        )
    except BaseException:
        slot.release()
        raise

    def poll(after: int) -> list[dict[str, Any]]:
        return store_call(newer_events, rt.store, scope, q, after)

    async def stream() -> AsyncIterator[bytes]:
        after = now_us()
        yield b": live tail started\n\n"
        while not await request.is_disconnected():
            try:
                rows = await asyncio.to_thread(poll, after)
            except Exception as exc:
                status, reason = _failure(exc)
                if status is None:
                    log.exception("live tail of %s failed", principal.username)
                await audit_failure(request, principal, q, ",".join(scope), "live-tail", status, reason)
                detail = reason if status is not None else "the live tail stopped: internal error"
                yield b"event: error\ndata: " + json.dumps({"detail": detail}).encode() + b"\n\n"
                return
            for row in rows:
                after = max(after, int(row["ingested"]))
                yield b"event: event\ndata: " + json.dumps(row, ensure_ascii=False).encode() + b"\n\n"
            await asyncio.sleep(1.0)

    return _TailResponse(stream(), slot)


@router.get("/search/export")
async def search_export(
    request: Request,
    q: str = Query("", description="Query, as for /api/search (`| head`, `| fields` apply)"),
    tenant: str | None = Query(None, description="Tenant id(s), comma-separated; default all you may read"),
    since: str | None = Query(None, description="15m, 2h, 7d, now-1h, ISO 8601 or epoch seconds"),
    until: str | None = Query(None, description="Same forms as since"),
    format: str = Query("csv", pattern="^(csv|ndjson)$", description="csv or ndjson"),
    principal: Principal = Depends(current_principal),
) -> StreamingResponse:
    """The whole result as a download, streamed, up to `search.export_max_rows` rows and
    `search.export_max_bytes` bytes (a last line says when the export was cut). Holds one of
    the user's search slots until the download ends; audited when it starts and when it ends."""
    from norrvakt.search import compile_export
    from norrvakt.store.query_export import MEDIA_TYPES, ExportLimits, ExportProgress, export_chunks

    rt = request.app.state.runtime
    limits = ExportLimits(rt.settings.search.export_max_rows, rt.settings.search.export_max_bytes)
    fmt: Any = format
    details = {"query": _audited(q), "since": since or "", "until": until or "", "format": format}
    async with searching(request, principal, q, tenant, "export") as s:
        scope, slot = s.scope, s.slot
        compiled = compile_export(s.scope, q, since=since, until=until, max_rows=limits.max_rows)
        progress = ExportProgress()

        async def audit_end(outcome: str, **end: Any) -> None:
            await audit.record(
                rt.pipeline, principal.username, "export", peer=peer(request), outcome=outcome,
                tenants=",".join(scope), **details, **end,
            )  # fmt: skip

        chunks = export_chunks(rt.store, compiled, fmt, limits, progress)
        stream = ExportStream(_store_errors(chunks), progress, audit_end)
        await stream.start()  # a query the store refuses is still a 400 (audited by searching())
        s.keep = True  # held until the download ends (see ExportResponse)
    if slot is None:  # searching() yields only with a slot
        raise RuntimeError("an export without a search slot")
    try:
        await audit.record(
            rt.pipeline, principal.username, "export", peer=peer(request), outcome="unknown",
            tenants=",".join(scope), state="started", **details,
        )  # fmt: skip
    except BaseException:
        stream.close()
        slot.release()
        raise
    name = f"norrvakt-search-{'-'.join(scope) if len(scope) <= 3 else 'tenants'}.{format}"
    return ExportResponse(stream, slot, MEDIA_TYPES[format], name)


def _store_errors(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks`` with the store's refusal of a too-big query as a QueryError (a 400)."""
    from norrvakt.search import too_big

    try:
        yield from chunks
    except Exception as exc:
        if (mapped := too_big(exc)) is not None:
            raise mapped from exc
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
