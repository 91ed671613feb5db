"""Console pages: log in and out, language, search and event detail.

Pages are server-rendered (Jinja2) and enhanced with htmx where it is installed; every page
also works as a plain form post or link. A page that needs a user redirects to /login, and a
user whose password is temporary to /account until it is changed.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from norrvakt import audit
from norrvakt.search import run_search, store_call
from norrvakt.state.accounts import Principal
from norrvakt.state.logins import end_session
from norrvakt.state.logins import start_session as open_session
from norrvakt.store.analytics import facets
from norrvakt.store.query import event_row, parse_time
from norrvakt.web.api.search import searching
from norrvakt.web.auth import (
    password_login,
    peer,
    require_csrf,
    session_cookie,
    session_principal,
    tenant_scope,
)
from norrvakt.web.i18n import LANGUAGES, translate
from norrvakt.web.session import COOKIE, LOGIN_COOKIE, LOGIN_FORM_S, MAX_AGE_S, new_session, secure_cookies
from norrvakt.web.templating import language, render

router = APIRouter(include_in_schema=False)

FACET_FIELDS = ["event.dataset", "event.code", "host.name", "user.name", "source.ip", "event.outcome"]


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class PasswordChangeRequired(LoginRequired):
    """Logged in with a temporary password: the account page first."""


def page_user(request: Request) -> Principal:
    found = session_principal(request)
    here = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    if found is None:
        raise LoginRequired(here)
    if found[0].must_change_password:
        raise PasswordChangeRequired(here)
    return found[0]


def _safe_next(value: str) -> str:
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


def login_page(
    request: Request, *, next_url: str, error: str | None = None, username: str = "", status_code: int = 200
) -> Response:
    """The login form with a fresh CSRF token: a nonce in a cookie, its HMAC in the form."""
    rt = request.app.state.runtime
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        next=next_url,
        error=error,
        username=username,
        login_csrf=rt.extras["session_codec"].login_token(nonce),
        sso=rt.extras.get("oidc") is not None,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_FORM_S,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/login",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/") -> Response:
    return login_page(request, next_url=_safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    rt = request.app.state.runtime
    form = await request.form()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    nxt = _safe_next(str(form.get("next", "/")))
    lang = language(request)
    if not rt.extras["session_codec"].login_token_ok(
        request.cookies.get(LOGIN_COOKIE, ""), str(form.get("csrf_token", ""))
    ):
        # Not audited as a failed login: no password was tried (another site's form, or a stale page).
        return login_page(
            request, next_url=nxt, username=username, error=translate(lang, "login.stale"), status_code=403
        )
    attempt = await password_login(request, username, password, method="password")
    if attempt.principal is None:
        if attempt.refusal is not None:
            error = attempt.refusal.reason
        else:
            error = translate(lang, "login.failed") + (
                " (account locked for 15 minutes)" if attempt.locked else ""
            )
        return login_page(request, next_url=nxt, username=username, error=error, status_code=401)
    principal = attempt.principal
    await audit.record(rt.pipeline, username, "login", peer=peer(request), method="password")
    if principal.must_change_password:
        nxt = "/account?next=" + quote(nxt)
    return start_session(request, principal, nxt, method="password")


def start_session(request: Request, principal: Principal, next_url: str, *, method: str) -> Response:
    """A new server-side session (never one the browser brought along) and its cookie."""
    rt = request.app.state.runtime
    if principal.user_id is None:
        raise HTTPException(500, "a session needs a stored user")
    previous = session_cookie(request)
    if previous is not None:  # logging in again (maybe as someone else) ends the old session
        end_session(rt.state, previous.session_id)
    session_id = open_session(
        rt.state,
        principal.user_id,
        method=method,
        peer=peer(request),
        user_agent=request.headers.get("user-agent", ""),
        max_age_s=MAX_AGE_S,
    )
    data = new_session(session_id, language(request))
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        COOKIE,
        rt.extras["session_codec"].encode(data),
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Ends the session on the server: the cookie is worthless afterwards, also if copied."""
    rt = request.app.state.runtime
    found = session_principal(request)
    if found is not None:
        await require_csrf(request, found[1].csrf)
        end_session(rt.state, found[1].session_id)
        await audit.record(rt.pipeline, found[0].username, "logout", peer=peer(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/lang/{code}")
async def set_language(code: str, request: Request) -> Response:
    if code not in LANGUAGES:
        raise HTTPException(404, f"no language {code!r}")
    back = request.headers.get("referer", "/")
    response = RedirectResponse(back if back.startswith(str(request.base_url)) else "/", status_code=303)
    response.set_cookie("nv_lang", code, max_age=365 * 86400, samesite="lax", path="/")
    return response


@router.get("/")
async def home(request: Request) -> Response:
    page_user(request)
    return RedirectResponse("/alerts" if request.app.state.has_alerts else "/search", status_code=303)


async def _search(request: Request, user: Principal, q: str, tenant: str, since: str) -> dict[str, Any]:
    rt = request.app.state.runtime
    context: dict[str, Any] = {
        "q": q,
        "tenant": tenant,
        "since": since,
        "result": None,
        "error": None,
        "facets": None,
    }

    def work(scope: list[str]) -> tuple[dict[str, Any], Any]:
        result = run_search(rt.store, scope, q, since=since or None, limit=100)
        found = None
        if result["kind"] == "events":
            since_us = parse_time(since, _now()) if since else None
            found = store_call(facets, rt.store, scope, q, since_us, None, FACET_FIELDS, 6)
        return result, found

    try:
        # Same scope, limits, per-user slot and failure audit as the API (one slot: the
        # search and its facets run one after the other)
        async with searching(request, user, q, tenant or None, "console") as s:
            result, context["facets"] = await asyncio.to_thread(work, s.scope)
        context["result"] = result
        await audit.record(
            rt.pipeline,
            user.username,
            "search",
            peer=peer(request),
            query=q,
            tenants=",".join(s.scope),
            since=since,
            hits=result["total"],
            via="console",
        )
    except HTTPException as exc:
        context["error"] = exc.detail
    return context


def _now() -> int:
    from norrvakt.event import now_us

    return now_us()


@router.get("/search", response_class=HTMLResponse)
async def search_page(
    request: Request, q: str | None = None, tenant: str = "", since: str = "24h"
) -> Response:
    user = page_user(request)
    rt = request.app.state.runtime
    context: dict[str, Any] = {"q": q or "", "tenant": tenant, "since": since, "result": None, "error": None}
    if q is not None:
        context = await _search(request, user, q, tenant, since)
    from norrvakt.event import ECS_FIELDS

    context["field_names"] = ["tenant", "message", *ECS_FIELDS]
    from norrvakt.web.views.saved_searches import console_listing

    context.update(await console_listing(request, user))
    del rt
    return render(request, "search.html", user, **context)


@router.get("/ui/search", response_class=HTMLResponse)
async def search_results(request: Request, q: str = "", tenant: str = "", since: str = "24h") -> Response:
    user = page_user(request)
    return render(request, "_results.html", user, **await _search(request, user, q, tenant, since))


async def _event(request: Request, user: Principal, tenant: str, seq: int) -> dict[str, Any]:
    rt = request.app.state.runtime
    if tenant_scope(user, rt.tenants, tenant) != [tenant]:
        raise HTTPException(403, f"no access to tenant: {tenant}")
    events = await asyncio.to_thread(rt.store.fetch_events, tenant, [seq])
    if not events:
        raise HTTPException(404, f"no event {tenant} #{seq}")
    return event_row(events[0])


@router.get("/ui/event/{tenant}/{seq}", response_class=HTMLResponse)
async def event_fragment(tenant: str, seq: int, request: Request) -> Response:
    user = page_user(request)
    return render(request, "_event.html", user, event=await _event(request, user, tenant, seq))


@router.get("/events/{tenant}/{seq}", response_class=HTMLResponse)
async def event_page(tenant: str, seq: int, request: Request) -> Response:
    user = page_user(request)
    return render(request, "event.html", user, event=await _event(request, user, tenant, seq))


def login_redirect(request: Request, exc: LoginRequired) -> Response:
    if isinstance(exc, PasswordChangeRequired):
        return RedirectResponse(f"/account?next={quote(exc.next_url)}", status_code=303)
    return RedirectResponse(f"/login?next={quote(exc.next_url)}", status_code=303)
