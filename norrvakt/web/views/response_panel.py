"""The case page's response panel, loaded into it by htmx (``/ui/cases/{id}/response``): the
form that asks for an action (or a dry run), and each action with who asked, who approved,
its state and the target's answer, with approve / reject / retry / undo buttons. It reads
through the JSON API's service, so tenant scoping, the module and the audit are the API's."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt.modules import modules_for
from norrvakt.respond.base import UNDO
from norrvakt.respond.service import MODULE
from norrvakt.web.api import cases as cases_api
from norrvakt.web.api.response import service
from norrvakt.web.templating import render
from norrvakt.web.views.pages import page_user

router = APIRouter(include_in_schema=False)


@router.get("/ui/cases/{case_id}/response", response_class=HTMLResponse)
async def case_response(case_id: int, request: Request) -> Response:
    user = page_user(request)
    case = await cases_api.get_case(case_id, request, principal=user)  # 404 outside the caller's tenants
    svc = service(request)
    scope = user.scope(request.app.state.runtime.tenants)
    actions = await asyncio.to_thread(svc.listing, scope, case_id)
    subscribed = modules_for(request.app.state.runtime).enabled(case["tenant"], MODULE)
    approval = {a: svc.needs_approval(case["tenant"], a) for a in UNDO}
    return render(
        request,
        "_case_response.html",
        user,
        case_id=case_id,
        actions=actions,
        kinds=list(UNDO),
        approval=approval,
        subscribed=subscribed,
    )
