"""A municipality's periodic report (monthly, or weekly): the figures, as one JSON-able dict.

    src = ReportSources(store, state, settings, journal_dir, witnesses, verify)
    figures = tenant_figures(src, "lulea", parse_period("2026-11", zone), produced_by="norrvakt")

What each figure means and where it comes from is in docs/reports.md. Everything is read
for the period [start, end) in local time and compared with the period before; nothing here
writes anything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from norrvakt.alerts import nis2, sla
from norrvakt.alerts.intake import INTEGRITY_RULE
from norrvakt.alerts.records import case_from_row
from norrvakt.config import Settings
from norrvakt.event import now_us
from norrvakt.journal.checkpoint import FILE_NAME, read_lines
from norrvakt.journal.report import VerifyReport
from norrvakt.journal.witness import Witness
from norrvakt.reports.figures import SEVERITIES, by_severity, by_tactic, change_pct, deadline_verdict
from norrvakt.reports.periods import Period, previous
from norrvakt.state import report_figures as state_figures
from norrvakt.store import report_figures as store_figures
from norrvakt.store.clickhouse import ClickHouseStore

HEALTH_RULE = "health:silence"  # norrvakt.detect.detection: a source that went silent
SILENCE_KINDS = ("host", "dataset", "source")
FALSE_POSITIVE, RESOLVED = "false_positive", "resolved"

Verifier = Callable[[list[str]], VerifyReport]


@dataclass(frozen=True)
class ReportSources:
    """Where the figures are read from. ``verify`` runs the integrity verification of some
    tenants (the server's running journal, or the files); None leaves it out, said so."""

    store: ClickHouseStore
    state: sa.Engine
    settings: Settings
    journal_dir: Path
    witnesses: Sequence[Witness] = ()
    verify: Verifier | None = None
    clock: Callable[[], int] = field(default=now_us)


def tenant_figures(
    src: ReportSources,
    tenant: str,
    period: Period,
    *,
    produced_by: str,
    verification: VerifyReport | None = None,
) -> dict[str, Any]:
    """Every figure of ``tenant``'s report for ``period``. ``verification``: a verification
    already run (the region report runs one for all tenants); otherwise one is run here."""
    now = src.clock()
    since, until = period.start_us, period.end_us
    before = previous(period)
    with src.state.connect() as conn:
        alerts = state_figures.alerts_in(conn, [tenant], since, until)
        alerts_before = state_figures.alerts_in(conn, [tenant], before.start_us, before.end_us)
        cases = state_figures.cases_in(conn, [tenant], since, until)
        open_at_end = state_figures.open_cases_at(conn, [tenant], until)
        significant = state_figures.significant_cases(conn, [tenant], since, until)
        followup = state_figures.followup_counts(conn, [tenant], since, until)[tenant]
        integrity_alerts = state_figures.integrity_alerts(conn, INTEGRITY_RULE, since, until)
    if verification is None and src.verify is not None:
        verification = src.verify([tenant])
    events = _events(src, tenant, period, before)
    return {
        "kind": "tenant",
        "tenant": tenant,
        "tenant_name": src.settings.tenants.get(tenant, tenant),
        "period": _period(period),
        "previous": _period(before),
        "events": events,
        "silences": _silences(src, tenant, alerts, now),
        "alerts": {
            "total": len(alerts),
            "previous_total": len(alerts_before),
            "change_pct": change_pct(len(alerts), len(alerts_before)),
            "by_severity": by_severity(alerts, "level"),
            "by_tactic": by_tactic(alerts),
        },
        "cases": {
            "total": len(cases),
            "by_severity": by_severity(cases, "severity"),
            "by_tactic": by_tactic(cases),
            "false_positive": sum(1 for c in cases if c["status"] == FALSE_POSITIVE),
            "open_at_end": open_at_end,
        },
        "sla": _sla(src, tenant, since, until),
        "nis2": [_nis2(row, now) for row in significant],
        "followup": followup,
        "integrity": _integrity(src, tenant, period, verification, integrity_alerts, now),
        "top_rules": _top_rules(alerts, src.settings.reports.top_rules),
        "quiet": not alerts and not cases and not significant,
        "no_data": events["total"] == 0,
        "produced_by": produced_by,
        "produced_at": now,
    }


def _period(p: Period) -> dict[str, Any]:
    return {
        "label": p.label,
        "schedule": p.schedule,
        "first_day": p.first_day.isoformat(),
        "last_day": p.last_day.isoformat(),
        "start_us": p.start_us,
        "end_us": p.end_us,
    }


def _events(src: ReportSources, tenant: str, period: Period, before: Period) -> dict[str, Any]:
    now = store_figures.events_per_source(src.store, [tenant], period.start_us, period.end_us)
    then = store_figures.events_per_source(src.store, [tenant], before.start_us, before.end_us)
    keys = sorted({(s, d) for _t, s, d in now} | {(s, d) for _t, s, d in then})
    sources: list[dict[str, Any]] = []
    for source, dataset in keys:
        n, p = now.get((tenant, source, dataset), 0), then.get((tenant, source, dataset), 0)
        sources.append(
            {"source": source, "dataset": dataset, "count": n, "previous": p, "change_pct": change_pct(n, p)}
        )
    sources.sort(key=lambda r: (-r["count"], -r["previous"], r["source"], r["dataset"]))
    daily = store_figures.events_per_day(src.store, [tenant], period.start_us, period.end_us, period.zone)
    total, total_before = sum(now.values()), sum(then.values())
    return {
        "total": total,
        "previous_total": total_before,
        "change_pct": change_pct(total, total_before),
        "sources": sources,
        # sources that sent in the period before and nothing in this one
        "stopped": [r for r in sources if r["count"] == 0],
        "daily": [{"day": d.isoformat(), "count": daily.get((tenant, d), 0)} for d in period.days()],
    }


def _silences(
    src: ReportSources, tenant: str, alerts: list[dict[str, Any]], now: int
) -> list[dict[str, Any]]:
    """Source-health alerts of the period: which source, since when, and for how long — until
    its next event arrived, or until now when none has."""
    out = []
    for a in alerts:
        if a["rule_id"] != HEALTH_RULE:
            continue
        ents = a["entities"]
        kind = next((k for k in SILENCE_KINDS if ents.get(k)), "")
        if not kind:
            continue
        name = str(ents[kind])
        minutes = float(ents.get("silent_minutes") or 0)
        started = int(a["first_seen"] - minutes * 60e6)
        ended = store_figures.heard_again(src.store, tenant, kind, name, int(a["first_seen"]), now + 1)
        out.append(
            {
                "kind": kind,
                "name": name,
                "since": started,
                "until": ended,
                "ongoing": ended is None,
                "duration_s": round(((ended or now) - started) / 1e6),
                "expected_gap_minutes": ents.get("expected_gap_minutes"),
                "alert_id": a["id"],
            }
        )
    out.sort(key=lambda r: (-r["duration_s"], r["name"]))
    return out


def _sla(src: ReportSources, tenant: str, since: int, until: int) -> list[dict[str, Any]]:
    targets = src.settings.reports
    rows = {r["severity"]: r for r in sla.report(src.state, [tenant], since, until - 1)}
    out = []
    for level in SEVERITIES:
        r = rows.get(level)
        if r is None:
            continue
        mtta_target = targets.mtta_target_minutes.get(level)
        mttr_target = targets.mttr_target_minutes.get(level)
        out.append(
            {
                **{k: r[k] for k in ("severity", "cases", "acknowledged", "resolved", "mtta_s", "mttr_s")},
                "mtta_target_s": mtta_target * 60 if mtta_target else None,
                "mttr_target_s": mttr_target * 60 if mttr_target else None,
                "mtta_met": _met(r["mtta_s"], mtta_target),
                "mttr_met": _met(r["mttr_s"], mttr_target),
            }
        )
    return out


def _met(seconds: float | None, target_minutes: int | None) -> bool | None:
    if seconds is None or not target_minutes:
        return None
    return seconds <= target_minutes * 60


def _nis2(row: dict[str, Any], now: int) -> dict[str, Any]:
    case = case_from_row(row)
    d = nis2.deadlines(case, now)
    reports = []
    for name, sent_field in zip(
        ("early_warning", "notification", "final_report"), nis2.REPORT_FIELDS, strict=True
    ):
        due, sent = d[f"{name}_due"], d[sent_field]
        reports.append(
            {"report": name, "due": due, "sent": sent, "verdict": deadline_verdict(due, sent, now)}
        )
    return {
        "case_id": case.id,
        "title": case.title,
        "severity": case.severity,
        "status": case.status,
        "aware_at": case.aware_at or case.detected_at or case.created_at,
        "reports": reports,
        "all_met": all(r["verdict"] == "met" for r in reports),
    }


def _integrity(
    src: ReportSources,
    tenant: str,
    period: Period,
    verification: VerifyReport | None,
    alerts: list[dict[str, Any]],
    now: int,
) -> dict[str, Any]:
    since, until = period.start_us, period.end_us
    local = [
        line.checkpoint
        for line in read_lines(src.journal_dir / tenant / FILE_NAME)
        if line.checkpoint is not None and since <= line.checkpoint.time < until
    ] if (src.journal_dir / tenant / FILE_NAME).exists() else []  # fmt: skip
    digests = {cp.digest() for cp in local}
    witnesses = []
    for w in src.witnesses:
        try:
            held = {line.checkpoint.digest() for line in w.read(tenant) if line.checkpoint is not None}
            witnesses.append({"name": w.name, "witnessed": len(digests & held), "error": ""})
        except Exception as exc:  # an unreachable witness is a figure of the report, not its end
            witnesses.append({"name": w.name, "witnessed": None, "error": f"{type(exc).__name__}: {exc}"})
    last = local[-1] if local else None
    verified: dict[str, Any] | None = None
    if verification is not None:
        result = next((t for t in verification.tenants if t.tenant == tenant), None)
        findings = [str(f) for f in verification.findings if f.tenant in (tenant, "(keys)", "(store)")]
        verified = {
            "at": now,
            "ok": not findings,
            "records": result.records if result else 0,
            "checkpoints": result.checkpoints if result else 0,
            "witnessed": result.witnessed if result else 0,
            "findings": findings[:10],
            "finding_count": len(findings),
        }
    named = [
        {"alert_id": a["id"], "title": a["rule_title"], "check": a["entities"].get("norrvakt.check", ""),
         "at": a["first_seen"], "count": a["event_count"]}
        for a in alerts
        if tenant in str(a["entities"].get("norrvakt.tenants", "")).split(",")
        or a["entities"].get("norrvakt.tenants") == "(all)"
    ]  # fmt: skip
    return {
        "checkpoints": len(local),
        "last_checkpoint": {"time": last.time, "size": last.size, "root": last.root} if last else None,
        "witnesses": witnesses,
        "verification": verified,
        "alerts": named,
        "ok": (verified is None or verified["ok"]) and not named,
    }


def _top_rules(alerts: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Rules by alerts raised, with the share of judged alerts that were false positives."""
    rules: dict[str, dict[str, Any]] = defaultdict(lambda: {"alerts": 0, "false_positive": 0, "judged": 0})
    for a in alerts:
        r = rules[a["rule_id"]]
        r["rule_id"], r["title"], r["level"] = a["rule_id"], a["rule_title"], a["level"]
        r["alerts"] += 1
        if a["status"] in (FALSE_POSITIVE, RESOLVED):
            r["judged"] += 1
            r["false_positive"] += a["status"] == FALSE_POSITIVE
    out = sorted(rules.values(), key=lambda r: (-r["alerts"], r["rule_id"]))[:limit]
    for r in out:
        r["fp_ratio"] = round(r["false_positive"] / r["judged"], 3) if r["judged"] else None
    return out
