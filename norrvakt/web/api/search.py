"""GET /api/search — the search language over the caller's tenants."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from norrvakt import audit
from norrvakt.search import run_search
from norrvakt.state.accounts import Principal
from norrvakt.web.auth import current_principal, peer, tenant_scope

router = APIRouter(prefix="/api", tags=["search"])


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
    scope = tenant_scope(principal, rt.tenants, tenant)
    if not scope:
        raise HTTPException(403, "no tenants in scope")
    try:
        result = await asyncio.to_thread(
            run_search, rt.store, scope, q, since=since, until=until, limit=limit, offset=offset
        )
    except ValueError as exc:  # QueryError carries the position
        await audit.record(
            rt.pipeline,
            principal.username,
            "search",
            peer=peer(request),
            outcome="failure",
            query=q,
            tenants=",".join(scope),
            error=str(exc),
        )
        raise HTTPException(400, str(exc)) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "search",
        peer=peer(request),
        query=q,
        tenants=",".join(scope),
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
    scope = tenant_scope(principal, rt.tenants, tenant)
    try:
        since_us, until_us = _window(since, until)
        return await asyncio.to_thread(histogram, rt.store, scope, q, since_us, until_us, buckets)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


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
    scope = tenant_scope(principal, rt.tenants, tenant)
    try:
        since_us, until_us = _window(since, until)
        return await asyncio.to_thread(facets, rt.store, scope, q, since_us, until_us, field[:20], top)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("/search/fields")
async def search_fields(
    request: Request, tenant: str | None = Query(None), principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Field names for autocompletion: ECS and base fields, then the sources' own fields."""
    from norrvakt.store.analytics import field_names

    rt = request.app.state.runtime
    scope = tenant_scope(principal, rt.tenants, tenant)
    return {"fields": await asyncio.to_thread(field_names, rt.store, scope)}


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
    from norrvakt.store.query import parse_query

    rt = request.app.state.runtime
    scope = tenant_scope(principal, rt.tenants, tenant)
    try:
        parse_query(q)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "search",
        peer=peer(request),
        query=q,
        tenants=",".join(scope),
        mode="live-tail",
    )

    async def stream() -> AsyncIterator[bytes]:
        after = now_us()
        yield b": live tail started\n\n"
        while not await request.is_disconnected():
            rows = await asyncio.to_thread(newer_events, rt.store, scope, q, after)
            for row in rows:
                after = max(after, int(row["ingested"]))
                yield b"event: event\ndata: " + json.dumps(row, ensure_ascii=False).encode() + b"\n\n"
            await asyncio.sleep(1.0)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
