"""`norrvakt followup …`: log follow-up plans and rounds, and the hashed lookup table.

Decisions and sign-off are the named reviewer's, in the console (or the API with their own
credentials); the CLI sets things up and reads them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from norrvakt.cli.common import call_api, print_json, when

err = Console(stderr=True)


@click.group("followup")
def followup() -> None:
    """Systematic log follow-up (loggkontroll) of record-access logs."""


@followup.command("plans")
@click.option("--tenant", default=None, help="Only these tenants (comma-separated).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plans(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """List follow-up plans and their rounds."""
    found = call_api(ctx, "GET", "/api/followup/plans", params={"tenant": tenant})["plans"]
    rounds = call_api(ctx, "GET", "/api/followup/rounds", params={"tenant": tenant})["rounds"]
    if as_json:
        print_json({"plans": found, "rounds": rounds})
        return
    table = Table("plan", "tenant", "system", "reviewer", "frequency", "rounds (period: status)")
    for p in found:
        mine = [f"{r['period_label']}: {r['status']} (#{r['id']})" for r in rounds if r["plan_id"] == p["id"]]
        table.add_row(str(p["id"]), p["tenant"], p["dataset"], p["reviewer"], p["frequency"], "\n".join(mine))
    Console().print(table)


@followup.command("plan-add")
@click.option("--tenant", required=True)
@click.option(
    "--dataset",
    type=click.Choice(["socialtjanst.record_access", "health.record_access"]),
    required=True,
)
@click.option("--reviewer", required=True, help="The named user who decides and signs off.")
@click.option(
    "--frequency", type=click.Choice(["monthly", "quarterly"]), default="monthly", show_default=True
)
@click.option("--random", "random_sample", type=int, default=20, show_default=True)
@click.option("--targeted", "targeted_per_reason", type=int, default=10, show_default=True)
@click.option("--title", default="")
@click.pass_context
def plan_add(
    ctx: click.Context,
    tenant: str,
    dataset: str,
    reviewer: str,
    frequency: str,
    random_sample: int,
    targeted_per_reason: int,
    title: str,
) -> None:
    """Create a follow-up plan for one tenant and system."""
    body = {
        "tenant": tenant,
        "dataset": dataset,
        "reviewer": reviewer,
        "frequency": frequency,
        "random_sample": random_sample,
        "targeted_per_reason": targeted_per_reason,
        "title": title,
    }
    made = call_api(ctx, "POST", "/api/followup/plans", body=body)
    click.echo(f"plan {made['id']}: {made['title']} (reviewer {made['reviewer']})")


@followup.command("draw")
@click.argument("plan_id", type=int)
@click.argument("period")
@click.pass_context
def draw(ctx: click.Context, plan_id: int, period: str) -> None:
    """Draw the sample of PERIOD (2026-11, or 2026-Q4 for quarterly plans)."""
    made = call_api(ctx, "POST", f"/api/followup/plans/{plan_id}/rounds", body={"period": period})
    totals = ", ".join(f"{k} {v}" for k, v in sorted(made["reason_totals"].items()) if v)
    click.echo(
        f"round {made['id']}: {len(made['items'])} accesses to review of {made['population']} in {period}"
        + (f" (in the period: {totals})" if totals else "")
    )


@followup.command("show")
@click.argument("round_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, round_id: int, as_json: bool) -> None:
    """One round: its sampled accesses and decisions."""
    detail = call_api(ctx, "GET", f"/api/followup/rounds/{round_id}")
    if as_json:
        print_json(detail)
        return
    p = detail["progress"]
    click.echo(
        f"round {round_id} · {detail['tenant']} · {detail['plan']['dataset']} · {detail['period_label']} · "
        f"{detail['status']} · {p['total'] - p['undecided']}/{p['total']} decided"
    )
    table = Table("item", "time", "user", "subject", "action", "reasons", "decision", "case")
    for i in detail["items"]:
        table.add_row(
            str(i["id"]),
            when(i["event_ts"]),
            i["user_name"],
            i["subject"],
            i["action"],
            ", ".join(i["reasons"]),
            i["decision"] or "–",
            str(i["case_id"] or ""),
        )
    Console().print(table)


@followup.command("verify")
@click.argument("round_id", type=int)
@click.pass_context
def verify(ctx: click.Context, round_id: int) -> None:
    """Recompute a signed-off round's digest against the database and the journal."""
    result = call_api(ctx, "GET", f"/api/followup/rounds/{round_id}/verify")
    if result["ok"]:
        click.echo(
            f"round {round_id}: OK — digest {result['digest']} "
            f"(journaled as system seq {result['signoff_seq']})"
        )
        return
    for problem in result["problems"]:
        err.print(f"[red]round {round_id}: {problem}[/red]")
    sys.exit(1)


@followup.command("hash-lookup")
@click.option("--tenant", required=True)
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def hash_lookup(tenant: str, source: Path) -> None:
    """Hash a local id;surname;address CSV for upload — the plain names never leave this machine."""
    from norrvakt.followup.lookup import BadLookup, hash_plain_rows, read_plain_csv, write_hashed_csv

    try:
        rows = read_plain_csv(source.read_text(encoding="utf-8-sig"))
    except (BadLookup, UnicodeDecodeError) as exc:
        err.print(f"[red]{source}: {exc}[/red]")
        sys.exit(2)
    click.echo(write_hashed_csv(hash_plain_rows(tenant, rows)), nl=False)


@followup.command("upload-lookup")
@click.option("--tenant", required=True)
@click.option("--kind", type=click.Choice(["staff", "subject"]), required=True)
@click.argument("hashed", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def upload_lookup(ctx: click.Context, tenant: str, kind: str, hashed: Path) -> None:
    """Replace the tenant's lookup table of KIND with a file made by hash-lookup."""
    result = call_api(ctx, "PUT", f"/api/followup/lookup/{tenant}/{kind}", content=hashed.read_bytes())
    click.echo(f"{result['rows']} {kind} rows for {tenant}")


COMMANDS = [followup]
