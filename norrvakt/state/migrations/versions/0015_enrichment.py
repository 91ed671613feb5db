"""Enrichment (issue 17): a tenant's assets (host, owner, criticality, system;
norrvakt/state/assets.py) and its directory accounts as the last LDAP sync saw them
(norrvakt/state/directory.py).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("criticality", sa.String(16), nullable=False),
        sa.Column("system", sa.String(255), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "directory_accounts",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(255), primary_key=True),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("dn", sa.Text, nullable=False),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("privileged", sa.Boolean, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("departed", sa.Boolean, nullable=False),
        sa.Column("synced_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("directory_accounts")
    op.drop_table("assets")
