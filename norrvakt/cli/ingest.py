"""`norrvakt import`: files into the journal, through the running server when there is one."""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from norrvakt.cli.common import err, settings_of
from norrvakt.config import Settings


@click.command("import")
@click.option("--tenant", "-t", required=True, help="Tenant the records belong to.")
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "evtx", "jsonl", "text"]), default="auto", show_default=True
)
@click.option("--source", default="import", show_default=True, help="Source id shown on the events.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def import_cmd(ctx: click.Context, tenant: str, fmt: str, source: str, paths: tuple[Path, ...]) -> None:
    """Import EVTX, JSONL or text log files (directories are searched recursively)."""
    from norrvakt.client import ServerClient
    from norrvakt.importer import ImportResult, encode_items, file_batches
    from norrvakt.tenant_ids import TenantIdError, exact_tenant

    settings = settings_of(ctx, existing_data_dir=False)  # an import may be the first use
    try:
        exact_tenant(tenant, settings.tenants, what="--tenant")
    except TenantIdError as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(2)
    files = _expand(paths)
    result = ImportResult()
    started = time.monotonic()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    file_task = progress.add_task("files", total=len(files))
    unit_task = progress.add_task("", total=None)

    def on_file(path: Path, total: int) -> None:
        progress.update(unit_task, description=path.name[:48], total=total or None, completed=0)

    client = ServerClient.for_data_dir(settings.data_path)
    batches = file_batches(files, tenant, source, fmt, settings.timezone, result, on_file)
    last_path: Path | None = None
    with progress:
        if client is not None:
            # Small files are sent together: one request (and one journal commit) per ~2000 records.
            pending: list[Any] = []
            for path, batch in batches:
                if last_path is not None and path != last_path:
                    progress.advance(file_task)
                last_path = path
                pending.extend(batch)
                if len(pending) >= 2000:
                    client.request(
                        "POST",
                        "/api/import",
                        params={"tenant": tenant, "source": source},
                        content=encode_items(pending),
                    )
                    pending = []
                progress.update(unit_task, completed=batch[-1].progress)
            if pending:
                client.request(
                    "POST",
                    "/api/import",
                    params={"tenant": tenant, "source": source},
                    content=encode_items(pending),
                )
            client.request("GET", "/api/import/wait", params={"timeout": 600}, timeout=700)
        else:
            asyncio.run(_import_local(settings, batches, progress, file_task, unit_task))
        progress.update(file_task, completed=len(files))
    result.seconds = time.monotonic() - started
    _print_import_summary(result)
    sys.exit(0)


async def _import_local(
    settings: Settings, batches: Any, progress: Progress, file_task: Any, unit_task: Any
) -> None:
    from norrvakt.importer import items_to_events
    from norrvakt.node.runtime import open_runtime

    runtime = open_runtime(settings)
    await runtime.start(with_sources=False)
    try:
        last_path = None
        # Several batches in flight, so one fsync (group commit) covers many small files.
        in_flight: collections.deque[asyncio.Future[None]] = collections.deque()
        for path, batch in batches:
            if last_path is not None and path != last_path:
                progress.advance(file_task)
            last_path = path
            in_flight.append(runtime.pipeline.commit_nowait(items_to_events(runtime.pipeline, batch)))
            while len(in_flight) > 16:
                await in_flight.popleft()
            await asyncio.sleep(0)  # let the commit loop run
            progress.update(unit_task, completed=batch[-1].progress)
        for fut in in_flight:
            await fut
        await runtime.indexer.wait_caught_up(timeout=600)
    finally:
        await runtime.close()


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    """Named files as given; from directories, the files that look like logs (by extension)."""
    from norrvakt.sources.files import is_log_file_name

    files: list[Path] = []
    skipped: list[Path] = []
    for p in paths:
        if not p.is_dir():
            files.append(p)
            continue
        for f in sorted(p.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                (files if is_log_file_name(f.name) else skipped).append(f)
    if skipped:
        names = ", ".join(f.name for f in skipped[:5]) + (" …" if len(skipped) > 5 else "")
        err.print(
            f"skipping {len(skipped)} file(s) that are not log files by name: {names} "
            "(name a file explicitly to import it anyway)"
        )
    return files


def _print_import_summary(result: Any) -> None:
    colour = "yellow" if result.errors else "green"
    err.print(
        f"[{colour}]imported {result.records} records from {result.files} file(s) in {result.seconds:.2f} s "
        f"({result.records / max(result.seconds, 1e-9):,.0f}/s, searchable); "
        f"{result.errors} problem(s) kept as pipeline_error events[/{colour}]"
    )
    for problem in result.problems:
        err.print(f"  [yellow]•[/yellow] {problem}")


COMMANDS = [import_cmd]
