"""Alembic environment: runs on the connection :mod:`norrvakt.state.migrate` hands over (or, for
the ``alembic`` command line, on ``sqlalchemy.url``)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from norrvakt.state.db import make_engine, metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    # Batch mode lets later revisions alter tables on SQLite (which has little ALTER TABLE).
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
