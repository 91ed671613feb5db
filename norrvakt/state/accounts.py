"""Users and tokens: who may call Norrvakt, and which tenant an ingest token feeds."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from norrvakt.auth.passwords import hash_password, new_token, token_hash, verify_password
from norrvakt.event import now_us
from norrvakt.state.db import tokens, users

ROLES = ("admin", "soc_analyst", "tenant_officer", "auditor")


@dataclass(frozen=True)
class Principal:
    """Who is calling, and which tenants they may read. ``tenants is None`` = all tenants."""

    username: str
    role: str
    tenants: frozenset[str] | None

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


def _principal(row: sa.Row[tuple[object, ...]]) -> Principal:
    tenants_text = str(row.tenants or "")
    scope = (
        None
        if row.role in {"admin", "soc_analyst", "auditor"} or tenants_text == "*"
        else frozenset(t for t in tenants_text.split(",") if t)
    )
    return Principal(username=str(row.username), role=str(row.role), tenants=scope)


def create_user(
    engine: sa.Engine, username: str, password: str, role: str, tenants: list[str] | None = None
) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    with engine.begin() as conn:
        conn.execute(
            users.insert().values(
                username=username,
                password_hash=hash_password(password),
                role=role,
                tenants=",".join(tenants or []),
                created_at=now_us(),
                disabled=False,
            )
        )


def user_exists(engine: sa.Engine, username: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(users.c.id).where(users.c.username == username)).first() is not None


def list_users(engine: sa.Engine) -> list[dict[str, object]]:
    """Every user without the password hash, for the admin page."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(users).order_by(users.c.username))
        return [
            {
                "username": r.username,
                "role": r.role,
                "tenants": [t for t in str(r.tenants or "").split(",") if t],
                "created_at": r.created_at,
                "disabled": bool(r.disabled),
            }
            for r in rows
        ]


def principal_of(engine: sa.Engine, username: str) -> Principal | None:
    """The enabled user ``username`` as a principal (role and tenant scope), or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    return None if row is None or row.disabled else _principal(row)


def set_password(engine: sa.Engine, username: str, password: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            users.update().where(users.c.username == username).values(password_hash=hash_password(password))
        )


def authenticate(engine: sa.Engine, username: str, password: str) -> Principal | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    if row is None or row.disabled or not verify_password(row.password_hash, password):
        return None
    return _principal(row)


def create_api_token(engine: sa.Engine, username: str, name: str) -> str:
    token = new_token("nva")
    with engine.begin() as conn:
        uid = conn.execute(sa.select(users.c.id).where(users.c.username == username)).scalar_one()
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
    if row is None or row.disabled:
        return None
    return _principal(row)


def create_ingest_token(engine: sa.Engine, tenant: str, source_id: str, name: str = "") -> str:
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


def revoke_token(engine: sa.Engine, token_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(tokens.update().where(tokens.c.id == token_id).values(revoked_at=now_us()))
