"""The state database: users, tokens, alerts, cases, their history and rule settings.

SQLite under the data directory by default; PostgreSQL (any SQLAlchemy URL) when configured.
All SQL on state lives in ``norrvakt/state``; callers use the small functions of the modules
next to this one. The tables below are what the code reads and writes; the schema itself is
created and upgraded by the versioned migrations in ``migrations/versions`` (Alembic), run by
:func:`open_state` — a test checks that both describe the same schema.

Times are microseconds since the Unix epoch (UTC), like everywhere in Norrvakt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event

metadata = sa.MetaData()

Row = dict[str, Any]  # a row as the data-access functions hand it out


def as_rows(result: sa.Result[Any]) -> list[Row]:
    return [dict(r._mapping) for r in result]


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(128), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("tenants", sa.String(1024), nullable=False, default=""),  # comma-separated; "*" = all
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    # Accounts, migration 0006: a generated password is temporary (changed at first login); an
    # account made by single sign-on has no usable password; a deleted account stays as a
    # tombstone so its name (which the history refers to) is never given to someone else.
    sa.Column("must_change_password", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("sso_only", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("password_changed_at", sa.BigInteger, nullable=True),
    sa.Column("deleted_at", sa.BigInteger, nullable=True),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # SHA-256 hex; tokens never stored
    sa.Column("kind", sa.String(16), nullable=False),  # "ingest" | "api"
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=True),  # ingest: records go to this tenant
    sa.Column("source_id", sa.String(128), nullable=True),  # ingest: shown as the event's source
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),  # api: acts as this user
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

cases = sa.Table(
    "cases",
    metadata,
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
    sa.Column("resolved_at", sa.BigInteger, nullable=True),  # resolved or false positive
    sa.Column("escalated_at", sa.BigInteger, nullable=True),
    sa.Column("merged_into", sa.Integer, nullable=True),
    # NIS2 (the Swedish Cybersecurity Act): when it was detected, when the organisation became
    # aware of it, whether it is significant, and when each report was sent.
    sa.Column("detected_at", sa.BigInteger, nullable=True),
    sa.Column("aware_at", sa.BigInteger, nullable=True),
    sa.Column("significant", sa.Boolean, nullable=True),
    sa.Column("early_warning_sent_at", sa.BigInteger, nullable=True),
    sa.Column("notification_sent_at", sa.BigInteger, nullable=True),
    sa.Column("final_report_at", sa.BigInteger, nullable=True),
    sa.Index("ix_cases_tenant_status", "tenant", "status"),
    sa.Index("ix_cases_created_at", "created_at"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("rule_id", sa.String(128), nullable=False),
    sa.Column("rule_title", sa.String(512), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON list (ATT&CK tags)
    sa.Column("source", sa.String(64), nullable=False),  # sigma, integrity, api, …
    sa.Column("dedupe_key", sa.String(64), nullable=False),  # SHA-256 hex of tenant, rule, key values
    sa.Column("key_values", sa.Text, nullable=False),  # JSON {field: value} the key was made of
    sa.Column("entities", sa.Text, nullable=False),  # JSON {field: value} of the first event
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True),
    sa.Column("event_count", sa.BigInteger, nullable=False),
    sa.Column("first_seen", sa.BigInteger, nullable=False),
    sa.Column("last_seen", sa.BigInteger, nullable=False),
    sa.Column("first_seq", sa.BigInteger, nullable=True),
    sa.Column("last_seq", sa.BigInteger, nullable=True),
    sa.Column("evidence_count", sa.Integer, nullable=False),  # rows in alert_events (capped)
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("acknowledged_at", sa.BigInteger, nullable=True),
    sa.Column("resolved_at", sa.BigInteger, nullable=True),
    sa.Index("ix_alerts_dedupe", "dedupe_key", "status"),
    sa.Index("ix_alerts_tenant_status", "tenant", "status"),
    sa.Index("ix_alerts_created_at", "created_at"),
    sa.Index("ix_alerts_case", "case_id"),
)

# The events an alert was raised on: (tenant, seq) in the journal and the store.
alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Index("ix_alert_events_tenant_seq", "tenant", "seq"),
)

# Who and what an alert is about (user, host, source IP, hashes): grouping and the
# cross-tenant indicator view read these.
alert_entities = sa.Table(
    "alert_entities",
    metadata,
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), primary_key=True),
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(512), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Index("ix_alert_entities_value", "kind", "value"),
)

# Append-only (triggers refuse UPDATE and DELETE); every row is also journaled.
case_history = sa.Table(
    "case_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("old_value", sa.Text, nullable=False),
    sa.Column("new_value", sa.Text, nullable=False),
    sa.Index("ix_case_history_case", "case_id"),
)

case_comments = sa.Table(
    "case_comments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("ix_case_comments_case", "case_id"),
)

# Search results kept with a case (the query, its scope and the rows as they were then).
case_attachments = sa.Table(
    "case_attachments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    sa.Column("title", sa.String(512), nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON: tenants, since, until, limit
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("result", sa.Text, nullable=False),  # JSON rows
    sa.Index("ix_case_attachments_case", "case_id"),
)

# Per rule (and optionally per tenant; "*" = every tenant): dedupe key fields, window, on/off.
rule_settings = sa.Table(
    "rule_settings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("rule_id", sa.String(128), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("dedupe_fields", sa.Text, nullable=True),  # JSON list; NULL = the default
    sa.Column("window_s", sa.Integer, nullable=True),  # NULL = the default
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
    sa.UniqueConstraint("rule_id", "tenant", name="uq_rule_settings_rule_tenant"),
)

# Every notification attempt: sent, failed (after retries) or held back by a rate limit.
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # alert.new | case.escalated | digest
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("alert_id", sa.Integer, nullable=True),
    sa.Column("case_id", sa.Integer, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # sent | failed | rate_limited
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_notifications_at", "at"),
)


def make_engine(url: str) -> sa.Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url)

        @sa_event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def normalize_url(url: str) -> str:
    """``postgresql://…`` means psycopg 3 (the driver Norrvakt installs), not psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'state.db').resolve()}"


def open_state(url: str) -> sa.Engine:
    """Connect and bring the schema to the newest version (migrations run at start)."""
    from norrvakt.state.migrate import upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


# -- systematic log follow-up (loggkontroll), migration 0003 ------------------------------------

followup_plans = sa.Table(
    "followup_plans",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(128), nullable=False),  # e.g. socialtjanst.record_access
    sa.Column("title", sa.String(256), nullable=False),
    sa.Column("frequency", sa.String(16), nullable=False),  # monthly | quarterly
    sa.Column("random_sample", sa.Integer, nullable=False),
    sa.Column("targeted_per_reason", sa.Integer, nullable=False),
    sa.Column("reviewer", sa.String(128), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Index("ix_followup_plans_tenant", "tenant"),
)

followup_rounds = sa.Table(
    "followup_rounds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("plan_id", sa.Integer, sa.ForeignKey("followup_plans.id"), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("period_start", sa.BigInteger, nullable=False),
    sa.Column("period_end", sa.BigInteger, nullable=False),
    sa.Column("period_label", sa.String(16), nullable=False),  # 2026-11 or 2026-Q4
    sa.Column("population", sa.BigInteger, nullable=False),  # accesses in the period
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | signed_off
    sa.Column("signed_off_by", sa.String(128), nullable=True),
    sa.Column("signed_off_at", sa.BigInteger, nullable=True),
    sa.Column("digest", sa.String(64), nullable=True),  # SHA-256 of the decisions, journaled at sign-off
    sa.Column("signoff_seq", sa.BigInteger, nullable=True),  # the journaled sign-off (system tenant)
    sa.Column("reason_totals", sa.Text, nullable=False),  # JSON: reason → accesses with it
    sa.Index("ix_followup_rounds_plan", "plan_id"),
)

followup_items = sa.Table(
    "followup_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("round_id", sa.Integer, sa.ForeignKey("followup_rounds.id"), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("event_ts", sa.BigInteger, nullable=False),
    sa.Column("user_name", sa.String(256), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),  # comma list: random, protected_not_assigned, …
    sa.Column("decision", sa.String(32), nullable=True),  # justified | not_justified | needs_investigation
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("decided_by", sa.String(128), nullable=True),
    sa.Column("decided_at", sa.BigInteger, nullable=True),
    sa.Column("case_id", sa.Integer, nullable=True),
    sa.Index("ix_followup_items_round", "round_id"),
)

followup_annotations = sa.Table(
    "followup_annotations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("followup_items.id"), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

followup_lookup = sa.Table(
    "followup_lookup",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("id_hash", sa.String(64), nullable=False),
    sa.Column("surname_hash", sa.String(64), nullable=True),
    sa.Column("address_hash", sa.String(64), nullable=True),
    sa.Index("ix_followup_lookup", "tenant", "kind", "id_hash"),
)


# -- module subscriptions per tenant, migration 0004 -------------------------------------------

# Notices not yet handled by their channel: written before a notice is queued, deleted once
# it was sent or failed for good, so a restart (or kill -9) sends what was still waiting.
notification_outbox = sa.Table(
    "notification_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("notice", sa.Text, nullable=False),  # the Notice as JSON
    # migration 0009: the process that queued it ("" before: anyone's, see state/outbox.py)
    sa.Column("owner", sa.String(128), nullable=False, default="", server_default=""),
)


tenant_modules = sa.Table(
    "tenant_modules",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("module", sa.String(32), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)


# -- accounts: SSO identities and server-side sessions, migration 0006 -------------------------

# Who a person is at an identity provider: (issuer, subject) — never the name they claim. An
# identity belongs to the account it created at first login, or to the local account an
# admin linked it to.
sso_identities = sa.Table(
    "sso_identities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("issuer", sa.String(512), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_login_at", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("issuer", "subject", name="uq_sso_identities_issuer_subject"),
    sa.Index("ix_sso_identities_user", "user_id"),
)

# Browser sessions: the cookie carries the (signed) session id, the table its SHA-256 — so
# logging out, a password change, disabling or deleting the account end it on the server.
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),  # password | oidc
    sa.Column("peer", sa.String(128), nullable=False),
    sa.Column("user_agent", sa.String(256), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_seen_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Index("ix_sessions_user", "user_id"),
)

# Cluster detection (migration 0007): the last envelope of a tenant's stream whose matches are
# in the alert tables, and the seq its last event has. Moved in the same transaction as the
# alerts it produced, by compare-and-set — see norrvakt/state/detect_positions.py.
detect_positions = sa.Table(
    "detect_positions",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("stream_seq", sa.BigInteger, nullable=False),
    sa.Column("journal_seq", sa.BigInteger, nullable=False),
    sa.Column("holder", sa.String(128), nullable=False),  # the worker that moved it last
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)


# -- web nodes on one state database, migration 0008 -------------------------------------------

# Secrets every web node of the state database signs with (the session cookie key): made at
# the first start, or taken over from the data directory's key file of an older version.
shared_keys = sa.Table(
    "shared_keys",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Failed logins per address, one row each; rows older than the throttle's minute are pruned.
login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("address", sa.String(128), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Index("ix_login_failures_address_at", "address", "at"),
    sa.Index("ix_login_failures_at", "at"),
)

# Per account name as typed (lower-cased; also names that do not exist): failures in a row and
# the lock they set.
login_accounts = sa.Table(
    "login_accounts",
    metadata,
    sa.Column("username", sa.String(128), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("locked_until", sa.BigInteger, nullable=True),
    sa.Column("last_failure_at", sa.BigInteger, nullable=False),
    sa.Index("ix_login_accounts_last_failure", "last_failure_at"),
)

# A counter per kind of cached state (ingest tokens, module subscriptions), bumped in the
# transaction of every change: each node's cache drops what it holds when the counter moved.
state_versions = sa.Table(
    "state_versions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("counter", sa.BigInteger, nullable=False),
)


# -- Microsoft 365 / Entra ID connectors, migration 0010 (norrvakt/state/m365.py) ---------------

# Per connector: its client credential, AES-GCM encrypted with a key kept only in the data
# directory (norrvakt/sources/m365/credentials.py) — never the plaintext.
m365_credentials = sa.Table(
    "m365_credentials",
    metadata,
    sa.Column("connector", sa.String(128), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # secret | certificate
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),  # nonce ‖ AES-GCM(credential JSON)
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)

# Per connector and feed: everything created before ``done_until`` is durable in the journal;
# ``seen`` (JSON) holds the record ids of the overlap window, so a re-listing is deduplicated.
m365_checkpoints = sa.Table(
    "m365_checkpoints",
    metadata,
    sa.Column("connector", sa.String(128), primary_key=True),
    sa.Column("feed", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("done_until", sa.BigInteger, nullable=False),
    sa.Column("seen", sa.Text, nullable=False),
    sa.Column("records", sa.BigInteger, nullable=False),  # records pulled so far
    sa.Column("duplicates", sa.BigInteger, nullable=False),  # records dropped as already seen
    sa.Column("last_attempt_at", sa.BigInteger, nullable=True),
    sa.Column("last_success_at", sa.BigInteger, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_m365_checkpoints_tenant", "tenant"),
)


# -- Rule exceptions, migration 0011 (norrvakt/state/exceptions.py) ------------------------------

# An exception suppresses the matches of one rule (``rule_id``) or of a group of rules
# (``rule_group``, e.g. ``tag:attack.t1110``) in one tenant or all (``*``) whose event has the
# field values of ``conditions`` (JSON: field -> values). Never deleted: disabled, or expired.
rule_exceptions = sa.Table(
    "rule_exceptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),  # a tenant, or "*"
    sa.Column("rule_id", sa.String(128), nullable=False),  # "" when rule_group is set
    sa.Column("rule_group", sa.String(128), nullable=False),  # "" when rule_id is set
    sa.Column("conditions", sa.Text, nullable=False),  # JSON {field: [values]}
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("alert_id", sa.Integer, nullable=True),  # the alert it was made from
    sa.Column("disabled_at", sa.BigInteger, nullable=True),
    sa.Column("disabled_by", sa.String(128), nullable=True),
    # when the expiry went into the audit trail (one node claims it: audited once)
    sa.Column("expiry_audited_at", sa.BigInteger, nullable=True),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_rule_exceptions_tenant", "tenant"),
)

# What each exception suppressed, per tenant: counted always ...
rule_exception_hits = sa.Table(
    "rule_exception_hits",
    metadata,
    sa.Column("exception_id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("hits", sa.BigInteger, nullable=False),
    sa.Column("first_hit", sa.BigInteger, nullable=False),
    sa.Column("last_hit", sa.BigInteger, nullable=False),
)

# ... and the suppressed matches themselves (the event's journal seq), up to a cap per
# exception and tenant, as an alert keeps its first evidence.
rule_exception_matches = sa.Table(
    "rule_exception_matches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("exception_id", sa.Integer, nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("rule_id", sa.String(128), nullable=False),
    sa.Column("rule_title", sa.String(512), nullable=False),
    sa.Column("event_seq", sa.BigInteger, nullable=False),
    sa.Column("event_ts", sa.BigInteger, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Index("ix_rule_exception_matches_exception", "exception_id", "tenant"),
)


# -- Saved searches and scheduled search rules, migration 0012 (norrvakt/state/saved_searches.py) --

# A saved search: a query and a time range with a name, kept private (``owner`` only), shared
# with a tenant's users, or region-wide (``tenant = "*"``, central roles). With ``every_s`` set it
# is also an alert rule: the scheduler runs it when ``next_run_at`` has come (one node claims a
# run by moving ``next_run_at``), and keeps what the last run found.
saved_searches = sa.Table(
    "saved_searches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("since", sa.String(64), nullable=False),  # as typed: "24h", "2026-11-01"; "" = all time
    sa.Column("until", sa.String(64), nullable=False),  # "" = now
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),  # a tenant, or "*" (region-wide)
    sa.Column("visibility", sa.String(16), nullable=False),  # private | tenant | region
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("every_s", sa.Integer, nullable=True),  # set: a scheduled search (alert rule)
    sa.Column("level", sa.String(16), nullable=False),  # the alerts' level ("" when not a rule)
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("next_run_at", sa.BigInteger, nullable=True),
    sa.Column("last_run_at", sa.BigInteger, nullable=True),
    sa.Column("last_status", sa.String(16), nullable=False),  # "" | ok | fired | skipped | error
    sa.Column("last_result", sa.Text, nullable=False),  # what the last run found, in words
    sa.Column("last_alerts", sa.Integer, nullable=False),  # alerts (new or repeated) of the last run
    sa.Index("ix_saved_searches_tenant", "tenant"),
    sa.Index("ix_saved_searches_next_run", "next_run_at"),
)

# Saved searches a user pinned as panels of their dashboard, in their order.
dashboard_pins = sa.Table(
    "dashboard_pins",
    metadata,
    sa.Column("username", sa.String(128), primary_key=True),
    sa.Column("search_id", sa.Integer, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)


# -- NIS2 incident reports, migration 0014 (norrvakt/state/nis2_reports.py) ---------------------

# One draft per case and kind (early_warning, notification, final_report): its fields (JSON,
# times in µs), who drafted and edited it, who approved which content (the digest of its fields)
# and when it was sent. Never deleted; its changes are lines of the case's history.
nis2_reports = sa.Table(
    "nis2_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.Integer, nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # draft | approved | sent
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("editors", sa.Text, nullable=False),  # JSON list of user names since the last approval
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
    sa.Index("ix_nis2_reports_tenant", "tenant"),
)


# -- Case tasks from templates, migration 0017 (norrvakt/state/case_tasks.py) -------------------

# One task of a case's checklist: made when a template is applied (``template`` and ``key``
# name where it came from) or added by hand (``template`` ""). Never deleted: a task that does
# not apply is set to not_applicable. ``done_at`` - ``created_at`` is the task's time to done.
case_tasks = sa.Table(
    "case_tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("title_sv", sa.String(512), nullable=False),
    sa.Column("title_en", sa.String(512), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # open | in_progress | done | not_applicable
    sa.Column("assignee", sa.String(128), nullable=True),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=True),  # first set in_progress
    sa.Column("done_at", sa.BigInteger, nullable=True),  # set done (cleared when reopened)
    sa.Index("ix_case_tasks_case", "case_id"),
    sa.Index("ix_case_tasks_tenant_template", "tenant", "template"),
)


class UnsupportedDatabase(ValueError):
    """A state database other than SQLite or PostgreSQL (the settings' check refuses such a
    ``state.url`` at start; this names it for a caller that opened one directly)."""


def upsert(conn: sa.Connection, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT`` for the connection's database (PostgreSQL or SQLite): the
    dialect's insert construct, with ``on_conflict_do_update``/``on_conflict_do_nothing``."""
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise UnsupportedDatabase(f"state database {name!r}: Norrvakt supports SQLite and PostgreSQL")


# -- scheduled reports, migration 0013 ----------------------------------------------------------

# One row per report (a tenant's, or the region's as tenant "_region") and period: claimed by
# one node before it is rendered and sent, then sent (with the digests journaled) or failed
# (with why; tried again later). The unique key makes a period's report go out once.
report_runs = sa.Table(
    "report_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("schedule", sa.String(16), nullable=False),  # monthly | weekly
    sa.Column("period", sa.String(16), nullable=False),  # 2026-11 | 2026-W48
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # sending | sent | failed
    sa.Column("owner", sa.String(128), nullable=False),  # the node that claimed it
    sa.Column("recipients", sa.Text, nullable=False),  # comma-separated
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


# -- Enrichment, migration 0015 (norrvakt/state/assets.py, norrvakt/state/directory.py) ---------

# A tenant's assets: a host (its name as events write it, lower case), who owns it, how critical
# it is (low | medium | high | critical) and the system it belongs to (e.g. "Treserva").
assets = sa.Table(
    "assets",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("criticality", sa.String(16), nullable=False),
    sa.Column("system", sa.String(255), nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# The accounts of a tenant's Active Directory as the last LDAP sync saw them (sAMAccountName in
# lower case); groups as a JSON list of names; departed = no longer in the directory.
directory_accounts = sa.Table(
    "directory_accounts",
    metadata,
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

# Response actions (issue 17, migration 0016; norrvakt/state/response_actions.py): one row per
# action asked for — who asked, who approved, against what, and what the target system answered.
response_actions = sa.Table(
    "response_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("case_id", sa.Integer, nullable=True),
    sa.Column("alert_id", sa.Integer, nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    # pending_approval | running | done | failed | rejected | dry_run | undone | undo_failed
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("requested_by", sa.String(128), nullable=False),
    sa.Column("requested_at", sa.BigInteger, nullable=False),
    sa.Column("approved_by", sa.String(128), nullable=True),
    sa.Column("approved_at", sa.BigInteger, nullable=True),
    sa.Column("executed_at", sa.BigInteger, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("result", sa.Text, nullable=False),  # what the target system answered (or why it failed)
    sa.Column("undone_by", sa.String(128), nullable=True),
    sa.Column("undone_at", sa.BigInteger, nullable=True),
    sa.Column("undo_result", sa.Text, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_response_actions_tenant", "tenant", "requested_at"),
    sa.Index("ix_response_actions_case", "case_id"),
)

# A tenant's blocked addresses, served to its firewalls as a threat feed until they expire.
response_blocklist = sa.Table(
    "response_blocklist",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("address", sa.String(64), nullable=False),  # an address or a CIDR network
    sa.Column("action_id", sa.Integer, nullable=True),
    sa.Column("case_id", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("added_by", sa.String(128), nullable=False),
    sa.Column("added_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("removed_by", sa.String(128), nullable=True),
    sa.Column("removed_at", sa.BigInteger, nullable=True),
    sa.Index("ix_response_blocklist_tenant", "tenant", "expires_at"),
)

# The token a tenant's firewalls fetch the feed with (its SHA-256 only), and the AD service
# account's password, sealed like the M365 credentials (the key file never goes in here).
response_feed_tokens = sa.Table(
    "response_feed_tokens",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

response_ad_credentials = sa.Table(
    "response_ad_credentials",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
