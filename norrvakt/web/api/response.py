"""/api/response — response actions on a case: ask, approve (a second person), reject, retry,
undo; the tenant's blocklist; the feed token its firewalls poll with; the AD service-account
password (admins).

Another tenant's case, alert or action answers 404 as one that does not exist; a tenant that
does not subscribe to the ``response`` module gets 403; auditors read only. Every step is on
the case's history and journaled before the answer (norrvakt/respond/service.py).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from norrvakt import audit
from norrvakt.errors import StatusError
from norrvakt.event import now_us
from norrvakt.modules import modules_for
from norrvakt.node.address import public_url
from norrvakt.respond.base import UNDO
from norrvakt.respond.credentials import save_ad_password
from norrvakt.respond.service import MODULE, ResponseService
from norrvakt.state import response_actions as store
from norrvakt.state.accounts import Principal
from norrvakt.web.api.alerts import http_error, scope_of, soc
from norrvakt.web.auth import current_principal, peer, require_write

router = APIRouter(prefix="/api/response", tags=["response"])


def service(request: Request) -> ResponseService:
    rt = request.app.state.runtime
    s = soc(request)
    where = peer(request)

    async def journal(changes: Any) -> None:
        await s.journal(list(changes), where)

    return ResponseService(
        rt.state, rt.settings, s.cases, modules_for(rt), journal, public_url=public_url(rt.settings)
    )


def _scope(request: Request, principal: Principal) -> list[str]:
    return principal.scope(request.app.state.runtime.tenants)


def _own_tenant(request: Request, principal: Principal, tenant: str) -> None:
    if tenant not in _scope(request, principal) or tenant not in request.app.state.runtime.settings.tenants:
        raise HTTPException(404, f"no tenant {tenant}")


class ActionIn(BaseModel):
    action: str = Field(description=", ".join(UNDO))
    target: str = Field(description="sAMAccountName/UPN, Entra user id/UPN, IP/CIDR, or the service desk")
    case_id: int | None = None
    alert_id: int | None = Field(None, description="An alert in a case (its case is the action's)")
    reason: str = Field("", max_length=4000)
    dry_run: bool = False
    hours: float | None = Field(None, description="block.address: how long (default response.block_hours)")


@router.post("/actions", status_code=201)
async def request_action(
    body: ActionIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Ask for an action: run at once (or as a dry run), or left for a second person's approval."""
    require_write(principal)
    params = {"hours": body.hours} if body.hours is not None else {}
    try:
        return await service(request).request(
            principal,
            _scope(request, principal),
            action=body.action,
            target=body.target,
            case_id=body.case_id,
            alert_id=body.alert_id,
            params=params,
            reason=body.reason,
            dry_run=body.dry_run,
        )
    except Exception as exc:
        raise _mapped(exc) from exc


@router.get("/actions")
async def list_actions(
    request: Request,
    tenant: str | None = Query(None),
    case_id: int | None = Query(None),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    scope = scope_of(request, principal, tenant)
    rows = await asyncio.to_thread(service(request).listing, scope, case_id)
    return {"actions": rows}


@router.get("/actions/{action_id}")
async def get_action(
    action_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    svc = service(request)
    try:
        svc._row(action_id, _scope(request, principal))
    except Exception as exc:
        raise _mapped(exc) from exc
    return svc.view(action_id)


class NoteIn(BaseModel):
    note: str = Field("", max_length=4000)


async def _step(request: Request, principal: Principal, step: str, action_id: int, note: str = "") -> Any:
    require_write(principal)
    svc = service(request)
    scope = _scope(request, principal)
    try:
        if step == "reject":
            return await svc.reject(principal, scope, action_id, note)
        return await getattr(svc, step)(principal, scope, action_id)
    except Exception as exc:
        raise _mapped(exc) from exc


@router.post("/actions/{action_id}/approve")
async def approve(action_id: int, request: Request, principal: Principal = Depends(current_principal)) -> Any:
    """A second person approves: the action runs now, and the answer is the target's."""
    return await _step(request, principal, "approve", action_id)


@router.post("/actions/{action_id}/reject")
async def reject(
    action_id: int, body: NoteIn, request: Request, principal: Principal = Depends(current_principal)
) -> Any:
    return await _step(request, principal, "reject", action_id, body.note)


@router.post("/actions/{action_id}/retry")
async def retry(action_id: int, request: Request, principal: Principal = Depends(current_principal)) -> Any:
    """Run a failed action again (its approval stands)."""
    return await _step(request, principal, "retry", action_id)


@router.post("/actions/{action_id}/undo")
async def undo(action_id: int, request: Request, principal: Principal = Depends(current_principal)) -> Any:
    """Take back a done action where the target allows (re-enable, unblock)."""
    return await _step(request, principal, "undo", action_id)


@router.get("/blocklist")
async def blocklist(
    request: Request, tenant: str | None = Query(None), principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """The blocklist entries of the caller's tenants (active, expired and removed)."""
    scope = scope_of(request, principal, tenant)
    rows = await asyncio.to_thread(store.blocks, request.app.state.runtime.state, scope)
    now = now_us()
    for r in rows:
        r["active"] = r["removed_at"] is None and r["expires_at"] > now
    return {"entries": rows}


@router.post("/feed-token/{tenant}", status_code=201)
async def new_feed_token(
    tenant: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """A new token for the tenant's blocklist feed (the old one stops working); shown once."""
    require_write(principal)
    _own_tenant(request, principal, tenant)
    rt = request.app.state.runtime
    if not modules_for(rt).enabled(tenant, MODULE):
        raise HTTPException(403, f"{tenant} does not subscribe to the response module")
    token = secrets.token_urlsafe(32)
    await asyncio.to_thread(store.set_feed_token, rt.state, tenant, token, principal.username)
    await _audit(request, principal, tenant, "response-feed-token", "new token")
    base = public_url(rt.settings).rstrip("/")
    return {
        "tenant": tenant,
        "token": token,
        "urls": {
            fmt: f"{base}/feeds/blocklist/{tenant}?format={fmt}" for fmt in ("text", "json", "paloalto")
        },
        "note": "send the token as ?token=, as a Bearer token or as the password of HTTP Basic",
    }


class AdCredentialIn(BaseModel):
    password: str = Field(min_length=1, max_length=512)


@router.put("/ad-credential/{tenant}")
async def set_ad_credential(
    tenant: str, body: AdCredentialIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Store the tenant's AD service-account password, encrypted (admins only; never answered)."""
    if principal.role != "admin":
        raise HTTPException(403, "only admins set credentials of other systems")
    _own_tenant(request, principal, tenant)
    rt = request.app.state.runtime
    await asyncio.to_thread(
        save_ad_password, rt.state, rt.settings.data_path, tenant, body.password, principal.username
    )
    await _audit(request, principal, tenant, "response-ad-credential", "password stored")
    return {"tenant": tenant, "stored": True}


async def _audit(request: Request, principal: Principal, tenant: str, action: str, what: str) -> None:
    await audit.record(
        request.app.state.runtime.pipeline,
        principal.username,
        action,
        peer=peer(request),
        tenant=tenant,
        what=what,
    )


def _mapped(exc: Exception) -> Exception:
    if isinstance(exc, HTTPException):
        return exc
    if isinstance(exc, StatusError):
        return http_error(exc)
    return exc
