"""/api/cases/{id}/nis2/reports — the NIS2 incident reports of a significant case: the early
warning (24 h), the incident notification (72 h) and the final report (one month).

A draft is made prefilled from the case (POST), edited (PUT, only the fields sent), approved by
a second person with an approving role (POST …/approve; the one who drafted or edited it is
refused), exported as JSON, HTML or PDF (GET …/export) and, once sent to the CSIRT unit, marked
sent (POST …/mark-sent) — which records the time on the case, so its deadline tracking shows
the report as met or missed. Every change is a line of the case's history, journaled before the
answer; every export is audited. Another tenant's case is a 404, like one that does not exist.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from norrvakt import audit
from norrvakt.alerts import evidence
from norrvakt.errors import StatusError
from norrvakt.reports import nis2_render
from norrvakt.reports.nis2_drafts import Nis2Drafts
from norrvakt.state.accounts import Principal
from norrvakt.web.api.alerts import http_error, parse_us, soc
from norrvakt.web.auth import current_principal, peer, require_write
from norrvakt.web.templating import tenant_name

router = APIRouter(prefix="/api/cases", tags=["nis2-reports"])


def drafts(request: Request) -> Nis2Drafts:
    rt = request.app.state.runtime

    def fetch(tenant: str, seqs: Sequence[int]) -> list[dict[str, Any]]:
        return evidence.fetch(rt.store, rt.journal, tenant, seqs)

    return Nis2Drafts(soc(request).cases, fetch)


def organisation(tenant: str) -> str:
    return f"{tenant_name(tenant)} kommun"


def _scope(request: Request, principal: Principal) -> list[str]:
    return principal.scope(request.app.state.runtime.tenants)


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except StatusError as exc:
        raise http_error(exc) from exc


async def _answer(request: Request, draft: dict[str, Any], scope: list[str]) -> dict[str, Any]:
    case = await _run(soc(request).cases.detail, draft["case_id"], scope)
    return {**draft, "deadline": _deadline(case["nis2"], draft["kind"])}


def _deadline(n: dict[str, Any], kind: str) -> dict[str, Any]:
    return {"due": n.get(f"{kind}_due"), "status": (n.get("status") or {}).get(kind)}


@router.get("/{case_id}/nis2/reports")
async def list_reports(
    case_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """The case's drafts (any of the three kinds) and its NIS2 deadlines."""
    scope = _scope(request, principal)
    found = await _run(drafts(request).listing, case_id, scope)
    case = await _run(soc(request).cases.detail, case_id, scope)
    return {"case_id": case_id, "reports": found, "nis2": case["nis2"]}


@router.post("/{case_id}/nis2/reports/{kind}", status_code=201)
async def create_report(
    case_id: int, kind: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """A draft of ``kind`` (early_warning, notification, final_report), prefilled from the case."""
    require_write(principal)
    scope = _scope(request, principal)
    case = await _run(soc(request).cases.get, case_id, scope)
    draft, changes = await _run(
        drafts(request).create, case_id, kind, principal, scope, municipality=organisation(case.tenant)
    )
    await soc(request).journal(changes, peer(request))
    return await _answer(request, draft, scope)


@router.get("/{case_id}/nis2/reports/{kind}")
async def get_report(
    case_id: int, kind: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """The draft: its fields (times in µs), status, editors, approval and sending."""
    scope = _scope(request, principal)
    return await _answer(request, await _run(drafts(request).get, case_id, kind, scope), scope)


@router.put("/{case_id}/nis2/reports/{kind}")
async def edit_report(
    case_id: int,
    kind: str,
    body: dict[str, Any],
    request: Request,
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Change the fields sent (field name → value; null empties one). Times as ISO 8601 or µs,
    lists as JSON lists or one item a line. An approved draft goes back to draft."""
    require_write(principal)
    scope = _scope(request, principal)
    draft, changes = await _run(drafts(request).update, case_id, kind, body, principal.username, scope)
    await soc(request).journal(changes, peer(request))
    return await _answer(request, draft, scope)


@router.post("/{case_id}/nis2/reports/{kind}/approve")
async def approve_report(
    case_id: int, kind: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Approve the draft as it is: a tenant officer or admin who neither drafted nor edited it."""
    require_write(principal)
    scope = _scope(request, principal)
    draft, changes = await _run(drafts(request).approve, case_id, kind, principal, scope)
    await soc(request).journal(changes, peer(request))
    return await _answer(request, draft, scope)


class SentIn(BaseModel):
    sent_at: str | None = Field(None, description="When it went to the CSIRT: ISO 8601, epoch s or now")
    reference: str = Field("", max_length=256, description="The CSIRT's reference (ärendenummer), if given")


@router.post("/{case_id}/nis2/reports/{kind}/mark-sent")
async def mark_sent(
    case_id: int, kind: str, body: SentIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Record that the approved report was sent; the case's deadline then shows met or missed."""
    require_write(principal)
    scope = _scope(request, principal)
    at = parse_us(body.sent_at, "sent_at")
    draft, changes = await _run(
        drafts(request).mark_sent, case_id, kind, principal.username, scope, at, body.reference
    )
    await soc(request).journal(changes, peer(request))
    return await _answer(request, draft, scope)


@router.get("/{case_id}/nis2/reports/{kind}/export")
async def export_report(
    case_id: int,
    kind: str,
    request: Request,
    format: str = Query("pdf", pattern="^(pdf|html|json)$"),
    lang: str = Query("sv", pattern="^(sv|en)$"),
    principal: Principal = Depends(current_principal),
) -> Response:
    """The report as PDF, HTML or JSON (the JSON's schema: docs/nis2.md)."""
    scope = _scope(request, principal)
    draft = await _run(drafts(request).get, case_id, kind, scope)
    case = await _run(soc(request).cases.detail, case_id, scope)
    rt = request.app.state.runtime
    await audit.record(
        rt.pipeline,
        principal.username,
        "export",
        peer=peer(request),
        report=f"nis2-{kind}",
        tenant=draft["tenant"],
        case=case_id,
        status=draft["status"],
        format=format,
    )
    who = organisation(draft["tenant"])
    name = f"nis2-{kind}-{draft['tenant']}-{case_id}"
    if format == "json":
        doc = nis2_render.export_doc(draft, case["nis2"], who, principal.username)
        return Response(
            json.dumps(doc, ensure_ascii=False, indent=2),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
        )
    if format == "html":
        return HTMLResponse(nis2_render.render_html(draft, case["nis2"], who, principal.username, lang))
    pdf = await asyncio.to_thread(nis2_render.render_pdf, draft, case["nis2"], who, principal.username, lang)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
    )
