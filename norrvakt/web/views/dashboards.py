"""Dashboards: per tenant and for the whole region — events per source over time, source
health (silent sources highlighted), alerts and response times, and the ATT&CK coverage of
the loaded rules. Charts are Chart.js specs rendered into the page as data."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt.event import now_us
from norrvakt.store.analytics import SourceHealthCache, series
from norrvakt.web.auth import tenant_scope
from norrvakt.web.templating import render
from norrvakt.web.views import saved_searches as saved_api
from norrvakt.web.views.pages import page_user

router = APIRouter(include_in_schema=False)

PALETTE = ["#0b5fa5", "#d2691e", "#2e7d32", "#8e24aa", "#b8860b", "#00838f", "#c62828", "#5d4037", "#90a4ae"]
TACTICS = [
    "reconnaissance",
    "resource_development",
    "initial_access",
    "execution",
    "persistence",
    "privilege_escalation",
    "defense_evasion",
    "credential_access",
    "discovery",
    "lateral_movement",
    "collection",
    "command_and_control",
    "exfiltration",
    "impact",
]


def coverage(tags_per_rule: list[list[str]]) -> list[dict[str, Any]]:
    """Rules and distinct techniques per ATT&CK tactic, from the rules' tags."""
    rules: Counter[str] = Counter()
    techniques: dict[str, set[str]] = {t: set() for t in TACTICS}
    for tags in tags_per_rule:
        lowered = [t.lower() for t in tags]
        tactics = [t.removeprefix("attack.") for t in lowered if t.removeprefix("attack.") in techniques]
        techs = {t.removeprefix("attack.") for t in lowered if t.startswith("attack.t")}
        for tactic in tactics:
            rules[tactic] += 1
            techniques[tactic] |= techs
    top = max(rules.values(), default=1)
    return [
        {
            "tactic": t,
            "label": t.replace("_", " ").title(),
            "rules": rules[t],
            "techniques": len(techniques[t]),
            "heat": 0 if not rules[t] else 1 + min(2, 3 * rules[t] // (top + 1)),
        }
        for t in TACTICS
    ]


async def _none() -> None:
    return None


def _health(rt: Any) -> SourceHealthCache:
    cache: SourceHealthCache | None = rt.extras.get("source_health_cache")
    if cache is None:
        cache = rt.extras["source_health_cache"] = SourceHealthCache(rt.store)
    return cache


@router.get("/dashboards", response_class=HTMLResponse)
async def dashboards(request: Request, tenant: str = "", hours: int = 24) -> Response:
    user = page_user(request)
    rt = request.app.state.runtime
    scope = tenant_scope(user, rt.tenants, tenant or None)
    now = now_us()
    since = now - max(1, min(hours, 24 * 30)) * 3600 * 1_000_000
    alerts = rt.extras.get("alert_dashboard")
    # independent reads (store and state database) side by side
    by_source, health, alert_data = await asyncio.gather(
        asyncio.to_thread(series, rt.store, scope, since, now, "source", 24, 8),
        asyncio.to_thread(_health(rt).get, scope, now),
        asyncio.to_thread(alerts, scope, since) if alerts else _none(),
    )
    labels = [_hour(t) for t in by_source["times"]]
    chart = {
        "type": "bar",
        "data": {
            "labels": labels,
            "datasets": [
                {"label": name, "data": values, "backgroundColor": PALETTE[i % len(PALETTE)]}
                for i, (name, values) in enumerate(by_source["series"].items())
            ],
        },
        "options": {
            "animation": False,
            "responsive": True,
            "scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}},
        },
    }
    rules = rt.extras.get("ruleset_tags")
    pinned = await saved_api.dashboard_panels(request, user, tenant or None)
    kinds = sorted({_kind(h["source"], h["tenant"]) for h in health})
    grid: dict[str, list[dict[str, Any] | None]] = {}
    for h in health:
        row = grid.setdefault(h["tenant"], [None] * len(kinds))
        row[kinds.index(_kind(h["source"], h["tenant"]))] = h
    return render(
        request,
        "dashboards.html",
        user,
        tenant=tenant,
        hours=hours,
        chart=json.dumps(chart),
        health_kinds=kinds,
        health_grid=sorted(grid.items()),
        alert_data=alert_data,
        alert_chart=json.dumps(alert_data["severity_chart"]) if alert_data else None,
        coverage=coverage(rules() if rules else []),
        rule_count=len(rules()) if rules else 0,
        pinned=pinned,
    )


def _kind(source: str, tenant: str) -> str:
    """Column of the health grid: the source id without the tenant prefix (lulea-winlogbeat → winlogbeat)."""
    return source.removeprefix(f"{tenant}-")


def _hour(us: int) -> str:
    import time

    return time.strftime("%d/%m %H:%M", time.localtime(us / 1e6))
