"""The follow-up screens: plans and their rounds (/followup) and one round's review
(/followup/rounds/{id}). They read through the API functions, so tenant scope is the API's;
decisions, annotations and sign-off are made by the page calling the JSON API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt.followup.periods import FREQUENCIES, previous_period
from norrvakt.followup.service import DATASETS, DECISIONS, PLAN_EDITORS
from norrvakt.reports.followup import REASON_LABELS
from norrvakt.web.api import followup as api
from norrvakt.web.templating import render
from norrvakt.web.views.pages import page_user

router = APIRouter(include_in_schema=False)


@router.get("/followup", response_class=HTMLResponse)
async def followup_page(request: Request, tenant: str = "") -> Response:
    user = page_user(request)
    plans = (await api.list_plans(request, tenant=tenant or None, principal=user))["plans"]
    rounds = (await api.list_rounds(request, tenant=tenant or None, principal=user))["rounds"]
    zone = request.app.state.runtime.settings.timezone
    return render(
        request,
        "followup.html",
        user,
        plans=plans,
        rounds_by_plan={p["id"]: [r for r in rounds if r["plan_id"] == p["id"]] for p in plans},
        datasets=DATASETS,
        frequencies=FREQUENCIES,
        can_plan=user.role in PLAN_EDITORS,
        default_period={f: previous_period(f, zone) for f in FREQUENCIES},
        tenant=tenant,
    )


@router.get("/followup/rounds/{round_id}", response_class=HTMLResponse)
async def round_page(request: Request, round_id: int) -> Response:
    user = page_user(request)
    detail = await api.get_round(request, round_id, principal=user)
    return render(
        request,
        "followup_round.html",
        user,
        round=detail,
        plan=detail["plan"],
        system=DATASETS.get(detail["plan"]["dataset"], detail["plan"]["dataset"]),
        reason_labels=REASON_LABELS,
        decisions=DECISIONS,
        is_reviewer=user.username == detail["plan"]["reviewer"] and user.role != "auditor",
    )
