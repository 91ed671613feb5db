"""Scheduled municipality and region reports (issue 16): one row per report and period — who
it went to, the SHA-256 of the PDF and HTML sent, its state (sending, sent, failed) and why it
failed — so each report is sent once, by one node, and a failure is retried and never hidden
(norrvakt/state/report_runs.py).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("schedule", sa.String(16), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_at", sa.BigInteger, nullable=False),
        sa.Column("sent_at", sa.BigInteger, nullable=True),
        sa.Column("pdf_sha256", sa.String(64), nullable=True),
        sa.Column("html_sha256", sa.String(64), nullable=True),
        sa.Column("pdf_bytes", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("tenant", "schedule", "period", name="uq_report_runs_period"),
    )


def downgrade() -> None:
    op.drop_table("report_runs")
