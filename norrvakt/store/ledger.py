"""A store writer's ledger: per tenant, the range it is inserting and how far the store is complete.

Written durably before every insert (the range, ``pending``) and after it (``stored_through``,
the writer's checkpoint). A restarted writer replays ``pending`` exactly — the rows and token it
may already have inserted — so the replay is a no-op if the insert landed and completes it if
not. The ledger also records ``batch_rows``: ranges are cut at multiples of it, and a writer
must not re-cut a range it may have inserted with another size.

:class:`FileLedger` keeps one small JSON file per tenant next to a chDB store replica (written
to a temporary file, fsynced, renamed, the directory fsynced). A writer that can move between
machines needs the same three fields somewhere both can reach (a NATS KV bucket, with the
lease that makes it the tenant's only writer); :class:`Ledger` is what the writer needs.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from norrvakt.store.clickhouse import StoreError

# Tenant ids as norrvakt.config allows them, plus the system tenant ``_norrvakt``: safe file names.
_FILE_SAFE = re.compile(r"^[a-z_][a-z0-9_-]{1,31}$")


@dataclass(frozen=True, slots=True)
class LedgerState:
    """``batch_rows``: B the ranges were cut with. ``stored_through``: every seq up to it is in
    the store. ``pending``: (first, last) being inserted — recorded before the INSERT."""

    batch_rows: int
    stored_through: int
    pending: tuple[int, int] | None = None


class Ledger(Protocol):
    def load(self, tenant: str) -> LedgerState | None: ...

    def save(self, tenant: str, state: LedgerState) -> None: ...


class FileLedger:
    """One JSON file per tenant under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, tenant: str) -> Path:
        if not _FILE_SAFE.match(tenant):
            raise StoreError(f"store writer ledger: tenant id {tenant!r} is not a valid tenant id")
        return self.directory / f"{tenant}.json"

    def load(self, tenant: str) -> LedgerState | None:
        path = self.path(tenant)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(text)
            pending = doc["pending"]
            state = LedgerState(
                batch_rows=int(doc["batch_rows"]),
                stored_through=int(doc["stored_through"]),
                pending=(int(pending[0]), int(pending[1])) if pending is not None else None,
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise StoreError(f"store writer ledger {path}: cannot be read ({exc}): {text[:200]!r}") from None
        if state.batch_rows < 1 or state.stored_through < 0:
            raise StoreError(f"store writer ledger {path}: impossible values {text[:200]!r}")
        return state

    def save(self, tenant: str, state: LedgerState) -> None:
        path = self.path(tenant)
        doc = {
            "batch_rows": state.batch_rows,
            "stored_through": state.stored_through,
            "pending": list(state.pending) if state.pending else None,
        }
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a power loss
        finally:
            os.close(dir_fd)
