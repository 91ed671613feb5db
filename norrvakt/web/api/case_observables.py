"""/api/cases/{id}/observables — what a case is about (IPs, users, hosts, hashes, domains,
URLs from its alerts and their evidence events), each with a search for it in the caller's
scope; the SOC's "seen in other municipalities" pivot; and the case's indicators exported as
a STIX 2.1 bundle or a MISP event, to share with CERT-SE or a MISP community.

Reading observables reads evidence events and is audited as a search; the pivot (region-wide
roles only: a tenant officer gets 403, whatever the case) as a search over the other tenants;
an export as an export. Other tenants' cases are 404, like unknown ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from norrvakt import audit
from norrvakt.alerts import evidence, misp_export, stix_export
from norrvakt.alerts.errors import AlertError
from norrvakt.alerts.observables import KIND_FIELDS, KINDS, Extraction, Observable, case_observables
from norrvakt.event import now_us
from norrvakt.search import run_search
from norrvakt.state import case_tasks as task_rows
from norrvakt.state.accounts import Principal
from norrvakt.store.query import QueryError
from norrvakt.web.api.alerts import http_error, soc
from norrvakt.web.api.cases import _all_scope
from norrvakt.web.auth import current_principal, peer

router = APIRouter(prefix="/api/cases", tags=["cases"])

# Shared by default: what identifies an attacker. People and machines of the municipality
# (users, hosts) and its own addresses only when the analyst asks for them.
DEFAULT_EXPORT = ("ip", "domain", "url", "md5", "sha1", "sha256")


def search_url(o: Observable, since: str = "30d") -> str:
    """The search page with this observable's query, in the caller's scope (the page checks it)."""
    return "/search?" + urlencode({"q": o.search_query(), "since": since})


async def extraction(request: Request, principal: Principal, case_id: int) -> Extraction:
    rt = request.app.state.runtime

    def fetch(tenant: str, seqs: Sequence[int]) -> list[dict[str, Any]]:
        return evidence.fetch(rt.store, rt.journal, tenant, seqs)

    try:
        found = await asyncio.to_thread(
            case_observables, soc(request).engine, case_id, _all_scope(request, principal), fetch
        )
    except AlertError as exc:
        raise http_error(exc) from exc
    await audit.record(
        rt.pipeline,
        principal.username,
        "search",
        peer=peer(request),
        query=f"observables of case {case_id}",
        tenants=found.case["tenant"],
        hits=found.events_read,
    )
    return found


@router.get("/{case_id}/observables")
async def observables(
    case_id: int, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """The case's observables by kind, each with its search query and a link to the search page;
    ``pivot`` is the SOC's link to the other municipalities (absent for a tenant officer)."""
    found = await extraction(request, principal, case_id)
    out = []
    for o in found.observables:
        row = {**o.as_dict(), "search_url": search_url(o)}
        if principal.tenants is None:
            row["pivot"] = f"/api/cases/{case_id}/observables/pivot?" + urlencode(
                {"kind": o.kind, "value": o.value}
            )
        out.append(row)
    return {
        "case_id": case_id,
        "tenant": found.case["tenant"],
        "observables": out,
        "problems": found.problems,
        "events_read": found.events_read,
        "events_left_out": found.events_left_out,
    }


@router.get("/{case_id}/observables/pivot")
async def pivot(
    case_id: int,
    request: Request,
    kind: str = Query(description=", ".join(KINDS)),
    value: str = Query(min_length=1, max_length=2048),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Seen in other municipalities: per other tenant, the events (last ``cases.pivot_days``)
    and alerts that hold this observable of the case. For region-wide roles only."""
    if principal.tenants is not None:
        raise HTTPException(
            403, "the cross-municipality pivot is for the SOC (roles without a tenant restriction)"
        )
    if kind not in KIND_FIELDS:
        raise HTTPException(400, f"kind {kind!r}: one of {', '.join(KINDS)}")
    rt = request.app.state.runtime
    found = await extraction(request, principal, case_id)
    obs = found.find(kind, value)
    if obs is None:
        raise HTTPException(404, f"case {case_id} has no {kind} {value!r}")
    own = str(found.case["tenant"])
    others = [t for t in rt.settings.tenants if t != own]
    days = rt.settings.cases.pivot_days
    since_us = now_us() - days * 86_400 * 1_000_000
    query = obs.search_query() + " | stats count by tenant"
    try:
        result = await asyncio.to_thread(run_search, rt.store, others, query, since=f"{days}d", limit=1000)
    except QueryError as exc:  # a value the search language cannot express
        raise HTTPException(400, str(exc)) from exc

    def alert_counts() -> list[dict[str, Any]]:
        with soc(request).engine.connect() as conn:
            return task_rows.alerts_per_tenant(
                conn,
                KIND_FIELDS[kind],
                obs.value,
                others,
                since_us,
                fold_case=kind in ("user", "host", "domain"),
            )

    alerts = await asyncio.to_thread(alert_counts)
    per: dict[str, dict[str, Any]] = {}
    for row in result["rows"]:
        per.setdefault(str(row["tenant"]), {"events": 0, "alerts": 0})["events"] = int(row["count"])
    for a in alerts:
        entry = per.setdefault(str(a["tenant"]), {"events": 0, "alerts": 0})
        entry.update(alerts=int(a["alerts"]), latest_alert=int(a["latest_alert"]), last_seen=a["last_seen"])
    await audit.record(
        rt.pipeline,
        principal.username,
        "search",
        peer=peer(request),
        query=query,
        tenants=",".join(others),
        hits=sum(e["events"] for e in per.values()),
    )
    return {
        "case_id": case_id,
        "kind": kind,
        "value": obs.value,
        "since": since_us,
        "days": days,
        "tenants": [
            {"tenant": t, "name": rt.settings.tenants.get(t, t), **per[t]} for t in sorted(per) if t != own
        ],
    }


def _chosen(found: Extraction, include: str | None, private: bool) -> list[Observable]:
    kinds = [k.strip() for k in include.split(",") if k.strip()] if include else list(DEFAULT_EXPORT)
    unknown = [k for k in kinds if k not in KIND_FIELDS]
    if unknown:
        raise HTTPException(400, f"include: unknown kind(s) {', '.join(unknown)} (kinds: {', '.join(KINDS)})")
    return [o for o in found.observables if o.kind in kinds and (private or not o.internal)]


async def _export(
    request: Request, principal: Principal, case_id: int, include: str | None, private: bool, fmt: str
) -> tuple[Extraction, list[Observable]]:
    found = await extraction(request, principal, case_id)
    chosen = _chosen(found, include, private)
    await audit.record(
        request.app.state.runtime.pipeline,
        principal.username,
        "export",
        peer=peer(request),
        what=f"indicators of case {case_id} ({fmt})",
        tenants=found.case["tenant"],
        indicators=len(chosen),
        kinds=include or ",".join(DEFAULT_EXPORT),
    )
    return found, chosen


_INCLUDE = Query(None, description=f"Kinds to export, comma-separated (default {','.join(DEFAULT_EXPORT)})")
_PRIVATE = Query(False, description="Also private, loopback and link-local addresses")


@router.get("/{case_id}/export/stix")
async def export_stix(
    case_id: int,
    request: Request,
    include: str | None = _INCLUDE,
    private: bool = _PRIVATE,
    principal: Principal = Depends(current_principal),
) -> Response:
    """The case's indicators as a STIX 2.1 bundle (identity, TLP marking, indicators,
    observed-data); ``X-Norrvakt-Left-Out`` counts observables STIX cannot express."""
    cs = request.app.state.runtime.settings.cases
    found, chosen = await _export(request, principal, case_id, include, private, "stix")
    bundle, left_out = stix_export.case_bundle(found.case, chosen, producer=cs.producer_name, tlp=cs.tlp)
    return Response(
        bundle.serialize(pretty=False),
        media_type="application/stix+json;version=2.1",
        headers={
            "Content-Disposition": f'attachment; filename="case-{case_id}.stix.json"',
            "X-Norrvakt-Left-Out": str(len(left_out)),
        },
    )


@router.get("/{case_id}/export/misp")
async def export_misp(
    case_id: int,
    request: Request,
    include: str | None = _INCLUDE,
    private: bool = _PRIVATE,
    principal: Principal = Depends(current_principal),
) -> Response:
    """The case's indicators as a MISP event (core format JSON)."""
    cs = request.app.state.runtime.settings.cases
    found, chosen = await _export(request, principal, case_id, include, private, "misp")
    doc = misp_export.case_event(
        found.case, chosen, producer=cs.producer_name, tlp=cs.tlp, distribution=cs.misp_distribution
    )
    return Response(
        orjson.dumps(doc),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="case-{case_id}.misp.json"'},
    )
