"""Logging in: server-side browser sessions, and the accounts of single sign-on identities.

A session is a row keyed on the SHA-256 of its id (the cookie carries the id, signed); it ends
when it expires, at logout, and when the account's password changes or the account is
disabled or deleted (see :mod:`norrvakt.state.accounts`) — on the server, not merely in the
browser.

A single sign-on identity is (issuer, subject): the provider's stable id of the person, never
the name they claim. The first login of an identity creates an account of its own, flagged as
SSO-only (no usable password), named after the claim if that name is free and
``name@issuer-host`` otherwise — so an IdP user who calls themselves ``admin`` never becomes
the local ``admin``. The claims' role and tenants are applied to such accounts at every login;
they never change an account an admin linked the identity to (:func:`link_identity`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import sqlalchemy as sa

from norrvakt.event import now_us
from norrvakt.state.accounts import (
    UNUSABLE_PASSWORD,
    AccountConflict,
    AccountError,
    NoSuchUser,
    Principal,
    _existing,
    _principal,
    name_taken,
    usable,
    user_row,
)
from norrvakt.state.db import Row, as_rows, sessions, sso_identities, users

TOUCH_EVERY_US = 60 * 1_000_000  # last_seen is written at most once a minute per session
KEEP_ENDED_US = 30 * 86400 * 1_000_000  # ended sessions stay listed for a month, then go


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


# -- sessions ------------------------------------------------------------------------------------


def start_session(
    engine: sa.Engine, user_id: int, *, method: str, peer: str, user_agent: str, max_age_s: int
) -> str:
    """A new session of ``user_id``; its id (for the cookie — only its hash is stored)."""
    session_id = secrets.token_urlsafe(32)
    now = now_us()
    with engine.begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.expires_at < now - KEEP_ENDED_US))
        conn.execute(
            sessions.insert().values(
                id_hash=session_hash(session_id),
                user_id=user_id,
                method=method,
                peer=peer[:128],
                user_agent=user_agent[:256],
                created_at=now,
                last_seen_at=now,
                expires_at=now + max_age_s * 1_000_000,
            )
        )
    return session_id


def session_user(engine: sa.Engine, session_id: str) -> Principal | None:
    """The user of a live session (not ended, not expired, account usable), or None."""
    now = now_us()
    id_hash = session_hash(session_id)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(users, sessions.c.last_seen_at, sessions.c.method)
            .join(sessions, sessions.c.user_id == users.c.id)
            .where(
                sessions.c.id_hash == id_hash, sessions.c.revoked_at.is_(None), sessions.c.expires_at > now
            )
        ).first()
    if row is None or not usable(row):
        return None
    if now - int(row.last_seen_at) > TOUCH_EVERY_US:
        with engine.begin() as conn:
            conn.execute(sessions.update().where(sessions.c.id_hash == id_hash).values(last_seen_at=now))
    principal = _principal(row)
    if row.method != "password":  # a temporary password gates only what was opened with it
        principal = replace(principal, must_change_password=False)
    return principal


def end_session(engine: sa.Engine, session_id: str) -> bool:
    """Log out: True if the session was still open."""
    with engine.begin() as conn:
        done = conn.execute(
            sessions.update()
            .where(sessions.c.id_hash == session_hash(session_id), sessions.c.revoked_at.is_(None))
            .values(revoked_at=now_us())
        )
    return bool(done.rowcount)


def list_sessions(engine: sa.Engine, user_id: int, current: str = "") -> list[Row]:
    """The open sessions of a user, newest first; ``current`` marks the caller's own."""
    with engine.connect() as conn:
        rows = as_rows(
            conn.execute(
                sa.select(
                    sessions.c.id_hash,
                    sessions.c.method,
                    sessions.c.peer,
                    sessions.c.user_agent,
                    sessions.c.created_at,
                    sessions.c.last_seen_at,
                    sessions.c.expires_at,
                )
                .where(
                    sessions.c.user_id == user_id,
                    sessions.c.revoked_at.is_(None),
                    sessions.c.expires_at > now_us(),
                )
                .order_by(sessions.c.created_at.desc())
            )
        )
    for r in rows:
        r["current"] = r.pop("id_hash") == current
    return rows


# -- single sign-on ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SsoLogin:
    principal: Principal
    created: bool  # the identity's first login made a new account
    linked: bool  # the identity belongs to a local account an admin linked it to


def sso_login(
    engine: sa.Engine, issuer: str, subject: str, name: str, role: str, tenants: list[str]
) -> SsoLogin:
    """The account of identity (issuer, subject), made at its first login. ``role`` and
    ``tenants`` (checked by the caller) apply only to an account the identity created."""
    if not issuer or not subject:
        raise AccountError("the identity provider sent no issuer or subject")
    now = now_us()
    for _attempt in range(3):  # two first logins of one identity at once: the second one waits
        try:
            with engine.begin() as conn:
                found = conn.execute(
                    sa.select(users, sso_identities.c.id.label("identity_id"))
                    .join(sso_identities, sso_identities.c.user_id == users.c.id)
                    .where(sso_identities.c.issuer == issuer, sso_identities.c.subject == subject)
                ).first()
                if found is None:
                    username = _free_name(conn, name, issuer)
                    made = conn.execute(
                        users.insert().values(
                            username=username,
                            password_hash=UNUSABLE_PASSWORD,
                            role=role,
                            tenants=",".join(tenants),
                            created_at=now,
                            disabled=False,
                            must_change_password=False,
                            sso_only=True,
                        )
                    )
                    uid = made.inserted_primary_key[0] if made.inserted_primary_key else None
                    conn.execute(
                        sso_identities.insert().values(
                            issuer=issuer, subject=subject, user_id=uid, created_at=now, last_login_at=now
                        )
                    )
                    return SsoLogin(_principal(user_row(conn, username)), created=True, linked=False)
                if not usable(found):
                    raise AccountError(f"the account {found.username!r} of this identity is disabled")
                conn.execute(
                    sso_identities.update()
                    .where(sso_identities.c.id == found.identity_id)
                    .values(last_login_at=now)
                )
                if found.sso_only:
                    conn.execute(
                        users.update()
                        .where(users.c.id == found.id)
                        .values(role=role, tenants=",".join(tenants))
                    )
                return SsoLogin(
                    _principal(user_row(conn, str(found.username))), created=False, linked=not found.sso_only
                )
        except sa.exc.IntegrityError:
            continue
    raise AccountConflict("the identity's first login collided with another one; try again")


def _free_name(conn: sa.Connection, name: str, issuer: str) -> str:
    """The claimed name if nobody has it (in any letter case), else ``name@issuer-host``,
    ``name@issuer-host-2``, …"""
    base = re.sub(r"[^A-Za-z0-9._@-]", "_", name).strip("._@-")[:80] or "user"
    if not name_taken(conn, base):
        return base
    host = re.sub(r"[^A-Za-z0-9.-]", "_", urlsplit(issuer).hostname or "sso")[:40]
    candidate = f"{base}@{host}"
    n = 1
    while name_taken(conn, candidate):
        n += 1
        candidate = f"{base}@{host}-{n}"
    return candidate


def link_identity(engine: sa.Engine, username: str, issuer: str, subject: str) -> str | None:
    """Let identity (issuer, subject) log in as the local account ``username`` (an admin's
    decision). Returns the account the identity belonged to before, if any."""
    if not issuer.strip() or not subject.strip():
        raise AccountError("linking needs the identity's issuer and subject")
    with engine.begin() as conn:
        target = _existing(conn, username)
        before = conn.execute(
            sa.select(users.c.username)
            .join(sso_identities, sso_identities.c.user_id == users.c.id)
            .where(sso_identities.c.issuer == issuer, sso_identities.c.subject == subject)
        ).scalar_one_or_none()
        if before is None:
            conn.execute(
                sso_identities.insert().values(
                    issuer=issuer, subject=subject, user_id=target.id, created_at=now_us()
                )
            )
        else:
            conn.execute(
                sso_identities.update()
                .where(sso_identities.c.issuer == issuer, sso_identities.c.subject == subject)
                .values(user_id=target.id)
            )
    return None if before is None else str(before)


def unlink_identity(engine: sa.Engine, username: str, issuer: str, subject: str) -> None:
    with engine.begin() as conn:
        target = user_row(conn, username)
        if target is None:
            raise NoSuchUser(f"no user {username!r}")
        done = conn.execute(
            sso_identities.delete().where(
                sso_identities.c.user_id == target.id,
                sso_identities.c.issuer == issuer,
                sso_identities.c.subject == subject,
            )
        )
    if not done.rowcount:
        raise NoSuchUser(f"{username!r} has no identity {subject!r} of {issuer!r}")
