"""Module subscriptions per tenant: which of detection, SOC notification and log follow-up a
municipality has. No row = subscribed (the default); a row records the admin's choice.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_modules",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("module", sa.String(32), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenant_modules")
