"""`norrvakt reports …`: the periodic reports — render one for any past period, list those sent.

norrvakt reports render --tenant lulea --period 2026-11 --format pdf   (writes norrvakt-lulea-2026-11.pdf)
norrvakt reports render --region --period 2026-W48 --format html --out region.html
norrvakt reports runs
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from norrvakt.cli.common import call_api, call_api_bytes, err, print_json, when


@click.group("reports")
def reports() -> None:
    """Periodic reports per municipality and for the region (docs/reports.md)."""


@reports.command("render")
@click.option("--tenant", default=None, help="The municipality (tenant id) whose report to render.")
@click.option("--region", is_flag=True, help="The region report (every municipality) instead.")
@click.option("--period", required=True, help="A month (2026-11) or an ISO week (2026-W48) that has ended.")
@click.option("--format", "fmt", type=click.Choice(["pdf", "html", "json"]), default="pdf", show_default=True)
@click.option("--language", type=click.Choice(["sv", "en"]), default=None, help="Default: reports.languages.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write ('-': stdout).",
)
@click.pass_context
def render(
    ctx: click.Context,
    tenant: str | None,
    region: bool,
    period: str,
    fmt: str,
    language: str | None,
    out: Path | None,
) -> None:
    """Render a report for a past period, as it is made when it is sent."""
    if bool(tenant) == region:
        err.print("[red]give either --tenant TENANT or --region[/red]")
        sys.exit(2)
    path = f"/api/reports/region/{period}" if region else f"/api/reports/periodic/{tenant}/{period}"
    body = call_api_bytes(ctx, path, {"format": fmt, "language": language})
    if str(out) == "-":
        sys.stdout.buffer.write(body)
        return
    target = out or Path(f"norrvakt-{'region' if region else tenant}-{period}.{fmt}")
    target.write_bytes(body)
    click.echo(f"{target}: {len(body)} bytes")


@reports.command("runs")
@click.option("--tenant", default=None, help="Only these tenants (comma-separated).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def runs(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """The reports sent (or failed) so far, with the SHA-256 of each PDF sent."""
    found = call_api(ctx, "GET", "/api/reports/runs", params={"tenant": tenant})["runs"]
    if as_json:
        print_json(found)
        return
    table = Table("tenant", "period", "status", "sent", "recipients", "attempts", "PDF SHA-256 / error")
    for r in found:
        table.add_row(
            r["tenant"], r["period"], r["status"], when(r["sent_at"]), r["recipients"], str(r["attempts"]),
            r["pdf_sha256"] or r["error"],
        )  # fmt: skip
    Console().print(table)


COMMANDS = [reports]
