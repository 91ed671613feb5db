"""SOC workflow: alerts, their events and entities, cases with append-only history, comments,
attachments, rule settings and the notification log.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY = ("case_history", "case_comments")


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("acknowledged_at", sa.BigInteger, nullable=True),
        sa.Column("resolved_at", sa.BigInteger, nullable=True),
        sa.Column("escalated_at", sa.BigInteger, nullable=True),
        sa.Column("merged_into", sa.Integer, nullable=True),
        sa.Column("detected_at", sa.BigInteger, nullable=True),
        sa.Column("aware_at", sa.BigInteger, nullable=True),
        sa.Column("significant", sa.Boolean, nullable=True),
        sa.Column("early_warning_sent_at", sa.BigInteger, nullable=True),
        sa.Column("notification_sent_at", sa.BigInteger, nullable=True),
        sa.Column("final_report_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_cases_tenant_status", "cases", ["tenant", "status"])
    op.create_index("ix_cases_created_at", "cases", ["created_at"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("rule_title", sa.String(512), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("key_values", sa.Text, nullable=False),
        sa.Column("entities", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("event_count", sa.BigInteger, nullable=False),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=True),
        sa.Column("last_seq", sa.BigInteger, nullable=True),
        sa.Column("evidence_count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("acknowledged_at", sa.BigInteger, nullable=True),
        sa.Column("resolved_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_alerts_dedupe", "alerts", ["dedupe_key", "status"])
    op.create_index("ix_alerts_tenant_status", "alerts", ["tenant", "status"])
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])
    op.create_index("ix_alerts_case", "alerts", ["case_id"])
    op.create_table(
        "alert_events",
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
    )
    op.create_index("ix_alert_events_tenant_seq", "alert_events", ["tenant", "seq"])
    op.create_table(
        "alert_entities",
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(512), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
    )
    op.create_index("ix_alert_entities_value", "alert_entities", ["kind", "value"])
    op.create_table(
        "case_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("old_value", sa.Text, nullable=False),
        sa.Column("new_value", sa.Text, nullable=False),
    )
    op.create_index("ix_case_history_case", "case_history", ["case_id"])
    op.create_table(
        "case_comments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_case_comments_case", "case_comments", ["case_id"])
    op.create_table(
        "case_attachments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
    )
    op.create_index("ix_case_attachments_case", "case_attachments", ["case_id"])
    op.create_table(
        "rule_settings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("dedupe_fields", sa.Text, nullable=True),
        sa.Column("window_s", sa.Integer, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.UniqueConstraint("rule_id", "tenant", name="uq_rule_settings_rule_tenant"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("alert_id", sa.Integer, nullable=True),
        sa.Column("case_id", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_notifications_at", "notifications", ["at"])
    _append_only(op.get_bind().dialect.name)


def _append_only(dialect: str) -> None:
    """History and comments are never changed or removed — the database itself refuses."""
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION norrvakt_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION norrvakt_append_only()"
            )
        return
    for table in APPEND_ONLY:
        for what in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{what.lower()} BEFORE {what} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in (
        "notifications",
        "rule_settings",
        "case_attachments",
        "case_comments",
        "case_history",
        "alert_entities",
        "alert_events",
        "alerts",
        "cases",
    ):
        op.drop_table(table)
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS norrvakt_append_only()")
