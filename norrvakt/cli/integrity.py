"""`norrvakt verify`, `prove`, `verify-proof` and `keys`: the integrity commands.

With a server running on the data directory they go through its API (the server owns the
store, and its audit trail records who verified and proved what); otherwise they work on the
data directory directly. `verify-proof` needs no data directory at all.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from norrvakt.cli.common import err, settings_of


def _pinned(pubkeys: tuple[str, ...]) -> list[str]:
    out = []
    for value in pubkeys:
        path = Path(value)
        out.append(path.read_text() if path.exists() else value)
    return out


@click.command("verify")
@click.option("--tenant", "-t", default=None, help="Tenant(s), comma-separated (default: all).")
@click.option("--since", default=None, help="Only what was checkpointed after this time (15m, 7d, ISO…).")
@click.option(
    "--pubkey", "pubkeys", multiple=True, help="Trusted public key (hex, PEM or a file); repeatable."
)
@click.option("--no-store", is_flag=True, help="Skip comparing the store's rows with the journal.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    tenant: str | None,
    since: str | None,
    pubkeys: tuple[str, ...],
    no_store: bool,
    fmt: str,
) -> None:
    """Recompute the journal's Merkle trees and check records, checkpoints, signatures, witnesses
    and the store, for every tenant anything knows of (configured, journaled, witnessed, stored,
    and the system tenant). Exits 1 and names the first bad record when anything is wrong;
    warnings (a witness on the same file system, the key in the data directory) are printed
    but do not fail the run."""
    from norrvakt.client import ApiError, ServerClient

    settings = settings_of(ctx)
    client = ServerClient.for_data_dir(settings.data_path)
    progress = Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeElapsedColumn(),
        console=err,
    )
    with progress:
        task = progress.add_task("verify", total=None)
        if client is not None:
            params: dict[str, Any] = {"store": str(not no_store).lower()}
            if tenant:
                params["tenant"] = tenant
            if since:
                params["since"] = since
            try:
                job = client.request("POST", "/api/integrity/verify", params=params)
            except ApiError as exc:
                err.print(f"[red]verification could not start: {exc.detail}[/red]")
                sys.exit(2)
            progress.update(task, total=job["total_records"] or None)
            while True:
                status = client.request("GET", f"/api/integrity/verify/{job['job']}")
                progress.update(task, completed=status["done_records"])
                if status["state"] != "running":
                    break
                time.sleep(0.3)
            if status["state"] == "failed":
                err.print(f"[red]verification could not run: {status['error']}[/red]")
                sys.exit(2)
            report = status["report"]
        else:
            report = _verify_local(settings, tenant, since, _pinned(pubkeys), not no_store, progress, task)
    _print_report(report, fmt)
    sys.exit(0 if report["ok"] else 1)


def _verify_local(
    settings: Any,
    tenant: str | None,
    since: str | None,
    pinned: list[str],
    store: bool,
    progress: Progress,
    task: Any,
) -> dict[str, Any]:
    from norrvakt.event import now_us
    from norrvakt.integrity import options_for, verify
    from norrvakt.journal.keys import KeyRing
    from norrvakt.journal.log import Journal, JournalConfig
    from norrvakt.journal.witness import build_witness
    from norrvakt.node.runtime import acquire_lock
    from norrvakt.store.clickhouse import StoreConfig
    from norrvakt.store.query import parse_time

    data = settings.data_path
    lock = acquire_lock(data)
    try:
        journal = Journal(JournalConfig(data / "journal"), read_only=True)
        tenants = [t.strip() for t in tenant.split(",")] if tenant else None
        progress.update(
            task, total=sum(journal.committed_seq(t) for t in (tenants or journal.tenants())) or None
        )
        store_obj = None
        if store:
            store_obj = StoreConfig(
                dsn=settings.store_dsn(),
                database=settings.store.database,
                retention_days=settings.store.retention_days,
            ).build()
        try:
            result = verify(
                journal,
                KeyRing(data / "keys"),
                [build_witness(w) for w in settings.witness_specs()],
                store_obj,
                options_for(
                    settings,
                    tenants=tenants,
                    since_us=parse_time(since, now_us()) if since else None,
                    pinned_keys=pinned or None,
                ),
                lambda n: progress.update(task, completed=n),
                store_retention_days=settings.store.retention_days,
            )
        except Exception as exc:  # the store or a file failed: say so, and not "OK"
            err.print(f"[red]verification could not complete: {type(exc).__name__}: {exc}[/red]")
            sys.exit(2)
        finally:
            if store_obj is not None:
                store_obj.close()
        return result.as_dict()
    finally:
        lock.close()


def _print_report(report: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    table = Table(title="verification")
    for col in ("tenant", "records", "disposed", "checkpoints", "witnessed", "problems"):
        table.add_column(col, justify="left" if col == "tenant" else "right")
    for t in report["tenants"]:
        n = len(t["findings"])
        table.add_row(
            _tenant_label(t),
            str(t["records"]),
            str(t["disposed"]),
            str(t["checkpoints"]),
            str(t["witnessed"]),
            f"[red]{n}[/red]" if n else "0",
        )
    Console().print(table)
    for w in report.get("warnings", []):
        err.print(f"[yellow]warning: {w['detail']} [{w['code']}][/yellow]")
    findings = [f for t in report["tenants"] for f in t["findings"]]
    if not findings:
        err.print(
            f"[green]OK — {report['records']} records verified in {report['seconds']} s, no problems[/green]"
        )
        return
    first = min(findings, key=lambda f: (f["tenant"], f["seq"] if f["seq"] is not None else 1 << 62))
    err.print(f"[red]{len(findings)} problem(s). First bad record: {_where(first)} — {first['detail']}[/red]")
    for f in findings[:50]:
        err.print(f"  [yellow]•[/yellow] {_where(f)}: {f['detail']} [{f['code']}]")
    if len(findings) > 50:
        err.print(f"  … and {len(findings) - 50} more (use --format json)")


def _tenant_label(t: dict[str, Any]) -> str:
    if t.get("journal", True):
        return str(t["tenant"])
    return f"{t['tenant']} (journal missing)" if t["findings"] else f"{t['tenant']} (no records yet)"


def _where(f: dict[str, Any]) -> str:
    parts = [f"tenant {f['tenant']}"]
    for key in ("seq", "segment", "offset"):
        if f.get(key) is not None:
            parts.append(f"{key} {f[key]}")
    return ", ".join(parts)


@click.command("prove")
@click.option("--tenant", "-t", required=True)
@click.option("--seq", required=True, type=int)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the proof here (default: stdout).",
)
@click.pass_context
def prove_cmd(ctx: click.Context, tenant: str, seq: int, out: Path | None) -> None:
    """Write an inclusion proof: the event, its leaf hash, audit path and the signed checkpoint."""
    from norrvakt.client import ApiError, ServerClient

    settings = settings_of(ctx)
    client = ServerClient.for_data_dir(settings.data_path)
    try:
        if client is not None:
            proof = client.request("GET", "/api/integrity/proof", params={"tenant": tenant, "seq": seq})
        else:
            proof = _prove_local(settings, tenant, seq)
    except ApiError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        sys.exit(2)
    text = json.dumps(proof, indent=2, ensure_ascii=False)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n")
        err.print(
            f"proof of {tenant} seq {seq} against checkpoint size {proof['tree_size']} written to {out}"
        )


def _prove_local(settings: Any, tenant: str, seq: int) -> dict[str, Any]:
    from norrvakt.integrity import prove
    from norrvakt.journal.checkpointer import Checkpointer
    from norrvakt.journal.keys import KeyRing
    from norrvakt.journal.log import JournalConfig
    from norrvakt.journal.proof import ProofError
    from norrvakt.journal.witness import build_witness
    from norrvakt.node.runtime import acquire_lock

    data = settings.data_path
    lock = acquire_lock(data)
    try:
        journal = JournalConfig(data / "journal").build()
        checkpointer = Checkpointer(
            journal,
            KeyRing(data / "keys", settings.signing_key_path()),  # a proof may need a new checkpoint
            [build_witness(w) for w in settings.witness_specs()],
            [tenant],
        )
        try:
            return prove(journal, checkpointer, tenant, seq)
        except ProofError as exc:
            err.print(f"[red]{exc}[/red]")
            sys.exit(2)
        finally:
            journal.close()
    finally:
        lock.close()


@click.command("verify-proof")
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pubkey", required=True, help="The signer's public key: hex, PEM, or a file holding either.")
def verify_proof_cmd(proof_file: Path, pubkey: str) -> None:
    """Check an inclusion proof offline (no data directory needed)."""
    from norrvakt.journal.keys import SigningKeyError, load_public
    from norrvakt.journal.proof import verify_proof

    try:
        key = load_public(_pinned((pubkey,))[0])
        doc = json.loads(proof_file.read_text())
    except (SigningKeyError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(2)
    result = verify_proof(doc, key)
    for what, passed in result.checks:
        err.print(f"  {'[green]✓[/green]' if passed else '[red]✗[/red]'} {what}")
    if result.ok:
        err.print(
            f"[green]VALID: {doc.get('tenant')} seq {doc.get('seq')} is in the signed log "
            f"(checkpoint of {doc.get('tree_size')} records)[/green]"
        )
    else:
        err.print("[red]INVALID proof[/red]")
    sys.exit(0 if result.ok else 1)


@click.group("keys")
def keys_group() -> None:
    """Checkpoint signing keys."""


@keys_group.command("export")
@click.option("--key-id", default=None, help="A key id (default: the current key).")
@click.pass_context
def keys_export(ctx: click.Context, key_id: str | None) -> None:
    """Print a public key (PEM) — give it to whoever verifies proofs and witnesses."""
    from norrvakt.journal.keys import KeyRing

    settings = settings_of(ctx)
    click.echo(KeyRing(settings.data_path / "keys").export_public(key_id), nl=False)


@keys_group.command("rotate")
@click.pass_context
def keys_rotate(ctx: click.Context) -> None:
    """Make a new signing key, introduced by a statement signed with the old one."""
    from norrvakt.client import ServerClient

    settings = settings_of(ctx)
    client = ServerClient.for_data_dir(settings.data_path)
    if client is None:
        err.print(
            "[red]rotate keys through a running server (`norrvakt serve`), so the rotation is journaled[/red]"
        )
        sys.exit(2)
    result = client.request("POST", "/api/integrity/keys/rotate")
    err.print(f"signing key rotated: {result['old']} → {result['new']}")


@keys_group.command("introduce")
@click.option(
    "--old-key-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The private key signing now (PEM).",
)
@click.option(
    "--new-key-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The private key to sign with from now on (PEM).",
)
@click.pass_context
def keys_introduce(ctx: click.Context, old_key_file: Path, new_key_file: Path) -> None:
    """Introduce a new signing key file with a rotation statement signed by the old one (server
    stopped; for integrity.signing_key_file — then point the setting at the new file)."""
    from norrvakt.event import now_us
    from norrvakt.journal.keys import KeyRing, SigningKeyError, read_private
    from norrvakt.node.runtime import DataDirBusy, acquire_lock

    settings = settings_of(ctx)
    try:
        lock = acquire_lock(settings.data_path)
    except DataDirBusy as exc:
        err.print(f"[red]{exc}: stop the server first[/red]")
        sys.exit(2)
    try:
        rotation = KeyRing(settings.data_path / "keys").introduce(
            read_private(old_key_file), read_private(new_key_file), now_us()
        )
    except SigningKeyError as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(2)
    finally:
        lock.close()
    err.print(
        f"key {rotation.new} introduced by {rotation.old}; set integrity.signing_key_file = "
        f'"{new_key_file.resolve()}", give every `norrvakt witness serve` the new public key '
        "(`norrvakt keys export`), and start the server"
    )


@click.group("witness")
def witness_group() -> None:
    """An independent witness for the checkpoints (run it on another host)."""


@witness_group.command("serve")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the witnessed lines are kept.",
)
@click.option(
    "--pubkey",
    "pubkeys",
    multiple=True,
    required=True,
    help="A public key checkpoints may be signed with (hex, PEM or a file); repeatable.",
)
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8470, show_default=True, type=int)
@click.option(
    "--cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="TLS certificate (PEM)."
)
@click.option(
    "--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="TLS private key (PEM)."
)
def witness_serve(
    directory: Path, pubkeys: tuple[str, ...], host: str, port: int, cert: Path | None, key: Path | None
) -> None:
    """Keep every checkpoint POSTed to it that is signed by a pinned key and extends what it
    holds; refuse (409) anything that would rewrite a tenant's history. Point
    integrity.witnesses at it: "https://witness-host:8470/"."""
    import logging

    from norrvakt.journal.keys import SigningKeyError, key_id_of, load_public, public_raw
    from norrvakt.journal.witness_server import witness_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        keys = {key_id_of(public_raw(k)): k for k in (load_public(p) for p in _pinned(pubkeys))}
    except SigningKeyError as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(2)
    server = witness_server(directory, keys, host, port, cert, key)
    scheme = "https" if cert else "http"
    err.print(
        f"witness on {scheme}://{host}:{server.server_address[1]}/ keeping {directory.resolve()}, "
        f"trusting key(s) {', '.join(sorted(keys))}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


COMMANDS = [verify_cmd, prove_cmd, verify_proof_cmd, keys_group, witness_group]
