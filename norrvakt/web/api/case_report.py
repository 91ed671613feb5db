"""GET /api/cases/{id}/report — one document of a case (HTML or PDF) for the municipality or the
police: timeline, alerts, decisions, NIS2 times, and the evidence events with their inclusion
proofs against signed checkpoints (norrvakt/reports/case_report.py says what each variant holds).

Producing it is audited as an export (with how many evidence events and proofs it holds);
another tenant's case is a 404, like one that does not exist.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from norrvakt import audit
from norrvakt.alerts import evidence
from norrvakt.errors import StatusError
from norrvakt.integrity import prove
from norrvakt.journal.keys import SigningKeyError
from norrvakt.journal.proof import ProofError
from norrvakt.reports import case_report
from norrvakt.state import alerts as alert_rows
from norrvakt.state.accounts import Principal
from norrvakt.web.api.alerts import http_error, soc
from norrvakt.web.auth import current_principal, peer
from norrvakt.web.templating import tenant_name

router = APIRouter(prefix="/api/cases", tags=["cases"])


def _evidence(request: Request, detail: dict[str, Any]) -> tuple[list[dict[str, Any]], int, dict[str, str]]:
    """The case's evidence events (first ``MAX_EVIDENCE``) with proofs; the total; the keys."""
    rt = request.app.state.runtime
    tenant = detail["tenant"]
    pairs: list[tuple[int, int]] = []
    with soc(request).engine.connect() as conn:
        for a in detail["alerts"]:
            pairs += [(int(a["id"]), s) for s in alert_rows.evidence(conn, int(a["id"]))]
    seen: dict[int, int] = {}
    for alert_id, seq in pairs:
        seen.setdefault(seq, alert_id)
    chosen = sorted(seen)[: case_report.MAX_EVIDENCE]
    events = {e["seq"]: e for e in evidence.fetch(rt.store, rt.journal, tenant, chosen)}
    out = []
    for seq in chosen:
        item: dict[str, Any] = {"alert_id": seen[seq], "seq": seq, "event": events.get(seq, {"seq": seq})}
        try:
            item["proof"] = prove(rt.journal, rt.checkpointer, tenant, seq)
        except ProofError as exc:  # disposed or not journaled: said in the report, never left out
            item["proof"], item["proof_error"] = None, str(exc)
        out.append(item)
    keys: dict[str, str] = {}
    for kid in {str(i["proof"]["checkpoint"]["key"]) for i in out if i["proof"]}:
        try:
            keys[kid] = rt.keys.export_public(kid)
        except (SigningKeyError, OSError) as exc:
            keys[kid] = f"(public key {kid} not readable here: {exc})"
    return out, len(seen), keys


@router.get("/{case_id}/report")
async def report(
    case_id: int,
    request: Request,
    format: str = Query("pdf", pattern="^(pdf|html)$"),
    variant: str = Query("municipality", pattern="^(municipality|police)$"),
    principal: Principal = Depends(current_principal),
) -> Response:
    """The case report; ``variant=police`` leaves out internal comments and attached searches."""
    rt = request.app.state.runtime
    s = soc(request)
    scope = principal.scope(rt.tenants)
    try:
        detail = await asyncio.to_thread(s.cases.detail, case_id, scope)
        history = [c.as_dict() for c in await asyncio.to_thread(s.cases.history, case_id, scope)]
    except StatusError as exc:
        raise http_error(exc) from exc
    items, total, keys = await asyncio.to_thread(_evidence, request, detail)
    data = case_report.report_data(
        detail, history, items, keys, variant=variant, produced_by=principal.username, evidence_total=total
    )
    await audit.record(
        rt.pipeline,
        principal.username,
        "export",
        peer=peer(request),
        report="case",
        variant=variant,
        tenant=detail["tenant"],
        case=case_id,
        evidence=len(items),
        proofs=sum(1 for i in items if i["proof"]),
        format=format,
    )
    label = tenant_name(detail["tenant"])
    if format == "html":
        return HTMLResponse(case_report.render_html(data, label))
    pdf = await asyncio.to_thread(case_report.render_pdf, data, label)
    name = f"arende-{detail['tenant']}-{case_id}-{variant}"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
    )
