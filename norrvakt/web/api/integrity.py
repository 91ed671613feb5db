"""Integrity over HTTP: run a verification (as a job with progress), inclusion proofs, keys."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from norrvakt import audit
from norrvakt.integrity import VerifyOptions, prove, verify
from norrvakt.journal.proof import ProofError
from norrvakt.state.accounts import Principal
from norrvakt.store.query import parse_time
from norrvakt.web.auth import current_principal, peer, tenant_scope

router = APIRouter(prefix="/api/integrity", tags=["integrity"])

_job_ids = itertools.count(1)


@dataclass
class VerifyJob:
    id: int
    owner: str
    tenants: list[str]
    started: float = field(default_factory=time.time)
    done_records: int = 0
    total_records: int = 0
    report: dict[str, Any] | None = None
    error: str | None = None


def _jobs(request: Request) -> dict[int, VerifyJob]:
    rt = request.app.state.runtime
    jobs: dict[int, VerifyJob] = rt.extras.setdefault("verify_jobs", {})
    return jobs


@router.post("/verify")
async def start_verify(
    request: Request,
    tenant: str | None = Query(None, description="Tenant(s), comma-separated; default all you may read"),
    since: str | None = Query(None, description="Only checkpoints and records after this time"),
    store: bool = Query(True, description="Also check that the store's rows match the journal"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    rt = request.app.state.runtime
    scope = tenant_scope(principal, rt.tenants, tenant)
    since_us = parse_time(since, time.time_ns() // 1000) if since else None
    job = VerifyJob(next(_job_ids), principal.username, scope)
    job.total_records = sum(rt.journal.committed_seq(t) for t in scope)
    _jobs(request)[job.id] = job
    await audit.record(rt.pipeline, principal.username, "verify", peer=peer(request), tenants=",".join(scope))

    def progress(n: int) -> None:
        job.done_records = n

    def run() -> None:
        try:
            report = verify(
                rt.journal,
                rt.keys,
                rt.checkpointer.witnesses,
                rt.store if store else None,
                VerifyOptions(tenants=scope, since_us=since_us),
                progress,
                store_retention_days=rt.settings.store.retention_days,
                indexed_upto={t: rt.indexer.stored_seq(t) for t in scope},
            )
            job.report = report.as_dict()
        except Exception as exc:  # report the failure to the caller instead of a silent job
            job.error = f"{type(exc).__name__}: {exc}"

    asyncio.get_running_loop().run_in_executor(None, run)
    return {"job": job.id, "tenants": scope, "total_records": job.total_records}


@router.get("/verify/{job_id}")
async def verify_status(
    job_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    job = _jobs(request).get(job_id)
    if job is None or (job.owner != principal.username and principal.role != "admin"):
        raise HTTPException(404, f"no verification job {job_id}")
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
    rotation = await asyncio.to_thread(rt.keys.rotate, time.time_ns() // 1000)
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
