"""Versioned schema migrations (Alembic), run by :func:`~norrvakt.state.db.open_state` at start.

The scripts live in ``migrations/versions``; each is a numbered revision with ``upgrade()``.
A database made before migrations existed (users and tokens created directly) is recognised
by its tables and stamped as revision ``0001`` before the later revisions run, so existing
installations keep their accounts.

To add a revision: copy the newest file in ``migrations/versions``, bump ``revision`` and
``down_revision``, describe the change with ``op.*`` and update the tables in ``db.py``.

Several nodes may start at once on one PostgreSQL (web nodes after an upgrade): the upgrade
holds a transaction-scoped advisory lock, so one node migrates and the others wait for its
commit, then find the schema at the newest version. (SQLite has one server per file.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

# Alembic announces its plugins and context on every revision check; our own line says when a
# migration runs. Set before Alembic is imported: some of it logs while importing.
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # users and tokens, as created before migrations existed
_PG_LOCK = 0x6E6F72766B74  # "norvkt": the advisory lock key of schema upgrades


def alembic_config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine, target: str = "head") -> None:
    """Migrate ``engine``'s database to ``target`` (no-op, and quiet, when already there)."""
    head = head_revision() if target == "head" else target
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return
        tables = set(sa.inspect(conn).get_table_names())
        cfg = alembic_config(conn)
        if current is None and "users" in tables:
            log.info("state database predates migrations; stamping it as revision %s", BASELINE)
            command.stamp(cfg, BASELINE)
            current = BASELINE
        log.info("migrating the state database from %s to %s", current or "empty", head)
        command.upgrade(cfg, target)
