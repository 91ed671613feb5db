"""/api/cases — the SOC's work: acknowledge, investigate, resolve; assign, comment, attach
search results; merge, split, move alerts; NIS2 reporting times; MTTA/MTTR.

Every change is written to the case's append-only history and journaled (audit events of
the system tenant) before the answer goes out. Unknown ids and other tenants' ids both get
404; a status change the workflow does not allow gets 409; bad values get 400 — and change
nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from norrvakt.alerts import nis2, sla
from norrvakt.alerts.errors import AlertError
from norrvakt.alerts.model import Change
from norrvakt.event import now_us
from norrvakt.search import run_search
from norrvakt.state.accounts import Principal
from norrvakt.web.api.alerts import http_error, parse_us, scope_of, soc
from norrvakt.web.auth import current_principal, peer, require_write

router = APIRouter(prefix="/api/cases", tags=["cases"])

R = TypeVar("R")


async def _change(
    request: Request,
    principal: Principal,
    fn: Callable[..., tuple[R, list[Change]]],
    *args: Any,
    **kwargs: Any,
) -> R:
    """Run a case change in a worker thread, journal its history, map workflow errors to 4xx."""
    require_write(principal)
    s = soc(request)
    try:
        result, changes = await asyncio.to_thread(fn, *args, **kwargs)
    except AlertError as exc:
        raise http_error(exc) from exc
    await s.journal(changes, peer(request))
    return result


def _all_scope(request: Request, principal: Principal) -> list[str]:
    return principal.scope(request.app.state.runtime.tenants)


@router.get("")
async def list_cases(
    request: Request,
    tenant: str | None = Query(None, description="Tenant id(s), comma-separated"),
    status: str | None = Query(None, description="Comma list of statuses"),
    severity: str | None = Query(None, description="Comma list of severities"),
    assignee: str | None = Query(None),
    significant: bool | None = Query(None, description="NIS2: only (not) significant incidents"),
    overdue: bool = Query(False, description="NIS2: only cases with an overdue report"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    scope = scope_of(request, principal, tenant)
    cases, total = await asyncio.to_thread(
        soc(request).cases.listing,
        scope,
        status=[x for x in (status or "").split(",") if x],
        severity=[x for x in (severity or "").split(",") if x],
        assignee=assignee,
        significant=significant,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )
    return {"cases": cases, "total": total, "limit": limit, "offset": offset}


class CaseIn(BaseModel):
    tenant: str
    title: str = Field(min_length=1, max_length=512)
    severity: str = Field("", description="Default: the highest level of its alerts")
    alert_ids: list[int] = Field(default_factory=list, description="Alerts to move into the new case")


@router.post("", status_code=201)
async def create_case(
    body: CaseIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    s = soc(request)
    case = await _change(
        request,
        principal,
        s.cases.create,
        _all_scope(request, principal),
        body.tenant,
        body.title,
        principal.username,
        severity=body.severity,
        alert_ids=body.alert_ids,
    )
    return case.as_dict()


@router.get("/sla")
async def sla_report(
    request: Request,
    tenant: str | None = Query(None),
    since: str = Query("30d", description="Cases opened since: 7d, 30d, ISO 8601 …"),
    until: str | None = Query(None),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Time to acknowledge (MTTA) and to resolve (MTTR) per tenant and severity."""
    scope = scope_of(request, principal, tenant)
    since_us = parse_us(since, "since") or 0
    until_us = parse_us(until, "until") or now_us()
    rows = await asyncio.to_thread(sla.report, soc(request).engine, scope, since_us, until_us)
    for r in rows:
        r["mtta"], r["mttr"] = sla.human(r["mtta_s"]), sla.human(r["mttr_s"])
    return {"since": since_us, "until": until_us, "sla": rows}


@router.get("/{case_id}")
async def get_case(
    case_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """The case with its alerts, comments, attachments and NIS2 times (due, overdue)."""
    try:
        return await asyncio.to_thread(soc(request).cases.detail, case_id, _all_scope(request, principal))
    except AlertError as exc:
        raise http_error(exc) from exc


@router.get("/{case_id}/history")
async def case_history(
    case_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Who changed what when (append-only)."""
    try:
        changes = await asyncio.to_thread(soc(request).cases.history, case_id, _all_scope(request, principal))
    except AlertError as exc:
        raise http_error(exc) from exc
    return {"case_id": case_id, "history": [c.as_dict() for c in changes]}


class CaseUpdate(BaseModel):
    title: str | None = None
    severity: str | None = None
    assignee: str | None = Field(None, description="User name; empty string = nobody")


@router.patch("/{case_id}")
async def update_case(
    case_id: int, body: CaseUpdate, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"title": body.title, "severity": body.severity}
    if "assignee" in body.model_fields_set:
        kwargs["assignee"] = body.assignee
    case = await _change(
        request,
        principal,
        soc(request).cases.update,
        case_id,
        principal.username,
        _all_scope(request, principal),
        **kwargs,
    )
    return case.as_dict()


class StatusIn(BaseModel):
    status: str = Field(description="acknowledged, investigating, resolved or false_positive")
    note: str = Field("", description="Kept as a comment")


@router.post("/{case_id}/status")
async def set_status(
    case_id: int, body: StatusIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    case = await _change(
        request,
        principal,
        soc(request).cases.set_status,
        case_id,
        body.status,
        principal.username,
        _all_scope(request, principal),
        body.note,
    )
    return case.as_dict()


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)


@router.post("/{case_id}/comments", status_code=201)
async def add_comment(
    case_id: int, body: CommentIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    return await _change(
        request,
        principal,
        soc(request).cases.comment,
        case_id,
        principal.username,
        _all_scope(request, principal),
        body.text,
    )


class AttachmentIn(BaseModel):
    query: str = Field(description="Search language, e.g. `event.code:4625 source.ip:185.220.101.7`")
    title: str = ""
    since: str | None = None
    until: str | None = None
    limit: int = Field(100, ge=1, le=1000)


@router.post("/{case_id}/attachments", status_code=201)
async def attach_search(
    case_id: int, body: AttachmentIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Run a search in the case's tenant and keep its result with the case."""
    require_write(principal)
    rt = request.app.state.runtime
    s = soc(request)
    scope = _all_scope(request, principal)
    try:
        case = await asyncio.to_thread(s.cases.get, case_id, scope)
        result = await asyncio.to_thread(
            run_search,
            rt.store,
            [case.tenant],
            body.query,
            since=body.since,
            until=body.until,
            limit=body.limit,
        )
    except AlertError as exc:
        raise http_error(exc) from exc
    except ValueError as exc:  # the query's error names the position
        raise HTTPException(400, str(exc)) from exc
    params = {"tenants": [case.tenant], "since": body.since, "until": body.until, "limit": body.limit}
    return await _change(
        request,
        principal,
        s.cases.attach,
        case_id,
        principal.username,
        scope,
        title=body.title,
        query=body.query,
        params=params,
        total=int(result.get("total", 0)),
        rows=list(result.get("rows", [])),
    )


class MergeIn(BaseModel):
    case_ids: list[int] = Field(min_length=1, description="Cases to merge into this one")


@router.post("/{case_id}/merge")
async def merge(
    case_id: int, body: MergeIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    case = await _change(
        request,
        principal,
        soc(request).cases.merge,
        case_id,
        body.case_ids,
        principal.username,
        _all_scope(request, principal),
    )
    return case.as_dict()


class SplitIn(BaseModel):
    alert_ids: list[int] = Field(min_length=1)
    title: str = ""


@router.post("/{case_id}/split", status_code=201)
async def split(
    case_id: int, body: SplitIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """A new case for some of this case's alerts."""
    case = await _change(
        request,
        principal,
        soc(request).cases.split,
        case_id,
        body.alert_ids,
        principal.username,
        _all_scope(request, principal),
        body.title,
    )
    return case.as_dict()


class MoveIn(BaseModel):
    alert_id: int


@router.post("/{case_id}/alerts")
async def move_alert(
    case_id: int, body: MoveIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Move an alert (from whichever case holds it) into this case."""
    case = await _change(
        request,
        principal,
        soc(request).cases.move_alert,
        body.alert_id,
        case_id,
        principal.username,
        _all_scope(request, principal),
    )
    return case.as_dict()


class Nis2In(BaseModel):
    """Only the fields sent are changed; times as ISO 8601, ``now`` or epoch seconds; null clears."""

    significant: bool | None = None
    detected_at: str | None = None
    aware_at: str | None = None
    early_warning_sent_at: str | None = None
    notification_sent_at: str | None = None
    final_report_at: str | None = None


@router.put("/{case_id}/nis2")
async def set_nis2(
    case_id: int, body: Nis2In, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        fields[name] = value if name == "significant" else parse_us(value, name)
    s = soc(request)
    await _change(
        request,
        principal,
        s.cases.set_nis2,
        case_id,
        principal.username,
        _all_scope(request, principal),
        **fields,
    )
    case = await asyncio.to_thread(s.cases.get, case_id, _all_scope(request, principal))
    return {"case_id": case_id, **nis2.deadlines(case, now_us())}
