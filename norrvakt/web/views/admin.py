"""Admin pages: ingest tokens, users (reset, disable, enable, delete, log out everywhere), API
tokens, module subscriptions per tenant, notification channels, retention and legal holds,
signing keys.

The forms post to the same JSON API the CLI uses (through small fetch calls in app.js), so the
page adds no second path that could skip a check or the audit trail."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt.event import now_us
from norrvakt.modules import MODULES, modules_for
from norrvakt.node import lifecycle
from norrvakt.sources.m365.status import connector_status
from norrvakt.state.accounts import list_api_tokens, list_ingest_tokens, list_users
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
    central = user.tenants is None  # users and channels concern every tenant
    soc = rt.extras.get("soc")
    channel_status = soc.dispatcher.status() if soc is not None else {}
    connectors = await asyncio.to_thread(
        connector_status,
        rt.settings,
        rt.state,
        [t for t in scope if t in rt.settings.tenants],
        central=central,
        now=now_us(),
    )
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
        connectors=connectors,
        retention=rt.settings.retention,
        modules=MODULES,
        module_table=modules_for(rt).table([t for t in scope if t in rt.settings.tenants]),
        users=list_users(rt.state) if user.role == "admin" else [],
        api_tokens=list_api_tokens(rt.state) if user.role == "admin" else [],
        channels=[
            {
                "name": c.name,
                "type": c.type,
                "target": _target(c.url),
                "status": channel_status.get(c.name, {}),
            }
            for c in rt.settings.alerts.channels
        ]
        if central
        else [],
        routes=rt.settings.alerts.routes if central else [],
    )


def _target(url: str) -> str:
    """Where a channel sends, without credentials or query strings."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
