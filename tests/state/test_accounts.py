"""Users, tokens, sessions and SSO identities on both backends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from norrvakt.state.accounts import (
    AccountConflict,
    AccountError,
    authenticate,
    change_own_password,
    create_api_token,
    create_ingest_token,
    create_user,
    delete_user,
    disable_user,
    enable_user,
    ingest_token,
    list_ingest_tokens,
    list_users,
    principal_for_token,
    principal_of,
    revoke_token,
    set_password,
    user_exists,
)
from norrvakt.state.logins import (
    end_session,
    link_identity,
    session_hash,
    session_user,
    sso_login,
    start_session,
)

ISSUER = "https://login.boden.se/realms/kommun"


def _session(engine: sa.Engine, username: str) -> str:
    found = principal_of(engine, username)
    assert found is not None and found.user_id is not None
    return start_session(engine, found.user_id, method="password", peer="p", user_agent="ua", max_age_s=60)


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


def test_a_name_is_taken_in_any_letter_case(engine: sa.Engine) -> None:
    create_user(engine, "admin", "pw-admin-123456", "admin")
    with pytest.raises(AccountConflict):
        create_user(engine, "Admin", "pw-admin-123456", "soc_analyst")


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


def test_a_session_ends_at_logout_and_with_a_new_password(engine: sa.Engine) -> None:
    create_user(engine, "kim", "first-password", "soc_analyst")
    first, second = _session(engine, "kim"), _session(engine, "kim")
    assert session_user(engine, first) is not None
    assert end_session(engine, first) and session_user(engine, first) is None
    assert session_user(engine, second) is not None
    set_password(engine, "kim", "another-password-1")
    assert session_user(engine, second) is None


def test_the_owner_changes_the_password_and_keeps_this_session(engine: sa.Engine) -> None:
    create_user(engine, "kim", "temporary-pass-1", "soc_analyst", must_change_password=True)
    here, elsewhere = _session(engine, "kim"), _session(engine, "kim")
    assert (p := session_user(engine, here)) is not None and p.must_change_password
    with pytest.raises(AccountError, match="current password is wrong"):
        change_own_password(engine, "kim", "guess", "my-own-password-1")
    with pytest.raises(AccountError, match="at least 12"):
        change_own_password(engine, "kim", "temporary-pass-1", "short")
    change_own_password(
        engine, "kim", "temporary-pass-1", "my-own-password-1", keep_session=session_hash(here)
    )
    assert (p := session_user(engine, here)) is not None and not p.must_change_password
    assert session_user(engine, elsewhere) is None


def test_disable_and_delete_end_sessions_and_tokens(engine: sa.Engine) -> None:
    create_user(engine, "admin", "pw-admin-123456", "admin")
    create_user(engine, "kim", "kims-password-1", "soc_analyst")
    token, session = create_api_token(engine, "kim", "script"), _session(engine, "kim")
    disable_user(engine, "kim", "admin")
    assert principal_for_token(engine, token) is None and session_user(engine, session) is None
    assert authenticate(engine, "kim", "kims-password-1") is None
    enable_user(engine, "kim")
    assert principal_for_token(engine, token) is not None
    delete_user(engine, "kim", "admin")
    assert (
        principal_for_token(engine, token) is None and authenticate(engine, "kim", "kims-password-1") is None
    )
    with pytest.raises(AccountConflict, match="names are not reused"):
        create_user(engine, "kim", "new-kims-password", "soc_analyst")
    (kim,) = [u for u in list_users(engine) if u["username"] == "kim"]
    assert kim["deleted"] is True


def test_the_last_admin_and_oneself_cannot_be_disabled(engine: sa.Engine) -> None:
    create_user(engine, "admin", "pw-admin-123456", "admin")
    with pytest.raises(AccountConflict, match="your own account"):
        disable_user(engine, "admin", "admin")
    with pytest.raises(AccountConflict, match="last enabled admin"):
        delete_user(engine, "admin", "local:root")


def test_an_sso_identity_gets_its_own_account_never_a_local_one(engine: sa.Engine) -> None:
    create_user(engine, "admin", "pw-admin-123456", "admin")
    first = sso_login(engine, ISSUER, "sub-1", "admin", "soc_analyst", [])
    assert first.created and first.principal.username == "admin@login.boden.se"
    assert first.principal.role == "soc_analyst"
    local = authenticate(engine, "admin", "pw-admin-123456")
    assert local is not None and local.role == "admin"
    again = sso_login(engine, ISSUER, "sub-1", "renamed", "tenant_officer", ["boden"])
    assert not again.created and again.principal.username == "admin@login.boden.se"
    assert again.principal.tenants == frozenset({"boden"})  # the claims rule an SSO account
    other = sso_login(engine, ISSUER, "sub-2", "admin", "soc_analyst", [])
    assert other.principal.username == "admin@login.boden.se-2"


def test_a_linked_identity_logs_in_as_the_local_account_with_its_own_role(engine: sa.Engine) -> None:
    create_user(engine, "granskare", "pw-granskare-1", "tenant_officer", ["lulea"])
    assert link_identity(engine, "granskare", ISSUER, "sub-9") is None
    found = sso_login(engine, ISSUER, "sub-9", "someone", "admin", [])
    assert found.linked and found.principal.username == "granskare"
    assert found.principal.role == "tenant_officer" and found.principal.tenants == frozenset({"lulea"})
