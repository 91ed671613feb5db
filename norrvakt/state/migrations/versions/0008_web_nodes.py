"""Web nodes on one state database: the session cookie key shared by every node, failed logins
per address and per account (the login guard), and version counters of cached state.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("address", sa.String(128), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_login_failures_address_at", "login_failures", ["address", "at"])
    op.create_index("ix_login_failures_at", "login_failures", ["at"])
    op.create_table(
        "login_accounts",
        sa.Column("username", sa.String(128), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.BigInteger, nullable=True),
        sa.Column("last_failure_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_login_accounts_last_failure", "login_accounts", ["last_failure_at"])
    op.create_table(
        "state_versions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("counter", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("state_versions")
    op.drop_index("ix_login_accounts_last_failure", "login_accounts")
    op.drop_table("login_accounts")
    op.drop_index("ix_login_failures_at", "login_failures")
    op.drop_index("ix_login_failures_address_at", "login_failures")
    op.drop_table("login_failures")
    op.drop_table("shared_keys")
