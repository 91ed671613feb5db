"""What a saved search must be before it is stored (:mod:`norrvakt.web.api.saved_searches`): the
tenant it is for, a query that reads, a time range, and for a scheduled search a rule step, a
schedule no longer than its window, sharing, a level, and one run within the scan limit. Each
refusal is an HTTPException with the reason."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request

from norrvakt.config import LEVELS
from norrvakt.detect.scheduled import ScanTooBig, check_scan, rule_scope
from norrvakt.detect.search_rule import parse_every, parse_rule, split_rule
from norrvakt.event import SYSTEM_TENANT, now_us
from norrvakt.state import saved_searches as rows
from norrvakt.state.accounts import Principal
from norrvakt.store.query import parse_query, parse_time
from norrvakt.store.query_ast import QueryError
from norrvakt.web.auth import tenant_scope

CENTRAL_WRITERS = ("admin", "soc_analyst")


def tenant_for(request: Request, principal: Principal, visibility: str, tenant: str | None) -> str:
    rt = request.app.state.runtime
    if visibility == rows.REGION:
        if principal.role not in CENTRAL_WRITERS:
            raise HTTPException(403, "region-wide searches are the SOC's: an analyst or admin saves them")
        if tenant not in (None, "", rows.ALL_TENANTS):
            raise HTTPException(400, "a region-wide search is for every tenant: leave out tenant (or give *)")
        return rows.ALL_TENANTS
    if not tenant:
        mine = [t for t in principal.scope(rt.tenants) if t != SYSTEM_TENANT]
        if principal.tenants is None or len(mine) != 1:
            raise HTTPException(400, "tenant: give the tenant the search is for, e.g. 'lulea'")
        return mine[0]
    if tenant not in rt.tenants or tenant == SYSTEM_TENANT:
        raise HTTPException(400, f"tenant {tenant!r}: give exactly one tenant id, e.g. 'lulea'")
    tenant_scope(principal, rt.tenants, tenant)  # 403 for a tenant that is not the caller's
    return tenant


def checked(request: Request, row: dict[str, Any], schedule: str | None) -> dict[str, Any]:
    """The query, time range, schedule and level of ``row`` checked; ``every_s`` filled in.

    Raises HTTPException 400 with the reason: a query that does not read, a schedule without a
    rule step or the other way round, a bad schedule, a private rule, a run that would read too
    much."""
    rt = request.app.state.runtime
    limits, sr = rt.settings.search, rt.settings.search_rules
    now = now_us()
    text = str(row["query"])
    try:
        for what in ("since", "until"):
            if row[what]:
                parse_time(str(row[what]), now)
        step = split_rule(text)[1]
        if step is None:
            parse_query(text, max_length=limits.max_query_length, max_depth=limits.max_query_depth)
            if schedule:
                raise HTTPException(
                    400,
                    "a schedule needs a rule step at the end of the query: e.g. "
                    "`| count > 50 in 10m by source.ip` or `| absent in 1h by host.name`",
                )
            return {**row, "every_s": None}
        rule = parse_rule(
            text,
            max_length=limits.max_query_length,
            max_depth=limits.max_query_depth,
            max_window_s=sr.max_window_s,
        )
        if not schedule:
            raise HTTPException(
                400, "the query ends in a rule step: give a schedule (e.g. 5m) or drop the step"
            )
        every = parse_every(schedule, min_s=sr.min_every_s, window_s=rule.window_s)
    except QueryError as exc:
        raise HTTPException(400, f"query: {exc.excerpt()}") from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if row["visibility"] == rows.PRIVATE:
        raise HTTPException(
            400, "a scheduled search raises the tenant's alerts: share it (visibility tenant)"
        )
    if row["level"] not in LEVELS:
        raise HTTPException(400, f"level {row['level']!r}: one of {', '.join(LEVELS)}")
    try:
        check_scan(rt.store, rule, rule_scope(row, rt.tenants), now, sr.max_scan_events)
    except ScanTooBig as exc:
        raise HTTPException(400, str(exc)) from None
    return {**row, "every_s": every}
