"""Integrity over HTTP: run a verification (as a job with progress), inclusion proofs, keys.

Verification jobs live in memory: at most ``RUNNING_PER_USER`` run at once per user (429
beyond), and finished ones are kept for ``KEEP_FINISHED_S`` (and at most ``KEEP_FINISHED``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from norrvakt import audit
from norrvakt.integrity import options_for, prove, running_cut, verify_running
from norrvakt.journal.keys import SigningKeyError
from norrvakt.journal.log import is_folder_name
from norrvakt.journal.proof import ProofError
from norrvakt.state.accounts import Principal
from norrvakt.store.query import parse_time
from norrvakt.web.auth import current_principal, peer, tenant_scope

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/integrity", tags=["integrity"])

RUNNING_PER_USER = 2  # a verification reads every record: one or two at a time per person is plenty
KEEP_FINISHED_S = 3600.0  # a finished job's report can be fetched for an hour
KEEP_FINISHED = 50  # and at most this many finished jobs are kept (the oldest go first)

_job_ids = itertools.count(1)


@dataclass
class VerifyJob:
    id: int
    owner: str
    tenants: list[str] | None  # None: every tenant anything knows of
    started: float = field(default_factory=time.time)
    finished: float | None = None
    done_records: int = 0
    total_records: int = 0
    report: dict[str, Any] | None = None
    error: str | None = None


class VerifyJobs:
    """The verification jobs of the running server, in memory: bounded per user while they run,
    and dropped after a while once finished (a report can hold thousands of findings)."""

    def __init__(self) -> None:
        self.jobs: dict[int, VerifyJob] = {}

    def prune(self, now: float) -> None:
        finished = sorted(
            (j for j in self.jobs.values() if j.finished is not None), key=lambda j: j.finished or 0.0
        )
        for i, job in enumerate(finished):
            if now - (job.finished or now) > KEEP_FINISHED_S or i < len(finished) - KEEP_FINISHED:
                del self.jobs[job.id]

    def add(self, owner: str, tenants: list[str] | None) -> VerifyJob:
        now = time.time()
        self.prune(now)
        running = [j for j in self.jobs.values() if j.owner == owner and j.finished is None]
        if len(running) >= RUNNING_PER_USER:
            raise HTTPException(
                429,
                f"{owner} already runs {len(running)} verifications (jobs "
                f"{', '.join(str(j.id) for j in running)}); at most {RUNNING_PER_USER} at a time — "
                "wait for one to finish",
            )
        job = VerifyJob(next(_job_ids), owner, tenants, started=now)
        self.jobs[job.id] = job
        return job

    def get(self, job_id: int) -> VerifyJob | None:
        self.prune(time.time())
        return self.jobs.get(job_id)


def _jobs(request: Request) -> VerifyJobs:
    rt = request.app.state.runtime
    jobs: VerifyJobs = rt.extras.setdefault("verify_jobs", VerifyJobs())
    return jobs


def _scope(principal: Principal, configured: list[str], requested: str | None) -> list[str] | None:
    """What a verification covers. SOC, admins and auditors: everything anything knows of —
    also tenants no longer configured, a witness's, the store's, the system tenant — or the
    tenants they name. A tenant officer: their own tenants only."""
    if principal.tenants is not None:
        return tenant_scope(principal, configured, requested)
    if not requested:
        return None
    wanted = list(dict.fromkeys(t.strip() for t in requested.split(",") if t.strip()))
    bad = [t for t in wanted if not is_folder_name(t)]
    if bad:
        raise HTTPException(400, f"not a tenant id: {', '.join(repr(t) for t in bad)}")
    return wanted


@router.post("/verify")
async def start_verify(
    request: Request,
    tenant: str | None = Query(None, description="Tenant(s), comma-separated; default all you may read"),
    since: str | None = Query(None, description="Only checkpoints and records after this time"),
    store: bool = Query(True, description="Also check that the store's rows match the journal"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    rt = request.app.state.runtime
    scope = _scope(principal, rt.tenants, tenant)
    since_us = parse_time(since, time.time_ns() // 1000) if since else None
    job = _jobs(request).add(principal.username, scope)
    cut = await asyncio.to_thread(running_cut, rt)
    job.total_records = sum(n for t, (n, _b) in cut[0].items() if scope is None or t in scope)
    await audit.record(
        rt.pipeline, principal.username, "verify", peer=peer(request), tenants=",".join(scope or ["(all)"])
    )

    def progress(n: int) -> None:
        job.done_records = n

    def run() -> None:
        try:
            options = options_for(rt.settings, tenants=scope, since_us=since_us)
            report = verify_running(rt, cut, options, progress, store=store)
            job.report = report.as_dict()
        except Exception as exc:  # report the failure to the caller instead of a silent job
            log.exception("verification job %d could not complete", job.id)
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.time()

    asyncio.get_running_loop().run_in_executor(None, run)
    return {
        "job": job.id,
        "tenants": scope if scope is not None else "all",
        "total_records": job.total_records,
    }


@router.get("/verify/{job_id}")
async def verify_status(
    job_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    job = _jobs(request).get(job_id)
    if job is None or (job.owner != principal.username and principal.role != "admin"):
        raise HTTPException(404, f"no verification job {job_id} (finished jobs are kept for an hour)")
    state = "failed" if job.error else "done" if job.report is not None else "running"
    return {
        "job": job.id,
        "state": state,
        "done_records": job.done_records,
        "total_records": job.total_records,
        "error": job.error,
        "report": job.report,
    }


@router.get("/proof")
async def inclusion_proof(
    request: Request,
    tenant: str = Query(...),
    seq: int = Query(..., ge=1),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    rt = request.app.state.runtime
    if tenant_scope(principal, rt.tenants, tenant) != [tenant]:
        raise HTTPException(403, f"no access to tenant: {tenant}")
    try:
        proof = await asyncio.to_thread(prove, rt.journal, rt.checkpointer, tenant, seq)
    except ProofError as exc:
        raise HTTPException(404, str(exc)) from exc
    await audit.record(rt.pipeline, principal.username, "prove", peer=peer(request), tenant=tenant, seq=seq)
    return proof


@router.get("/keys")
async def public_keys(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    rt = request.app.state.runtime
    keys = rt.keys.public_keys()
    current = rt.keys.current_id()
    return {"current": current, "keys": {kid: rt.keys.export_public(kid) for kid in keys}}


@router.post("/keys/rotate")
async def rotate_key(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    rt = request.app.state.runtime
    if principal.role != "admin":
        raise HTTPException(403, "only administrators rotate the signing key")
    try:
        rotation = await asyncio.to_thread(rt.keys.rotate, time.time_ns() // 1000)
    except SigningKeyError as exc:
        raise HTTPException(409, str(exc)) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "key-rotate",
        peer=peer(request),
        old=rotation.old,
        new=rotation.new,
        new_public=rotation.new_public,
        signature=rotation.signature,
    )
    await asyncio.to_thread(rt.checkpointer.checkpoint_all)  # seal the rotation with the new key
    return {"old": rotation.old, "new": rotation.new}
