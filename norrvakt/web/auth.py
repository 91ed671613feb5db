"""Who is calling the API: an API token (``Authorization: Bearer nva_…``) or a username and
password (HTTP Basic). Every API handler receives a :class:`Principal` and passes its scope
down to the store and state queries — tenant scoping never depends on the handler remembering."""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import HTTPException, Request

from norrvakt.event import SYSTEM_TENANT
from norrvakt.state.accounts import Principal, authenticate, principal_for_token
from norrvakt.state.logins import user_login
from norrvakt.web.session import COOKIE, SessionCodec, SessionData, fingerprint

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def current_principal(request: Request) -> Principal:
    """The caller: an API token or HTTP Basic (scripts), or a browser session (which must send
    its CSRF token with every state-changing request)."""
    runtime = request.app.state.runtime
    auth = request.headers.get("authorization", "")
    if not auth:
        found = session_principal(request)
        if found is not None:
            session_user, data = found
            if request.method not in SAFE_METHODS:
                await require_csrf(request, data.csrf)
            return session_user
    scheme, _, value = auth.partition(" ")
    principal: Principal | None = None
    if scheme.lower() == "bearer" and value:
        principal = principal_for_token(runtime.state, value.strip())
    elif scheme.lower() == "basic" and value:
        try:
            user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if user:
            principal = authenticate(runtime.state, user, password)
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail="authentication required: Authorization: Bearer <API token> or HTTP Basic",
            headers={"WWW-Authenticate": 'Basic realm="norrvakt"'},
        )
    return principal


def session_principal(request: Request) -> tuple[Principal, SessionData] | None:
    """The logged-in user of a browser session, if the cookie is valid and still theirs."""
    runtime = request.app.state.runtime
    value = request.cookies.get(COOKIE)
    codec: SessionCodec | None = runtime.extras.get("session_codec")
    if not value or codec is None:
        return None
    data = codec.decode(value)
    if data is None:
        return None
    found = user_login(runtime.state, data.username)
    if found is None or fingerprint(found[1]) != data.fingerprint:
        return None
    return found[0], data


async def require_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get("x-csrf-token", "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        sent = str(form.get("csrf_token", ""))
    if not sent or not hmac.compare_digest(sent, expected):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token; reload the page")


def peer(request: Request) -> str:
    """The caller's address and port, as the audit trail records it."""
    return f"{request.client.host}:{request.client.port}" if request.client else ""


def require_write(principal: Principal) -> None:
    """Auditors read; they never change anything."""
    if principal.role == "auditor":
        raise HTTPException(status_code=403, detail="auditors have read-only access")


def tenant_scope(principal: Principal, all_tenants: list[str], requested: str | None) -> list[str]:
    """Tenants this request may read: the caller's scope, narrowed by ``?tenant=`` (comma list).

    The system tenant (Norrvakt's own audit trail) is read only when asked for by name: a
    search of the municipalities' logs should not also find the audit records of searches."""
    scope = principal.scope(all_tenants)
    if not requested:
        return [t for t in scope if t != SYSTEM_TENANT]
    wanted = [t.strip() for t in requested.split(",") if t.strip()]
    denied = [t for t in wanted if t not in scope]
    if denied:
        # Same answer for "no such tenant" and "not yours": do not reveal which tenants exist.
        raise HTTPException(status_code=403, detail=f"no access to tenant(s): {', '.join(denied)}")
    return wanted
