"""Response times per tenant and severity: time to acknowledge (MTTA) and to resolve (MTTR),
measured from when the case was opened (the alert was raised) — means and medians, and how
many cases each figure rests on."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from norrvakt.alerts.model import LEVEL_RANK
from norrvakt.state import cases as case_rows


def report(engine: sa.Engine, tenants: Sequence[str], since: int, until: int) -> list[dict[str, Any]]:
    """One row per (tenant, severity) with cases opened in [since, until]."""
    with engine.connect() as conn:
        rows = case_rows.response_times(conn, tenants, since, until)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((str(r["tenant"]), str(r["severity"])), []).append(r)
    out = []
    for (tenant, severity), items in sorted(
        groups.items(), key=lambda kv: (kv[0][0], -LEVEL_RANK.get(kv[0][1], 0))
    ):
        ack = [
            (r["acknowledged_at"] - r["created_at"]) / 1e6 for r in items if r["acknowledged_at"] is not None
        ]
        res = [(r["resolved_at"] - r["created_at"]) / 1e6 for r in items if r["resolved_at"] is not None]
        out.append(
            {
                "tenant": tenant,
                "severity": severity,
                "cases": len(items),
                "acknowledged": len(ack),
                "resolved": len(res),
                "mtta_s": round(statistics.fmean(ack), 3) if ack else None,
                "mtta_median_s": round(statistics.median(ack), 3) if ack else None,
                "mttr_s": round(statistics.fmean(res), 3) if res else None,
                "mttr_median_s": round(statistics.median(res), 3) if res else None,
            }
        )
    return out


def human(seconds: float | None) -> str:
    """12 s, 4 min, 2.5 h, 3.1 d — for tables and the dashboard."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
