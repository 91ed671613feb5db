"""The notification outbox: notices waiting for their channel survive a restart or kill -9.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("notice", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notification_outbox")
