"""Microsoft 365 / Entra ID connectors: encrypted client credentials and a checkpoint per
connector and feed (norrvakt/state/m365.py).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "m365_credentials",
        sa.Column("connector", sa.String(128), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "m365_checkpoints",
        sa.Column("connector", sa.String(128), primary_key=True),
        sa.Column("feed", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("done_until", sa.BigInteger, nullable=False),
        sa.Column("seen", sa.Text, nullable=False),
        sa.Column("records", sa.BigInteger, nullable=False),
        sa.Column("duplicates", sa.BigInteger, nullable=False),
        sa.Column("last_attempt_at", sa.BigInteger, nullable=True),
        sa.Column("last_success_at", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_m365_checkpoints_tenant", "m365_checkpoints", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_m365_checkpoints_tenant", "m365_checkpoints")
    op.drop_table("m365_checkpoints")
    op.drop_table("m365_credentials")
