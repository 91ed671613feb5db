"""Reports over HTTP: the subject-access extract (CSV, HTML or PDF)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt import audit
from norrvakt.event import now_us
from norrvakt.reports.subject_access import subject_access
from norrvakt.state.accounts import Principal
from norrvakt.store.query import parse_time
from norrvakt.web.auth import current_principal, peer, tenant_scope
from norrvakt.web.templating import tenant_name

router = APIRouter(prefix="/api/reports", tags=["reports"])


@router.get("/subject-access")
async def subject_access_extract(
    request: Request,
    tenant: str = Query(...),
    subject: str = Query(..., description="The person's (pseudonymous) subject id as the systems log it"),
    since: str = Query("365d"),
    until: str | None = Query(None),
    format: str = Query("pdf", pattern="^(pdf|csv|html)$"),
    principal: Principal = Depends(current_principal),
) -> Response:
    """Every access to one person's records in a period — the log extract they are entitled to."""
    rt = request.app.state.runtime
    if tenant_scope(principal, rt.tenants, tenant) != [tenant]:
        raise HTTPException(403, f"no access to tenant: {tenant}")
    now = now_us()
    try:
        since_us = parse_time(since, now)
        until_us = parse_time(until, now) if until else now
        extract = await asyncio.to_thread(
            subject_access, rt.store, tenant, subject, since_us, until_us, principal.username
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "export",
        peer=peer(request),
        report="subject-access",
        tenant=tenant,
        subject=subject,
        rows=len(extract.rows),
        format=format,
    )
    name = f"logguttag-{tenant}-{subject}"
    if format == "csv":
        return Response(
            extract.csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if format == "html":
        return HTMLResponse(extract.html(tenant_name(tenant)))
    pdf = await asyncio.to_thread(extract.pdf, tenant_name(tenant))
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
    )
