"""NIS2 incident report drafts (issue 16): per case and kind (early warning, incident
notification, final report) the prefilled and edited fields, the approval (who, when, which
content) and the sending (norrvakt/state/nis2_reports.py). Case reports need no table.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nis2_reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("editors", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("approved_by", sa.String(128), nullable=True),
        sa.Column("approved_at", sa.BigInteger, nullable=True),
        sa.Column("approved_digest", sa.String(64), nullable=True),
        sa.Column("sent_at", sa.BigInteger, nullable=True),
        sa.Column("sent_by", sa.String(128), nullable=True),
        sa.Column("sent_reference", sa.String(256), nullable=True),
        sa.UniqueConstraint("case_id", "kind", name="uq_nis2_reports_case_kind"),
    )
    op.create_index("ix_nis2_reports_tenant", "nis2_reports", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_nis2_reports_tenant", table_name="nis2_reports")
    op.drop_table("nis2_reports")
