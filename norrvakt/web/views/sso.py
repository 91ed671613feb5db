"""Single sign-on routes: /login/oidc sends the browser to the provider, the callback logs in.

The callback logs the person into the account of their identity (issuer, subject) — made at
their first login, or the local account an admin linked the identity to — never into a local
account that merely has the name they claim (see :mod:`norrvakt.state.logins`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from norrvakt import audit
from norrvakt.auth.oidc import OidcClient, OidcError, OidcIdentity
from norrvakt.state.accounts import AccountError
from norrvakt.state.logins import sso_login
from norrvakt.tenant_ids import TenantIdError, exact_tenants
from norrvakt.web.auth import peer
from norrvakt.web.session import secure_cookies, sign_blob, unsign_blob
from norrvakt.web.views.pages import _safe_next, login_page, start_session

router = APIRouter(include_in_schema=False)
STATE_COOKIE = "nv_oidc"


def _client(request: Request) -> OidcClient:
    client: OidcClient | None = request.app.state.runtime.extras.get("oidc")
    if client is None:
        raise HTTPException(404, "single sign-on is not configured")
    return client


@router.get("/login/oidc")
async def oidc_start(request: Request, next: str = "/") -> Response:
    client = _client(request)
    try:
        url, remembered = await client.start()
    except (OidcError, OSError) as exc:
        raise HTTPException(502, f"the identity provider cannot be reached: {exc}") from exc
    codec = request.app.state.runtime.extras["session_codec"]
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        STATE_COOKIE,
        sign_blob(codec, {**remembered, "next": _safe_next(next)}),
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/login/oidc",
    )
    return response


@router.get("/login/oidc/callback")
async def oidc_callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
    client = _client(request)
    rt = request.app.state.runtime
    remembered = unsign_blob(rt.extras["session_codec"], request.cookies.get(STATE_COOKIE, ""))
    try:
        if error:
            raise OidcError(f"the provider refused: {error}")
        if remembered is None or not code:
            raise OidcError("no login in progress (or it took more than 10 minutes)")
        identity = await client.finish(code, state, remembered)
    except OidcError as exc:
        await audit.record(
            rt.pipeline, "-", "login", peer=peer(request), outcome="failure", method="oidc", reason=str(exc)
        )
        return login_page(request, next_url="/", error=str(exc), status_code=401)
    try:
        tenants = exact_tenants(
            identity.tenants, rt.settings.tenants, what=f"{client.config.tenants_claim} claim"
        )
        found = sso_login(
            rt.state, identity.issuer, identity.subject, identity.username, identity.role, tenants
        )
    except (TenantIdError, AccountError) as exc:
        await _refused(request, identity, str(exc))
        return login_page(request, next_url="/", error=str(exc), status_code=403)
    principal = found.principal
    await audit.record(
        rt.pipeline,
        principal.username,
        "login",
        peer=peer(request),
        method="oidc",
        issuer=identity.issuer,
        subject=identity.subject,
        claimed_name=identity.username,
        role=principal.role,
        tenants=",".join(sorted(principal.tenants)) if principal.tenants is not None else "*",
        account="new" if found.created else ("linked" if found.linked else "sso"),
    )
    response = start_session(
        request, principal, remembered.get("next", "/") if remembered else "/", method="oidc"
    )
    response.delete_cookie(STATE_COOKIE, path="/login/oidc")
    return response


async def _refused(request: Request, identity: OidcIdentity, reason: str) -> None:
    await audit.record(
        request.app.state.runtime.pipeline,
        identity.username,
        "login",
        peer=peer(request),
        outcome="failure",
        method="oidc",
        issuer=identity.issuer,
        subject=identity.subject,
        reason=reason,
    )
