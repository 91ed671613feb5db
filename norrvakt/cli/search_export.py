"""`norrvakt search --format csv|ndjson`: the whole result to stdout, streamed — from the running
server (GET /api/search/export, audited there) or, without one, from the data directory
(audited into the journal here, with how it ended)."""

from __future__ import annotations

import os
import sys
from typing import Any

from norrvakt.client import ApiError, ServerClient
from norrvakt.config import Settings


def local_tenants(settings: Settings, tenant: str | None) -> list[str]:
    """The tenants a local search reads (no server: the operator is trusted with every one)."""
    tenants = list(settings.tenants)
    if tenant:
        wanted = [t.strip() for t in tenant.split(",")]
        unknown = [t for t in wanted if t not in tenants]
        if unknown:
            raise ValueError(f"unknown tenant(s): {', '.join(unknown)}")
        tenants = wanted
    return tenants


def export_remote(client: ServerClient, params: dict[str, Any]) -> None:
    params = {k: v for k, v in params.items() if k not in ("limit", "offset")}
    out = sys.stdout.buffer
    with client.stream("GET", "/api/search/export", params=params) as resp:
        if resp.status_code != 200:
            resp.read()
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise ApiError(resp.status_code, str(detail))
        for chunk in resp.iter_bytes():
            out.write(chunk)
    out.flush()


def export_local(
    settings: Settings, query: str, tenant: str | None, since: str | None, until: str | None, fmt: str
) -> None:
    from norrvakt.audit import audit_event
    from norrvakt.journal.log import JournalConfig
    from norrvakt.node.runtime import acquire_lock
    from norrvakt.search import compile_export
    from norrvakt.store.clickhouse import StoreConfig
    from norrvakt.store.query_export import ExportLimits, ExportProgress, export_chunks

    tenants = local_tenants(settings, tenant)
    limits = ExportLimits(settings.search.export_max_rows, settings.search.export_max_bytes)
    compiled = compile_export(tenants, query, since=since, until=until, max_rows=limits.max_rows)
    lock = acquire_lock(settings.data_path)  # exports are audited, so this process journals too
    store = StoreConfig(
        dsn=settings.store_dsn(),
        database=settings.store.database,
        retention_days=settings.store.retention_days,
    ).build()
    progress = ExportProgress()
    state, outcome = "cancelled", "failure"
    try:
        out = sys.stdout.buffer
        chunks = export_chunks(store, compiled, "csv" if fmt == "csv" else "ndjson", limits, progress)
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        state, outcome = ("cut" if progress.cut else "complete"), "success"
    except Exception:
        state = "failed"
        raise
    finally:
        journal = JournalConfig(settings.data_path / "journal").build()
        actor = f"local:{os.environ.get('USER', 'unknown')}"
        details = {
            "query": query, "tenants": ",".join(tenants), "format": fmt, "state": state,
            "rows": str(progress.rows), "bytes": str(progress.bytes), "cut": progress.cut, "via": "cli",
        }  # fmt: skip
        journal.append_and_commit([audit_event(actor, "export", outcome=outcome, details=details)])
        journal.close()
        store.close()
        lock.close()
