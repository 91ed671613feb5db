"""/api/followup — the systematic log follow-up (loggkontroll) over HTTP.

Plans per tenant and system; rounds drawn per period; the named reviewer's decisions;
annotations (also after sign-off); sign-off, verification and the round's report (HTML or
PDF); the tenant's hashed lookup table. Every id is checked against the caller's tenants:
another tenant's id gets the same 404 as an id that does not exist. Decisions, annotations,
sign-offs and uploads are journaled as audit events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from norrvakt import audit
from norrvakt.alerts.errors import AlertError
from norrvakt.errors import StatusError
from norrvakt.event import Event
from norrvakt.followup.service import FollowupService, PlanInput, followup_for
from norrvakt.reports import followup as followup_report
from norrvakt.state.accounts import Principal
from norrvakt.web.api.alerts import http_error, scope_of, soc
from norrvakt.web.auth import current_principal, peer, require_write
from norrvakt.web.templating import tenant_name

router = APIRouter(prefix="/api/followup", tags=["followup"])


class PlanBody(BaseModel):
    tenant: str
    dataset: str
    reviewer: str
    title: str = ""
    frequency: str = "monthly"
    random_sample: int = Field(20, ge=0, le=1000)
    targeted_per_reason: int = Field(10, ge=0, le=500)


class RoundBody(BaseModel):
    period: str = Field(..., description="2026-11 (monthly plans) or 2026-Q4 (quarterly)")


class DecisionBody(BaseModel):
    decision: str = Field(..., description="justified | not_justified | needs_investigation")
    comment: str = ""


class AnnotationBody(BaseModel):
    text: str


def service(request: Request) -> FollowupService:
    return followup_for(request.app.state.runtime)


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except StatusError as exc:  # the follow-up's own, and the case workflow's when it opens a case
        raise http_error(exc) from exc


@router.get("/plans")
async def list_plans(
    request: Request, tenant: str | None = Query(None), principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    return {"plans": await _run(service(request).plans, scope_of(request, principal, tenant))}


@router.post("/plans")
async def create_plan(
    request: Request, body: PlanBody, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    require_write(principal)
    plan = await _run(
        service(request).create_plan, principal, scope_of(request, principal), PlanInput(**body.model_dump())
    )
    rt = request.app.state.runtime
    await audit.record(
        rt.pipeline,
        principal.username,
        "followup-plan",
        peer=peer(request),
        tenant=plan["tenant"],
        plan=plan["id"],
        dataset=plan["dataset"],
        reviewer=plan["reviewer"],
    )
    return dict(plan)


@router.get("/plans/{plan_id}")
async def get_plan(
    request: Request, plan_id: int, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    svc = service(request)
    scope = scope_of(request, principal)
    plan = await _run(svc.plan, plan_id, scope)
    return {**plan, "rounds": await _run(svc.rounds, scope, plan_id)}


@router.post("/plans/{plan_id}/rounds")
async def draw_round(
    request: Request, plan_id: int, body: RoundBody, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    require_write(principal)
    drawn = await _run(
        service(request).draw_round, plan_id, body.period, principal, scope_of(request, principal)
    )
    rt = request.app.state.runtime
    await audit.record(
        rt.pipeline,
        principal.username,
        "followup-draw",
        peer=peer(request),
        tenant=drawn["tenant"],
        plan=plan_id,
        round=drawn["id"],
        period=drawn["period_label"],
        items=len(drawn["items"]),
        population=drawn["population"],
    )
    return dict(drawn)


@router.get("/rounds")
async def list_rounds(
    request: Request, tenant: str | None = Query(None), principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    return {"rounds": await _run(service(request).rounds, scope_of(request, principal, tenant))}


@router.get("/rounds/{round_id}")
async def get_round(
    request: Request, round_id: int, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    return dict(await _run(service(request).round_detail, round_id, scope_of(request, principal)))


@router.post("/items/{item_id}/decision")
async def decide(
    request: Request, item_id: int, body: DecisionBody, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    require_write(principal)
    item, changes = await _run(
        service(request).decide, item_id, body.decision, body.comment, principal, scope_of(request, principal)
    )
    await soc(request).journal(changes, peer(request))
    rt = request.app.state.runtime
    await audit.record(
        rt.pipeline,
        principal.username,
        "followup-decide",
        peer=peer(request),
        tenant=item["tenant"],
        round=item["round_id"],
        item=item_id,
        seq=item["seq"],
        decision=body.decision,
        case=item["case_id"] or "",
    )
    return dict(item)


@router.post("/items/{item_id}/annotations")
async def annotate(
    request: Request, item_id: int, body: AnnotationBody, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    require_write(principal)
    note = await _run(service(request).annotate, item_id, body.text, principal, scope_of(request, principal))
    rt = request.app.state.runtime
    await audit.record(
        rt.pipeline,
        principal.username,
        "followup-annotate",
        peer=peer(request),
        tenant=note["tenant"],
        item=item_id,
        annotation=note["id"],
        text=note["text"][:500],
    )
    return dict(note)


@router.post("/rounds/{round_id}/sign-off")
async def sign_off(
    request: Request, round_id: int, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    require_write(principal)
    rt = request.app.state.runtime
    loop = asyncio.get_running_loop()

    def journal(events: Sequence[Event]) -> None:
        asyncio.run_coroutine_threadsafe(rt.pipeline.commit(events), loop).result(timeout=60)

    return dict(
        await _run(
            service(request).sign_off,
            round_id,
            principal,
            scope_of(request, principal),
            peer(request),
            journal,
        )
    )


@router.get("/rounds/{round_id}/verify")
async def verify(
    request: Request, round_id: int, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    return dict(await _run(service(request).verify, round_id, scope_of(request, principal)))


@router.get("/rounds/{round_id}/report")
async def report(
    request: Request,
    round_id: int,
    format: str = Query("pdf", pattern="^(pdf|html)$"),
    principal: Principal = Depends(current_principal),
) -> Response:
    """The round's follow-up report: what was checked, by whom, findings, open cases."""
    svc = service(request)
    scope = scope_of(request, principal)
    detail = await _run(svc.round_detail, round_id, scope)
    statuses = await asyncio.to_thread(
        _case_statuses, request, [i["case_id"] for i in detail["items"]], scope
    )
    data = await _run(followup_report.report_data, svc, round_id, scope, statuses, principal.username)
    rt = request.app.state.runtime
    await audit.record(
        rt.pipeline,
        principal.username,
        "export",
        peer=peer(request),
        report="followup",
        tenant=detail["tenant"],
        round=round_id,
        format=format,
    )
    name = f"loggkontroll-{detail['tenant']}-{detail['plan']['dataset']}-{detail['period_label']}"
    label = tenant_name(detail["tenant"])
    if format == "html":
        return HTMLResponse(followup_report.render_html(data, label))
    pdf = await asyncio.to_thread(followup_report.render_pdf, data, label)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
    )


def _case_statuses(request: Request, case_ids: list[int | None], scope: list[str]) -> dict[int, str]:
    cases = soc(request).cases
    out = {}
    for cid in {c for c in case_ids if c}:
        try:
            out[int(cid)] = cases.get(int(cid), scope).status
        except AlertError:  # a case out of scope: the report says "?"
            continue
    return out


@router.put("/lookup/{tenant}/{kind}")
async def upload_lookup(
    request: Request,
    tenant: str,
    kind: str,
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Replace the tenant's hashed lookup table of ``kind`` (staff | subject) with the CSV in
    the body; ``norrvakt followup hash-lookup`` makes it without sending plain names."""
    require_write(principal)
    try:
        csv_text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the lookup CSV is not UTF-8 (byte {exc.start})") from exc
    count = await _run(
        service(request).upload_lookup, tenant, kind, csv_text, principal, scope_of(request, principal)
    )
    rt = request.app.state.runtime
    await audit.record(
        rt.pipeline,
        principal.username,
        "followup-lookup",
        peer=peer(request),
        tenant=tenant,
        kind=kind,
        rows=count,
    )
    return {"tenant": tenant, "kind": kind, "rows": count}
