"""Rule exceptions made from the console: what an exception suppresses (scope, rule or group,
field values), why, by whom, until when — and the matches it suppressed, counted per tenant
and kept (up to a cap) so they are never silently gone (norrvakt/state/exceptions.py).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_exceptions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("rule_group", sa.String(128), nullable=False),
        sa.Column("conditions", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("alert_id", sa.Integer, nullable=True),
        sa.Column("disabled_at", sa.BigInteger, nullable=True),
        sa.Column("disabled_by", sa.String(128), nullable=True),
        sa.Column("expiry_audited_at", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_rule_exceptions_tenant", "rule_exceptions", ["tenant"])
    op.create_table(
        "rule_exception_hits",
        sa.Column("exception_id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("hits", sa.BigInteger, nullable=False),
        sa.Column("first_hit", sa.BigInteger, nullable=False),
        sa.Column("last_hit", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "rule_exception_matches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("exception_id", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("rule_title", sa.String(512), nullable=False),
        sa.Column("event_seq", sa.BigInteger, nullable=False),
        sa.Column("event_ts", sa.BigInteger, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_rule_exception_matches_exception", "rule_exception_matches", ["exception_id", "tenant"]
    )


def downgrade() -> None:
    op.drop_index("ix_rule_exception_matches_exception", "rule_exception_matches")
    op.drop_table("rule_exception_matches")
    op.drop_table("rule_exception_hits")
    op.drop_index("ix_rule_exceptions_tenant", "rule_exceptions")
    op.drop_table("rule_exceptions")
