"""The case page's working parts, loaded into it by htmx: the task checklist (apply a template,
add a task, set state and assignee; time to done), the observables with "search for this"
and — for the SOC — "seen in other municipalities", and the export links. They read through
the JSON API functions, so tenant scoping and audit are the API's."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt.alerts.case_tasks import STATES
from norrvakt.alerts.sla import human
from norrvakt.web.api import case_observables as observables_api
from norrvakt.web.api import case_tasks as tasks_api
from norrvakt.web.api import cases as cases_api
from norrvakt.web.templating import language, render
from norrvakt.web.views.pages import page_user

router = APIRouter(include_in_schema=False)


@router.get("/ui/cases/{case_id}/work", response_class=HTMLResponse)
async def case_work(case_id: int, request: Request) -> Response:
    user = page_user(request)
    tasks = await tasks_api.case_tasks(case_id, request, principal=user)
    found = await observables_api.observables(case_id, request, principal=user)
    lang = language(request)
    for t in tasks["tasks"]:
        t["text"] = t["title"]["sv" if lang == "sv" else "en"]
        t["time_to_done"] = human(t["time_to_done_s"]) if t["time_to_done_s"] is not None else ""
    tasks["summary"]["mean"] = human(tasks["summary"]["mean_time_to_done_s"])
    case = await cases_api.get_case(case_id, request, principal=user)
    tags = [tag for a in case["alerts"] for tag in a["rule"]["tags"]]
    # templates whose tags the case's alerts carry come first, marked as suggested
    templates = sorted(
        (
            (tid, t.title(lang), t.suits(tags))
            for tid, t in tasks_api.templates(request).items()
            if tid not in tasks["templates"]
        ),
        key=lambda x: not x[2],
    )
    return render(
        request,
        "_case_work.html",
        user,
        case_id=case_id,
        tasks=tasks,
        states=STATES,
        templates=templates,
        observables=found,
    )


@router.get("/ui/cases/{case_id}/pivot", response_class=HTMLResponse)
async def case_pivot(case_id: int, request: Request, kind: str, value: str) -> Response:
    user = page_user(request)
    seen = await observables_api.pivot(case_id, request, kind=kind, value=value, principal=user)
    return render(request, "_case_pivot.html", user, seen=seen)
