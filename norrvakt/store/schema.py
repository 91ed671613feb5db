"""The events table: its DDL and how event field names map to columns.

One table for all tenants, ``MergeTree`` partitioned by the day an event was received and
ordered by (tenant, ts) so a tenant's time range is a contiguous read. ECS names become
columns with ``.`` replaced by ``_`` (``event.code`` → ``event_code``); the source's own fields
live in the ``fields`` map. ``message_lower`` is a lowered copy with a ``text`` index so
case-insensitive token search uses the index (``lower(message)`` in a WHERE would bypass it).
"""

from __future__ import annotations

from norrvakt.event import ECS_FIELDS

EVENTS_TABLE = "events"

# ECS columns with few distinct values get dictionary encoding.
_LOW_CARDINALITY = {
    "event.kind",
    "event.category",
    "event.type",
    "event.action",
    "event.outcome",
    "event.code",
    "event.dataset",
    "event.provider",
    "event.module",
    "event.severity",
    "log.level",
    "log.syslog.facility.code",
    "log.syslog.severity.code",
    "log.syslog.appname",
    "host.name",
    "user.domain",
    "network.transport",
    "network.protocol",
    "http.request.method",
    "http.response.status_code",
    "observer.vendor",
    "observer.product",
    "observer.name",
    "winlog.channel",
    "error.type",
}


def column_for(ecs_name: str) -> str:
    """Column name of an ECS field: ``source.ip`` → ``source_ip``."""
    return ecs_name.replace(".", "_")


ECS_COLUMNS: dict[str, str] = {name: column_for(name) for name in ECS_FIELDS}

# Columns every row has besides the ECS ones, in insert order.
BASE_COLUMNS: tuple[str, ...] = ("tenant", "seq", "ts", "ingested", "source", "peer")
TAIL_COLUMNS: tuple[str, ...] = ("fields", "message", "raw")
INSERT_COLUMNS: tuple[str, ...] = BASE_COLUMNS + tuple(ECS_COLUMNS.values()) + TAIL_COLUMNS


def events_ddl(retention_days: int, *, dedupe_window: int = 0) -> str:
    """CREATE TABLE for the events table. ``retention_days`` ≤ 0 means no TTL.

    Partitioned by the day Norrvakt received an event, not the day it happened: ClickHouse
    writes one part per partition an INSERT touches, so a batch of Windows events from a
    backfill or an EVTX replay that span 200 days made 200 tiny parts — 25× the CPU per event
    of the same batch from one day (measured: 1,090 vs 44 µs). An insert now touches one
    partition (two around midnight), retention (by ``ingested``) drops whole partitions, and
    searches by ``ts`` are narrowed by the primary key ``(tenant, ts)`` in every part. Stores
    made before keep their partitioning (both are correct); a rebuild from the journal gives
    the new one.

    ``dedupe_window`` > 0 keeps the ids of the last that many inserted blocks
    (``non_replicated_deduplication_window``) so a replayed block is skipped — for a store
    replica fed by a store writer (norrvakt.store.writer); 0, the embedded node's table, keeps
    none."""
    settings = "index_granularity = 8192"
    if dedupe_window > 0:
        settings += f", non_replicated_deduplication_window = {int(dedupe_window)}"
    return table_ddl(
        EVENTS_TABLE,
        engine="MergeTree",
        order_by="(tenant, ts)",
        retention_days=retention_days,
        settings=settings,
    )


def table_ddl(
    name: str,
    *,
    engine: str,
    order_by: str,
    retention_days: int,
    settings: str,
    on_cluster: str = "",
    primary_key: str = "",
) -> str:
    """CREATE TABLE with the events table's columns and indexes; the embedded store and the
    production cluster (norrvakt.store.cluster_schema) differ only in what is passed here."""
    ecs_cols = ",\n  ".join(
        f"`{ECS_COLUMNS[name]}` {'LowCardinality(String)' if name in _LOW_CARDINALITY else 'String'}"
        for name in ECS_FIELDS
    )
    ttl = f"TTL toDateTime(ingested) + INTERVAL {int(retention_days)} DAY" if retention_days > 0 else ""
    cluster = f" ON CLUSTER {on_cluster}" if on_cluster else ""
    key = f"PRIMARY KEY {primary_key}\n" if primary_key else ""
    return f"""
CREATE TABLE IF NOT EXISTS {name}{cluster} (
  tenant LowCardinality(String),
  seq UInt64,
  ts DateTime64(6, 'UTC'),
  ingested DateTime64(6, 'UTC'),
  source LowCardinality(String),
  peer String,
  {ecs_cols},
  fields Map(String, String),
  message String,
  message_lower String MATERIALIZED lowerUTF8(message),
  raw String,
  INDEX seq_idx seq TYPE minmax GRANULARITY 1,
  INDEX message_text message_lower TYPE text(tokenizer = splitByNonAlpha),
  INDEX user_idx user_name TYPE bloom_filter GRANULARITY 4,
  INDEX srcip_idx source_ip TYPE bloom_filter GRANULARITY 4
) ENGINE = {engine}
PARTITION BY toDate(ingested)
{key}ORDER BY {order_by}
{ttl}
SETTINGS {settings}
""".strip()
