"""/api/alerts — alerts of the caller's tenants, the inbound API other tools create alerts
with, the SOC's cross-tenant indicator view, rule settings and the notification log."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from norrvakt import audit
from norrvakt.alerts import evidence
from norrvakt.alerts.errors import AlertError
from norrvakt.alerts.model import ENTITY_FIELDS, LEVEL_RANK, AlertInput
from norrvakt.alerts.records import alert_from_row
from norrvakt.alerts.soc import Soc, soc_for
from norrvakt.errors import StatusError
from norrvakt.event import now_us
from norrvakt.state import alerts as alert_rows
from norrvakt.state import notifications as delivery_log
from norrvakt.state import rules as rule_rows
from norrvakt.state.accounts import Principal
from norrvakt.web.auth import current_principal, peer, require_write, tenant_scope

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

MAX_BATCH = 10_000


def soc(request: Request) -> Soc:
    return soc_for(request.app.state.runtime)


def scope_of(request: Request, principal: Principal, tenant: str | None = None) -> list[str]:
    """Tenants the caller may see here: all of theirs (the system tenant's integrity alerts
    included, for those who may read it), or the ``?tenant=`` list, checked."""
    rt = request.app.state.runtime
    if tenant:
        return tenant_scope(principal, rt.tenants, tenant)
    return principal.scope(rt.tenants)


def http_error(exc: StatusError) -> HTTPException:
    return HTTPException(exc.status_code, str(exc))


def parse_us(value: str | None, what: str) -> int | None:
    """``15m``, ``2h``, ``7d``, ``now``, ISO 8601 or epoch seconds → microseconds."""
    if value is None or value == "":
        return None
    from norrvakt.store.query import parse_time

    try:
        return parse_time(value, now_us())
    except ValueError as exc:
        raise HTTPException(400, f"{what}: {exc}") from exc


def min_levels(level: str | None) -> list[str]:
    if not level:
        return []
    if level not in LEVEL_RANK:
        raise HTTPException(400, f"level {level!r}: one of {', '.join(LEVEL_RANK)}")
    return [lv for lv, r in LEVEL_RANK.items() if r >= LEVEL_RANK[level]]


@router.get("")
async def list_alerts(
    request: Request,
    tenant: str | None = Query(None, description="Tenant id(s), comma-separated; default all you may read"),
    status: str | None = Query(None, description="Comma list: new, acknowledged, investigating, resolved, …"),
    level: str | None = Query(None, description="Lowest level: informational, low, medium, high, critical"),
    rule: str | None = Query(None, description="Rule id"),
    case: int | None = Query(None, description="Only the alerts of this case"),
    since: str | None = Query(None, description="Active since: 15m, 2h, 7d, ISO 8601, epoch seconds"),
    until: str | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    scope = scope_of(request, principal, tenant)
    s = soc(request)

    def read() -> tuple[list[dict[str, Any]], int]:
        with s.engine.connect() as conn:
            rows, total = alert_rows.listing(
                conn,
                scope,
                status=[x for x in (status or "").split(",") if x],
                min_rank_levels=min_levels(level),
                rule_id=rule,
                case_id=case,
                since=parse_us(since, "since"),
                until=parse_us(until, "until"),
                limit=limit,
                offset=offset,
            )
        return [alert_from_row(r).as_dict() for r in rows], total

    alerts, total = await asyncio.to_thread(read)
    return {"alerts": alerts, "total": total, "limit": limit, "offset": offset}


class AlertIn(BaseModel):
    """An alert from another tool (EDR, firewall, mail filter …) or a detection of our own."""

    tenant: str
    rule_id: str = Field(min_length=1, max_length=128)
    rule_title: str = Field("", max_length=512)
    level: str = Field("medium", description="informational, low, medium, high or critical")
    tags: list[str] = Field(default_factory=list, description="ATT&CK tags, e.g. attack.t1110.003")
    entities: dict[str, str] = Field(
        default_factory=dict, description=f"ECS fields of what it is about: {', '.join(ENTITY_FIELDS[:6])} …"
    )
    event_seq: int = Field(0, ge=0, description="Seq of the event in Norrvakt's journal; 0 = none")
    event_ts: int | None = Field(
        None, description="When it happened, microseconds since the epoch; default now"
    )
    dedupe_key_fields: list[str] | None = None
    suppression_window_s: int | None = Field(None, ge=0)
    source: str = Field("api", max_length=64)


class AlertBatch(BaseModel):
    alerts: list[AlertIn] = Field(min_length=1, max_length=MAX_BATCH)


@router.post("")
async def create_alerts(
    body: AlertBatch | AlertIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Create alerts (one object, or ``{"alerts": [...]}``); repeats are deduplicated like any other."""
    require_write(principal)
    rt = request.app.state.runtime
    items = body.alerts if isinstance(body, AlertBatch) else [body]
    tenants = sorted({a.tenant for a in items})
    tenant_scope(principal, rt.tenants, ",".join(tenants))  # 403 for tenants not the caller's
    unknown = [t for t in tenants if t not in rt.tenants]
    if unknown:
        raise HTTPException(400, f"unknown tenant(s): {', '.join(unknown)}")
    now = now_us()
    inputs = [
        AlertInput(
            tenant=a.tenant,
            rule_id=a.rule_id,
            rule_title=a.rule_title or a.rule_id,
            level=a.level,
            tags=a.tags,
            event_seq=a.event_seq,
            event_ts=a.event_ts if a.event_ts is not None else now,
            entities=a.entities,
            dedupe_key_fields=a.dedupe_key_fields,
            suppression_window_s=a.suppression_window_s,
            source=a.source,
        )
        for a in items
    ]
    try:
        alerts = await asyncio.to_thread(soc(request).alerts.ingest, inputs)
    except AlertError as exc:
        raise http_error(exc) from exc
    created = sum(1 for a in alerts if a.created)
    await audit.record(
        rt.pipeline,
        principal.username,
        "alert-create",
        peer=peer(request),
        inputs=len(inputs),
        created=created,
        tenants=",".join(tenants),
    )
    return {
        "inputs": len(inputs),
        "created": created,
        "alerts": [a.as_dict() for a in alerts],
    }


@router.get("/indicators")
async def indicators(
    request: Request,
    kind: list[str] = Query(
        ["source.ip", "destination.ip", "user.name", "file.hash.sha256", "file.hash.md5", "url.domain"],
        description="Entity fields to compare across tenants",
    ),
    since: str = Query("7d"),
    min_tenants: int = Query(2, ge=2),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """The same indicator (IP, hash, user) in alerts of several municipalities — for the SOC."""
    if principal.tenants is not None:
        raise HTTPException(403, "the cross-tenant view is for the SOC (roles without a tenant restriction)")
    rt = request.app.state.runtime
    since_us = parse_us(since, "since") or 0
    s = soc(request)

    def read() -> list[dict[str, Any]]:
        with s.engine.connect() as conn:
            return alert_rows.indicators(conn, rt.tenants, kind, since_us, min_tenants, limit)

    return {"indicators": await asyncio.to_thread(read), "since": since_us, "min_tenants": min_tenants}


@router.get("/stats")
async def stats(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    """Intake counters (created, deduplicated, flood-guarded, disabled) and channel status —
    of the caller's tenants only, unless they may read every tenant."""
    s = soc(request)
    if principal.tenants is None:
        return {
            "intake": s.alerts.stats.as_dict(),
            "open_alerts_indexed": len(s.alerts.index),
            "channels": s.dispatcher.status(),
        }
    scope = set(scope_of(request, principal))
    # list(): the detection worker adds keys meanwhile; a key is (tenant, rule, fields, values)
    keys = list(s.alerts.index.by_key)
    return {
        "intake": s.alerts.stats.as_dict(scope),
        "open_alerts_indexed": sum(1 for key in keys if key[0] in scope),
        "channels": {},
    }


@router.get("/notifications")
async def notifications(
    request: Request,
    tenant: str | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """The notification log: sent, failed and rate-limited messages per channel."""
    scope = scope_of(request, principal, tenant)
    rows = await asyncio.to_thread(delivery_log.recent, soc(request).engine, scope, limit)
    return {"notifications": rows}


@router.get("/rules")
async def rule_settings(
    request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Per-rule dedupe fields, suppression window and on/off (``*`` = every tenant)."""
    rt = request.app.state.runtime
    visible = set(principal.scope(rt.tenants)) | ({"*"} if principal.tenants is None else set())
    with soc(request).engine.connect() as conn:
        rows = rule_rows.all_settings(conn)
    return {"rules": [r for r in rows if r["tenant"] in visible]}


class RuleSettingsIn(BaseModel):
    tenant: str = Field("*", description="A tenant, or * for every tenant")
    dedupe_fields: list[str] | None = Field(None, description="Key fields; null = alerts.dedupe_fields")
    window_s: int | None = Field(None, ge=0, description="Suppression window; null = the default")
    enabled: bool = True


@router.put("/rules/{rule_id}")
async def put_rule_settings(
    rule_id: str, body: RuleSettingsIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    require_write(principal)
    rt = request.app.state.runtime
    if body.tenant == "*":
        if principal.tenants is not None:
            raise HTTPException(403, "settings for every tenant need a role without a tenant restriction")
    else:
        try:  # stored verbatim: exactly one tenant, not "boden," or " boden" (400)
            rule_rows.setting_tenant(body.tenant, rt.tenants, principal.scope(rt.tenants))
        except StatusError as exc:
            raise http_error(exc) from None
        tenant_scope(principal, rt.tenants, body.tenant)  # 403 for a tenant that is not yours
    s = soc(request)
    rule_rows.put(
        s.engine,
        rule_id,
        body.tenant,
        dedupe_fields=body.dedupe_fields,
        window_s=body.window_s,
        enabled=body.enabled,
        actor=principal.username,
        at=now_us(),
    )
    s.alerts.reload_rules()
    await audit.record(
        rt.pipeline,
        principal.username,
        "rule-settings",
        peer=peer(request),
        rule=rule_id,
        tenant=body.tenant,
        dedupe_fields=",".join(body.dedupe_fields or []),
        window_s=body.window_s if body.window_s is not None else "",
        enabled=body.enabled,
    )
    return {"rule_id": rule_id, **body.model_dump()}


def _alert(request: Request, principal: Principal, alert_id: int) -> dict[str, Any]:
    s = soc(request)
    scope = principal.scope(request.app.state.runtime.tenants)
    with s.engine.connect() as conn:
        row = alert_rows.get(conn, alert_id)
        if row is None or row["tenant"] not in scope:
            raise HTTPException(404, f"no alert {alert_id}")
        out = alert_from_row(row).as_dict()
        out["evidence"] = alert_rows.evidence(conn, alert_id)
    return out


@router.get("/{alert_id}")
async def get_alert(
    alert_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """One alert with its evidence (journal seqs of its first events)."""
    return await asyncio.to_thread(_alert, request, principal, alert_id)


@router.get("/{alert_id}/events")
async def alert_events(
    alert_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """The alert's evidence events (from the store, or the journal once the store dropped them)."""
    rt = request.app.state.runtime
    alert = await asyncio.to_thread(_alert, request, principal, alert_id)
    events = await asyncio.to_thread(evidence.fetch, rt.store, rt.journal, alert["tenant"], alert["evidence"])
    await audit.record(
        rt.pipeline,
        principal.username,
        "search",
        peer=peer(request),
        query=f"evidence of alert {alert_id}",
        tenants=alert["tenant"],
        hits=len(events),
    )
    return {"alert_id": alert_id, "events": events, "count": alert["count"]}


class StatusIn(BaseModel):
    status: str
    note: str = ""


@router.post("/{alert_id}/status")
async def set_alert_status(
    alert_id: int, body: StatusIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Status of an alert outside any case (alerts in a case follow their case)."""
    require_write(principal)
    rt = request.app.state.runtime
    try:
        alert = await asyncio.to_thread(
            soc(request).cases.set_alert_status,
            alert_id,
            body.status,
            principal.username,
            principal.scope(rt.tenants),
        )
    except AlertError as exc:
        raise http_error(exc) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "alert-status",
        peer=peer(request),
        alert=alert_id,
        status=body.status,
    )
    return alert.as_dict()
