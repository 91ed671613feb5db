"""Single sign-on routes: /login/oidc sends the browser to the provider, the callback logs in."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from norrvakt import audit
from norrvakt.auth.oidc import OidcClient, OidcError
from norrvakt.state.logins import upsert_sso_user
from norrvakt.web.auth import peer
from norrvakt.web.session import sign_blob, unsign_blob
from norrvakt.web.templating import render
from norrvakt.web.views.pages import _safe_next, start_session

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
        secure=request.url.scheme == "https",
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
        return render(
            request, "login.html", None, status_code=401, next="/", username="", error=str(exc), sso=True
        )
    unknown = [t for t in identity.tenants if t not in rt.tenants]
    if unknown:
        await audit.record(
            rt.pipeline,
            identity.username,
            "login",
            peer=peer(request),
            outcome="failure",
            method="oidc",
            reason=f"unknown tenant(s) {unknown}",
        )
        return render(
            request,
            "login.html",
            None,
            status_code=403,
            next="/",
            username="",
            sso=True,
            error=f"unknown municipality {', '.join(unknown)}",
        )
    password_hash = upsert_sso_user(rt.state, identity.username, identity.role, identity.tenants)
    await audit.record(
        rt.pipeline,
        identity.username,
        "login",
        peer=peer(request),
        method="oidc",
        role=identity.role,
        tenants=",".join(identity.tenants),
    )
    response = start_session(
        request, identity.username, password_hash, remembered.get("next", "/") if remembered else "/"
    )
    response.delete_cookie(STATE_COOKIE, path="/login/oidc")
    return response
