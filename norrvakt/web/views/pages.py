"""Console pages: log in and out, language, search and event detail.

Pages are server-rendered (Jinja2) and enhanced with htmx where it is installed; every page
also works as a plain form post or link. A page that needs a user redirects to /login.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from norrvakt import audit
from norrvakt.search import run_search
from norrvakt.state.accounts import Principal
from norrvakt.state.logins import user_login
from norrvakt.store.analytics import facets
from norrvakt.store.query import event_row, parse_time
from norrvakt.web.auth import current_principal, peer, session_principal, tenant_scope
from norrvakt.web.i18n import LANGUAGES, translate
from norrvakt.web.session import COOKIE, MAX_AGE_S, LoginGuard, new_session
from norrvakt.web.templating import language, render

router = APIRouter(include_in_schema=False)

FACET_FIELDS = ["event.dataset", "event.code", "host.name", "user.name", "source.ip", "event.outcome"]


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def page_user(request: Request) -> Principal:
    found = session_principal(request)
    if found is None:
        raise LoginRequired(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
    return found[0]


def _safe_next(value: str) -> str:
    return value if value.startswith("/") and not value.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/") -> Response:
    rt = request.app.state.runtime
    return render(
        request,
        "login.html",
        None,
        next=_safe_next(next),
        error=None,
        username="",
        sso=rt.extras.get("oidc") is not None,
    )


@router.post("/login")
async def login(request: Request) -> Response:
    rt = request.app.state.runtime
    form = await request.form()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    nxt = _safe_next(str(form.get("next", "/")))
    guard: LoginGuard = rt.extras.setdefault("login_guard", LoginGuard())
    address = request.client.host if request.client else "unknown"
    refusal = guard.check(username, address)
    found = None
    if refusal is None:
        from norrvakt.auth.passwords import verify_password

        found = user_login(rt.state, username)
        if found is None or not verify_password(found[1], password):
            found = None
            if guard.failed(username):
                refusal = translate(language(request), "login.failed") + " (account locked for 15 minutes)"
    if found is None:
        await audit.record(
            rt.pipeline,
            username or "-",
            "login",
            peer=peer(request),
            outcome="failure",
            reason=refusal or "wrong username or password",
            method="password",
        )
        return render(
            request,
            "login.html",
            None,
            status_code=401,
            next=nxt,
            username=username,
            error=refusal or translate(language(request), "login.failed"),
            sso=rt.extras.get("oidc") is not None,
        )
    guard.succeeded(username)
    await audit.record(rt.pipeline, username, "login", peer=peer(request), method="password")
    return start_session(request, username, found[1], nxt)


def start_session(request: Request, username: str, password_hash: str, next_url: str) -> Response:
    rt = request.app.state.runtime
    data = new_session(username, password_hash, language(request))
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        COOKIE,
        rt.extras["session_codec"].encode(data),
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await current_principal(request)  # checks the CSRF token of the session
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
    try:
        scope = tenant_scope(user, rt.tenants, tenant or None)
        result = await asyncio.to_thread(run_search, rt.store, scope, q, since=since or None, limit=100)
        context["result"] = result
        if result["kind"] == "events":
            since_us = parse_time(since, _now()) if since else None
            context["facets"] = await asyncio.to_thread(
                facets, rt.store, scope, q, since_us, None, FACET_FIELDS, 6
            )
        await audit.record(
            rt.pipeline,
            user.username,
            "search",
            peer=peer(request),
            query=q,
            tenants=",".join(scope),
            since=since,
            hits=result["total"],
            via="console",
        )
    except ValueError as exc:
        context["error"] = str(exc)
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
    return RedirectResponse(f"/login?next={quote(exc.next_url)}", status_code=303)
