"""Alert context for the console: each alert's asset and directory account as they are now
(norrvakt.enrich.severity.AlertContext, one per web process), and why its level moved."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request

from norrvakt.enrich.severity import AlertContext


def alert_context(request: Request) -> AlertContext:
    rt = request.app.state.runtime
    ctx: AlertContext | None = rt.extras.get("alert_context")
    if ctx is None:
        ctx = rt.extras["alert_context"] = AlertContext(rt.state)
    return ctx


def annotate(request: Request, alerts: Iterable[dict[str, Any]]) -> None:
    """Add ``context`` (asset, account, level) to each alert dict, in place."""
    ctx = alert_context(request)
    for a in alerts:
        a["context"] = ctx.describe(str(a["tenant"]), a.get("entities") or {})
