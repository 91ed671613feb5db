"""Administration over HTTP: ingest tokens (per source and tenant), users and the tenants'
module subscriptions.

Administrators manage everything; a tenant officer manages the ingest tokens of their own
tenants. Every change is journaled in the ``_norrvakt`` tenant.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from norrvakt import audit
from norrvakt.auth.passwords import new_password
from norrvakt.modules import MODULES, UnknownModule, modules_for
from norrvakt.state.accounts import (
    ROLES,
    Principal,
    create_ingest_token,
    create_user,
    list_ingest_tokens,
    revoke_token,
    user_exists,
)
from norrvakt.web.auth import current_principal, peer, require_write, tenant_scope

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/tokens")
async def tokens(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    rt = request.app.state.runtime
    scope = set(principal.scope(rt.tenants))
    return {"tokens": [t for t in list_ingest_tokens(rt.state) if t["tenant"] in scope]}


class TokenRequest(BaseModel):
    tenant: str
    source: str
    name: str = ""


@router.post("/tokens")
async def create_token(
    body: TokenRequest, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    require_write(principal)
    rt = request.app.state.runtime
    tenant_scope(principal, rt.tenants, body.tenant)
    if not body.source.strip():
        raise HTTPException(400, "a token needs a source id (shown on every event it sends)")
    token = create_ingest_token(rt.state, body.tenant, body.source.strip(), body.name)
    await audit.record(
        rt.pipeline,
        principal.username,
        "token-create",
        peer=peer(request),
        tenant=body.tenant,
        source=body.source,
    )
    return {
        "token": token,
        "tenant": body.tenant,
        "source": body.source,
        "note": "shown once; only its hash is stored",
    }


@router.post("/tokens/{token_id}/revoke")
async def revoke(
    token_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    require_write(principal)
    rt = request.app.state.runtime
    scope = set(principal.scope(rt.tenants))
    found = next(
        (t for t in list_ingest_tokens(rt.state) if t["id"] == token_id and t["tenant"] in scope), None
    )
    if found is None:
        raise HTTPException(404, f"no token {token_id}")
    revoke_token(rt.state, token_id)
    rt.token_cache = None  # forget cached lookups at once
    await audit.record(
        rt.pipeline,
        principal.username,
        "token-revoke",
        peer=peer(request),
        token=token_id,
        tenant=found["tenant"],
        source=found["source_id"],
    )
    return {"revoked": token_id}


class UserRequest(BaseModel):
    username: str
    role: str
    tenants: list[str] = []


@router.post("/users")
async def add_user(
    body: UserRequest, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    rt = request.app.state.runtime
    if principal.role != "admin":
        raise HTTPException(403, "only administrators manage users")
    if body.role not in ROLES:
        raise HTTPException(400, f"role {body.role!r}: one of {', '.join(ROLES)}")
    unknown = [t for t in body.tenants if t not in rt.tenants]
    if unknown or (body.role == "tenant_officer" and not body.tenants):
        raise HTTPException(400, f"a tenant officer needs known tenants (unknown: {unknown})")
    if user_exists(rt.state, body.username):
        raise HTTPException(409, f"user {body.username!r} exists already")
    password = new_password()
    create_user(rt.state, body.username, password, body.role, body.tenants)
    await audit.record(
        rt.pipeline,
        principal.username,
        "user-create",
        peer=peer(request),
        user=body.username,
        role=body.role,
        tenants=",".join(body.tenants),
    )
    return {"username": body.username, "password": password, "note": "shown once"}


@router.get("/modules")
async def modules(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    """What each of the caller's tenants subscribes to (log collection is always on)."""
    rt = request.app.state.runtime
    table = modules_for(rt).table(principal.scope(rt.tenants))
    return {"modules": MODULES, "tenants": table}


@router.put("/modules/{tenant}")
async def set_modules(
    tenant: str, body: dict[str, bool], request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Subscribe or unsubscribe a tenant: ``{"detection": true, "soc_notification": false}``."""
    rt = request.app.state.runtime
    if principal.role != "admin":
        raise HTTPException(403, "only administrators change a tenant's modules")
    if tenant not in rt.tenants:
        raise HTTPException(404, f"no tenant {tenant!r}")
    try:
        now = modules_for(rt).set(tenant, body, principal.username)
    except UnknownModule as exc:
        raise HTTPException(400, str(exc)) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "tenant-modules",
        peer=peer(request),
        tenant=tenant,
        **{m: ("on" if on else "off") for m, on in body.items()},
    )
    return {"tenant": tenant, "modules": now}
