"""GET /api/search — the search language over the caller's tenants."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from norrvakt import audit
from norrvakt.search import run_search
from norrvakt.state.accounts import Principal
from norrvakt.web.auth import current_principal, tenant_scope

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
    peer = f"{request.client.host}:{request.client.port}" if request.client else ""
    try:
        result = await asyncio.to_thread(
            run_search, rt.store, scope, q, since=since, until=until, limit=limit, offset=offset
        )
    except ValueError as exc:  # QueryError carries the position
        await audit.record(
            rt.pipeline,
            principal.username,
            "search",
            peer=peer,
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
        peer=peer,
        query=q,
        tenants=",".join(scope),
        since=since or "",
        until=until or "",
        hits=result["total"],
    )
    return result
