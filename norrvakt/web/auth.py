"""Who is calling the API: an API token (``Authorization: Bearer nva_…``), a username and
password (HTTP Basic), or a browser session. Every API handler receives a :class:`Principal`
and passes its scope down to the store and state queries — tenant scoping never depends on
the handler remembering.

HTTP Basic is a login like the console's form: the same throttle per address and lockout per
account (:mod:`norrvakt.auth.guard`), and every failure is audited (``login``, method
``basic``). A successful Basic request is not audited — a script makes thousands — but what
it does is, as for any caller. A temporary password (``must_change_password``) opens nothing
but the password change until it is changed, whether used in the form or with Basic.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request

from norrvakt import audit
from norrvakt.auth.guard import Refusal, login_guard
from norrvakt.event import SYSTEM_TENANT
from norrvakt.state.accounts import Principal, authenticate, principal_for_token
from norrvakt.state.logins import session_hash, session_user
from norrvakt.web.session import COOKIE, SessionCodec, SessionData

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CHANGE_FIRST = (
    "your password is temporary: change it first (POST /api/account/password with "
    "current_password and new_password, or the console's /account page)"
)


async def current_principal(request: Request) -> Principal:
    """The caller: an API token or HTTP Basic (scripts), or a browser session (which must send
    its CSRF token with every state-changing request). A temporary password is refused here."""
    principal = await authenticated(request)
    if principal.must_change_password:
        raise HTTPException(status_code=403, detail=CHANGE_FIRST)
    return principal


async def authenticated(request: Request) -> Principal:
    """The caller, also while their password is temporary (for the password change itself)."""
    runtime = request.app.state.runtime
    auth = request.headers.get("authorization", "")
    if not auth:
        found = session_principal(request)
        if found is not None:
            session_user_, data = found
            if request.method not in SAFE_METHODS:
                await require_csrf(request, data.csrf)
            return session_user_
    scheme, _, value = auth.partition(" ")
    principal: Principal | None = None
    if scheme.lower() == "bearer" and value:
        principal = principal_for_token(runtime.state, value.strip())
    elif scheme.lower() == "basic" and value:
        principal = await _basic(request, value)
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail="authentication required: Authorization: Bearer <API token> or HTTP Basic",
            headers={"WWW-Authenticate": 'Basic realm="norrvakt"'},
        )
    return principal


async def _basic(request: Request, value: str) -> Principal | None:
    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        user, password = "", ""
    if not user:
        return None
    attempt = await password_login(request, user, password, method="basic")
    if attempt.refusal is not None:
        refusal = attempt.refusal
        raise HTTPException(
            status_code=429, detail=refusal.reason, headers={"Retry-After": str(refusal.retry_after_s)}
        )
    return attempt.principal


@dataclass(frozen=True)
class LoginAttempt:
    principal: Principal | None  # None: refused unchecked (``refusal``) or a wrong password
    refusal: Refusal | None = None  # throttled address or locked account: the password was not tried
    locked: bool = False  # this failure locked the account


async def password_login(request: Request, username: str, password: str, *, method: str) -> LoginAttempt:
    """One attempt with a password — the console's form (``method="password"``) or HTTP Basic
    (``"basic"``) — through the shared guard: a throttled or locked attempt is refused unchecked,
    a wrong password counts towards the lock, and every failure is audited (a throttled flood
    once). A success is not audited here: the form audits its login, Basic does not."""
    runtime = request.app.state.runtime
    guard = login_guard(runtime)
    address = client_host(request)
    refusal = guard.check(username, address)
    if refusal is not None:
        if refusal.new:
            await _login_failure(request, username, refusal.reason, method)
        return LoginAttempt(None, refusal=refusal)
    # argon2 takes tens of milliseconds: off the event loop, so guessing cannot stall the server
    principal = await asyncio.to_thread(authenticate, runtime.state, username, password)
    if principal is None:
        locked = guard.failed(username, address)
        reason = "wrong username or password" + ("; account locked for 15 minutes" if locked else "")
        await _login_failure(request, username, reason, method)
        return LoginAttempt(None, locked=locked)
    guard.succeeded(username)
    return LoginAttempt(principal)


def session_principal(request: Request) -> tuple[Principal, SessionData] | None:
    """The logged-in user of a browser session, if the cookie names a live session."""
    data = session_cookie(request)
    if data is None:
        return None
    found = session_user(request.app.state.runtime.state, data.session_id)
    return None if found is None else (found, data)


def session_cookie(request: Request) -> SessionData | None:
    """The signed session cookie's content (not checked against the database)."""
    codec: SessionCodec | None = request.app.state.runtime.extras.get("session_codec")
    value = request.cookies.get(COOKIE)
    if not value or codec is None:
        return None
    return codec.decode(value)


def current_session_hash(request: Request) -> str:
    """The stored hash of the caller's session id, or "" (token or Basic)."""
    data = session_cookie(request)
    return session_hash(data.session_id) if data is not None else ""


async def _login_failure(request: Request, user: str, reason: str, method: str) -> None:
    await audit.record(
        request.app.state.runtime.pipeline,
        user or "-",
        "login",
        peer=peer(request),
        outcome="failure",
        method=method,
        reason=reason,
    )


async def require_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get("x-csrf-token", "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        sent = str(form.get("csrf_token", ""))
    if not sent or not hmac.compare_digest(sent, expected):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token; reload the page")


def client_host(request: Request) -> str:
    """The caller's address. The web server takes it from ``X-Forwarded-For`` only when the
    connection comes from ``server.trusted_proxies`` (and ignores the header otherwise)."""
    return request.client.host if request.client else "unknown"


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


def one_tenant(principal: Principal, all_tenants: list[str], value: str) -> str:
    """The tenant a request body names for something to be stored or done (a legal hold, a
    disposal, an export): exactly one tenant, byte for byte, that the caller may read.

    ``tenant_scope`` reads a comma list leniently (``?tenant=boden,`` searches Boden); a stored
    ``"boden,"`` would hold or export nothing at all, silently — so it is a 400 here."""
    if value not in all_tenants:
        raise HTTPException(
            status_code=400, detail=f"tenant {value!r}: give exactly one tenant id, e.g. 'lulea'"
        )
    tenant_scope(principal, all_tenants, value)  # 403 for a tenant that is not the caller's
    return value
