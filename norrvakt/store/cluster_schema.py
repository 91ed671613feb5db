"""The production store: a ClickHouse server cluster of 1 shard × 2 replicas and 3 Keeper nodes.

The same events table as the embedded store (schema.table_ddl: same columns and indexes), as
``ReplicatedReplacingMergeTree`` created ``ON CLUSTER``, so either replica can serve reads and
either can die. Three things differ from the embedded table, each for exactly-once:

- ``ORDER BY (tenant, ts, seq)`` with ``PRIMARY KEY (tenant, ts)``: ReplacingMergeTree
  collapses rows with equal sorting keys, and (tenant, ts) alone is not unique — two events in
  one microsecond would be merged into one. (tenant, seq) is unique and an event's ts never
  changes, so the key collapses only true copies; the primary index stays (tenant, ts), which
  is what time-range searches read. The merge is a backstop, not the mechanism (it runs
  whenever ClickHouse likes, and count() sees copies until then): insert deduplication is.
- Block ids are kept in Keeper for ``replicated_deduplication_window`` blocks and
  ``replicated_deduplication_window_seconds`` (ClickHouse's default is one hour): a store
  writer that restarts after an outage must still find the id of the batch it may have
  inserted, so the window is a week and 100,000 blocks (a batch is one block per partition it
  touches; 14 tenants at a few batches a second stay well inside it).
- Inserts wait for both replicas (``insert_quorum = 2``): a batch a writer counts as stored is
  on both. Parallel quorum inserts stay allowed (14 tenants' writers insert at once; with
  ``insert_quorum_parallel = 0`` they would fail each other). A writer resuming may therefore
  read a replica that does not show its last batch yet; it then replays the batch with its
  token, and the block id in Keeper — shared by both replicas — makes the replay a no-op.

Nothing here can run on these machines (no ClickHouse server ≥ 24 or Keeper installs: Debian has
18.16, PyPI and npm none): tests/store/test_cluster_schema.py checks the DDL's syntax with chDB's
``formatQuery``, its settings' names against chDB's own, and creates the same table with the
non-replicated engine in chDB; a test marked ``clickhouse_server`` runs it on a real cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from norrvakt.store.schema import EVENTS_TABLE, table_ddl

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class ClusterSchemaConfig:
    """The events table on a replicated ClickHouse cluster.

    ``cluster``: the cluster name of the servers' ``remote_servers`` (1 shard, 2 replicas).
    ``keeper_path``: the table's path in Keeper; ``{shard}`` and ``{replica}`` are the servers'
    macros, so one DDL serves every replica. ``insert_quorum``: replicas that must have a batch
    before its INSERT returns (2 = both). ``dedupe_window`` / ``dedupe_window_seconds``: how
    many block ids Keeper keeps, and for how long — a writer's replay after a crash must fall
    inside both. ``retention_days``: TTL as in the embedded store (0 = none).
    """

    cluster: str = "norrvakt"
    database: str = "norrvakt"
    keeper_path: str = "/clickhouse/tables/{shard}/norrvakt/events"
    replica: str = "{replica}"
    insert_quorum: int = 2
    insert_quorum_timeout_ms: int = 60_000
    dedupe_window: int = 100_000
    dedupe_window_seconds: int = 7 * 24 * 3600
    retention_days: int = 395

    def build(self) -> ClusterSchema:
        for name in (self.cluster, self.database):
            if not _IDENT.match(name):
                raise ValueError(f"cluster schema: {name!r} is not a plain ClickHouse identifier")
        for name, value in (("keeper_path", self.keeper_path), ("replica", self.replica)):
            if "'" in value or "\\" in value:
                raise ValueError(f"cluster schema: {name} {value!r} may not contain quotes or backslashes")
        if self.insert_quorum < 1 or self.dedupe_window < 1 or self.dedupe_window_seconds < 1:
            raise ValueError(
                "cluster schema: insert_quorum, dedupe_window and dedupe_window_seconds must be ≥ 1"
            )
        return ClusterSchema(self)


class ClusterSchema:
    """The statements that create the store on the cluster, and the settings its clients use."""

    def __init__(self, config: ClusterSchemaConfig) -> None:
        self.config = config

    def create_database(self) -> str:
        return f"CREATE DATABASE IF NOT EXISTS `{self.config.database}` ON CLUSTER {self.config.cluster}"

    def create_table(self) -> str:
        c = self.config
        settings = (
            "index_granularity = 8192, "
            f"replicated_deduplication_window = {int(c.dedupe_window)}, "
            f"replicated_deduplication_window_seconds = {int(c.dedupe_window_seconds)}"
        )
        return table_ddl(
            f"{c.database}.{EVENTS_TABLE}",
            on_cluster=c.cluster,
            engine=f"ReplicatedReplacingMergeTree('{c.keeper_path}', '{c.replica}')",
            primary_key="(tenant, ts)",
            order_by="(tenant, ts, seq)",
            retention_days=c.retention_days,
            settings=settings,
        )

    def statements(self) -> list[str]:
        """What a store opened on the cluster runs at start (idempotent: IF NOT EXISTS)."""
        return [self.create_database(), self.create_table()]

    def insert_settings(self) -> dict[str, int | str]:
        """Added to every store writer INSERT (ClickHouseStore.insert_block)."""
        return {
            "insert_quorum": int(self.config.insert_quorum),
            "insert_quorum_timeout": int(self.config.insert_quorum_timeout_ms),
        }
