"""/api/saved-searches — saved searches (private, shared within a tenant, region-wide), run from
the console, the CLI or a dashboard panel; and scheduled searches, which are alert rules
(docs/search.md, Saved searches and Scheduled searches).

Who may do what:

- a private search is its owner's alone: nobody else sees, runs or changes it;
- a search shared with a tenant is seen and run by everyone who may read that tenant, and
  changed by its owner or a central writer (SOC analyst, admin);
- a region-wide search (over every tenant) is made, seen and run by the central roles only;
- auditors read and run; they change nothing. A search of a tenant one does not read is a 404,
  as one that does not exist.

Running a saved search is a search like any other: the caller's scope (never more than the
search's tenant), the query limits and the user's search slots, and an audit record. A
scheduled search must be shared (its alerts are the tenant's), needs a schedule no longer than
its window, and is refused when one run would read more than ``search_rules.max_scan_events``
stored events. Every creation, change, deletion and pin is audited.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from norrvakt import audit
from norrvakt.detect.scheduled import evaluate, rule_id
from norrvakt.detect.search_rule import human_s, parse_rule, split_rule
from norrvakt.errors import StatusError
from norrvakt.event import now_us
from norrvakt.search import run_search, store_call
from norrvakt.state import saved_searches as rows
from norrvakt.state.accounts import Principal
from norrvakt.web.api import saved_checks
from norrvakt.web.api.saved_checks import CENTRAL_WRITERS, tenant_for
from norrvakt.web.api.search import searching
from norrvakt.web.auth import current_principal, peer, require_write

router = APIRouter(prefix="/api/saved-searches", tags=["search"])


def _engine(request: Request) -> sa.Engine:
    engine: sa.Engine = request.app.state.runtime.state
    return engine


def _tenants_seen(principal: Principal, all_tenants: list[str]) -> list[str] | None:
    return None if principal.tenants is None else principal.scope(all_tenants)


def may_see(principal: Principal, row: dict[str, Any]) -> bool:
    """Whether ``principal`` may see (and run) the saved search ``row``."""
    if row["visibility"] == rows.PRIVATE:
        return row["owner"] == principal.username and (
            row["tenant"] == rows.ALL_TENANTS or principal.can_read(str(row["tenant"]))
        )
    if row["visibility"] == rows.REGION:
        return principal.tenants is None
    return principal.can_read(str(row["tenant"]))


def may_change(principal: Principal, row: dict[str, Any]) -> bool:
    if principal.role == "auditor":
        return False
    if row["owner"] == principal.username:
        return True
    return row["visibility"] != rows.PRIVATE and principal.role in CENTRAL_WRITERS


def shown(row: dict[str, Any], principal: Principal, pinned: set[int] | None = None) -> dict[str, Any]:
    """A saved search as the API answers it."""
    every = row["every_s"]
    out = {k: row[k] for k in ("id", "name", "description", "query", "since", "until", "owner", "tenant")}
    out.update(
        visibility=row["visibility"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        scheduled=every is not None,
        schedule=human_s(int(every)) if every is not None else "",
        every_s=every,
        level=row["level"],
        enabled=bool(row["enabled"]),
        rule_id=rule_id(int(row["id"])) if every is not None else "",
        next_run_at=row["next_run_at"],
        last_run_at=row["last_run_at"],
        last_status=row["last_status"],
        last_result=row["last_result"],
        last_alerts=row["last_alerts"],
        mine=row["owner"] == principal.username,
        can_change=may_change(principal, row),
        pinned=bool(pinned) and int(row["id"]) in (pinned or set()),
    )
    return out


def listing(request: Request, principal: Principal, scheduled: bool | None = None) -> list[dict[str, Any]]:
    """The saved searches the caller may see (``scheduled``: only rules, or only plain ones)."""
    rt = request.app.state.runtime
    with _engine(request).connect() as conn:
        found = rows.visible(conn, principal.username, _tenants_seen(principal, rt.tenants))
        pinned = set(rows.pins(conn, principal.username))
    out = [shown(r, principal, pinned) for r in found if may_see(principal, r)]
    return [r for r in out if scheduled is None or r["scheduled"] == scheduled]


def readable(request: Request, principal: Principal, search_id: int) -> dict[str, Any]:
    with _engine(request).connect() as conn:
        row = rows.get(conn, search_id)
    if row is None or not may_see(principal, row):
        raise HTTPException(404, f"no saved search {search_id}")
    return row


@router.get("")
async def list_saved(
    request: Request,
    scheduled: bool | None = Query(None, description="true: only scheduled searches (rules); false: none"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Your saved searches, those shared with your tenants and (central roles) the region's."""
    found = await asyncio.to_thread(listing, request, principal, scheduled)
    return {"searches": found, "total": len(found)}


class SavedSearchIn(BaseModel):
    """A search to keep: its query and time range, a name, who sees it — and, with a schedule
    and a rule step at the end of the query (``| count > 50 in 10m by source.ip``,
    ``| absent in 1h by host.name``), an alert rule."""

    name: str = Field(min_length=1, max_length=128)
    description: str = Field("", max_length=4000)
    query: str = Field(max_length=100_000)
    since: str = Field("24h", max_length=64, description="15m, 24h, 7d, an ISO date; empty: all time")
    until: str = Field("", max_length=64, description="Same forms; empty: now")
    visibility: str = Field("private", description="private, tenant (shared) or region (central roles)")
    tenant: str | None = Field(None, description="The tenant it is for; default your only tenant")
    schedule: str | None = Field(None, max_length=32, description="Scheduled search: every 5m, 1h …")
    level: str = Field("medium", description="The alerts' level (scheduled searches)")


class SavedSearchChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=128)
    description: str | None = Field(None, max_length=4000)
    query: str | None = Field(None, max_length=100_000)
    since: str | None = Field(None, max_length=64)
    until: str | None = Field(None, max_length=64)
    visibility: str | None = None
    schedule: str | None = Field(None, max_length=32, description="A new schedule; empty: not scheduled")
    level: str | None = None
    enabled: bool | None = None


async def _audited(
    request: Request, principal: Principal, action: str, row: dict[str, Any], **more: Any
) -> None:
    await audit.record(
        request.app.state.runtime.pipeline,
        principal.username,
        action,
        peer=peer(request),
        saved_search=row["id"],
        name=row["name"],
        tenant=row["tenant"],
        visibility=row["visibility"],
        query=str(row["query"])[:10_000],
        schedule=human_s(int(row["every_s"])) if row["every_s"] else "",
        **more,
    )


@router.post("")
async def create_saved(
    body: SavedSearchIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Save a search (with a schedule and a rule step: a scheduled search, an alert rule)."""
    require_write(principal)
    rt = request.app.state.runtime
    if body.visibility not in rows.VISIBILITIES:
        raise HTTPException(400, f"visibility {body.visibility!r}: one of {', '.join(rows.VISIBILITIES)}")
    tenant = tenant_for(request, principal, body.visibility, body.tenant)
    draft = body.model_dump(exclude={"schedule", "tenant"}) | {"tenant": tenant}
    checked = await asyncio.to_thread(saved_checks.checked, request, draft, body.schedule)

    def save() -> dict[str, Any]:
        with _engine(request).connect() as conn:
            if rows.owned(conn, principal.username) >= rt.settings.search_rules.max_per_user:
                raise rows.SavedSearchError(
                    f"you have {rt.settings.search_rules.max_per_user} saved searches "
                    "(search_rules.max_per_user): delete one first"
                )
        return rows.create(
            _engine(request),
            name=body.name,
            description=body.description,
            query=body.query,
            since=body.since,
            until=body.until,
            owner=principal.username,
            tenant=tenant,
            visibility=body.visibility,
            every_s=checked["every_s"],
            level=body.level,
            now=now_us(),
        )

    try:
        made = await asyncio.to_thread(save)
    except StatusError as exc:
        raise HTTPException(exc.status_code, str(exc)) from None
    await _audited(request, principal, "saved-search-create", made)
    return shown(made, principal)


@router.get("/{search_id}")
async def get_saved(
    search_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    row = await asyncio.to_thread(readable, request, principal, search_id)
    return shown(row, principal)


@router.patch("/{search_id}")
async def change_saved(
    search_id: int,
    body: SavedSearchChange,
    request: Request,
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Change a saved search: its text, range, name, who sees it, its schedule, level, on/off."""
    require_write(principal)
    row = await asyncio.to_thread(readable, request, principal, search_id)
    if not may_change(principal, row):
        raise HTTPException(403, "only its owner or the SOC changes a saved search")
    changes = body.model_dump(exclude_unset=True, exclude={"schedule"})
    if not changes and "schedule" not in body.model_fields_set:
        raise HTTPException(400, "nothing to change")
    visibility = changes.get("visibility", row["visibility"])
    if visibility not in rows.VISIBILITIES:
        raise HTTPException(400, f"visibility {visibility!r}: one of {', '.join(rows.VISIBILITIES)}")
    if (visibility == rows.REGION) != (row["tenant"] == rows.ALL_TENANTS):
        raise HTTPException(
            400, "a search's tenant stays: region-wide ones stay region-wide (save a new one)"
        )
    if "schedule" in body.model_fields_set:
        schedule = body.schedule or None
    else:
        schedule = human_s(int(row["every_s"])) if row["every_s"] else None
    checked = await asyncio.to_thread(saved_checks.checked, request, {**row, **changes}, schedule)
    changes["every_s"] = checked["every_s"]
    try:
        before, after = await asyncio.to_thread(rows.change, _engine(request), search_id, changes, now_us())
    except StatusError as exc:
        raise HTTPException(exc.status_code, str(exc)) from None
    old = {f"old_{k}": before[k] for k in changes if before[k] != after[k]}
    await _audited(request, principal, "saved-search-change", after, **old)
    return shown(after, principal)


@router.delete("/{search_id}")
async def delete_saved(
    search_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    require_write(principal)
    row = await asyncio.to_thread(readable, request, principal, search_id)
    if not may_change(principal, row):
        raise HTTPException(403, "only its owner or the SOC deletes a saved search")
    gone = await asyncio.to_thread(rows.delete, _engine(request), search_id)
    await _audited(request, principal, "saved-search-delete", gone)
    return {"deleted": search_id}


class RunIn(BaseModel):
    limit: int = Field(100, ge=1, le=10_000)
    offset: int = Field(0, ge=0)
    tenant: str | None = Field(None, description="Narrow a region-wide search to these tenants (comma list)")


def run_scope(request: Request, principal: Principal, row: dict[str, Any], tenant: str | None) -> str | None:
    """The ``tenant`` argument of the search: the saved search's tenant (or, region-wide, the
    caller's narrowing); the caller's own scope is applied on top by :func:`searching`."""
    if row["tenant"] == rows.ALL_TENANTS:
        return tenant or None
    if tenant and tenant != row["tenant"]:
        raise HTTPException(400, f"this saved search is for {row['tenant']}: it runs there only")
    return str(row["tenant"])


async def run_saved_search(
    request: Request,
    principal: Principal,
    row: dict[str, Any],
    *,
    limit: int,
    offset: int = 0,
    tenant: str | None = None,
    mode: str = "saved",
) -> dict[str, Any]:
    """Run ``row`` (already readable by the caller) as a search, audited; a scheduled search
    runs its filter over its range and says which groups meet its rule now (nothing is alerted)."""
    rt = request.app.state.runtime
    query, step, _ = split_rule(str(row["query"]))
    wanted = run_scope(request, principal, row, tenant)
    async with searching(request, principal, query, wanted, mode) as s:
        result = await asyncio.to_thread(
            run_search,
            rt.store,
            s.scope,
            query,
            since=row["since"] or None,
            until=row["until"] or None,
            limit=limit,
            offset=offset,
        )
        if step is not None:
            rule = parse_rule(str(row["query"]), max_window_s=rt.settings.search_rules.max_window_s)
            groups = await asyncio.to_thread(store_call, evaluate, rt.store, rule, s.scope, now_us())
            result["rule"] = {
                "text": rule.describe(),
                "groups": [
                    {"tenant": g.tenant, "values": g.values, "count": g.count, "last_ts": g.last_ts}
                    for g in groups[:100]
                ],
                "fires": bool(groups),
            }
    await audit.record(
        rt.pipeline,
        principal.username,
        "search",
        peer=peer(request),
        query=query,
        tenants=",".join(s.scope),
        since=row["since"],
        until=row["until"],
        hits=result["total"],
        mode=mode,
        saved_search=row["id"],
    )
    result["saved_search"] = {"id": row["id"], "name": row["name"]}
    return result


@router.post("/{search_id}/run")
async def run_saved(
    search_id: int,
    request: Request,
    body: RunIn | None = None,
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Run a saved search now (in your scope, audited as a search); the same answer as /api/search."""
    row = await asyncio.to_thread(readable, request, principal, search_id)
    args = body or RunIn(limit=100, offset=0, tenant=None)
    return await run_saved_search(
        request, principal, row, limit=args.limit, offset=args.offset, tenant=args.tenant
    )


@router.post("/{search_id}/pin")
async def pin_saved(
    search_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Pin a saved search as a panel of your dashboard."""
    require_write(principal)
    row = await asyncio.to_thread(readable, request, principal, search_id)
    try:
        done = await asyncio.to_thread(rows.pin, _engine(request), principal.username, search_id, now_us())
    except StatusError as exc:
        raise HTTPException(exc.status_code, str(exc)) from None
    if done:
        await _audited(request, principal, "saved-search-pin", row)
    return {"pinned": search_id}


@router.delete("/{search_id}/pin")
async def unpin_saved(
    search_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    require_write(principal)
    row = await asyncio.to_thread(readable, request, principal, search_id)
    if await asyncio.to_thread(rows.unpin, _engine(request), principal.username, search_id):
        await _audited(request, principal, "saved-search-unpin", row)
    return {"unpinned": search_id}
