"""Health and pipeline counters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from norrvakt import __version__
from norrvakt.event import now_us
from norrvakt.state.accounts import Principal
from norrvakt.web.auth import current_principal

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    rt = request.app.state.runtime
    return {
        "status": "ok" if rt.indexer.last_error is None else "degraded",
        "version": __version__,
        "indexer_backlog": rt.indexer.backlog(),
    }


@router.get("/stats")
async def stats(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    rt = request.app.state.runtime
    scope = set(principal.scope(rt.tenants))
    tenants = {
        t: {"journaled": rt.journal.committed_seq(t), "stored": rt.indexer.stored_seq(t)}
        for t in rt.journal.tenants()
        if t in scope
    }
    out: dict[str, Any] = {"tenants": tenants, "uptime_s": (now_us() - rt.started_at) / 1e6}
    if principal.tenants is None:  # counters span all tenants: SOC and admins only
        out["pipeline"] = rt.pipeline.counters.as_dict()
        out["indexer"] = {"backlog": rt.indexer.backlog(), "last_error": rt.indexer.last_error}
        detection = rt.extras.get("detection")
        if detection is not None:  # stored batches not yet matched by the rules
            out["detection"] = {"backlog": detection.backlog}
        out["sources"] = [{"id": s.id, "listen": s.describe()} for s in rt.sources]
    return out
