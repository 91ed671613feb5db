"""Users and tokens: who may call Norrvakt, and which tenant an ingest token feeds.

An account's life: created by an admin (a generated password is temporary — it must be
changed at first login; a password the admin chose is taken as given) or by a first single
sign-on (then it has no usable password), its password changed by its owner or reset by an
admin, disabled and enabled again, and deleted. A deleted account stays as a tombstone: cases,
follow-up decisions and the audit trail name people by user name, so a name is never given to
someone else. Whatever ends an account's access (a new password, disabling, deleting) also
ends its browser sessions; disabling or deleting stops its API tokens too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from norrvakt.auth.passwords import burn_verification, hash_password, new_token, token_hash, verify_password
from norrvakt.errors import StatusError
from norrvakt.event import now_us
from norrvakt.state.db import Row, as_rows, sessions, sso_identities, tokens, users
from norrvakt.state.versions import TOKENS, bump

ROLES = ("admin", "soc_analyst", "tenant_officer", "auditor")
MIN_PASSWORD = 12
# Not an argon2 hash, so verify_password never accepts anything for it.
UNUSABLE_PASSWORD = "!no-password"
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


class AccountError(StatusError, ValueError):
    """A request about an account that cannot be done as asked (HTTP 400 unless said)."""


class NoSuchUser(AccountError):
    status_code = 404


class WrongPassword(AccountError):
    """The current password given to change it is wrong (counted like a failed login)."""


class AccountConflict(AccountError):
    """The account exists already, or the change would leave Norrvakt without an admin."""

    status_code = 409


@dataclass(frozen=True)
class Principal:
    """Who is calling, and which tenants they may read. ``tenants is None`` = all tenants.

    ``must_change_password``: logged in with a temporary password; until it is changed, only
    the password change (and logging out) is allowed."""

    username: str
    role: str
    tenants: frozenset[str] | None
    user_id: int | None = None
    must_change_password: bool = False

    def scope(self, all_tenants: list[str]) -> list[str]:
        if self.tenants is None:
            return list(all_tenants)
        return [t for t in all_tenants if t in self.tenants]

    def can_read(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants


@dataclass(frozen=True)
class IngestToken:
    name: str
    tenant: str
    source_id: str


def _principal(row: Any) -> Principal:
    tenants_text = str(row.tenants or "")
    scope = (
        None
        if row.role in {"admin", "soc_analyst", "auditor"} or tenants_text == "*"
        else frozenset(t for t in tenants_text.split(",") if t)
    )
    return Principal(
        username=str(row.username),
        role=str(row.role),
        tenants=scope,
        user_id=int(row.id),
        must_change_password=bool(row.must_change_password),
    )


def usable(row: Any) -> bool:
    """The account may act: it exists, is neither disabled nor deleted."""
    return row is not None and not row.disabled and row.deleted_at is None


# -- users ---------------------------------------------------------------------------------------


def check_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise AccountError(
            f"user name {username!r}: 1–128 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit"
        )
    return username


def check_new_password(password: str, username: str) -> None:
    """What a chosen password must be (NIST SP 800-63B: length, not the user name)."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if password.lower() == username.lower():
        raise AccountError("the password must not be the user name")


def name_taken(conn: sa.Connection, username: str) -> bool:
    """Taken by anyone, deleted accounts included, in any letter case ('Admin' is 'admin')."""
    found = conn.execute(sa.select(users.c.id).where(sa.func.lower(users.c.username) == username.lower()))
    return found.first() is not None


def create_user(
    engine: sa.Engine,
    username: str,
    password: str,
    role: str,
    tenants: list[str] | None = None,
    *,
    must_change_password: bool = False,
) -> None:
    """A local account. Callers check the tenants (:func:`norrvakt.tenant_ids.exact_tenants`)."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    with engine.begin() as conn:
        if name_taken(conn, username):
            raise AccountConflict(f"user {username!r} exists already (or existed: names are not reused)")
        conn.execute(
            users.insert().values(
                username=username,
                password_hash=hash_password(password),
                role=role,
                tenants=",".join(tenants or []),
                created_at=now_us(),
                disabled=False,
                must_change_password=must_change_password,
                sso_only=False,
            )
        )


def user_exists(engine: sa.Engine, username: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(users.c.id).where(users.c.username == username)).first() is not None


def user_row(conn: sa.Connection, username: str) -> Any:
    return conn.execute(sa.select(users).where(users.c.username == username)).first()


def _existing(conn: sa.Connection, username: str) -> Any:
    row = user_row(conn, username)
    if row is None or row.deleted_at is not None:
        raise NoSuchUser(f"no user {username!r}")
    return row


def list_users(engine: sa.Engine) -> list[dict[str, object]]:
    """Every user without the password hash, for the admin page; deleted ones marked."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(users).order_by(users.c.username)).all()
        links = as_rows(conn.execute(sa.select(sso_identities).order_by(sso_identities.c.id)))
        live = conn.execute(
            sa.select(sessions.c.user_id, sa.func.count())
            .where(sessions.c.revoked_at.is_(None), sessions.c.expires_at > now_us())
            .group_by(sessions.c.user_id)
        ).all()
    open_sessions = {int(uid): int(n) for uid, n in live}
    return [
        {
            "username": r.username,
            "role": r.role,
            "tenants": [t for t in str(r.tenants or "").split(",") if t],
            "created_at": r.created_at,
            "disabled": bool(r.disabled),
            "deleted": r.deleted_at is not None,
            "must_change_password": bool(r.must_change_password),
            "sso_only": bool(r.sso_only),
            "password_changed_at": r.password_changed_at,
            "sessions": open_sessions.get(int(r.id), 0),
            "identities": [
                {"issuer": i["issuer"], "subject": i["subject"], "last_login_at": i["last_login_at"]}
                for i in links
                if i["user_id"] == r.id
            ],
        }
        for r in rows
    ]


def principal_of(engine: sa.Engine, username: str) -> Principal | None:
    """The enabled user ``username`` as a principal (role and tenant scope), or None."""
    with engine.connect() as conn:
        row = user_row(conn, username)
    return _principal(row) if usable(row) else None


def authenticate(engine: sa.Engine, username: str, password: str) -> Principal | None:
    with engine.connect() as conn:
        row = user_row(conn, username)
    if not usable(row) or row.sso_only:
        burn_verification(password)
        return None
    if not verify_password(row.password_hash, password):
        return None
    return _principal(row)


def set_password(
    engine: sa.Engine, username: str, password: str, *, must_change: bool = False, keep_session: str = ""
) -> None:
    """A new password for ``username``; every session ends except ``keep_session`` (a session
    id hash: the one the owner changed it in)."""
    with engine.begin() as conn:
        row = _existing(conn, username)
        if row.sso_only:
            raise AccountError(f"{username!r} signs in through the identity provider and has no password")
        conn.execute(
            users.update()
            .where(users.c.id == row.id)
            .values(
                password_hash=hash_password(password),
                must_change_password=must_change,
                password_changed_at=now_us(),
            )
        )
        _end_sessions(conn, int(row.id), keep=keep_session)


def mark_password_temporary(engine: sa.Engine, username: str) -> None:
    """The password (one Norrvakt generated) must be changed at the next login."""
    with engine.begin() as conn:
        conn.execute(users.update().where(users.c.username == username).values(must_change_password=True))


def change_own_password(
    engine: sa.Engine, username: str, current: str, new: str, *, keep_session: str = ""
) -> None:
    """The owner's change: the current password proves it is them (a stolen session alone
    cannot lock the owner out)."""
    with engine.connect() as conn:
        row = _existing(conn, username)
    if row.sso_only:
        raise AccountError("your account signs in through the identity provider; change the password there")
    if not verify_password(row.password_hash, current):
        raise WrongPassword("the current password is wrong")
    check_new_password(new, username)
    if new == current:  # (current was just verified: no second argon2 run to compare them)
        raise AccountError("the new password must differ from the current one")
    set_password(engine, username, new, must_change=False, keep_session=keep_session)


def _enabled_admins(conn: sa.Connection) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                users.c.role == "admin", users.c.disabled.is_(False), users.c.deleted_at.is_(None)
            )
        ).scalar_one()
    )


def _refuse_losing_the_last_admin(conn: sa.Connection, row: Any, actor: str, what: str) -> None:
    if row.username == actor:
        raise AccountConflict(f"you cannot {what} your own account")
    if row.role == "admin" and not row.disabled and _enabled_admins(conn) <= 1:
        raise AccountConflict(f"{row.username!r} is the last enabled admin; make another admin first")


def disable_user(engine: sa.Engine, username: str, actor: str) -> None:
    """Disabled: no login, no API token works, every session ends. Reversible."""
    with engine.begin() as conn:
        row = _existing(conn, username)
        _refuse_losing_the_last_admin(conn, row, actor, "disable")
        conn.execute(users.update().where(users.c.id == row.id).values(disabled=True))
        _end_sessions(conn, int(row.id))


def enable_user(engine: sa.Engine, username: str) -> None:
    with engine.begin() as conn:
        row = _existing(conn, username)
        conn.execute(users.update().where(users.c.id == row.id).values(disabled=False))


def delete_user(engine: sa.Engine, username: str, actor: str) -> None:
    """Deleted for good: sessions end, API tokens are revoked, SSO identities unlinked, the
    password and tenants forgotten. The row stays as a tombstone so the name, which the
    append-only history refers to, is never reused."""
    with engine.begin() as conn:
        row = _existing(conn, username)
        _refuse_losing_the_last_admin(conn, row, actor, "delete")
        now = now_us()
        conn.execute(
            users.update()
            .where(users.c.id == row.id)
            .values(
                disabled=True, deleted_at=now, password_hash=UNUSABLE_PASSWORD, must_change_password=False
            )
        )
        conn.execute(
            tokens.update()
            .where(tokens.c.user_id == row.id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        conn.execute(sso_identities.delete().where(sso_identities.c.user_id == row.id))
        _end_sessions(conn, int(row.id))


def end_sessions(engine: sa.Engine, username: str, *, keep: str = "") -> int:
    """End every browser session of ``username`` (but ``keep``); how many were open."""
    with engine.begin() as conn:
        return _end_sessions(conn, int(_existing(conn, username).id), keep=keep)


def _end_sessions(conn: sa.Connection, user_id: int, *, keep: str = "") -> int:
    query = sessions.update().where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
    if keep:
        query = query.where(sessions.c.id_hash != keep)
    return int(conn.execute(query.values(revoked_at=now_us())).rowcount or 0)


# -- tokens --------------------------------------------------------------------------------------


def create_api_token(engine: sa.Engine, username: str, name: str) -> str:
    """An API token acting as ``username`` (shown once; only its hash is kept)."""
    token = new_token("nva")
    with engine.begin() as conn:
        uid = _existing(conn, username).id
        conn.execute(
            tokens.insert().values(
                token_hash=token_hash(token), kind="api", name=name, user_id=uid, created_at=now_us()
            )
        )
    return token


def principal_for_token(engine: sa.Engine, token: str) -> Principal | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(users)
            .join(tokens, tokens.c.user_id == users.c.id)
            .where(
                tokens.c.token_hash == token_hash(token),
                tokens.c.kind == "api",
                tokens.c.revoked_at.is_(None),
            )
        ).first()
    if not usable(row):
        return None
    # A token is not the temporary password: it was made by someone already logged in (or by
    # the server for the local CLI), so the password change does not gate it.
    return replace(_principal(row), must_change_password=False)


def create_ingest_token(engine: sa.Engine, tenant: str, source_id: str, name: str = "") -> str:
    """An ingest token for ``tenant``. Callers check it with :func:`norrvakt.tenant_ids.exact_tenant`."""
    token = new_token("nvi")
    with engine.begin() as conn:
        conn.execute(
            tokens.insert().values(
                token_hash=token_hash(token),
                kind="ingest",
                name=name or source_id,
                tenant=tenant,
                source_id=source_id,
                created_at=now_us(),
            )
        )
        bump(conn, TOKENS)  # a lookup of it cached before (as unknown) is forgotten too
    return token


def ingest_token(engine: sa.Engine, token: str) -> IngestToken | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(tokens.c.name, tokens.c.tenant, tokens.c.source_id).where(
                tokens.c.token_hash == token_hash(token),
                tokens.c.kind == "ingest",
                tokens.c.revoked_at.is_(None),
            )
        ).first()
    if row is None:
        return None
    return IngestToken(name=str(row.name), tenant=str(row.tenant), source_id=str(row.source_id))


def list_ingest_tokens(engine: sa.Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                tokens.c.id,
                tokens.c.name,
                tokens.c.tenant,
                tokens.c.source_id,
                tokens.c.created_at,
                tokens.c.revoked_at,
            ).where(tokens.c.kind == "ingest")
        ).all()
    return [dict(r._mapping) for r in rows]


def list_api_tokens(engine: sa.Engine, username: str | None = None) -> list[Row]:
    """API tokens (never the secret), of one user or of everyone."""
    query = (
        sa.select(
            tokens.c.id,
            tokens.c.name,
            users.c.username,
            tokens.c.created_at,
            tokens.c.revoked_at,
        )
        .join(users, tokens.c.user_id == users.c.id)
        .where(tokens.c.kind == "api")
        .order_by(tokens.c.id)
    )
    if username is not None:
        query = query.where(users.c.username == username)
    with engine.connect() as conn:
        return as_rows(conn.execute(query))


def token_row(engine: sa.Engine, token_id: int) -> Row | None:
    """A token's id, kind, tenant, source and owner (``username``, for API tokens)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(
                tokens.c.id,
                tokens.c.kind,
                tokens.c.name,
                tokens.c.tenant,
                tokens.c.source_id,
                tokens.c.revoked_at,
                users.c.username,
            )
            .select_from(tokens.outerjoin(users, tokens.c.user_id == users.c.id))
            .where(tokens.c.id == token_id)
        ).first()
    return None if row is None else dict(row._mapping)


def revoke_token(engine: sa.Engine, token_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            tokens.update()
            .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=now_us())
        )
        bump(conn, TOKENS)  # every node's ingest token cache forgets its lookups
