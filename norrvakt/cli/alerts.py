"""`norrvakt alerts …` and `norrvakt cases …`.

Both go through the HTTP API: the running server's when there is one, otherwise the same API
served in-process on the data directory (as the local operator, with every tenant) — so the
CLI and the API cannot drift apart, and every change is journaled either way.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from norrvakt.cli.common import call_api, err, print_json, when

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)


# -- alerts --------------------------------------------------------------------------------


@click.group("alerts")
def alerts() -> None:
    """Alerts: list, show with evidence, create (from other tools), cross-tenant indicators, rule settings."""


@alerts.command("list")
@click.option("--tenant", "-t", default=None, help="Tenant(s), comma-separated.")
@click.option("--status", default=None, help="Comma list, e.g. new,acknowledged.")
@click.option("--level", default=None, help="Lowest level: informational … critical.")
@click.option("--rule", default=None, help="Rule id.")
@click.option("--since", default=None, help="Active since: 1h, 7d, ISO time.")
@click.option("--limit", default=50, show_default=True, type=int)
@FORMAT
@click.pass_context
def alerts_list(
    ctx: click.Context,
    tenant: str | None,
    status: str | None,
    level: str | None,
    rule: str | None,
    since: str | None,
    limit: int,
    fmt: str,
) -> None:
    """Alerts, most recently active first."""
    params = {
        "tenant": tenant,
        "status": status,
        "level": level,
        "rule": rule,
        "since": since,
        "limit": limit,
    }
    result = call_api(ctx, "GET", "/api/alerts", params=params)
    if fmt == "json":
        print_json(result)
        return
    table = Table()
    for c in ("id", "tenant", "level", "rule", "count", "last seen", "status", "case"):
        table.add_column(c)
    for a in result["alerts"]:
        table.add_row(
            str(a["id"]),
            a["tenant"],
            a["level"],
            a["rule"]["title"],
            str(a["count"]),
            when(a["last_seen"]),
            a["status"],
            str(a["case_id"] or ""),
        )
    Console().print(table)
    err.print(f"{len(result['alerts'])} of {result['total']} alert(s)")


@alerts.command("show")
@click.argument("alert_id", type=int)
@click.option("--events", is_flag=True, help="Also print the evidence events.")
@click.pass_context
def alerts_show(ctx: click.Context, alert_id: int, events: bool) -> None:
    """One alert (JSON), with its evidence events if asked."""
    doc = call_api(ctx, "GET", f"/api/alerts/{alert_id}")
    if events:
        doc["events"] = call_api(ctx, "GET", f"/api/alerts/{alert_id}/events")["events"]
    print_json(doc)


@alerts.command("create")
@click.option("--tenant", "-t", required=True)
@click.option("--rule", "rule_id", required=True, help="Rule or detector id of the other tool.")
@click.option("--title", default="", help="What it found.")
@click.option("--level", default="medium", show_default=True)
@click.option("--tag", "tags", multiple=True, help="ATT&CK tag, e.g. attack.t1110 (repeatable).")
@click.option("--entity", "entities", multiple=True, help="field=value, e.g. source.ip=1.2.3.4 (repeatable).")
@click.option("--source", default="cli", show_default=True)
@click.pass_context
def alerts_create(
    ctx: click.Context,
    tenant: str,
    rule_id: str,
    title: str,
    level: str,
    tags: tuple[str, ...],
    entities: tuple[str, ...],
    source: str,
) -> None:
    """Create an alert (deduplicated like any other)."""
    ents: dict[str, str] = {}
    for item in entities:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err.print(f"[red]--entity {item!r}: expected field=value[/red]")
            sys.exit(2)
        ents[key] = value
    body = {
        "tenant": tenant,
        "rule_id": rule_id,
        "rule_title": title,
        "level": level,
        "tags": list(tags),
        "entities": ents,
        "source": source,
    }
    result = call_api(ctx, "POST", "/api/alerts", body=body)
    (a,) = result["alerts"]
    verb = "created" if result["created"] else "raised the count of"
    err.print(f"{verb} alert {a['id']} (count {a['count']}, case {a['case_id'] or '–'})")
    click.echo(a["id"])


@alerts.command("indicators")
@click.option("--since", default="7d", show_default=True)
@click.option("--min-tenants", default=2, show_default=True, type=int)
@FORMAT
@click.pass_context
def alerts_indicators(ctx: click.Context, since: str, min_tenants: int, fmt: str) -> None:
    """Indicators (IP, hash, user) seen in alerts of several municipalities."""
    result = call_api(
        ctx, "GET", "/api/alerts/indicators", params={"since": since, "min_tenants": min_tenants}
    )
    if fmt == "json":
        print_json(result)
        return
    table = Table(title="seen in several municipalities")
    for c in ("field", "value", "tenants", "alerts", "events", "last seen"):
        table.add_column(c)
    for i in result["indicators"]:
        table.add_row(
            i["kind"],
            i["value"],
            ", ".join(t["tenant"] for t in i["tenants"]),
            str(i["alert_count"]),
            str(i["event_count"]),
            when(i["last_seen"]),
        )
    Console().print(table)


@alerts.command("rule-settings")
@click.argument("rule_id")
@click.option("--tenant", "-t", default="*", show_default=True, help="A tenant, or * for all.")
@click.option(
    "--fields", default=None, help="Dedupe key fields, comma-separated (default: alerts.dedupe_fields)."
)
@click.option("--window", type=int, default=None, help="Suppression window in seconds.")
@click.option("--enable/--disable", default=True, help="Switch the rule's alerts on or off.")
@click.pass_context
def alerts_rule_settings(
    ctx: click.Context, rule_id: str, tenant: str, fields: str | None, window: int | None, enable: bool
) -> None:
    """Set a rule's dedupe key fields, suppression window, or switch its alerts off."""
    body = {
        "tenant": tenant,
        "dedupe_fields": [f.strip() for f in fields.split(",") if f.strip()] if fields else None,
        "window_s": window,
        "enabled": enable,
    }
    print_json(call_api(ctx, "PUT", f"/api/alerts/rules/{rule_id}", body=body))


# -- cases ---------------------------------------------------------------------------------


@click.group("cases")
def cases() -> None:
    """Cases: list, show, acknowledge/resolve, assign, comment, merge/split/move, NIS2, SLA."""


@cases.command("list")
@click.option("--tenant", "-t", default=None)
@click.option("--status", default=None, help="Comma list, e.g. new,acknowledged,investigating.")
@click.option("--overdue", is_flag=True, help="Only cases with an overdue NIS2 report.")
@click.option("--limit", default=50, show_default=True, type=int)
@FORMAT
@click.pass_context
def cases_list(
    ctx: click.Context, tenant: str | None, status: str | None, overdue: bool, limit: int, fmt: str
) -> None:
    params = {"tenant": tenant, "status": status, "overdue": "true" if overdue else None, "limit": limit}
    result = call_api(ctx, "GET", "/api/cases", params=params)
    if fmt == "json":
        print_json(result)
        return
    table = Table()
    for c in ("id", "tenant", "severity", "status", "title", "alerts", "assignee", "opened", "NIS2"):
        table.add_column(c, overflow="fold")
    for c in result["cases"]:
        n = c["nis2"]
        flag = (
            "OVERDUE " + ",".join(n["overdue"])
            if n["overdue"]
            else ("significant" if n["significant"] else "")
        )
        table.add_row(
            str(c["id"]),
            c["tenant"],
            c["severity"],
            c["status"],
            c["title"],
            str(len(c["alert_ids"])),
            c["assignee"] or "",
            when(c["created_at"]),
            flag,
        )
    Console().print(table)
    err.print(f"{len(result['cases'])} of {result['total']} case(s)")


@cases.command("show")
@click.argument("case_id", type=int)
@click.option("--history", is_flag=True, help="Also the full history of the case.")
@click.pass_context
def cases_show(ctx: click.Context, case_id: int, history: bool) -> None:
    """One case (JSON): alerts, comments, attachments, NIS2 times."""
    doc = call_api(ctx, "GET", f"/api/cases/{case_id}")
    if history:
        doc["history"] = call_api(ctx, "GET", f"/api/cases/{case_id}/history")["history"]
    print_json(doc)


@cases.command("create")
@click.option("--tenant", "-t", required=True)
@click.option("--title", required=True)
@click.option("--severity", default="")
@click.option("--alert", "alert_ids", multiple=True, type=int, help="Alert to move into it (repeatable).")
@click.pass_context
def cases_create(
    ctx: click.Context, tenant: str, title: str, severity: str, alert_ids: tuple[int, ...]
) -> None:
    body = {"tenant": tenant, "title": title, "severity": severity, "alert_ids": list(alert_ids)}
    click.echo(call_api(ctx, "POST", "/api/cases", body=body)["id"])


@cases.command("status")
@click.argument("case_id", type=int)
@click.argument("status", type=click.Choice(["acknowledged", "investigating", "resolved", "false_positive"]))
@click.option("--note", default="", help="Kept as a comment.")
@click.pass_context
def cases_status(ctx: click.Context, case_id: int, status: str, note: str) -> None:
    """Move a case on: acknowledged → investigating → resolved / false_positive."""
    case = call_api(ctx, "POST", f"/api/cases/{case_id}/status", body={"status": status, "note": note})
    err.print(f"case {case_id} is {case['status']}")


@cases.command("assign")
@click.argument("case_id", type=int)
@click.argument("user", default="")
@click.pass_context
def cases_assign(ctx: click.Context, case_id: int, user: str) -> None:
    """Assign a case (no user = unassign)."""
    call_api(ctx, "PATCH", f"/api/cases/{case_id}", body={"assignee": user})
    err.print(f"case {case_id} assigned to {user or 'nobody'}")


@cases.command("comment")
@click.argument("case_id", type=int)
@click.argument("text")
@click.pass_context
def cases_comment(ctx: click.Context, case_id: int, text: str) -> None:
    call_api(ctx, "POST", f"/api/cases/{case_id}/comments", body={"text": text})
    err.print(f"comment added to case {case_id}")


@cases.command("merge")
@click.argument("case_id", type=int)
@click.argument("others", nargs=-1, required=True, type=int)
@click.pass_context
def cases_merge(ctx: click.Context, case_id: int, others: tuple[int, ...]) -> None:
    """Merge the other cases into CASE_ID."""
    case = call_api(ctx, "POST", f"/api/cases/{case_id}/merge", body={"case_ids": list(others)})
    err.print(f"case {case_id} now holds alerts {', '.join(map(str, case['alert_ids']))}")


@cases.command("split")
@click.argument("case_id", type=int)
@click.argument("alert_ids", nargs=-1, required=True, type=int)
@click.option("--title", default="")
@click.pass_context
def cases_split(ctx: click.Context, case_id: int, alert_ids: tuple[int, ...], title: str) -> None:
    """Move some alerts of CASE_ID into a new case."""
    case = call_api(
        ctx, "POST", f"/api/cases/{case_id}/split", body={"alert_ids": list(alert_ids), "title": title}
    )
    click.echo(case["id"])


@cases.command("move")
@click.argument("alert_id", type=int)
@click.argument("case_id", type=int)
@click.pass_context
def cases_move(ctx: click.Context, alert_id: int, case_id: int) -> None:
    """Move ALERT_ID into CASE_ID."""
    call_api(ctx, "POST", f"/api/cases/{case_id}/alerts", body={"alert_id": alert_id})
    err.print(f"alert {alert_id} moved to case {case_id}")


@cases.command("nis2")
@click.argument("case_id", type=int)
@click.option("--significant/--not-significant", default=None, help="A significant incident under NIS2?")
@click.option("--aware-at", default=None, help="When we became aware (ISO time, now).")
@click.option("--early-warning-sent", default=None, help="When the early warning went out.")
@click.option("--notification-sent", default=None, help="When the incident notification went out.")
@click.option("--final-report", default=None, help="When the final report went out.")
@click.pass_context
def cases_nis2(
    ctx: click.Context,
    case_id: int,
    significant: bool | None,
    aware_at: str | None,
    early_warning_sent: str | None,
    notification_sent: str | None,
    final_report: str | None,
) -> None:
    """Record NIS2 facts of a case; prints what is due when and what is overdue."""
    body: dict[str, Any] = {}
    for key, value in (
        ("significant", significant),
        ("aware_at", aware_at),
        ("early_warning_sent_at", early_warning_sent),
        ("notification_sent_at", notification_sent),
        ("final_report_at", final_report),
    ):
        if value is not None:
            body[key] = value
    if body:
        doc = call_api(ctx, "PUT", f"/api/cases/{case_id}/nis2", body=body)
    else:
        doc = call_api(ctx, "GET", f"/api/cases/{case_id}")["nis2"]
    for key in ("early_warning", "notification", "final_report"):
        done = doc.get(f"{key}_sent_at") if key != "final_report" else doc.get("final_report_at")
        due = doc.get(f"{key}_due")
        state = f"sent {when(done)}" if done else ("OVERDUE" if key in doc["overdue"] else "due")
        err.print(f"{key.replace('_', ' '):14s} due {when(due)}  {state}")


@cases.command("sla")
@click.option("--tenant", "-t", default=None)
@click.option("--since", default="30d", show_default=True)
@FORMAT
@click.pass_context
def cases_sla(ctx: click.Context, tenant: str | None, since: str, fmt: str) -> None:
    """Time to acknowledge (MTTA) and to resolve (MTTR) per tenant and severity."""
    result = call_api(ctx, "GET", "/api/cases/sla", params={"tenant": tenant, "since": since})
    if fmt == "json":
        print_json(result)
        return
    table = Table(title=f"response times, cases opened in the last {since}")
    for c in ("tenant", "severity", "cases", "MTTA", "MTTR", "acknowledged", "resolved"):
        table.add_column(c)
    for r in result["sla"]:
        table.add_row(
            r["tenant"],
            r["severity"],
            str(r["cases"]),
            r["mtta"],
            r["mttr"],
            str(r["acknowledged"]),
            str(r["resolved"]),
        )
    Console().print(table)


COMMANDS = [alerts, cases]
