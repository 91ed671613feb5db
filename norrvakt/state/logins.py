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


def upsert_sso_user(engine: sa.Engine, username: str, role: str, tenants: list[str]) -> str:
    """Create or update the local record of a single-sign-on user; returns its password hash
    (an unusable random one: such users log in only through the identity provider)."""
    import secrets

    from norrvakt.auth.passwords import hash_password
    from norrvakt.event import now_us

    with engine.begin() as conn:
        row = conn.execute(sa.select(users.c.password_hash).where(users.c.username == username)).first()
        if row is None:
            password_hash = hash_password(secrets.token_urlsafe(32))
            conn.execute(
                users.insert().values(
                    username=username,
                    password_hash=password_hash,
                    role=role,
                    tenants=",".join(tenants),
                    created_at=now_us(),
                    disabled=False,
                )
            )
            return password_hash
        conn.execute(
            users.update().where(users.c.username == username).values(role=role, tenants=",".join(tenants))
        )
        return str(row.password_hash)
