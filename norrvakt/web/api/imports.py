"""POST /api/import — what `norrvakt import` sends when a server owns the data directory.

The records' tenant is exact (never the system tenant: nobody writes into the audit trail),
their peer is the caller's address and their receive time is now: what the client says
about where and when it read them is kept as ``import.claimed_*`` fields, not believed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from norrvakt import audit
from norrvakt.importer import add_claims, decode_items, items_to_events
from norrvakt.node.pipeline import PipelineUnavailable
from norrvakt.state.accounts import Principal
from norrvakt.tenant_ids import TenantIdError, exact_tenant
from norrvakt.web.auth import current_principal, peer

router = APIRouter(prefix="/api", tags=["ingest"])

RESERVED_SOURCE_PREFIX = "norrvakt-"  # Norrvakt's own records: norrvakt-audit, norrvakt-integrity


@router.post("/import")
async def import_records(
    request: Request,
    tenant: str = Query(..., description="Tenant the records belong to"),
    source: str = Query("import", description="Source id shown on the events"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    rt = request.app.state.runtime
    if principal.role == "auditor":
        raise HTTPException(403, "auditors have read-only access")
    try:
        exact_tenant(tenant, rt.tenants, what="import tenant", shown=principal.scope(rt.tenants))
    except TenantIdError as exc:
        raise HTTPException(exc.status_code, str(exc)) from exc
    if not principal.can_read(tenant):
        raise HTTPException(403, f"no access to tenant: {tenant}")
    if not source or source.startswith(RESERVED_SOURCE_PREFIX):
        raise HTTPException(
            400,
            f"import source {source!r}: names starting with {RESERVED_SOURCE_PREFIX!r} are Norrvakt's own",
        )
    caller = peer(request)
    try:
        items, claims = decode_items(await request.body(), tenant, source, rt.settings.timezone, peer=caller)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    events = items_to_events(rt.pipeline, items)
    add_claims(events, claims)
    try:
        await rt.pipeline.commit(events)
    except PipelineUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "import",
        peer=caller,
        tenant=tenant,
        source=source,
        records=len(events),
        first_seq=events[0].seq if events else "",
        last_seq=events[-1].seq if events else "",
    )
    return {
        "accepted": len(events),
        "errors": sum(1 for it in items if it.error_type),
        "first_seq": events[0].seq if events else None,
        "last_seq": events[-1].seq if events else None,
    }


@router.get("/import/wait")
async def wait_indexed(
    request: Request, timeout: float = 60.0, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Block until everything journaled so far is searchable (used at the end of an import)."""
    rt = request.app.state.runtime
    ok = await rt.indexer.wait_caught_up(timeout=min(timeout, 600.0))
    return {"caught_up": ok}
