"""Periodic reports over HTTP: a municipality's report or the region's for any past period
(HTML, PDF or the figures as JSON), and the reports sent so far.

A tenant's officer reads their own municipality's report only; the region report (all
municipalities side by side) is for central roles. Every render is audited as an export.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from norrvakt import audit
from norrvakt.reports.periods import BadPeriod
from norrvakt.reports.region import REGION
from norrvakt.reports.service import Report, make_report
from norrvakt.reports.wiring import sources_for
from norrvakt.state import report_runs
from norrvakt.state.accounts import Principal
from norrvakt.web.auth import current_principal, peer, tenant_scope

router = APIRouter(prefix="/api/reports", tags=["reports"])
FORMATS = "^(pdf|html|json)$"


async def _render(
    request: Request, principal: Principal, tenant: str, period: str, language: str | None, fmt: str
) -> Response:
    rt = request.app.state.runtime
    try:
        report: Report = await asyncio.to_thread(
            make_report,
            sources_for(rt),
            tenant,
            period,
            language,
            produced_by=principal.username,
            pdf=fmt == "pdf",
        )
    except BadPeriod as exc:
        raise HTTPException(exc.status_code, str(exc)) from exc
    await audit.record(
        rt.pipeline, principal.username, "export", peer=peer(request), report="periodic",
        tenant=tenant, period=report.period.label, language=report.language, format=fmt,
    )  # fmt: skip
    name = f"norrvakt-{'region' if tenant == REGION else tenant}-{report.period.label}"
    if fmt == "json":
        return JSONResponse(report.figures)
    if fmt == "html":
        return HTMLResponse(report.html)
    return Response(
        report.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}.pdf"',
            "X-Report-SHA256": report.pdf_sha256,
        },
    )


@router.get("/periodic/{tenant}/{period}")
async def periodic_report(
    request: Request,
    tenant: str,
    period: str,
    format: str = Query("pdf", pattern=FORMATS),
    language: str | None = Query(None, description="sv or en (default: the tenant's, reports.languages)"),
    principal: Principal = Depends(current_principal),
) -> Response:
    """A municipality's report for a past period: ``2026-11`` (month) or ``2026-W48`` (week)."""
    rt = request.app.state.runtime
    if tenant_scope(principal, rt.tenants, tenant) != [tenant]:
        raise HTTPException(403, f"no access to tenant: {tenant}")
    return await _render(request, principal, tenant, period, language, format)


@router.get("/region/{period}")
async def region_report(
    request: Request,
    period: str,
    format: str = Query("pdf", pattern=FORMATS),
    language: str | None = Query(None, description="sv or en (default: reports.languages.region)"),
    principal: Principal = Depends(current_principal),
) -> Response:
    """The region report (every municipality side by side): central roles only."""
    if principal.tenants is not None:
        raise HTTPException(403, "the region report covers every municipality: central roles only")
    return await _render(request, principal, REGION, period, language, format)


@router.get("/runs")
async def runs(
    request: Request,
    tenant: str | None = Query(None, description="Tenant(s), comma-separated; default all you may read"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """The reports sent (or failed) so far, with their digests: the caller's tenants (and the
    region report's for central roles)."""
    rt = request.app.state.runtime
    scope = tenant_scope(principal, rt.tenants, tenant)
    if principal.tenants is None and not tenant:
        scope = [*scope, REGION]
    rows = await asyncio.to_thread(report_runs.listing, rt.state, scope)
    return {"runs": rows}
