"""``GET /feeds/blocklist/{tenant}`` — the tenant's blocklist as the threat feed its firewalls
poll (formats: norrvakt/respond/feed.py), protected by the tenant's feed token (made with
``POST /api/response/feed-token/{tenant}``; only its SHA-256 is stored).

The token may come as ``?token=`` (pfSense/OPNsense URL tables take a bare URL), as
``Authorization: Bearer`` or as the password of HTTP Basic (FortiGate and PAN-OS external
lists have a user name/password field). A wrong or missing token and an unknown tenant get the
same 401; a tenant that left the response module gets 403 and no entries.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from norrvakt.event import now_us
from norrvakt.modules import modules_for
from norrvakt.respond.feed import FORMATS, render
from norrvakt.respond.service import MODULE
from norrvakt.state import response_actions as store

router = APIRouter(tags=["response"])


def _presented(request: Request, token: str | None) -> str:
    if token:
        return token
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if auth.lower().startswith("basic "):
        try:
            return base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


@router.get("/feeds/blocklist/{tenant}")
async def blocklist_feed(
    tenant: str,
    request: Request,
    format: str = Query("text", description=", ".join(FORMATS)),
    token: str | None = Query(None, description="The tenant's feed token (or Bearer / Basic password)"),
) -> Response:
    rt = request.app.state.runtime
    if format not in FORMATS:
        raise HTTPException(400, f"format {format!r}: one of {', '.join(FORMATS)}")
    given = _presented(request, token)
    stored = (
        await asyncio.to_thread(store.feed_token_digest, rt.state, tenant) if tenant in rt.tenants else None
    )
    if not given or stored is None or not hmac.compare_digest(store.token_digest(given), stored):
        raise HTTPException(
            401, "a valid feed token is needed", headers={"WWW-Authenticate": 'Basic realm="norrvakt-feed"'}
        )
    if not modules_for(rt).enabled(tenant, MODULE):
        raise HTTPException(403, f"{tenant} does not subscribe to the response module")
    now = now_us()
    entries = await asyncio.to_thread(store.active_blocks, rt.state, tenant, now)
    body, media = render(tenant, entries, format, now)
    return Response(body, media_type=media, headers={"Cache-Control": "no-store"})
