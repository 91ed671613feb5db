"""One's own account over HTTP: who am I, change my password, my sessions, my API tokens.

These routes concern only the caller's own account, so they hold no tenant data. The
password change (and ``GET /api/account``) also works while the password is temporary —
everything else answers 403 until it has been changed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from norrvakt import audit
from norrvakt.auth.guard import login_guard
from norrvakt.errors import StatusError
from norrvakt.node.runtime import forget_initial_password
from norrvakt.state.accounts import (
    Principal,
    WrongPassword,
    change_own_password,
    create_api_token,
    end_sessions,
    list_api_tokens,
    revoke_token,
    token_row,
)
from norrvakt.state.logins import list_sessions
from norrvakt.web.auth import authenticated, client_host, current_principal, current_session_hash, peer

router = APIRouter(prefix="/api/account", tags=["account"])


@router.get("")
async def me(request: Request, principal: Principal = Depends(authenticated)) -> dict[str, Any]:
    rt = request.app.state.runtime
    return {
        "username": principal.username,
        "role": principal.role,
        "tenants": sorted(principal.tenants) if principal.tenants is not None else None,
        "scope": [t for t in principal.scope(rt.tenants)],
        "must_change_password": principal.must_change_password,
    }


class PasswordChange(BaseModel):
    current_password: str
    new_password: str


async def change_password(request: Request, principal: Principal, body: PasswordChange) -> None:
    """The owner's change (API and console): other sessions end, this one goes on. A wrong
    current password counts as a failed login: a stolen session cannot be used to guess it."""
    rt = request.app.state.runtime
    guard = login_guard(rt)
    refusal = guard.check(principal.username, client_host(request))
    if refusal is not None:
        raise HTTPException(429, refusal.reason, headers={"Retry-After": str(refusal.retry_after_s)})
    try:
        await asyncio.to_thread(
            change_own_password,
            rt.state,
            principal.username,
            body.current_password,
            body.new_password,
            keep_session=current_session_hash(request),
        )
    except StatusError as exc:
        if isinstance(exc, WrongPassword):
            guard.failed(principal.username, client_host(request))
        await audit.record(
            rt.pipeline,
            principal.username,
            "password-change",
            peer=peer(request),
            outcome="failure",
            reason=str(exc),
        )
        raise HTTPException(exc.status_code, str(exc)) from exc
    guard.succeeded(principal.username)
    if principal.username == "admin":
        forget_initial_password(rt.settings)
    await audit.record(rt.pipeline, principal.username, "password-change", peer=peer(request))


@router.post("/password")
async def password(
    body: PasswordChange, request: Request, principal: Principal = Depends(authenticated)
) -> dict[str, Any]:
    """Change one's own password (the current one is asked). Works while it is temporary."""
    await change_password(request, principal, body)
    return {"username": principal.username, "changed": True, "note": "your other sessions were ended"}


@router.get("/sessions")
async def sessions(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    rt = request.app.state.runtime
    if principal.user_id is None:
        return {"sessions": []}
    return {"sessions": list_sessions(rt.state, principal.user_id, current_session_hash(request))}


@router.post("/sessions/revoke")
async def revoke_sessions(
    request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Log out everywhere else (the session making this request stays)."""
    rt = request.app.state.runtime
    ended = end_sessions(rt.state, principal.username, keep=current_session_hash(request))
    await audit.record(
        rt.pipeline, principal.username, "sessions-revoke", peer=peer(request), user=principal.username
    )
    return {"sessions_ended": ended}


@router.get("/tokens")
async def tokens(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    return {"tokens": list_api_tokens(request.app.state.runtime.state, principal.username)}


class ApiTokenRequest(BaseModel):
    name: str


@router.post("/tokens")
async def create_token(
    body: ApiTokenRequest, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """An API token acting as oneself (same role and tenants), for scripts."""
    rt = request.app.state.runtime
    name = body.name.strip()
    if not name or len(name) > 128:
        raise HTTPException(400, "a token needs a name (1–128 characters) saying what uses it")
    try:
        token = create_api_token(rt.state, principal.username, name)
    except StatusError as exc:
        raise HTTPException(exc.status_code, str(exc)) from exc
    await audit.record(
        rt.pipeline, principal.username, "token-create", peer=peer(request), kind="api", name=name
    )
    return {"token": token, "name": name, "note": "shown once; only its hash is stored"}


@router.post("/tokens/{token_id}/revoke")
async def revoke_token_route(
    token_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    rt = request.app.state.runtime
    found = token_row(rt.state, token_id)
    if found is None or found["kind"] != "api" or found["username"] != principal.username:
        raise HTTPException(404, f"no token {token_id} of yours")
    revoke_token(rt.state, token_id)
    await audit.record(
        rt.pipeline,
        principal.username,
        "token-revoke",
        peer=peer(request),
        token=token_id,
        kind="api",
        name=found["name"],
    )
    return {"revoked": token_id}
