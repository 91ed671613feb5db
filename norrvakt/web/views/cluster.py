"""The Cluster page: what `norrvakt cluster status` shows, for the SOC on the console."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt.event import now_us
from norrvakt.web.api.cluster import cluster_view, require_central
from norrvakt.web.templating import render
from norrvakt.web.views.pages import page_user

router = APIRouter(include_in_schema=False)


@router.get("/cluster", response_class=HTMLResponse)
async def cluster_page(request: Request) -> Response:
    user = page_user(request)
    require_central(user)
    view = await cluster_view(request.app.state.runtime)
    return render(request, "cluster.html", user, view=view, now=now_us())
