"""What a browser session needs to know about a user: who they are now, and their password
hash's fingerprint (so a changed password or a disabled account ends existing sessions)."""

from __future__ import annotations

import sqlalchemy as sa

from norrvakt.state.accounts import Principal, _principal
from norrvakt.state.db import users


def user_login(engine: sa.Engine, username: str) -> tuple[Principal, str] | None:
    """(principal, password hash) of an enabled user, or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    if row is None or row.disabled:
        return None
    return _principal(row), str(row.password_hash)
