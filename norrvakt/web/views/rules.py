"""The rules page: every rule the server loaded (or could not load, and why), its ATT&CK tags,
detections since start in the caller's tenants, on/off per tenant, and a form that tests a rule
against stored events before it goes live.

It reads through the JSON API functions and changes go through the JSON API (``PUT
/api/alerts/rules/{id}``, ``POST /api/rules/test``), so scoping and audit are the API's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt.web.api import rules as rules_api
from norrvakt.web.api import saved_searches as saved_api
from norrvakt.web.templating import render
from norrvakt.web.views.exceptions import for_rules_page
from norrvakt.web.views.pages import page_user

router = APIRouter(include_in_schema=False)

PAGE = 100  # rows per page: a full SigmaHQ load is 3,000+ rules


@router.get("/rules", response_class=HTMLResponse)
async def rules_page(
    request: Request,
    q: str = Query(""),
    status: str = Query(""),
    page: int = Query(1, ge=1),
    test: str = Query("", description="A loaded rule's id to put in the test form"),
) -> Response:
    user = page_user(request)
    listing = await rules_api.list_rules(request, q=q, status=status, tenant=None, principal=user)
    rows: list[dict[str, Any]] = listing["rules"]
    pages = max(1, -(-len(rows) // PAGE))
    page = min(page, pages)
    shown = rows[(page - 1) * PAGE : page * PAGE]
    for row in shown:
        row["off_in"] = [s["tenant"] for s in row["settings"] if not s["enabled"]]
        row["settings_json"] = json.dumps(row["settings"])
    central = user.tenants is None
    return render(
        request,
        "rules.html",
        user,
        running=listing["running"],
        summary=listing["summary"],
        rows=shown,
        total=listing["total"],
        q=q,
        status=status,
        page=page,
        pages=pages,
        test_id=test,
        switch_tenants=(["*"] if central else []) + user.scope(request.app.state.runtime.tenants),
        can_write=user.role in {"admin", "soc_analyst", "tenant_officer"},
        exception_rows=await for_rules_page(request, user),
        search_rules=await asyncio.to_thread(saved_api.listing, request, user, True),
    )
