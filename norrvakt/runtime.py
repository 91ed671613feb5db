"""A running Norrvakt: the components of the configuration, opened and wired together.

``open_runtime`` is used by `norrvakt serve` (with network sources and the web server) and
by CLI commands that work on the data directory directly when no server is running. Only one
process may own a data directory (chDB and the journal both require it), enforced with a lock
file; the CLI finds a running server through ``server.json`` and uses its API instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from norrvakt.auth.passwords import new_password
from norrvakt.config import Settings
from norrvakt.event import SYSTEM_TENANT, now_us
from norrvakt.indexer import Indexer
from norrvakt.journal.checkpointer import Checkpointer
from norrvakt.journal.keys import KeyRing
from norrvakt.journal.log import Journal, JournalConfig
from norrvakt.journal.witness import build_witness
from norrvakt.parsers.mapped import sources as mapped_sources
from norrvakt.pipeline import Pipeline
from norrvakt.sources.base import Source, build_sources
from norrvakt.state.accounts import create_api_token, create_user, user_exists
from norrvakt.state.db import open_state
from norrvakt.store.clickhouse import ClickHouseStore, StoreConfig

log = logging.getLogger(__name__)

LOCK_FILE = "norrvakt.lock"
SERVER_FILE = "server.json"
CLI_TOKEN_FILE = "cli.token"
ADMIN_FILE = "initial-admin.txt"


class DataDirBusy(Exception):
    """Another process owns the data directory."""


@dataclass
class Runtime:
    settings: Settings
    journal: Journal
    store: ClickHouseStore
    state: sa.Engine
    pipeline: Pipeline
    indexer: Indexer
    lock: IO[str]
    keys: KeyRing
    checkpointer: Checkpointer
    sources: list[Source] = field(default_factory=list)
    token_cache: Any = None
    started_at: int = field(default_factory=now_us)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def tenants(self) -> list[str]:
        """Every tenant, the system tenant (Norrvakt's own audit trail, unmapped senders) last."""
        return [*self.settings.tenants, SYSTEM_TENANT]

    async def start(self, *, with_sources: bool) -> None:
        await self.pipeline.start()
        await self.indexer.start()
        if self.settings.integrity.enabled:
            await self.checkpointer.start()
        if with_sources:
            self.sources = build_sources(self.settings)
            for src in self.sources:
                await src.start(self.pipeline)
                log.info("listening: %s (%s)", src.describe(), src.id)

    async def close(self) -> None:
        for src in self.sources:
            await src.stop()
        await self.pipeline.stop()
        if self.settings.integrity.enabled:
            await self.checkpointer.stop()
        await self.indexer.wait_caught_up(timeout=30)
        await self.indexer.stop()
        self.journal.close()
        self.store.close()
        self.state.dispose()
        self.lock.close()


def acquire_lock(data_dir: Path) -> IO[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise DataDirBusy(f"{data_dir} is in use by another Norrvakt process") from None
    return fh


def open_runtime(settings: Settings) -> Runtime:
    """Open journal, store and state of ``settings.data_dir`` (takes the directory lock)."""
    data = settings.data_path
    lock = acquire_lock(data)
    for problem in mapped_sources.use(settings.mapping_paths()):
        log.error("source mapping not loaded: %s", problem)
    try:
        journal = JournalConfig(
            directory=data / "journal",
            segment_bytes=settings.journal.segment_mb * 1024 * 1024,
            fsync=settings.journal.fsync,
            merkle=settings.integrity.enabled,
        ).build()
        store = StoreConfig(
            dsn=settings.store_dsn(),
            database=settings.store.database,
            retention_days=settings.store.retention_days,
        ).build()
        state = open_state(settings.state_url())  # SQLite under data_dir unless state.url is set
    except BaseException:
        lock.close()
        raise
    pipeline = Pipeline(journal, group_commit_s=settings.journal.group_commit_ms / 1000)
    indexer = Indexer(
        journal,
        store,
        batch_rows=settings.store.batch_rows,
        wake=pipeline.committed_event,
        counters=pipeline.counters,
    )
    pipeline.committed_hooks.append(indexer.offer)
    keys = KeyRing(data / "keys")
    keys.ensure()
    checkpointer = Checkpointer(
        journal,
        keys,
        [build_witness(spec) for spec in settings.witness_specs()],
        [*settings.tenants, SYSTEM_TENANT],
        every_events=settings.integrity.checkpoint_every_events,
        every_seconds=settings.integrity.checkpoint_every_seconds,
    )
    return Runtime(settings, journal, store, state, pipeline, indexer, lock, keys, checkpointer)


def bootstrap_accounts(runtime: Runtime) -> dict[str, str]:
    """First start: an admin with a generated password, and an API token for the local CLI.

    Returns what to show the operator (the password only when it was just made)."""
    data = runtime.settings.data_path
    shown: dict[str, str] = {}
    admin_file = data / ADMIN_FILE
    if not user_exists(runtime.state, "admin"):
        password = new_password()
        create_user(runtime.state, "admin", password, "admin")
        _write_secret(admin_file, f"username: admin\npassword: {password}\n")
        shown["password"] = password
    elif admin_file.exists():
        for line in admin_file.read_text().splitlines():
            if line.startswith("password: "):
                shown["password"] = line.split(": ", 1)[1]
    shown["username"] = "admin"
    token_file = data / CLI_TOKEN_FILE
    if not token_file.exists():
        _write_secret(token_file, create_api_token(runtime.state, "admin", "local cli") + "\n")
    return shown


def write_server_file(settings: Settings, url: str, ports: dict[str, int]) -> None:
    info = {"url": url, "pid": os.getpid(), "ports": ports, "started": now_us()}
    path = settings.data_path / SERVER_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(path)


def read_server_file(data_dir: Path) -> dict[str, Any] | None:
    """The running server of ``data_dir``, if its process is alive and holds the lock."""
    path = data_dir / SERVER_FILE
    if not path.exists():
        return None
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(info.get("pid", 0)), 0)
    except (OSError, ValueError):
        return None
    try:
        acquire_lock(data_dir).close()  # we could take the lock: nobody serves this directory
        return None
    except DataDirBusy:
        return info


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def run_sync(coro: Any) -> Any:
    return asyncio.run(coro)
