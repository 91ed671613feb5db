"""/api/assets — a tenant's asset list (host, owner, criticality, system), by hand or from a
CSV file; and /api/directory — the tenant's directory accounts as the last LDAP sync saw them.

    GET    /api/assets?tenant=lulea                 the assets of your tenants (or these)
    PUT    /api/assets/{tenant}/{host}              {"owner": .., "criticality": "critical", "system": ..}
    DELETE /api/assets/{tenant}/{host}
    POST   /api/assets/{tenant}/import              the CSV file as the body (text/csv)
    GET    /api/directory?tenant=lulea              accounts: groups, privileged, disabled, departed

Who may do what: everyone reads the assets and accounts of their own tenants; a tenant's
officer, the SOC and admins change assets of the tenants they may read; auditors read only.
Every change is audited (asset-put, asset-delete, asset-import) with the tenant and host(s).
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from norrvakt import audit
from norrvakt.event import now_us
from norrvakt.state import assets as rows
from norrvakt.state import directory as accounts
from norrvakt.state.accounts import Principal
from norrvakt.web.auth import current_principal, peer, require_write, tenant_scope

router = APIRouter(tags=["enrichment"])
MAX_CSV_BYTES = 5 * 1024 * 1024


def _engine(request: Request) -> sa.Engine:
    engine: sa.Engine = request.app.state.runtime.state
    return engine


def _own(request: Request, principal: Principal, tenant: str) -> str:
    """``tenant`` if the caller may change its assets (403 otherwise, as for a tenant that does not exist)."""
    require_write(principal)
    tenant_scope(principal, request.app.state.runtime.tenants, tenant)
    return tenant


@router.get("/api/assets")
async def list_assets(
    request: Request,
    tenant: str | None = Query(None, description="Tenant id(s), comma-separated; default all you may read"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """The assets of your tenants: host, owner, criticality, system, who changed it last."""
    wanted = tenant_scope(principal, request.app.state.runtime.tenants, tenant)

    def read() -> list[dict[str, Any]]:
        with _engine(request).connect() as conn:
            return [a.as_dict() for a in rows.listed(conn, wanted)]

    found = await asyncio.to_thread(read)
    return {"assets": found, "total": len(found)}


class AssetIn(BaseModel):
    owner: str = Field("", max_length=rows.MAX_FIELD, description="Who answers for the host")
    criticality: str = Field(description="low, medium, high or critical")
    system: str = Field("", max_length=rows.MAX_FIELD, description="The system it belongs to")


@router.put("/api/assets/{tenant}/{host}")
async def put_asset(
    tenant: str, host: str, body: AssetIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Add or replace one asset."""
    _own(request, principal, tenant)
    try:
        asset = rows.checked(tenant, host, body.owner, body.criticality, body.system)
    except rows.AssetError as exc:
        raise HTTPException(exc.status_code, str(exc)) from None

    def write() -> rows.Asset:
        with _engine(request).begin() as conn:
            return rows.put(conn, asset, principal.username, now_us())

    stored = await asyncio.to_thread(write)
    await audit.record(
        request.app.state.runtime.pipeline,
        principal.username,
        "asset-put",
        peer=peer(request),
        tenant=tenant,
        host=stored.host,
        criticality=stored.criticality,
        system=stored.system,
        owner=stored.owner,
    )
    return stored.as_dict()


@router.delete("/api/assets/{tenant}/{host}")
async def delete_asset(
    tenant: str, host: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Remove one asset from the list."""
    _own(request, principal, tenant)

    def write() -> rows.Asset:
        with _engine(request).begin() as conn:
            return rows.delete(conn, tenant, host)

    try:
        gone = await asyncio.to_thread(write)
    except rows.AssetError as exc:
        raise HTTPException(exc.status_code, str(exc)) from None
    await audit.record(
        request.app.state.runtime.pipeline,
        principal.username,
        "asset-delete",
        peer=peer(request),
        tenant=tenant,
        host=gone.host,
        criticality=gone.criticality,
    )
    return {"deleted": gone.as_dict()}


@router.post("/api/assets/{tenant}/import")
async def import_assets(
    tenant: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Import a CSV file (header host,owner,criticality,system; ``,`` or ``;``): all rows or none."""
    _own(request, principal, tenant)
    body = await request.body()
    if len(body) > MAX_CSV_BYTES:
        raise HTTPException(413, f"CSV of {len(body)} bytes; at most {MAX_CSV_BYTES}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"CSV is not UTF-8 at byte {exc.start}") from None
    try:
        parsed = rows.parse_csv(tenant, text)
    except rows.AssetError as exc:
        raise HTTPException(exc.status_code, str(exc)) from None

    def write() -> list[rows.Asset]:
        now = now_us()
        with _engine(request).begin() as conn:
            return [rows.put(conn, a, principal.username, now) for a in parsed]

    stored = await asyncio.to_thread(write)
    hosts = ",".join(a.host for a in stored)
    await audit.record(
        request.app.state.runtime.pipeline,
        principal.username,
        "asset-import",
        peer=peer(request),
        tenant=tenant,
        count=len(stored),
        hosts=hosts[:2000],
    )
    return {"imported": len(stored), "assets": [a.as_dict() for a in stored]}


@router.get("/api/directory")
async def list_directory(
    request: Request,
    tenant: str | None = Query(None, description="Tenant id(s), comma-separated; default all you may read"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """The directory accounts of your tenants as the last sync saw them (norrvakt directory sync)."""
    wanted = tenant_scope(principal, request.app.state.runtime.tenants, tenant)

    def read() -> list[dict[str, Any]]:
        with _engine(request).connect() as conn:
            return [a.as_dict() for a in accounts.listed(conn, wanted)]

    found = await asyncio.to_thread(read)
    return {"accounts": found, "total": len(found)}
