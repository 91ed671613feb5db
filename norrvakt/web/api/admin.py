"""Administration over HTTP: ingest tokens (per source and tenant), users and their accounts'
life (password reset, disable, enable, delete, sessions, SSO links), API tokens, and the
tenants' module subscriptions.

Administrators manage everything; a tenant officer manages the ingest tokens of their own
tenants. Every change is journaled in the ``_norrvakt`` tenant. A tenant id is taken only if
it is exactly one configured tenant (never the audit trail's ``_norrvakt``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from norrvakt import audit
from norrvakt.auth.passwords import new_password
from norrvakt.errors import StatusError
from norrvakt.modules import MODULES, UnknownModule, modules_for
from norrvakt.node.runtime import forget_initial_password
from norrvakt.state.accounts import (
    ROLES,
    Principal,
    check_new_password,
    check_username,
    create_ingest_token,
    create_user,
    delete_user,
    disable_user,
    enable_user,
    end_sessions,
    list_api_tokens,
    list_ingest_tokens,
    list_users,
    revoke_token,
    set_password,
    token_row,
)
from norrvakt.state.logins import link_identity, unlink_identity
from norrvakt.tenant_ids import exact_tenant, exact_tenants
from norrvakt.web.auth import current_principal, peer, require_write, tenant_scope

router = APIRouter(prefix="/api/admin", tags=["admin"])


def _http(exc: StatusError) -> HTTPException:
    return HTTPException(exc.status_code, str(exc))


def _admin(principal: Principal, what: str = "manage users") -> None:
    if principal.role != "admin":
        raise HTTPException(403, f"only administrators {what}")


# -- tokens --------------------------------------------------------------------------------------


@router.get("/tokens")
async def tokens(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    """Ingest tokens of the caller's tenants; for administrators also every API token."""
    rt = request.app.state.runtime
    scope = set(principal.scope(rt.tenants))
    answer: dict[str, Any] = {"tokens": [t for t in list_ingest_tokens(rt.state) if t["tenant"] in scope]}
    if principal.role == "admin":
        answer["api_tokens"] = list_api_tokens(rt.state)
    return answer


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
    try:
        tenant = exact_tenant(body.tenant, rt.settings.tenants, what="token tenant")
    except StatusError as exc:
        raise _http(exc) from exc
    tenant_scope(principal, rt.tenants, tenant)
    source = body.source.strip()
    if not source:
        raise HTTPException(400, "a token needs a source id (shown on every event it sends)")
    token = create_ingest_token(rt.state, tenant, source, body.name)
    await audit.record(
        rt.pipeline,
        principal.username,
        "token-create",
        peer=peer(request),
        tenant=tenant,
        source=source,
    )
    return {"token": token, "tenant": tenant, "source": source, "note": "shown once; only its hash is stored"}


@router.post("/tokens/{token_id}/revoke")
async def revoke(
    token_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """An ingest token of the caller's tenants, or an API token (an admin's: anyone's; anyone
    else's: their own)."""
    require_write(principal)
    rt = request.app.state.runtime
    scope = set(principal.scope(rt.tenants))
    found = token_row(rt.state, token_id)
    allowed = found is not None and (
        (found["kind"] == "ingest" and found["tenant"] in scope)
        or (found["kind"] == "api" and (principal.role == "admin" or found["username"] == principal.username))
    )
    if found is None or not allowed:
        raise HTTPException(404, f"no token {token_id}")
    revoke_token(rt.state, token_id)
    rt.token_cache = None  # forget cached lookups at once
    details = (
        {"tenant": found["tenant"], "source": found["source_id"]}
        if found["kind"] == "ingest"
        else {"kind": "api", "user": found["username"], "name": found["name"]}
    )
    await audit.record(
        rt.pipeline, principal.username, "token-revoke", peer=peer(request), token=token_id, **details
    )
    return {"revoked": token_id}


# -- users ---------------------------------------------------------------------------------------


@router.get("/users")
async def users(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    """Every account (without secrets): role, tenants, state, open sessions, SSO identities."""
    _admin(principal, "see the users")
    return {"users": list_users(request.app.state.runtime.state)}


def _password(chosen: str | None, must_change: bool | None, username: str) -> tuple[str, bool]:
    """The password to set — the admin's choice (checked) or a generated one — and whether it
    is temporary (unless said: a generated one is, a chosen one is not)."""
    if chosen is not None:
        check_new_password(chosen, username)
    password = chosen if chosen is not None else new_password()
    return password, chosen is None if must_change is None else must_change


class UserRequest(BaseModel):
    username: str
    role: str
    tenants: list[str] = []
    password: str | None = None  # None: generated, shown once
    must_change_password: bool | None = None  # None: yes for a generated password, no for a chosen one


@router.post("/users")
async def add_user(
    body: UserRequest, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Create a user. A generated password is temporary: it must be changed at first login."""
    rt = request.app.state.runtime
    _admin(principal)
    if body.role not in ROLES:
        raise HTTPException(400, f"role {body.role!r}: one of {', '.join(ROLES)}")
    try:
        check_username(body.username)
        tenants = exact_tenants(body.tenants, rt.settings.tenants, what="user tenant")
        if body.role == "tenant_officer" and not tenants:
            raise HTTPException(400, "a tenant officer needs at least one tenant")
        password, must_change = _password(body.password, body.must_change_password, body.username)
        create_user(rt.state, body.username, password, body.role, tenants, must_change_password=must_change)
    except StatusError as exc:
        raise _http(exc) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "user-create",
        peer=peer(request),
        user=body.username,
        role=body.role,
        tenants=",".join(tenants),
        must_change_password=must_change,
    )
    answer: dict[str, Any] = {"username": body.username, "must_change_password": must_change}
    if body.password is None:
        answer |= {"password": password, "note": "shown once"}
    return answer


class PasswordReset(BaseModel):
    password: str | None = None  # None: generated, shown once
    must_change_password: bool | None = None  # None: yes for a generated password, no for a chosen one


@router.post("/users/{username}/password")
async def reset_password(
    username: str, body: PasswordReset, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """An admin sets a new password for someone (ending their sessions). A generated one is
    shown once and must be changed at the next login."""
    rt = request.app.state.runtime
    _admin(principal)
    if username == principal.username and "authorization" not in request.headers:
        # A session alone (perhaps someone else's browser) must not replace its owner's password.
        raise HTTPException(403, "change your own password on /account (the current password is asked)")
    try:
        password, must_change = _password(body.password, body.must_change_password, username)
        set_password(rt.state, username, password, must_change=must_change)
    except StatusError as exc:
        raise _http(exc) from exc
    if username == "admin":
        forget_initial_password(rt.settings)
    await audit.record(
        rt.pipeline,
        principal.username,
        "password-reset",
        peer=peer(request),
        user=username,
        must_change_password=must_change,
    )
    answer: dict[str, Any] = {"username": username, "must_change_password": must_change}
    if body.password is None:
        answer |= {"password": password, "note": "shown once"}
    return answer


async def _account_action(
    request: Request, principal: Principal, username: str, action: str
) -> dict[str, Any]:
    rt = request.app.state.runtime
    _admin(principal)
    ended = 0
    try:
        if action == "user-disable":
            disable_user(rt.state, username, principal.username)
        elif action == "user-enable":
            enable_user(rt.state, username)
        elif action == "user-delete":
            delete_user(rt.state, username, principal.username)
        else:
            ended = end_sessions(rt.state, username)
    except StatusError as exc:
        raise _http(exc) from exc
    await audit.record(rt.pipeline, principal.username, action, peer=peer(request), user=username)
    return {"username": username, "done": action} | (
        {"sessions_ended": ended} if action == "sessions-revoke" else {}
    )


@router.post("/users/{username}/disable")
async def disable(
    username: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """No login and no API token works; every session ends. Enabling undoes it."""
    return await _account_action(request, principal, username, "user-disable")


@router.post("/users/{username}/enable")
async def enable(
    username: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    return await _account_action(request, principal, username, "user-enable")


@router.delete("/users/{username}")
async def delete(
    username: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """For good: sessions end, API tokens are revoked, SSO identities unlinked. The name stays
    reserved, since cases, follow-up decisions and the audit trail refer to it."""
    return await _account_action(request, principal, username, "user-delete")


@router.post("/users/{username}/sessions/revoke")
async def revoke_sessions(
    username: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Log the user out everywhere (their API tokens keep working; revoke those separately)."""
    return await _account_action(request, principal, username, "sessions-revoke")


class IdentityRequest(BaseModel):
    issuer: str
    subject: str


@router.post("/users/{username}/identities")
async def link(
    username: str, body: IdentityRequest, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Let an SSO identity (issuer, subject) log in as this account. The claims then never
    change the account's role or tenants."""
    rt = request.app.state.runtime
    _admin(principal)
    try:
        before = link_identity(rt.state, username, body.issuer, body.subject)
    except StatusError as exc:
        raise _http(exc) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "sso-link",
        peer=peer(request),
        user=username,
        issuer=body.issuer,
        subject=body.subject,
        previous_user=before or "",
    )
    return {"username": username, "issuer": body.issuer, "subject": body.subject, "previous_user": before}


@router.post("/users/{username}/identities/unlink")
async def unlink(
    username: str, body: IdentityRequest, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    rt = request.app.state.runtime
    _admin(principal)
    try:
        unlink_identity(rt.state, username, body.issuer, body.subject)
    except StatusError as exc:
        raise _http(exc) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "sso-unlink",
        peer=peer(request),
        user=username,
        issuer=body.issuer,
        subject=body.subject,
    )
    return {"username": username, "unlinked": {"issuer": body.issuer, "subject": body.subject}}


# -- modules -------------------------------------------------------------------------------------


@router.get("/modules")
async def modules(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    """What each of the caller's tenants subscribes to (log collection is always on)."""
    rt = request.app.state.runtime
    table = modules_for(rt).table(principal.scope(list(rt.settings.tenants)))  # municipalities only
    return {"modules": MODULES, "tenants": table}


@router.put("/modules/{tenant}")
async def set_modules(
    tenant: str, body: dict[str, bool], request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Subscribe or unsubscribe a tenant: ``{"detection": true, "soc_notification": false}``."""
    rt = request.app.state.runtime
    if principal.role != "admin":
        raise HTTPException(403, "only administrators change a tenant's modules")
    if tenant not in rt.settings.tenants:  # exactly one configured tenant; never _norrvakt
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
