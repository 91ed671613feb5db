"""Schema migrations: run at start, idempotent, upgrade a pre-migration database, and the
migrated schema is exactly what the code's tables describe."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from norrvakt.auth.passwords import hash_password
from norrvakt.state.accounts import authenticate, create_user
from norrvakt.state.db import make_engine, metadata, open_state
from norrvakt.state.migrate import current_revision, head_revision


def test_open_state_migrates_an_empty_database_to_head(state_url: str) -> None:
    engine = open_state(state_url)
    assert current_revision(engine) == head_revision()
    assert {"users", "tokens", "alerts", "cases", "case_history"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_migrated_schema_matches_the_tables_the_code_uses(state_url: str) -> None:
    engine = open_state(state_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_opening_twice_is_a_no_op(state_url: str) -> None:
    open_state(state_url).dispose()
    engine = open_state(state_url)
    create_user(engine, "anna", "pw-1234567", "soc_analyst")
    engine.dispose()
    engine = open_state(state_url)
    assert authenticate(engine, "anna", "pw-1234567") is not None
    engine.dispose()


# Columns later revisions added to the tables that existed before migrations.
ADDED_LATER = {"users": {"must_change_password", "sso_only", "password_changed_at", "deleted_at"}}


def test_a_database_from_before_migrations_keeps_its_users(state_url: str) -> None:
    legacy = make_engine(state_url)
    old = sa.MetaData()
    for table in ("users", "tokens"):
        columns = [c for c in metadata.tables[table].columns if c.name not in ADDED_LATER.get(table, set())]
        sa.Table(table, old, *[c._copy() for c in columns])
    old.create_all(legacy)  # what open_state did before migrations existed
    with legacy.begin() as conn:
        conn.execute(
            old.tables["users"]
            .insert()
            .values(
                username="admin",
                password_hash=hash_password("secret-password"),
                role="admin",
                tenants="",
                created_at=1,
                disabled=False,
            )
        )
    legacy.dispose()
    engine = open_state(state_url)
    assert current_revision(engine) == head_revision()
    principal = authenticate(engine, "admin", "secret-password")
    assert principal is not None and principal.role == "admin"
    engine.dispose()


@pytest.mark.parametrize("statement", ["UPDATE case_history SET actor = 'x'", "DELETE FROM case_history"])
def test_case_history_is_append_only_in_the_database(engine: sa.Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO cases (tenant, title, status, severity, created_by, created_at, updated_at) "
                "VALUES ('lulea', 't', 'new', 'high', 'x', 1, 1)"
            )
        )
        case_id = conn.execute(sa.text("SELECT max(id) FROM cases")).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO case_history (case_id, tenant, at, actor, action, field, old_value, new_value) "
                "VALUES (:c, 'lulea', 1, 'anna', 'status', 'status', 'new', 'acknowledged')"
            ),
            {"c": case_id},
        )
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM case_history")).scalar_one() == 1
