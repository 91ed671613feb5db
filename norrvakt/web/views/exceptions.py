"""The exceptions pages: every exception the caller may see (active, expired, disabled, with
its hits), a form to make one — prefilled from an alert (``/exceptions?alert=ID``: its tenant,
rule and fields) — one exception with the suppressed matches it kept, and the list the rules
page shows (:func:`for_rules_page`).

They read through the JSON API functions and changes go through the JSON API (``POST
/api/exceptions``, ``POST /api/exceptions/{id}/disable``), so scoping and audit are the API's."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt import audit
from norrvakt.alerts import evidence
from norrvakt.state.accounts import Principal
from norrvakt.web.api import exceptions as exceptions_api
from norrvakt.web.auth import peer
from norrvakt.web.templating import render
from norrvakt.web.views.pages import page_user

router = APIRouter(include_in_schema=False)

DEFAULT_DAYS = 30
SUGGESTED_FIELDS = 40  # of the alert's first event, offered as '# field=value' lines
SUGGESTED_CHARS = 400  # longer values (a script block) are not offered
# ECS fields that say what kind of record it is, not what happened: never worth an exception
NOT_SUGGESTED = frozenset(
    {"event.kind", "log.level", "log.syslog.facility.code", "log.syslog.severity.code", "event.dataset"}
)


def _suggestions(event: dict[str, Any], taken: dict[str, str]) -> list[str]:
    """The first event's own fields and its ECS fields, as lines to uncomment."""
    out = []
    for source in (event.get("fields") or {}, event.get("ecs") or {}):
        for k, v in source.items():
            text = str(v)
            if k in taken or k in NOT_SUGGESTED or not text or len(text) > SUGGESTED_CHARS or "\n" in text:
                continue
            out.append(f"# {k}={text}")
            if len(out) >= SUGGESTED_FIELDS:
                return out
    return out


def _prefill(request: Request, user: Principal, alert_id: int | None) -> dict[str, Any]:
    """The form's values: from the alert (its tenant, rule, entities and dedupe key values, and
    its first event's fields as suggestions)."""
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=DEFAULT_DAYS)).date().isoformat()
    out: dict[str, Any] = {"alert": None, "tenant": "", "rule_id": "", "match": "", "expires": until}
    if alert_id is None:
        return out
    row = exceptions_api._from_alert(request, user, alert_id)  # 404 unless the caller may read it
    fields: dict[str, str] = {}
    for source in (row["key_values"], row["entities"]):
        for k, v in source.items():
            if v and not str(k).startswith("norrvakt."):
                fields.setdefault(str(k), str(v))
    lines = [f"{k}={v}" for k, v in fields.items()]
    first = row.get("first_seq")
    if first:
        rt = request.app.state.runtime
        (event,) = evidence.fetch(rt.store, rt.journal, str(row["tenant"]), [int(first)])
        if not event.get("missing"):
            lines += _suggestions(event, fields)
    out.update(
        alert=row,
        tenant=str(row["tenant"]),
        rule_id=str(row["rule"]["id"]),
        match="\n".join(lines),
        first_seq=first,
    )
    return out


def _writable(user: Principal, row: dict[str, Any]) -> bool:
    return (
        user.role != "auditor" and row["state"] == "active" and (row["tenant"] != "*" or user.tenants is None)
    )


@router.get("/exceptions", response_class=HTMLResponse)
async def exceptions_page(
    request: Request,
    alert: int | None = Query(None, ge=1, description="Make an exception from this alert"),
    state: str = Query(""),
) -> Response:
    user = page_user(request)
    listing = await exceptions_api.list_exceptions(request, tenant=None, state=state, principal=user)
    form = await asyncio.to_thread(_prefill, request, user, alert)
    if form["alert"] is not None and form.get("first_seq"):
        await audit.record(  # the form shows the alert's first event, as its evidence view would
            request.app.state.runtime.pipeline,
            user.username,
            "search",
            peer=peer(request),
            query=f"first event of alert {alert}, for an exception",
            tenants=form["tenant"],
            hits=1,
        )
    rows = listing["exceptions"]
    for row in rows:
        row["writable"] = _writable(user, row)
    central = user.tenants is None
    return render(
        request,
        "exceptions.html",
        user,
        rows=rows,
        form=form,
        state=state,
        scopes=(["*"] if central else []) + user.scope(request.app.state.runtime.tenants),
        can_write=user.role != "auditor",
    )


@router.get("/exceptions/{exception_id}", response_class=HTMLResponse)
async def exception_page(exception_id: int, request: Request) -> Response:
    user = page_user(request)
    found = await exceptions_api.get_exception(exception_id, request, limit=200, principal=user)
    found["writable"] = _writable(user, found)
    return render(request, "exception.html", user, e=found)


async def for_rules_page(request: Request, user: Principal) -> list[dict[str, Any]]:
    """The rules page's list: active and expired exceptions with their hits (not disabled)."""
    listing = await exceptions_api.list_exceptions(request, tenant=None, state="", principal=user)
    rows = [r for r in listing["exceptions"] if r["state"] != "disabled"]
    for row in rows:
        row["writable"] = _writable(user, row)
    return rows
