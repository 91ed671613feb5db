"""Microsoft 365 connector status: ``GET /api/m365/connectors`` and ``/api/m365/connectors/{id}``.

Central users see every connector and whether (and when, by whom) its credential was set; a
tenant officer sees the feeds of their own tenant's connectors and nothing about credentials —
another tenant's connector answers 404 exactly like one that does not exist. Credentials
themselves are never answered by any route (norrvakt/sources/m365/status.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from norrvakt.event import now_us
from norrvakt.sources.m365.status import connector_status
from norrvakt.state.accounts import Principal
from norrvakt.web.auth import current_principal

router = APIRouter(prefix="/api/m365", tags=["sources"])


async def _rows(request: Request, principal: Principal) -> list[dict[str, Any]]:
    rt = request.app.state.runtime
    scope = principal.scope(list(rt.settings.tenants))
    central = principal.tenants is None
    return await asyncio.to_thread(
        connector_status, rt.settings, rt.state, scope, central=central, now=now_us()
    )


@router.get("/connectors")
async def connectors(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    """Each connector of the caller's tenants: per feed the checkpoint, lag, last success and
    last error; for central users also the credential's kind and when it was set."""
    return {"connectors": await _rows(request, principal)}


@router.get("/connectors/{connector_id}")
async def connector(
    connector_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """One connector (404 for one that does not exist or is another tenant's)."""
    for row in await _rows(request, principal):
        if row["id"] == connector_id:
            return row
    raise HTTPException(404, "no such m365 connector")  # (the same for one of another tenant)
