"""/api/rules — the detection rules the server runs (with the load report and hits since
start) and testing a rule against stored events before it goes live.

On/off per rule and tenant is a rule setting: ``GET/PUT /api/alerts/rules``.

A rule test runs in a worker thread for at most ``detection.rule_test_seconds``; then, or when
the client goes away, or when the server shuts down, it stops before its next event or RE2 call
and answers with what it scanned so far (``complete: false``, ``stopped`` and a ``note``). Regexes
run in RE2, in time linear in the event (:mod:`norrvakt.detect.regex`), so a hostile pattern
neither stalls the thread nor holds the GIL: acknowledgements and ``/api/health`` keep answering.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from norrvakt import audit
from norrvakt.detect.backtest import RulesUnderTest, RuleTestError, RuleTestStop, backtest, match_dict
from norrvakt.detect.live import derived_fields, live_summary
from norrvakt.detect.report import LoadReport, RuleStatus
from norrvakt.event import now_us
from norrvakt.state.accounts import Principal
from norrvakt.store.scan import EventScan
from norrvakt.web.api import alerts as alerts_api
from norrvakt.web.auth import current_principal, peer, tenant_scope

router = APIRouter(prefix="/api/rules", tags=["rules"])

TOGGLED_KINDS = ("rule", "correlation", "intel", "baseline")  # what a rule setting can switch off
CONCURRENT_TESTS = 2
WATCH_SECONDS = 0.25  # how often a running test looks for a gone client or a stopping server
STOPPED = {
    "time": "stopped after {budget:g} s (detection.rule_test_seconds)",
    "disconnected": "stopped: the client went away",
    "shutdown": "stopped: the server is shutting down",
}
T = TypeVar("T")


def _live(request: Request) -> Any:
    """The running :class:`~norrvakt.detect.live.LiveDetection` with an engine, or None."""
    live = request.app.state.runtime.extras.get("detection")
    return live if live is not None and live.engine is not None else None


@router.get("")
async def list_rules(
    request: Request,
    q: str = Query("", description="Words that the title, id or an ATT&CK tag must contain"),
    status: str = Query("", description="loaded or not_loaded; empty: both"),
    tenant: str | None = Query(None, description="Hits of these tenants (comma list); default all yours"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Every row of the load report (built-in and configured rule folders, intel lists) with
    its ATT&CK tags, detections since start in your tenants, and its on/off settings."""
    rt = request.app.state.runtime
    scope = tenant_scope(principal, rt.tenants, tenant)
    if status not in ("", "loaded", "not_loaded"):
        raise HTTPException(400, f"status {status!r}: loaded, not_loaded or empty")
    live = _live(request)
    if live is None:
        return {"running": False, "summary": None, "rules": [], "total": 0}
    report: LoadReport = live.report
    tags = _tags(live.engine)
    hits = _hits(live, scope)
    settings = (await alerts_api.rule_settings(request, principal))["rules"]
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for row in settings:
        by_rule.setdefault(row["rule_id"], []).append(
            {k: row[k] for k in ("tenant", "enabled", "dedupe_fields", "window_s")}
        )
    words = q.lower().split()
    rows = []
    for e in sorted(report.entries, key=lambda e: (e.loaded, e.path, e.line)):
        row = _row(e, tags.get(e.id, ()), hits.get(e.id, 0), by_rule.get(e.id, []))
        row.update(_live_state(live, e, scope))
        if status and (status == "loaded") != e.loaded:
            continue
        text = " ".join([e.title, e.id, *row["tags"]]).lower()
        if all(w in text for w in words):
            rows.append(row)
    loaded = sum(1 for e in report.entries if e.loaded)
    return {
        "running": True,
        "summary": {
            "loaded": loaded,
            "not_loaded": len(report.entries) - loaded,
            "seconds": round(report.seconds, 3),
            "files": report.files,
            "cached": report.cached,
            "text": report.summary(),
            "live": live_summary(live.engine.live) if live.engine.live is not None else "",
        },
        "rules": rows,
        "total": len(rows),
    }


def _row(e: RuleStatus, tags: tuple[str, ...], hits: int, settings: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": e.id,
        "title": e.title,
        "kind": e.kind,
        "level": e.level,
        "loaded": e.loaded,
        "state": e.state,
        "reason": e.reason,
        "path": e.path,
        "line": e.line,
        "tags": list(tags),
        "attack": [t.removeprefix("attack.") for t in tags if t.lower().startswith("attack.")],
        "hits": hits,
        "settings": settings,
        "switchable": e.loaded and bool(e.id) and e.kind in TOGGLED_KINDS,
    }


def _live_state(live: Any, e: RuleStatus, scope: list[str]) -> dict[str, Any]:
    """Whether a loaded rule or correlation runs live in the tenants of ``scope``, and why not
    (the live-set policy, docs/rules.md "What runs live", or a rule setting)."""
    if not e.loaded or e.kind not in ("rule", "correlation") or not e.id:
        return {"live": e.loaded, "live_tenants": [], "not_live": ""}
    state: dict[str, Any] = live.live_state(e.id, scope)
    return state


def _tags(engine: Any) -> dict[str, tuple[str, ...]]:
    out = {info.id: tuple(info.tags) for info in engine.rules.rules}
    out.update({spec.info.id: tuple(spec.info.tags) for spec in engine.rules.correlations})
    return out


def _hits(live: Any, scope: list[str]) -> dict[str, int]:
    """Detections since start per rule, counted in the tenants of ``scope`` only."""
    wanted = set(scope)
    out: dict[str, int] = {}
    for (tenant, rule_id), n in list(live.tenant_hits.items()):
        if tenant in wanted:
            out[rule_id] = out.get(rule_id, 0) + n
    return out


class RuleTestIn(BaseModel):
    """A rule to test: Sigma YAML (``rule``) or the id of a loaded rule (``rule_id``)."""

    rule: str | None = Field(None, max_length=200_000, description="Sigma rule YAML (one or more documents)")
    rule_id: str | None = Field(None, max_length=256, description="Id of a rule the server has loaded")
    tenant: str | None = Field(None, description="Tenant id(s), comma-separated; default all you may read")
    since: str = Field("24h", description="15m, 2h, 7d, ISO 8601 or epoch seconds")
    until: str | None = Field(None, description="Same forms; default now")
    limit: int = Field(100_000, ge=1, le=1_000_000, description="Events scanned at most (the newest)")


@router.post("/test", response_model=None)
async def test_rule(
    body: RuleTestIn, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any] | JSONResponse:
    """Run a rule over the stored events of your tenants in a time range, as live detection
    would have run it (same compiler, pipeline and derived fields; a fresh engine), and say
    what it matches. A rule that does not load answers 400 with the reasons and lines.

    The test runs for at most ``detection.rule_test_seconds``. A test that runs out of time
    answers 200 with ``complete: false``, ``stopped: "time"`` and a note: the counts cover the
    ``scanned`` events, the oldest of the range first. Closing the connection stops the test.
    When every test slot stays busy for that long, the answer is 503."""
    rt = request.app.state.runtime
    scope = tenant_scope(principal, rt.tenants, body.tenant)
    if not scope:
        raise HTTPException(403, "no tenants in scope")
    text = (body.rule or "").strip()
    if bool(text) == bool(body.rule_id):
        raise HTTPException(400, "give either rule (Sigma YAML) or rule_id (a loaded rule), not both")
    until = alerts_api.parse_us(body.until, "until") or now_us()
    since = alerts_api.parse_us(body.since, "since")
    if since is None or since >= until:
        raise HTTPException(400, "since: must be before until (e.g. 24h, 7d, 2026-11-01)")
    what = body.rule_id or f"yaml:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    details = {"rule": what, "tenants": ",".join(scope), "since": body.since, "until": body.until or ""}
    live = _live(request)
    try:
        if body.rule_id:
            if live is None:
                raise HTTPException(409, "live detection is not running: test the rule's YAML instead")
            tested = _loaded(live, body.rule_id)
        else:
            derived = derived_fields(rt.settings)
            tested = await asyncio.to_thread(RulesUnderTest.from_yaml, text, derived)
    except RuleTestError as exc:
        await audit.record(
            rt.pipeline,
            principal.username,
            "rule-test",
            peer=peer(request),
            outcome="failure",
            error=str(exc),
            **details,
        )
        errors = [
            {"line": p.line, "kind": p.kind, "title": p.title, "reason": p.reason} for p in exc.problems
        ]
        return JSONResponse({"detail": f"the rule does not load: {exc}", "errors": errors}, status_code=400)

    budget = float(rt.settings.detection.rule_test_seconds)

    def run() -> tuple[EventScan, Any]:
        scan = EventScan.open(rt.store, scope, since, until, body.limit)
        return scan, backtest(tested, scan.batches(), stop=stop)

    slots: asyncio.Semaphore = rt.extras.setdefault("rule_test_slots", asyncio.Semaphore(CONCURRENT_TESTS))
    try:
        await asyncio.wait_for(slots.acquire(), timeout=budget)
    except TimeoutError:
        busy = f"{CONCURRENT_TESTS} rule tests are running and none ended within {budget:g} s; try again"
        await audit.record(
            rt.pipeline,
            principal.username,
            "rule-test",
            peer=peer(request),
            outcome="failure",
            error=busy,
            **details,
        )
        raise HTTPException(503, busy, headers={"Retry-After": str(max(1, round(budget)))}) from None
    stop = RuleTestStop(budget)  # the budget is the test's own: it starts with its slot
    try:
        scan, result = await _watched(request, stop, run)
    finally:
        slots.release()
    note = (
        STOPPED.get(result.stopped, f"stopped: {result.stopped}").format(budget=budget)
        if result.stopped
        else ""
    )
    if note:
        note += f": {result.scanned} of the {min(scan.total, body.limit)} events scanned, the oldest first"
    await audit.record(
        rt.pipeline,
        principal.username,
        "rule-test",
        peer=peer(request),
        scanned=result.scanned,
        matched=result.matched,
        stopped=result.stopped,
        **details,
    )
    statuses = {s.id: s for s in tested.statuses}
    return {
        "complete": not result.stopped,
        "stopped": result.stopped,
        "note": note,
        "scanned": result.scanned,
        "matched": result.matched,
        "seconds": round(result.seconds, 3),
        "in_range": scan.total,
        "from": scan.first_us,
        "until": until,
        "tenants": scope,
        "rules": [
            {
                "id": info.id,
                "title": info.title,
                "level": info.level,
                "matched": n,
                "note": statuses[info.id].reason if info.id in statuses else "",
            }
            for info, n in sorted(result.per_rule.items(), key=lambda x: (x[0].path, x[0].line))
        ],
        "matches": [match_dict(d) for d in result.matches],
        "errors": [],
    }


async def _watched(request: Request, stop: RuleTestStop, work: Callable[[], T]) -> T:
    """``work()`` in a worker thread; ``stop`` is cancelled when the client disconnects, the
    server begins to shut down (uvicorn's ``should_exit``) or this request is cancelled."""
    task = asyncio.ensure_future(asyncio.to_thread(work))
    server = request.app.state.runtime.extras.get("web_server")
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=WATCH_SECONDS)
            if done:
                return task.result()
            if await request.is_disconnected():
                stop.cancel("disconnected")
            elif server is not None and getattr(server, "should_exit", False):
                stop.cancel("shutdown")
    finally:
        if not task.done():  # cancelled while waiting: the thread must not run on unwatched
            stop.cancel("disconnected")


def _loaded(live: Any, rule_id: str) -> RulesUnderTest:
    report: LoadReport = live.report
    rows = [e for e in report.entries if e.id == rule_id]
    if rows and not any(e.loaded for e in rows):
        raise RuleTestError(f"rule {rule_id} did not load: {rows[0].reason}", rows)
    try:
        return RulesUnderTest.from_loaded(live.engine.rules, rule_id, rows)
    except LookupError as exc:
        kind = rows[0].kind if rows else ""
        why = " (intel lists are not rules: search for their indicators)" if kind == "intel" else ""
        raise HTTPException(404, f"{exc}{why}") from exc
