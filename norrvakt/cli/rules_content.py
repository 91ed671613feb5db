"""`norrvakt rules update | import | versions | use | diff`: SigmaHQ content kept under the data
directory (norrvakt/detect/content, docs/rules.md "Getting and updating SigmaHQ content").

They work on the content folder directly, with or without a running server: a version appears
complete or not at all, and the version in use changes by one atomic rename.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from norrvakt.cli.common import err, print_json, settings_of
from norrvakt.config import Settings
from norrvakt.detect.content import diff as content_diff
from norrvakt.detect.content.bundle import Limits
from norrvakt.detect.content.fetch import Unreachable
from norrvakt.detect.content.store import ContentError, ContentStore
from norrvakt.detect.content.update import Outcome, UpdateConfig, import_bundle, update

REACHABLE_TIMEOUT_S = 5.0

_USE = click.option(
    "--use/--no-use",
    default=None,
    help="Put the new version in use now / keep it beside the one in use. "
    "Default: in use only when no version is in use yet.",
)


def _store(ctx: click.Context) -> tuple[Settings, ContentStore]:
    settings = settings_of(ctx, existing_data_dir=False)
    return settings, ContentStore(settings.data_path)


def _limits(settings: Settings) -> Limits:
    d = settings.detection
    return Limits(download_bytes=d.content_max_bytes, unpacked_bytes=d.content_max_unpacked_bytes)


def _report(store: ContentStore, outcome: Outcome) -> None:
    if not outcome.installed:
        state = "in use" if outcome.in_use else f"kept, not in use (in use: {outcome.previous or 'none'})"
        err.print(f"content version {escape(outcome.version)} is kept already; {state}")
        return
    for package, how in sorted(outcome.verified.items()):
        err.print(f"  {escape(package)}: {escape(how)}")
    err.print(f"kept content version {escape(outcome.version)}: {outcome.rules} rules load")
    if outcome.notes:
        err.print(
            f"[yellow]{len(outcome.notes)} rule(s) kept that the engine cannot run "
            f"(norrvakt rules check {escape(str(store.root / outcome.version))}):[/yellow]"
        )
        for note in outcome.notes[:10]:
            err.print(f"  {escape(note)}")
    if outcome.previous and outcome.previous != outcome.version:
        changes = content_diff.diff_versions(store, outcome.previous, outcome.version)
        counts = {
            k: sum(1 for c in changes if c.change == k) for k in ("new", "changed", "removed", "deprecated")
        }
        summary = ", ".join(f"{n} {k}" for k, n in counts.items())
        err.print(f"against {escape(outcome.previous)}: {summary} (norrvakt rules diff for each rule)")
    if outcome.in_use:
        err.print(f"in use now: {escape(outcome.version)} (live detection loads it when it starts)")
    else:
        err.print(
            f"kept, not in use; in use: {escape(outcome.previous or 'none')}. Review it "
            f"(norrvakt rules diff {escape(outcome.previous or '')} {escape(outcome.version)}), "
            f"then: norrvakt rules use {escape(outcome.version)}"
        )


@click.command("update")
@click.option(
    "--if-reachable",
    is_flag=True,
    help=f"Give up after {REACHABLE_TIMEOUT_S:.0f} s when the release server cannot be reached and "
    "exit 0, saying what is in use (make run).",
)
@_USE
@click.pass_context
def update_cmd(ctx: click.Context, if_reachable: bool, use: bool | None) -> None:
    """Fetch SigmaHQ's latest release packages, verify them and keep them as a new version — in
    use at once only when none is yet (or with --use); else review it (norrvakt rules diff) and
    put it in use with norrvakt rules use. Anything wrong — the network, a checksum, a bad zip, a
    bad rule — leaves the version in use as it was (exit 1; with --if-reachable an unreachable
    server is exit 0)."""
    settings, store = _store(ctx)
    d = settings.detection
    timeout = min(d.content_timeout_s, REACHABLE_TIMEOUT_S) if if_reachable else d.content_timeout_s
    config = UpdateConfig(
        release_url=d.content_release_url,
        packages=tuple(d.content_packages),
        timeout=timeout,
        limits=_limits(settings),
    )
    current = store.current_name()
    try:
        outcome = update(store, config, use=use)
    except Unreachable as exc:
        keeping = (
            f"starting with content version {current}"
            if current
            else "no SigmaHQ content kept: built-in rules only"
        )
        err.print(f"[yellow]rules update: {escape(str(exc))}; {escape(keeping)}[/yellow]")
        sys.exit(0 if if_reachable else 1)
    except ContentError as exc:
        err.print(f"[red]rules update: {escape(str(exc))}[/red]")
        err.print(f"in use still: {escape(current or 'none')}")
        sys.exit(1)
    _report(store, outcome)


@click.command("import")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--version", "version_name", default=None, help="Version name (default: from the bundle's name and hash)."
)
@_USE
@click.pass_context
def import_cmd(ctx: click.Context, bundle: Path, version_name: str | None, use: bool | None) -> None:
    """Keep an offline bundle — a zip or a folder with rules*/ inside (a SigmaHQ release zip, a
    checkout) — as a new version, checked like an update; in use at once as with update."""
    settings, store = _store(ctx)
    current = store.current_name()
    try:
        outcome = import_bundle(store, bundle, name=version_name, limits=_limits(settings), use=use)
    except ContentError as exc:
        err.print(f"[red]rules import: {escape(str(exc))}[/red]")
        err.print(f"in use still: {escape(current or 'none')}")
        sys.exit(1)
    _report(store, outcome)


@click.command("versions")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def versions_cmd(ctx: click.Context, fmt: str) -> None:
    """The kept content versions, oldest first; * marks the one in use."""
    _, store = _store(ctx)
    current = store.current_name()
    rows = [
        {
            "version": v.name,
            "in_use": v.name == current,
            "source": v.manifest.get("source", ""),
            "installed_at": v.manifest.get("installed_at", ""),
            "packages": v.packages,
            "rules": v.manifest.get("rules_loaded", 0),
            "verified": sorted(
                {str(p.get("verified", "")) for p in (v.manifest.get("packages") or {}).values()}
            ),
        }
        for v in store.versions()
    ]
    if fmt == "json":
        print_json(rows)
        return
    table = Table("", "version", "source", "installed", "packages", "rules", "verified")
    for r in rows:
        table.add_row(
            "*" if r["in_use"] else "",
            r["version"],
            r["source"],
            r["installed_at"][:19],
            ", ".join(r["packages"]),
            str(r["rules"]),
            ", ".join(r["verified"]),
        )
    Console().print(table)
    if not rows:
        err.print("no content versions kept (norrvakt rules update / norrvakt rules import)")


@click.command("use")
@click.argument("version")
@click.pass_context
def use_cmd(ctx: click.Context, version: str) -> None:
    """Put a kept VERSION in use (e.g. back to the one before an update)."""
    _, store = _store(ctx)
    try:
        store.use(version)
    except ContentError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        sys.exit(1)
    err.print(f"in use now: {escape(version)} (live detection loads it when it starts)")


@click.command("diff")
@click.argument("old", required=False)
@click.argument("new", required=False)
@click.option("--json", "as_json", is_flag=True, help="One object per changed rule, YAML diff included.")
@click.option("--no-yaml", is_flag=True, help="The table only, without the YAML diffs of changed rules.")
@click.pass_context
def diff_cmd(ctx: click.Context, old: str | None, new: str | None, as_json: bool, no_yaml: bool) -> None:
    """Per rule (by Sigma id), what changes from version OLD to NEW: new / changed (with the
    unified YAML diff) / removed / deprecated. Default: NEW the version in use, OLD the one kept
    before it."""
    _, store = _store(ctx)
    try:
        old, new = content_diff.default_pair(store, old, new)
        changes = content_diff.diff_versions(store, old, new)
    except ContentError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        sys.exit(1)
    if as_json:
        print_json({"from": old, "to": new, "changes": [c.as_dict() for c in changes]})
        return
    table = Table("change", "id", "title", "path", title=f"{old} → {new}")
    table.columns[1].overflow = "fold"  # an id is looked up whole
    table.columns[1].min_width = 36
    for c in changes:
        path = f"{c.old_path} → {c.path}" if c.old_path else c.path
        table.add_row(c.change, c.id, escape(c.title), escape(path))
    Console().print(table)
    if not no_yaml:
        for c in changes:
            if c.diff:  # plain, unwrapped: a unified diff one can apply or read with less
                click.echo(f"\n# {c.change}: {c.title} ({c.id})\n{c.diff}", nl=False)
    counts = {
        k: sum(1 for c in changes if c.change == k) for k in ("new", "changed", "removed", "deprecated")
    }
    err.print(", ".join(f"{n} {k}" for k, n in counts.items()))


COMMANDS = [update_cmd, import_cmd, versions_cmd, use_cmd, diff_cmd]


def attach(group: click.Group) -> None:
    """Add the content commands to ``norrvakt rules``."""
    for command in COMMANDS:
        group.add_command(command)
