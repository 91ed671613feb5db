"""Health and pipeline counters."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request

from norrvakt import __version__
from norrvakt.event import now_us
from norrvakt.state.accounts import Principal
from norrvakt.web.auth import current_principal

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """``ok``, or ``degraded`` with every problem: the journal refusing records, the store
    failing, the integrity watch not running or failing, a witness that cannot be reached.
    A monitor should alert on anything but ``ok``."""
    rt = request.app.state.runtime
    watch = rt.extras.get("integrity_watch")
    integrity = watch.health() if watch is not None else None
    problems = health_problems(rt, integrity)
    out: dict[str, Any] = {
        "status": "degraded" if problems else "ok",
        "version": __version__,
        "problems": problems,
        "indexer_backlog": rt.indexer.backlog(),
    }
    if integrity is not None:
        out["integrity"] = integrity
    return out


def health_problems(rt: Any, integrity: dict[str, Any] | None) -> list[dict[str, str]]:
    """``integrity``: the background verification's state (``IntegrityWatch.health()``)."""
    problems: list[dict[str, str]] = []
    refusing = rt.pipeline.refusing
    if refusing:
        since = rt.pipeline.failed_since
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)) if since else "?"
        problems.append({"component": "journal", "reason": f"records are refused since {when}: {refusing}"})
    if rt.pipeline.held:
        problems.append(
            {
                "component": "audit",
                "reason": f"{rt.pipeline.held} audit event(s) wait for the journal to be writable",
            }
        )
    if rt.indexer.last_error:
        problems.append({"component": "store", "reason": rt.indexer.last_error})
    if rt.settings.integrity.enabled:
        for name, why in sorted(rt.checkpointer.stats.witness_failing.items()):
            problems.append({"component": "witness", "reason": f"{name}: {why}"})
        problems.extend(_watch_problems(rt, integrity or {}))
    return problems


def _watch_problems(rt: Any, state: dict[str, Any]) -> list[dict[str, str]]:
    """The background verification: configured but not running, or its last run failed."""
    if rt.settings.integrity.verify_every_minutes <= 0:
        return []
    out = []
    if not state.get("running", False):
        out.append({"component": "integrity", "reason": "the background verification is not running"})
    if state.get("last_error"):
        out.append(
            {"component": "integrity", "reason": f"verification could not complete: {state['last_error']}"}
        )
    return out


@router.get("/stats")
async def stats(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    rt = request.app.state.runtime
    scope = set(principal.scope(rt.tenants))
    tenants = {
        t: {"journaled": rt.journal.committed_seq(t), "stored": rt.indexer.stored_seq(t)}
        for t in rt.journal.tenants()
        if t in scope
    }
    out: dict[str, Any] = {"tenants": tenants, "uptime_s": (now_us() - rt.started_at) / 1e6}
    if principal.tenants is None:  # counters span all tenants: SOC and admins only
        out["pipeline"] = rt.pipeline.counters.as_dict()
        out["journal"] = {"backlog": rt.pipeline.backlog()}  # the journal owner's (this process)
        if rt.pipeline.pool is not None:  # each parse worker: events/s, queue depth, errors
            out["workers"] = rt.pipeline.pool.as_dict()
        out["indexer"] = {"backlog": rt.indexer.backlog(), "last_error": rt.indexer.last_error}
        detection = rt.extras.get("detection")
        if detection is not None:  # stored batches not yet matched by the rules
            out["detection"] = {"backlog": detection.backlog}
        out["sources"] = [{"id": s.id, "listen": s.describe()} for s in rt.sources]
    return out
