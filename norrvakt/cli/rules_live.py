"""`norrvakt rules live`: the rules live detection loads, and per rule whether it runs live for a
tenant and why not (docs/rules.md "What runs live").

It loads as `norrvakt serve` does — the built-in rules, the installed SigmaHQ content,
``detection.rule_dirs``, the policy of ``detection.live_*`` — and applies the rule settings of
the state database when there is one, so it answers without a running server.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from norrvakt.cli.common import err, print_json, settings_of


def _overrides(settings: Any) -> list[dict[str, Any]]:
    """The rule settings of the state database; none when it does not exist yet."""
    from norrvakt.detect.live import rule_overrides
    from norrvakt.state.db import make_engine

    url = settings.state_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return []  # no state database yet: nothing set, and opening it would create one
    engine = make_engine(url)
    try:
        return rule_overrides(engine)
    except Exception as exc:  # no schema yet, or unreachable: the policy alone, and say so
        err.print(f"[yellow]rule settings not read ({type(exc).__name__}): the policy alone[/yellow]")
        return []
    finally:
        engine.dispose()


@click.command("live")
@click.option("--tenant", default="", help="Whose live set (default: a tenant without rule settings).")
@click.option("--not-live", "not_live", is_flag=True, help="Only the rules that do not run live.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def live_cmd(ctx: click.Context, tenant: str, not_live: bool, fmt: str) -> None:
    """Per loaded rule: live or not for TENANT, its pack, status and level, and why not."""
    settings = settings_of(ctx, existing_data_dir=False)
    # (imported here: the detection stack is most of the CLI's start-up, and every other
    # `norrvakt` command would pay for it)
    from norrvakt.detect.live import live_summary, load_engine

    engine, report = load_engine(settings, _overrides(settings))
    live = engine.live
    if live is None:  # load_engine always sets one; a guard for mypy and future callers
        sys.exit("no live set")
    rows: list[dict[str, Any]] = []
    for n, info in enumerate(engine.rules.rules):
        why = live.why_not(tenant, info.id)
        if not_live and not why:
            continue
        rows.append(
            {
                "live": not why,
                "id": info.id,
                "title": info.title,
                "pack": live.pack(n),
                "status": info.status,
                "level": info.level,
                "path": info.path,
                "why_not": why,
            }
        )
    if fmt == "json":
        print_json(rows)
    else:
        table = Table(title=live_summary(live), title_justify="left")
        for column in ("live", "pack", "status", "level", "id", "title", "why not"):
            table.add_column(column, overflow="fold")
        for r in rows:
            table.add_row(
                "yes" if r["live"] else "no",
                r["pack"],
                r["status"],
                r["level"],
                r["id"],
                escape(r["title"]),
                escape(r["why_not"]),
            )
        Console().print(table)
    reasons = Counter(r["why_not"].split(" (")[0] for r in rows if r["why_not"])
    err.print(report.summary())
    err.print(live_summary(live) + "".join(f"\n  {n} not live: {why}" for why, n in reasons.most_common()))


def attach(group: click.Group) -> None:
    """Add `live` to ``norrvakt rules``."""
    group.add_command(live_cmd)
