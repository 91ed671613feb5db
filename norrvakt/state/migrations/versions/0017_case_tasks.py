"""Case tasks (issue 17): the checklist a case template gives a case, or tasks added by hand —
who has each one, its state, and when it was opened, started and done (the time to done per
task, norrvakt/state/case_tasks.py).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("title_sv", sa.String(512), nullable=False),
        sa.Column("title_en", sa.String(512), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("done_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_case_tasks_case", "case_tasks", ["case_id"])
    op.create_index("ix_case_tasks_tenant_template", "case_tasks", ["tenant", "template"])


def downgrade() -> None:
    op.drop_index("ix_case_tasks_tenant_template", "case_tasks")
    op.drop_index("ix_case_tasks_case", "case_tasks")
    op.drop_table("case_tasks")
