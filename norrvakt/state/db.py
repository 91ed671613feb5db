"""The state database: users, tokens (and later alerts, cases, rule settings).

SQLite under the data directory by default; any SQLAlchemy URL (PostgreSQL at scale) when
configured. All SQL on state lives in ``norrvakt/state``; callers use the small functions of
the modules next to this one.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event as sa_event

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(128), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("tenants", sa.String(1024), nullable=False, default=""),  # comma-separated; "*" = all
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # SHA-256 hex; tokens never stored
    sa.Column("kind", sa.String(16), nullable=False),  # "ingest" | "api"
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=True),  # ingest: records go to this tenant
    sa.Column("source_id", sa.String(128), nullable=True),  # ingest: shown as the event's source
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),  # api: acts as this user
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)


def make_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, future=True)
    if url.startswith("sqlite"):

        @sa_event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

    return engine


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'state.db').resolve()}"


def open_state(url: str) -> sa.Engine:
    engine = make_engine(url)
    metadata.create_all(engine)
    return engine
