"""Users and tokens on both backends (the functions other code uses keep their signatures)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from norrvakt.state.accounts import (
    authenticate,
    create_api_token,
    create_ingest_token,
    create_user,
    ingest_token,
    list_ingest_tokens,
    principal_for_token,
    revoke_token,
    set_password,
    user_exists,
)
from norrvakt.state.logins import upsert_sso_user, user_login


def test_users_and_passwords(engine: sa.Engine) -> None:
    create_user(engine, "kim", "first-password", "tenant_officer", ["lulea", "boden"])
    assert user_exists(engine, "kim") and not user_exists(engine, "nobody")
    principal = authenticate(engine, "kim", "first-password")
    assert principal is not None and principal.tenants == frozenset({"lulea", "boden"})
    assert authenticate(engine, "kim", "wrong") is None
    set_password(engine, "kim", "second-password")
    assert authenticate(engine, "kim", "first-password") is None
    assert authenticate(engine, "kim", "second-password") is not None


def test_unknown_role_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="unknown role 'boss'"):
        create_user(engine, "x", "pw", "boss")


def test_api_and_ingest_tokens(engine: sa.Engine) -> None:
    create_user(engine, "admin", "pw-admin-123", "admin")
    api = create_api_token(engine, "admin", "cli")
    assert (p := principal_for_token(engine, api)) is not None and p.tenants is None
    ingest = create_ingest_token(engine, "kiruna", "kiruna-winlogbeat")
    found = ingest_token(engine, ingest)
    assert found is not None and (found.tenant, found.source_id) == ("kiruna", "kiruna-winlogbeat")
    (row,) = list_ingest_tokens(engine)
    revoke_token(engine, int(row["id"]))  # type: ignore[call-overload]
    assert ingest_token(engine, ingest) is None


def test_sso_users(engine: sa.Engine) -> None:
    first = upsert_sso_user(engine, "sso.anna", "tenant_officer", ["pitea"])
    assert upsert_sso_user(engine, "sso.anna", "soc_analyst", []) == first
    found = user_login(engine, "sso.anna")
    assert found is not None and found[0].role == "soc_analyst"
