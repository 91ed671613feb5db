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
from typing import IO, TYPE_CHECKING, Any

import sqlalchemy as sa

from norrvakt.auth.passwords import new_password
from norrvakt.config import Settings
from norrvakt.enrich import ingest as enrich_ingest
from norrvakt.enrich.ingest import EnrichConfig
from norrvakt.event import SYSTEM_TENANT, now_us
from norrvakt.journal.checkpointer import Checkpointer
from norrvakt.journal.keys import KeyRing
from norrvakt.journal.log import Journal, JournalConfig
from norrvakt.journal.witness import build_witness
from norrvakt.node.indexer import Indexer
from norrvakt.node.parse_pool import Lendable, ParsePoolConfig
from norrvakt.node.pipeline import Pipeline
from norrvakt.parsers.mapped import sources as mapped_sources
from norrvakt.sources.base import Source
from norrvakt.sources.builtin import build_sources
from norrvakt.sources.limits import plan_connections
from norrvakt.sources.stream import StreamListener
from norrvakt.state.accounts import (
    AccountConflict,
    authenticate,
    create_api_token,
    create_user,
    mark_password_temporary,
    user_exists,
)
from norrvakt.state.db import make_engine, open_state
from norrvakt.store.clickhouse import ClickHouseStore, StoreConfig

if TYPE_CHECKING:
    from norrvakt.node.ingest_port import IngestPort

log = logging.getLogger(__name__)

LOCK_FILE = "norrvakt.lock"
SERVER_FILE = "server.json"
CLI_TOKEN_FILE = "cli.token"
ADMIN_FILE = "initial-admin.txt"


class DataDirError(Exception):
    """The data directory cannot be served as it is (the message says why and what to do)."""


class DataDirBusy(DataDirError):
    """Another process owns the data directory."""


class StateMissing(DataDirError):
    """The journal has records but the state database (users, tokens, cases) is missing or
    empty: starting would silently make a new admin and lose every account and case."""


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
    ingest_port: IngestPort | None = None  # server.ingest_port: HTTP ingest only, lent to the workers
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
            # Raise the open-file limit and size every listener's connection caps from it,
            # keeping a reserve for the journal, store and checkpoints (logged).
            plan_connections(self.settings)
            self.sources = build_sources(self.settings)
            for src in self.sources:
                await src.start(self.pipeline)
                log.info("listening: %s (%s)", src.describe(), src.id)
            await self._start_workers()

    async def _start_workers(self) -> None:
        """A node that receives parses — and accepts its stream connections — on every core;
        CLI work stays in-process."""
        sv = self.settings.server
        pool = ParsePoolConfig(
            workers=sv.workers,
            mapping_dirs=tuple(str(p) for p in self.settings.mapping_paths()),
            batch_timeout_s=sv.worker_batch_timeout_s,
            enrich=EnrichConfig.from_settings(self.settings).to_json(),
        ).build(self.pipeline.parse_here)
        lent: list[Lendable] = (
            [s for s in self.sources if isinstance(s, StreamListener)] if sv.receive_in_workers else []
        )
        if sv.ingest_port:
            from norrvakt.node.ingest_port import IngestPortConfig  # (uvicorn: not for the CLI's commands)

            self.ingest_port = IngestPortConfig(self.settings).build()
            await self.ingest_port.start(self)
            log.info("listening: %s (%s)", self.ingest_port.describe(), self.ingest_port.id)
            if sv.receive_in_workers:
                lent.append(self.ingest_port)
        if lent:
            # Connections wait in the kernel's backlog until a worker accepts (a second or two):
            # one accepted here now would stay on the node's thread for its whole life.
            for listener in lent:
                listener.lend(True)
            pool.lend(lent, self.pipeline.ingest_parsed, self.pipeline.transport_error)
        await pool.start()
        self.pipeline.pool = pool
        if lent and not await pool.wait_receiving():
            for listener in lent:
                listener.lend(False)

    async def close(self) -> None:
        if self.pipeline.pool is not None:  # the workers' connections first: their records are durable
            await self.pipeline.pool.stop_receiving()
        if self.ingest_port is not None:
            await self.ingest_port.stop()
        for src in self.sources:
            await src.stop()
        await self.pipeline.stop()
        if self.pipeline.pool is not None:
            await self.pipeline.pool.stop()
            self.pipeline.pool = None
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
    enrich_ingest.use(EnrichConfig.from_settings(settings))
    try:
        check_state_present(settings)
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
    keys = KeyRing(data / "keys", settings.signing_key_path())  # a key file is read here, once
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


def check_state_present(settings: Settings) -> None:
    """Refuse a missing or empty state database next to a journal that has records.

    A fresh state would be bootstrapped silently — a new admin, and every user, token, case
    and follow-up decision gone — while the journal still says they existed."""
    journal = settings.data_path / "journal"
    segments = [p for p in journal.glob("*/*.seg") if p.is_file() and p.stat().st_size > 0]
    if not segments:
        return  # a new installation (or one without records yet): nothing to lose
    url = sa.engine.make_url(settings.state_url())
    where = str(url.database) if url.get_backend_name() == "sqlite" else "state.url"
    has_users, count = False, 0
    exists = url.get_backend_name() != "sqlite" or Path(str(url.database)).exists()
    if exists:  # (never create the SQLite file here)
        engine = make_engine(settings.state_url())
        try:
            with engine.connect() as conn:
                has_users = "users" in sa.inspect(conn).get_table_names()
                if has_users:
                    count = int(conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one())
        except sa.exc.DBAPIError as exc:
            raise StateMissing(f"cannot read the state database ({where}): {exc.orig}") from exc
        finally:
            engine.dispose()
    if count == 0:
        tenants = sorted({p.parent.name for p in segments})
        raise StateMissing(
            f"the state database ({where}) is {'empty' if exists else 'missing'}, but the journal "
            f"under {journal} has records ({', '.join(tenants)}): starting would make a new admin and lose "
            "every user, token, case and follow-up decision. Restore the state database from its "
            "backup (docs/operations.md, 'Backup'); to start over on purpose, move the journal away first."
        )


def bootstrap_accounts(runtime: Runtime) -> dict[str, str]:
    """First start: an admin with a generated, temporary password (it must be changed at the
    first login), and an API token for the local CLI.

    Returns what to show the operator: the password only when it was just made — it is shown
    once, and kept in ``initial-admin.txt`` (mode 0600) until the admin changes it."""
    data = runtime.settings.data_path
    shown: dict[str, str] = {"username": "admin"}
    admin_file = data / ADMIN_FILE
    password = new_password()
    if not user_exists(runtime.state, "admin") and _create_admin(runtime.state, password):
        _write_secret(
            admin_file,
            f"username: admin\npassword: {password}\n"
            "# temporary: the first login asks for a new password, and this file is deleted then\n",
        )
        shown["password"] = password
    elif admin_file.exists():
        lines = admin_file.read_text().splitlines()
        generated = next((x.split(": ", 1)[1] for x in lines if x.startswith("password: ")), "")
        if generated and authenticate(runtime.state, "admin", generated) is not None:
            # Still the generated one (also after an upgrade from a version that did not ask for
            # a change): temporary, and its file stays until it is changed.
            mark_password_temporary(runtime.state, "admin")
            shown["password_file"] = str(admin_file)
        else:  # changed already: the file has no use left
            forget_initial_password(runtime.settings)
    token_file = data / CLI_TOKEN_FILE
    if not token_file.exists():
        _write_secret(token_file, create_api_token(runtime.state, "admin", "local cli") + "\n")
    return shown


def _create_admin(state: sa.Engine, password: str) -> bool:
    """The first admin; False when another node on the same state database made it first
    (web nodes starting together) — its password is then in that node's data directory."""
    try:
        create_user(state, "admin", password, "admin", must_change_password=True)
    except (AccountConflict, sa.exc.IntegrityError):
        return False
    return True


def forget_initial_password(settings: Settings) -> None:
    """The generated admin password was changed: its file goes."""
    (settings.data_path / ADMIN_FILE).unlink(missing_ok=True)


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
