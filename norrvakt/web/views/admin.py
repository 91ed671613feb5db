"""Admin pages: ingest tokens, users, retention and legal holds, signing keys.

The forms post to the same JSON API the CLI uses (through small fetch calls in app.js), so the
page adds no second path that could skip a check or the audit trail."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt import lifecycle
from norrvakt.event import now_us
from norrvakt.state.accounts import list_ingest_tokens
from norrvakt.web.templating import render
from norrvakt.web.views.pages import page_user

router = APIRouter(include_in_schema=False)


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> Response:
    user = page_user(request)
    rt = request.app.state.runtime
    scope = user.scope(rt.tenants)
    tokens = [t for t in list_ingest_tokens(rt.state) if t["tenant"] in scope]
    plan = await asyncio.to_thread(
        lifecycle.plan, rt, [t for t in scope if t in rt.journal.tenants()], now_us()
    )
    holds = [h for h in lifecycle.holds(rt).all() if h.tenant in scope]
    keys = rt.keys.public_keys() if user.role in {"admin", "auditor"} else {}
    return render(
        request,
        "admin.html",
        user,
        tokens=tokens,
        plan=plan,
        holds=holds,
        keys=sorted(keys),
        current_key=rt.keys.current_id(),
        sources=[s.describe() for s in rt.sources],
        retention=rt.settings.retention,
    )
