"""Systematic log follow-up (loggkontroll): plans, rounds, sampled accesses with the reviewer's
decisions, annotations, and the tenants' hashed lookup tables.

Decisions of a signed-off round, and the round itself, cannot change (triggers refuse), annotations are
append-only — after sign-off a reviewer can only add to the record, never rewrite it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "followup_plans",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(128), nullable=False),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("frequency", sa.String(16), nullable=False),
        sa.Column("random_sample", sa.Integer, nullable=False),
        sa.Column("targeted_per_reason", sa.Integer, nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_index("ix_followup_plans_tenant", "followup_plans", ["tenant"])
    op.create_table(
        "followup_rounds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("plan_id", sa.Integer, sa.ForeignKey("followup_plans.id"), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("period_start", sa.BigInteger, nullable=False),
        sa.Column("period_end", sa.BigInteger, nullable=False),
        sa.Column("period_label", sa.String(16), nullable=False),  # 2026-11 or 2026-Q4
        sa.Column("population", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("signed_off_by", sa.String(128), nullable=True),
        sa.Column("signed_off_at", sa.BigInteger, nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("signoff_seq", sa.BigInteger, nullable=True),  # the journaled sign-off (system tenant)
        sa.Column("reason_totals", sa.Text, nullable=False),  # JSON: reason → accesses with it
    )
    op.create_index("ix_followup_rounds_plan", "followup_rounds", ["plan_id"])
    op.create_table(
        "followup_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("round_id", sa.Integer, sa.ForeignKey("followup_rounds.id"), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("event_ts", sa.BigInteger, nullable=False),
        sa.Column("user_name", sa.String(256), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at", sa.BigInteger, nullable=True),
        sa.Column("case_id", sa.Integer, nullable=True),
    )
    op.create_index("ix_followup_items_round", "followup_items", ["round_id"])
    op.create_table(
        "followup_annotations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("followup_items.id"), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "followup_lookup",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),  # "staff" (HR) or "subject" (population)
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("surname_hash", sa.String(64), nullable=True),
        sa.Column("address_hash", sa.String(64), nullable=True),
    )
    op.create_index("ix_followup_lookup", "followup_lookup", ["tenant", "kind", "id_hash"])
    _guards(op.get_bind().dialect.name)


def _guards(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION norrvakt_followup_locked() RETURNS trigger AS $$ BEGIN "
            "IF (SELECT status FROM followup_rounds WHERE id = OLD.round_id) = 'signed_off' THEN "
            "RAISE EXCEPTION 'follow-up round % is signed off; decisions can only be annotated', "
            "OLD.round_id; END IF; RETURN COALESCE(NEW, OLD); END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER followup_items_locked BEFORE UPDATE OR DELETE ON followup_items "
            "FOR EACH ROW EXECUTE FUNCTION norrvakt_followup_locked()"
        )
        op.execute(
            "CREATE TRIGGER followup_annotations_append_only BEFORE UPDATE OR DELETE ON followup_annotations "
            "FOR EACH ROW EXECUTE FUNCTION norrvakt_append_only()"
        )
        op.execute(
            "CREATE FUNCTION norrvakt_round_signed() RETURNS trigger AS $$ BEGIN "
            "IF OLD.status = 'signed_off' THEN "
            "RAISE EXCEPTION 'follow-up round % is signed off and cannot change', OLD.id; END IF; "
            "RETURN COALESCE(NEW, OLD); END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER followup_rounds_signed BEFORE UPDATE OR DELETE ON followup_rounds "
            "FOR EACH ROW EXECUTE FUNCTION norrvakt_round_signed()"
        )
        return
    for what in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER followup_items_locked_{what.lower()} BEFORE {what} ON followup_items "
            "WHEN (SELECT status FROM followup_rounds WHERE id = OLD.round_id) = 'signed_off' "
            "BEGIN SELECT RAISE(ABORT, 'follow-up round is signed off; decisions can only be annotated'); END"
        )
        op.execute(
            f"CREATE TRIGGER followup_annotations_no_{what.lower()} BEFORE {what} ON followup_annotations "
            "BEGIN SELECT RAISE(ABORT, 'followup_annotations is append-only'); END"
        )
        op.execute(
            f"CREATE TRIGGER followup_rounds_signed_{what.lower()} BEFORE {what} ON followup_rounds "
            "WHEN OLD.status = 'signed_off' "
            "BEGIN SELECT RAISE(ABORT, 'follow-up round is signed off and cannot change'); END"
        )


def downgrade() -> None:
    for table in (
        "followup_lookup",
        "followup_annotations",
        "followup_items",
        "followup_rounds",
        "followup_plans",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS norrvakt_followup_locked()")
        op.execute("DROP FUNCTION IF EXISTS norrvakt_round_signed()")
