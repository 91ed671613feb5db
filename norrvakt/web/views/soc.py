"""The SOC's screens: the alert queue (newest and most severe first, filters, bulk
acknowledge, counts that update live) and cases (timeline, comments, assignment, status,
NIS2 deadlines). They read through the same API functions the JSON clients use, so tenant
scoping and audit are the API's; changes are made by the page calling the JSON API."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt.config import LEVELS
from norrvakt.web.api import alerts as alerts_api
from norrvakt.web.api import cases as cases_api
from norrvakt.web.templating import render
from norrvakt.web.views import nis2_panel
from norrvakt.web.views.enrichment import annotate
from norrvakt.web.views.pages import page_user

router = APIRouter(include_in_schema=False)

STATUSES = ["new", "acknowledged", "investigating", "resolved", "false_positive"]
OPEN = "new,acknowledged,investigating"


def _sort(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {level: i for i, level in enumerate(LEVELS)}
    return sorted(alerts, key=lambda a: (-rank.get(a["level"], 0), -int(a["last_seen"] or 0)))


async def _alerts(
    request: Request, user: Any, tenant: str, status: str, level: str, rule: str, limit: int = 200
) -> dict[str, Any]:
    return await alerts_api.list_alerts(
        request,
        tenant=tenant or None,
        status=status or None,
        level=level or None,
        rule=rule or None,
        case=None,
        since=None,
        until=None,
        limit=limit,
        offset=0,
        principal=user,
    )


@router.get("/alerts", response_class=HTMLResponse)
async def alert_queue(
    request: Request, tenant: str = "", status: str = OPEN, level: str = "", rule: str = ""
) -> Response:
    user = page_user(request)
    result = await _alerts(request, user, tenant, status, level, rule)
    annotate(request, result["alerts"])  # asset and account as they are now (norrvakt.enrich)
    return render(
        request,
        "alerts.html",
        user,
        alerts=_sort(result["alerts"]),
        total=result["total"],
        tenant=tenant,
        status=status,
        level=level,
        rule=rule,
        levels=LEVELS,
        statuses=STATUSES,
        counts=_counts(result["alerts"]),
    )


@router.get("/ui/alerts/counts", response_class=HTMLResponse)
async def alert_counts(
    request: Request, tenant: str = "", status: str = OPEN, level: str = "", rule: str = ""
) -> Response:
    user = page_user(request)
    result = await _alerts(request, user, tenant, status, level, rule, limit=1000)
    return render(
        request, "_alert_counts.html", user, counts=_counts(result["alerts"]), total=result["total"]
    )


def _counts(alerts: list[dict[str, Any]]) -> list[tuple[str, int]]:
    by_level = Counter(a["level"] for a in alerts)
    return [(lvl, by_level[lvl]) for lvl in reversed(LEVELS) if by_level[lvl]]


@router.get("/cases", response_class=HTMLResponse)
async def case_list(
    request: Request, tenant: str = "", status: str = OPEN, overdue: bool = False
) -> Response:
    user = page_user(request)
    result = await cases_api.list_cases(
        request,
        tenant=tenant or None,
        status=status or None,
        severity=None,
        assignee=None,
        significant=None,
        overdue=overdue,
        limit=200,
        offset=0,
        principal=user,
    )
    return render(
        request,
        "cases.html",
        user,
        cases=result["cases"],
        total=result["total"],
        tenant=tenant,
        status=status,
        overdue=overdue,
        statuses=STATUSES,
    )


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_view(case_id: int, request: Request) -> Response:
    user = page_user(request)
    case = await cases_api.get_case(case_id, request, principal=user)
    annotate(request, case["alerts"])  # asset and account as they are now (norrvakt.enrich)
    history = (await cases_api.case_history(case_id, request, principal=user))["history"]
    evidence: list[dict[str, Any]] = []
    for alert in case["alerts"][:5]:
        try:
            got = await alerts_api.alert_events(alert["id"], request, principal=user)
        except HTTPException:
            continue
        for event in got["events"][:10]:
            evidence.append({**event, "alert_id": alert["id"]})
    timeline = sorted(
        [
            {
                "at": a["first_seen"],
                "kind": "alert",
                "text": f"{a['rule']['title']} ×{a['count']}",
                "level": a["level"],
                "id": a["id"],
                "context": a.get("context"),
            }
            for a in case["alerts"]
        ]
        + [
            {
                "at": c["at"],
                "kind": "change",
                "text": f"{c['actor']}: {c['action']} {c['field']} {c['old']} → {c['new']}",
            }
            for c in history
        ]
        + [
            {
                "at": e.get("ts", 0),
                "kind": "event",
                "text": e.get("message", "")[:200],
                "seq": e.get("seq"),
                "tenant": e.get("tenant"),
            }
            for e in evidence
        ],
        key=lambda x: x["at"] or 0,
    )
    await asyncio.sleep(0)
    panel = await nis2_panel.context(case_id, request, user)
    return render(request, "case.html", user, case=case, timeline=timeline, statuses=STATUSES[1:], **panel)
