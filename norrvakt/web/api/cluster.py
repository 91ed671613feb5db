"""The cluster's state for the SOC (issue 13): `GET /api/cluster/status`.

Streams, replicas, leases and how far each stage is (norrvakt/cluster/status.py), with the
cluster watch's open alerts. Central users only (no tenant list): the status names every
tenant and how much it sends, which a municipality's officer must not see of the others.
A single node (no ``cluster.nats_dir``) answers ``{"cluster": false}``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from norrvakt.cluster.status import read_status
from norrvakt.cluster.watch import RULE_PREFIX
from norrvakt.event import SYSTEM_TENANT
from norrvakt.state import alerts as alert_rows
from norrvakt.state.accounts import Principal
from norrvakt.web.auth import current_principal

router = APIRouter(prefix="/api", tags=["system"])


def require_central(principal: Principal) -> None:
    if principal.tenants is not None:
        raise HTTPException(403, "the cluster's status is for central SOC staff (users of every tenant)")


async def cluster_view(rt: Any) -> dict[str, Any]:
    nats_dir = rt.settings.cluster.nats_dir
    if not nats_dir:
        return {"cluster": False, "streams": [], "alerts": []}
    status = await read_status(Path(nats_dir))

    def open_alerts() -> list[dict[str, Any]]:
        with rt.state.connect() as conn:
            rows, _total = alert_rows.listing(
                conn, [SYSTEM_TENANT], status=alert_rows.OPEN_STATUSES, limit=500
            )
        return rows

    rows = await asyncio.to_thread(open_alerts)
    watch = [
        {k: r[k] for k in ("id", "rule_id", "rule_title", "level", "event_count", "last_seen", "status")}
        | {"subject": _subject(r)}
        for r in rows
        if str(r["rule_id"]).startswith(RULE_PREFIX)
    ]
    return {"cluster": True, **status, "alerts": watch}


def _subject(row: dict[str, Any]) -> str:
    keys = json.loads(str(row.get("key_values") or "{}"))
    return str(keys.get("norrvakt.subject", ""))


@router.get("/cluster/status")
async def cluster_status(
    request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Each tenant stream (leader, replicas, fullness, signing and detection lease holders,
    every consumer's lag and the age of its last report) and the cluster watch's open alerts."""
    require_central(principal)
    return await cluster_view(request.app.state.runtime)
