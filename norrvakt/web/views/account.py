"""The console's account page: change one's password (also when it is temporary — a user
logged in with one is sent here first), see one's open sessions and API tokens, log out
everywhere else, make or revoke an API token.

The password form is a plain form post (it must work before anything else does); the other
actions are small fetch calls to the account API (app.js), the same path scripts use."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from norrvakt.state.accounts import list_api_tokens
from norrvakt.state.logins import list_sessions
from norrvakt.web.api.account import PasswordChange, change_password
from norrvakt.web.auth import current_session_hash, require_csrf, session_principal
from norrvakt.web.i18n import translate
from norrvakt.web.templating import language, render
from norrvakt.web.views.pages import LoginRequired, _safe_next

router = APIRouter(include_in_schema=False)


def _page(request: Request, next_url: str, *, error: str | None = None, status_code: int = 200) -> Response:
    found = session_principal(request)
    if found is None:
        raise LoginRequired(str(request.url.path))
    user = found[0]
    rt = request.app.state.runtime
    current = current_session_hash(request)
    return render(
        request,
        "account.html",
        user,
        status_code=status_code,
        next=next_url,
        error=error,
        sessions=[] if user.user_id is None else list_sessions(rt.state, user.user_id, current),
        api_tokens=[] if user.must_change_password else list_api_tokens(rt.state, user.username),
    )


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, next: str = "/") -> Response:
    return _page(request, _safe_next(next))


@router.post("/account/password")
async def account_password(request: Request) -> Response:
    found = session_principal(request)
    if found is None:
        raise LoginRequired("/account")
    user, data = found
    await require_csrf(request, data.csrf)
    form = await request.form()
    nxt = _safe_next(str(form.get("next", "/")))
    new, again = str(form.get("new_password", "")), str(form.get("new_password_again", ""))
    if new != again:
        return _page(request, nxt, error=translate(language(request), "account.mismatch"), status_code=400)
    try:
        await change_password(
            request,
            user,
            PasswordChange(current_password=str(form.get("current_password", "")), new_password=new),
        )
    except HTTPException as exc:
        return _page(request, nxt, error=str(exc.detail), status_code=exc.status_code)
    return RedirectResponse(nxt if nxt != "/account" else "/", status_code=303)
