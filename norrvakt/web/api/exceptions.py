"""/api/exceptions — rule exceptions: matches of a rule (or a tag group) with given field values
raise no alert in one tenant (or all) until an expiry date; what they suppress is counted and
kept per exception (docs/soc.md, Exceptions).

Who may do what: a tenant's officer sees and makes exceptions of their own tenants (and sees,
without changing them, those for every tenant, which suppress their alerts too — with the hits
of their tenants only); exceptions for every tenant (``*``) need a role without a tenant
restriction (SOC analyst, admin); auditors read. Every creation and disabling is audited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from norrvakt import audit
from norrvakt.alerts.records import alert_from_row
from norrvakt.errors import StatusError
from norrvakt.event import now_us
from norrvakt.state import alerts as alert_rows
from norrvakt.state import exceptions as rows
from norrvakt.state.accounts import Principal
from norrvakt.state.rules import setting_tenant
from norrvakt.web.auth import current_principal, peer, require_write, tenant_scope

router = APIRouter(prefix="/api/exceptions", tags=["alerts"])

STATES = (rows.ACTIVE, rows.EXPIRED, rows.DISABLED)


def _engine(request: Request) -> sa.Engine:
    engine: sa.Engine = request.app.state.runtime.state
    return engine


def _visible(principal: Principal, all_tenants: list[str]) -> list[str] | None:
    """The tenants whose exceptions (and hits) the caller sees; None = every one."""
    return None if principal.tenants is None else principal.scope(all_tenants)


def _shown(row: dict[str, Any], hits: dict[int, dict[str, Any]], now: int) -> dict[str, Any]:
    counted = hits.get(int(row["id"]), {})
    return {
        **row,
        "group": row["rule_group"],
        "state": rows.state_of(row, now),
        "hits": counted.get("hits", 0),
        "first_hit": counted.get("first_hit"),
        "last_hit": counted.get("last_hit"),
    }


def listing(
    request: Request, principal: Principal, tenant: str | None = None, state: str = ""
) -> list[dict[str, Any]]:
    """The exceptions the caller may see (``tenant``: of these only), newest first, with hits."""
    rt = request.app.state.runtime
    wanted = tenant_scope(principal, rt.tenants, tenant) if tenant else _visible(principal, rt.tenants)
    now = now_us()
    with _engine(request).connect() as conn:
        found = rows.listing(conn, wanted)
        hits = rows.hits(conn, wanted)
    out = [_shown(r, hits, now) for r in found]
    return [r for r in out if not state or r["state"] == state]


@router.get("")
async def list_exceptions(
    request: Request,
    tenant: str | None = Query(None, description="Tenant id(s), comma-separated; default all you may read"),
    state: str = Query("", description="active, expired or disabled; empty: all"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Exceptions of your tenants and those for every tenant: state, expiry, hits, last hit."""
    if state and state not in STATES:
        raise HTTPException(400, f"state {state!r}: one of {', '.join(STATES)}, or empty")
    found = await asyncio.to_thread(listing, request, principal, tenant, state)
    return {"exceptions": found, "total": len(found)}


class ExceptionIn(BaseModel):
    """A new exception: one rule (``rule_id``) or a tag group (``group``), where (``tenant``),
    which matches (``conditions``, or ``match`` lines ``field=value``), why, and until when."""

    tenant: str | None = Field(None, description="A tenant, or * for every tenant; default the alert's")
    rule_id: str | None = Field(None, max_length=128, description="The rule's id; default the alert's")
    group: str = Field("", max_length=128, description="Instead of a rule: tag:<tag>, e.g. tag:attack.t1110")
    conditions: dict[str, list[str] | str] | None = Field(
        None, description="Field → values; every field must have one of its values (exact, any case)"
    )
    match: str | None = Field(None, max_length=100_000, description="The same as lines field=value")
    reason: str = Field(min_length=1, max_length=2000)
    expires: str | None = Field(None, description="ISO 8601 date or time (a date: to its end, UTC)")
    days: int | None = Field(None, ge=1, le=rows.MAX_DAYS, description="Instead of expires: days from now")
    alert_id: int | None = Field(None, ge=1, description="The alert it is made from")


def _expires_at(body: ExceptionIn | ExceptionChange, now: int) -> int:
    if body.days is not None and body.expires:
        raise HTTPException(400, "give expires (a date) or days, not both")
    if body.days is not None:
        return now + body.days * rows.DAY_US
    if not body.expires:
        raise HTTPException(400, f"expires (a date) or days is required: at most {rows.MAX_DAYS} days")
    text = body.expires.strip()
    try:
        if len(text) == 10:  # a date: the exception holds through that day
            day = dt.date.fromisoformat(text)
            end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        else:
            end = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if end.tzinfo is None:
                end = end.replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise HTTPException(400, f"expires {text!r}: not an ISO 8601 date or time ({exc})") from None
    return int(end.timestamp() * 1_000_000)


def _from_alert(request: Request, principal: Principal, alert_id: int) -> dict[str, Any]:
    with _engine(request).connect() as conn:
        row = alert_rows.get(conn, alert_id)
    if row is None or not principal.can_read(str(row["tenant"])):
        raise HTTPException(404, f"no alert {alert_id}")
    return alert_from_row(row).as_dict()


@router.post("")
async def create_exception(
    body: ExceptionIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Make an exception (from an alert: ``alert_id`` gives the tenant and rule unless set)."""
    require_write(principal)
    rt = request.app.state.runtime
    alert = await asyncio.to_thread(_from_alert, request, principal, body.alert_id) if body.alert_id else None
    tenant = body.tenant or (str(alert["tenant"]) if alert is not None else "")
    rule_id = body.rule_id if body.rule_id is not None else ""
    if alert is not None and not rule_id and not body.group:
        rule_id = str(alert["rule"]["id"])
    if tenant == rows.ALL_TENANTS:
        if principal.tenants is not None:
            raise HTTPException(403, "exceptions for every tenant need a role without a tenant restriction")
    else:
        try:  # exactly one configured tenant, and one of the caller's
            setting_tenant(tenant, rt.tenants, principal.scope(rt.tenants))
        except StatusError as exc:
            raise HTTPException(exc.status_code, str(exc)) from None
        tenant_scope(principal, rt.tenants, tenant)  # 403 for a tenant that is not yours
    now = now_us()
    try:
        conditions: object = body.conditions
        if body.match is not None:
            if body.conditions:
                raise rows.ExceptionError("give conditions or match lines, not both")
            conditions = rows.parse_match_lines(body.match)
        made = await asyncio.to_thread(
            rows.create,
            _engine(request),
            tenant=tenant,
            rule_id=rule_id,
            group=body.group,
            conditions=conditions,
            reason=body.reason,
            author=principal.username,
            expires_at=_expires_at(body, now),
            now=now,
            alert_id=body.alert_id,
        )
    except StatusError as exc:
        raise HTTPException(exc.status_code, str(exc)) from None
    await _audited(request, principal, "exception-create", made, reason=made["reason"])
    return _shown(made, {}, now)


async def _audited(
    request: Request, principal: Principal, action: str, row: dict[str, Any], **more: Any
) -> None:
    await audit.record(
        request.app.state.runtime.pipeline,
        principal.username,
        action,
        peer=peer(request),
        exception=row["id"],
        tenant=row["tenant"],
        rule=row["rule_id"] or row["rule_group"],
        conditions=";".join(f"{k}={'|'.join(v)}" for k, v in sorted(row["conditions"].items())),
        expires_at=dt.datetime.fromtimestamp(row["expires_at"] / 1e6, dt.UTC).isoformat(),
        alert=row["alert_id"] or "",
        **more,
    )


def _readable(request: Request, principal: Principal, exception_id: int) -> dict[str, Any]:
    with _engine(request).connect() as conn:
        row = rows.get(conn, exception_id)
    if row is None or (row["tenant"] != rows.ALL_TENANTS and not principal.can_read(str(row["tenant"]))):
        raise HTTPException(404, f"no exception {exception_id}")
    return row


@router.get("/{exception_id}")
async def get_exception(
    exception_id: int,
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """One exception with its hits and the newest suppressed matches kept (in your tenants)."""
    rt = request.app.state.runtime
    wanted = _visible(principal, rt.tenants)

    def read() -> dict[str, Any]:
        row = _readable(request, principal, exception_id)
        with _engine(request).connect() as conn:
            hits = rows.hits(conn, wanted)
            kept = rows.matches(conn, exception_id, wanted, limit)
        return {**_shown(row, hits, now_us()), "matches": kept}

    return await asyncio.to_thread(read)


class ExceptionChange(BaseModel):
    """A new reason and/or expiry (what it matches stays: for other matches, make a new one)."""

    reason: str | None = Field(None, min_length=1, max_length=2000)
    expires: str | None = Field(None, description="ISO 8601 date or time (a date: to its end, UTC)")
    days: int | None = Field(None, ge=1, le=rows.MAX_DAYS, description="Instead of expires: days from now")


@router.patch("/{exception_id}")
async def change_exception(
    exception_id: int,
    body: ExceptionChange,
    request: Request,
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Give an exception a new reason or expiry (an expired one applies again); audited with
    the old and the new values."""
    require_write(principal)
    row = await asyncio.to_thread(_readable, request, principal, exception_id)
    if row["tenant"] == rows.ALL_TENANTS and principal.tenants is not None:
        raise HTTPException(403, "exceptions for every tenant are changed by the SOC")
    now = now_us()
    expires_at = _expires_at(body, now) if (body.expires or body.days is not None) else None
    if body.reason is None and expires_at is None:
        raise HTTPException(400, "nothing to change: give reason, expires or days")
    try:
        before, after = await asyncio.to_thread(
            rows.change, _engine(request), exception_id, reason=body.reason, expires_at=expires_at, now=now
        )
    except StatusError as exc:
        raise HTTPException(exc.status_code, str(exc)) from None
    await _audited(
        request,
        principal,
        "exception-change",
        after,
        reason=after["reason"],
        old_reason=before["reason"],
        old_expires_at=dt.datetime.fromtimestamp(before["expires_at"] / 1e6, dt.UTC).isoformat(),
    )
    return _shown(after, {}, now)


@router.post("/{exception_id}/disable")
async def disable_exception(
    exception_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Turn an exception off now: its matches raise alerts again. It stays listed (disabled)."""
    require_write(principal)
    row = await asyncio.to_thread(_readable, request, principal, exception_id)
    if row["tenant"] == rows.ALL_TENANTS and principal.tenants is not None:
        raise HTTPException(403, "exceptions for every tenant are changed by the SOC")
    done = await asyncio.to_thread(rows.disable, _engine(request), exception_id, principal.username, now_us())
    await _audited(request, principal, "exception-disable", done)
    return _shown(done, {}, now_us())
