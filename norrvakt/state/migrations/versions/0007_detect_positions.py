"""Detection positions: how far a cluster detection worker has matched each tenant's stream.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detect_positions",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("stream_seq", sa.BigInteger, nullable=False),
        sa.Column("journal_seq", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("detect_positions")
