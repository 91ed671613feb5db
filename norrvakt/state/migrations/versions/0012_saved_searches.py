"""Saved searches (private, shared within a tenant, region-wide), scheduled searches as alert
rules with their last run, and the saved searches pinned on dashboards
(norrvakt/state/saved_searches.py).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_searches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("since", sa.String(64), nullable=False),
        sa.Column("until", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("every_s", sa.Integer, nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_run_at", sa.BigInteger, nullable=True),
        sa.Column("last_run_at", sa.BigInteger, nullable=True),
        sa.Column("last_status", sa.String(16), nullable=False),
        sa.Column("last_result", sa.Text, nullable=False),
        sa.Column("last_alerts", sa.Integer, nullable=False),
    )
    op.create_index("ix_saved_searches_tenant", "saved_searches", ["tenant"])
    op.create_index("ix_saved_searches_next_run", "saved_searches", ["next_run_at"])
    op.create_table(
        "dashboard_pins",
        sa.Column("username", sa.String(128), primary_key=True),
        sa.Column("search_id", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dashboard_pins")
    op.drop_index("ix_saved_searches_next_run", "saved_searches")
    op.drop_index("ix_saved_searches_tenant", "saved_searches")
    op.drop_table("saved_searches")
