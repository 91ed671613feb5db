"""Secrets every node of one state database must share, kept in the state database itself.

    key = stored_key(engine, "session", candidate=secrets.token_bytes(32))

The first node to store a key under a name wins; every later call, on any node, gets that
key back (two nodes starting at once: the second one's insert fails on the primary key and it
reads the first one's). The value is stored as it is — Norrvakt keeps no credentials of other
systems in the state database, so there is no encryption-at-rest scheme to put it under;
whoever can read the state database can read this key (see :mod:`norrvakt.web.session` for
what that key does and does not give).
"""

from __future__ import annotations

import sqlalchemy as sa

from norrvakt.event import now_us
from norrvakt.state.db import shared_keys


def stored_key(engine: sa.Engine, name: str, candidate: bytes) -> bytes:
    """The key stored under ``name``; ``candidate`` is stored first if there is none."""
    found = _read(engine, name)
    if found is not None:
        return found
    try:
        with engine.begin() as conn:
            conn.execute(shared_keys.insert().values(name=name, value=candidate, created_at=now_us()))
        return candidate
    except sa.exc.IntegrityError:  # another node stored its key between our read and insert
        found = _read(engine, name)
        if found is None:
            raise
        return found


def _read(engine: sa.Engine, name: str) -> bytes | None:
    with engine.connect() as conn:
        value = conn.execute(
            sa.select(shared_keys.c.value).where(shared_keys.c.name == name)
        ).scalar_one_or_none()
    return None if value is None else bytes(value)
