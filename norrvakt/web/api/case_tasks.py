"""/api/case-templates, /api/cases/{id}/tasks, /api/case-tasks/mttr — case templates and the
task checklists they give cases: apply a template, add a task, set a task's state or assignee;
the time from open to done per task, for one case and summed up per template and task.

Every change is a line of the case's history (on its timeline) and journaled before the answer
goes out, as for any case change. Other tenants' cases are 404, like unknown ones; auditors read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from norrvakt.alerts.case_tasks import STATES, TaskService
from norrvakt.alerts.case_templates import CaseTemplate, TemplateError, load_templates
from norrvakt.alerts.errors import AlertError
from norrvakt.alerts.sla import human
from norrvakt.event import now_us
from norrvakt.state.accounts import Principal
from norrvakt.web.api.alerts import http_error, parse_us, scope_of, soc
from norrvakt.web.api.cases import _all_scope, _change
from norrvakt.web.auth import current_principal

router = APIRouter(tags=["cases"])
EXTRAS_KEY = "case_tasks"


def task_service(request: Request) -> TaskService:
    """The runtime's task service, made on first use with the templates of the settings."""
    rt = request.app.state.runtime
    found: TaskService | None = rt.extras.get(EXTRAS_KEY)
    if found is None:
        extra = rt.settings.cases.templates_dir
        try:
            templates = load_templates([Path(extra)] if extra else [])
        except TemplateError as exc:
            raise HTTPException(503, f"case templates cannot be used: {exc}") from exc
        found = TaskService(soc(request).engine, templates)
        rt.extras[EXTRAS_KEY] = found
    return found


def templates(request: Request) -> dict[str, CaseTemplate]:
    return dict(task_service(request).templates)


@router.get("/api/case-templates")
async def list_templates(
    request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """The templates (incident types) with their tasks in order, in Swedish and English."""
    del principal  # any logged-in user: templates hold no tenant's data
    return {"templates": [t.as_dict() for t in templates(request).values()]}


@router.get("/api/cases/{case_id}/tasks")
async def case_tasks(
    case_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """The case's tasks in order (state, assignee, time to done) and the templates it has."""
    svc = task_service(request)
    try:
        return await asyncio.to_thread(svc.tasks, case_id, _all_scope(request, principal))
    except AlertError as exc:
        raise http_error(exc) from exc


class TemplateIn(BaseModel):
    template: str = Field(min_length=1, max_length=64, description="A template id, e.g. account_compromise")


@router.post("/api/cases/{case_id}/template", status_code=201)
async def apply_template(
    case_id: int, body: TemplateIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Give the case the template's tasks (open, in the template's order)."""
    svc = task_service(request)
    return await _change(
        request,
        principal,
        svc.apply_template,
        case_id,
        body.template,
        principal.username,
        _all_scope(request, principal),
    )


class TaskIn(BaseModel):
    title: str = Field(min_length=1, max_length=512)
    assignee: str | None = None


@router.post("/api/cases/{case_id}/tasks", status_code=201)
async def add_task(
    case_id: int, body: TaskIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """A task of one's own on the case."""
    svc = task_service(request)
    return await _change(
        request,
        principal,
        svc.add,
        case_id,
        body.title,
        principal.username,
        _all_scope(request, principal),
        assignee=body.assignee,
    )


class TaskChange(BaseModel):
    state: str | None = Field(None, description=", ".join(STATES))
    assignee: str | None = Field(None, description="User name; empty string = nobody")


@router.patch("/api/cases/{case_id}/tasks/{task_id}")
async def change_task(
    case_id: int,
    task_id: int,
    body: TaskChange,
    request: Request,
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Set a task's state and/or assignee (only the fields sent)."""
    kwargs: dict[str, Any] = {"state": body.state or None}
    if "assignee" in body.model_fields_set:
        kwargs["assignee"] = body.assignee
    svc = task_service(request)
    return await _change(
        request,
        principal,
        svc.change,
        case_id,
        task_id,
        principal.username,
        _all_scope(request, principal),
        **kwargs,
    )


@router.get("/api/case-tasks/mttr")
async def time_to_done(
    request: Request,
    tenant: str | None = Query(None, description="Tenant id(s), comma-separated; default all you may read"),
    since: str = Query("90d", description="Tasks opened since: 30d, 90d, ISO 8601 …"),
    until: str | None = Query(None),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Per template and task: opened, done, not applicable, open, and the mean (MTTR) and median
    time from open to done — of the caller's tenants (every tenant for the SOC)."""
    scope = scope_of(request, principal, tenant)
    since_us = parse_us(since, "since") or 0
    until_us = parse_us(until, "until") or now_us()
    rows = await asyncio.to_thread(task_service(request).time_to_done, scope, since_us, until_us)
    for r in rows:
        r["mttr"], r["median"] = human(r["mttr_s"]), human(r["median_s"])
    return {"since": since_us, "until": until_us, "tasks": rows}
