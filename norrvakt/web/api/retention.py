"""Retention plan, disposal, legal holds and archive export (administrators; plan also auditors)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from norrvakt.journal.archive import ArchiveError
from norrvakt.journal.retention import RetentionError
from norrvakt.node import lifecycle
from norrvakt.state.accounts import Principal
from norrvakt.store.query import parse_time
from norrvakt.web.auth import current_principal, one_tenant, peer, tenant_scope

router = APIRouter(prefix="/api", tags=["retention"])


def _admin(principal: Principal) -> None:
    if principal.role != "admin":
        raise HTTPException(403, "only administrators decide disposals, holds and exports")


def _now() -> int:
    return time.time_ns() // 1000


@router.get("/retention/plan")
async def retention_plan(
    request: Request, tenant: str | None = Query(None), principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    rt = request.app.state.runtime
    scope = tenant_scope(principal, rt.tenants, tenant)
    return {"segments": lifecycle.plan(rt, scope, _now())}


class DisposeRequest(BaseModel):
    tenant: str
    up_to_seq: int
    reason: str


@router.post("/retention/dispose")
async def retention_dispose(
    body: DisposeRequest, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    _admin(principal)
    rt = request.app.state.runtime
    one_tenant(principal, rt.tenants, body.tenant)
    if not body.reason.strip():
        raise HTTPException(400, "a disposal decision needs a reason")
    try:
        return await lifecycle.dispose_range(
            rt, body.tenant, body.up_to_seq, principal.username, body.reason, peer(request)
        )
    except RetentionError as exc:
        raise HTTPException(409, str(exc)) from exc


class HoldRequest(BaseModel):
    tenant: str
    reason: str
    since: str | None = None
    until: str | None = None


@router.get("/retention/holds")
async def list_holds(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    rt = request.app.state.runtime
    scope = set(principal.scope(rt.tenants))
    return {"holds": [h.__dict__ for h in lifecycle.holds(rt).all() if h.tenant in scope]}


@router.post("/retention/holds")
async def place_hold(
    body: HoldRequest, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    _admin(principal)
    rt = request.app.state.runtime
    one_tenant(principal, rt.tenants, body.tenant)
    try:
        since = parse_time(body.since, _now()) if body.since else None
        until = parse_time(body.until, _now()) if body.until else None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    return await lifecycle.place_hold(
        rt, body.tenant, body.reason, principal.username, since, until, peer(request)
    )


@router.post("/retention/holds/{hold_id}/release")
async def release_hold(
    hold_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    _admin(principal)
    rt = request.app.state.runtime
    try:
        return await lifecycle.release_hold(rt, hold_id, principal.username, peer(request))
    except RetentionError as exc:
        raise HTTPException(404, str(exc)) from exc


class ExportRequest(BaseModel):
    tenant: str
    until: str
    out_dir: str


@router.post("/archive/export")
async def archive_export(
    body: ExportRequest, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    _admin(principal)
    rt = request.app.state.runtime
    one_tenant(principal, rt.tenants, body.tenant)
    try:
        until = parse_time(body.until, _now())
        return await lifecycle.archive_export(
            rt, body.tenant, until, Path(body.out_dir), principal.username, peer(request)
        )
    except (ArchiveError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc
