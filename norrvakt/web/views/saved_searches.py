"""The console's side of saved searches: the search page's list and save form, and the panels of
the saved searches a user pinned on the dashboard. Everything goes through the API functions of
:mod:`norrvakt.web.api.saved_searches`, so scoping and audit are the API's."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException, Request

from norrvakt.detect.search_rule import split_rule
from norrvakt.state import saved_searches as rows
from norrvakt.state.accounts import Principal
from norrvakt.web.api.saved_checks import CENTRAL_WRITERS
from norrvakt.web.api.saved_searches import listing, readable, run_saved_search


async def console_listing(request: Request, principal: Principal) -> dict[str, Any]:
    """For the search page: the saved searches to list (each with the link that runs it in the
    console), and the choices of its save form."""
    found = await asyncio.to_thread(listing, request, principal)
    for row in found:
        query = split_rule(str(row["query"]))[0].strip()
        tenant = "" if row["tenant"] == rows.ALL_TENANTS else str(row["tenant"])
        row["run_url"] = "/search?" + urlencode({"q": query, "since": row["since"], "tenant": tenant})
    central = principal.role in CENTRAL_WRITERS
    return {
        "saved_searches": found,
        "save_visibilities": [rows.PRIVATE, rows.TENANT, *([rows.REGION] if central else [])],
        "can_save": principal.role != "auditor",
    }


PANEL_ROWS = 5


async def dashboard_panels(
    request: Request, principal: Principal, tenant: str | None
) -> list[dict[str, Any]]:
    """The caller's pinned saved searches, each run (audited, mode ``dashboard``) as a panel: a
    bar chart of a ``stats`` result, or the newest events and the count. ``tenant`` narrows a
    region-wide search to the municipality the dashboard shows; a search of another tenant than
    the one shown is left out. One that is gone or no longer visible says so."""
    engine = request.app.state.runtime.state
    with engine.connect() as conn:
        pinned = rows.pins(conn, principal.username)
    panels: list[dict[str, Any]] = []
    for search_id in pinned:
        try:
            row = await asyncio.to_thread(readable, request, principal, search_id)
        except HTTPException:
            panels.append({"id": search_id, "name": f"#{search_id}", "unavailable": True})
            continue
        if tenant and row["tenant"] not in (tenant, rows.ALL_TENANTS):
            continue
        panel: dict[str, Any] = {
            "id": search_id,
            "name": row["name"],
            "query": row["query"],
            "since": row["since"],
        }
        try:
            result = await run_saved_search(
                request, principal, row, limit=PANEL_ROWS, tenant=tenant or None, mode="dashboard"
            )
        except HTTPException as exc:
            panels.append({**panel, "error": str(exc.detail)})
            continue
        panel.update(kind=result["kind"], total=result["total"])
        if row["every_s"]:
            panel["last_result"] = row["last_result"]
        if result["kind"] == "stats":
            panel["chart"] = json.dumps(_panel_chart(result))
        else:
            panel["rows"] = [
                {
                    "time": str(r.get("@timestamp", ""))[:19].replace("T", " "),
                    "tenant": r.get("tenant", ""),
                    "host": (r.get("ecs") or {}).get("host.name", r.get("host.name", "")),
                    "message": str(r.get("message", ""))[:160],
                }
                for r in result["rows"]
            ]
        panels.append(panel)
    return panels


def _panel_chart(result: dict[str, Any]) -> dict[str, Any]:
    """A horizontal bar chart of a stats result (groups as labels, their counts), tallest first."""
    columns = [c for c in result["columns"] if c != "count"]
    rows_ = result["rows"][:10]
    labels = [" · ".join(str(r.get(c, "")) for c in columns) or "count" for r in rows_]
    return {
        "type": "bar",
        "data": {
            "labels": labels,
            "datasets": [
                {"label": "count", "data": [r.get("count", 0) for r in rows_], "backgroundColor": "#0b5fa5"}
            ],
        },
        "options": {
            "animation": False,
            "indexAxis": "y",
            "plugins": {"legend": {"display": False}},
            "scales": {"x": {"beginAtZero": True, "ticks": {"precision": 0}}},
        },
    }
