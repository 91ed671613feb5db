"""The event store: ClickHouse SQL, embedded (chDB) or remote (clickhouse-connect).

``dsn = "chdb:///path"`` runs ClickHouse in-process on a directory; ``http://host:8123`` talks
to a cluster. The same DDL and queries serve both. chDB allows one data directory per
process, so `norrvakt serve` owns it while running and other commands go through the API.

The store is an index, not the source of truth: the journal decides what was acknowledged,
and :meth:`ClickHouseStore.reconcile` cuts a partially inserted tail (a killed INSERT can
leave part of a batch behind) so replay from the journal stores every event exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import clickhouse_connect

from norrvakt.event import Event
from norrvakt.store.cluster_schema import ClusterSchemaConfig
from norrvakt.store.schema import BASE_COLUMNS, ECS_COLUMNS, EVENTS_TABLE, TAIL_COLUMNS, events_ddl

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store could not be opened, written or queried."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where events are indexed.

    ``dsn``: ``chdb:///abs/path`` (embedded, default under the data directory) or
    ``http://user:pass@host:8123`` for a ClickHouse server. ``database``: the database that
    holds the events table. ``retention_days``: TTL of rows in the store (the journal keeps
    its own retention, see docs/integrity.md); 0 disables the TTL. ``dedupe_window``: block ids
    the events table keeps so :meth:`ClickHouseStore.insert_block` with a token skips a replay
    (a store replica fed by store writers, norrvakt.store.writer); 0, the embedded node's
    default, keeps none — its indexer deletes a cut tail and re-inserts it, which a
    deduplicating table could take for a replay and drop. ``cluster``: create and write the
    replicated production table (norrvakt.store.cluster_schema) instead of the embedded one.
    """

    dsn: str
    database: str = "norrvakt"
    retention_days: int = 395
    dedupe_window: int = 0
    cluster: ClusterSchemaConfig | None = None

    def build(self) -> ClickHouseStore:
        return ClickHouseStore(self)


# Settings for every session: imports span years of days, one partition per day.
_SESSION_SETTINGS = {"max_partitions_per_insert_block": 0}
# Read clients: a client runs one query at a time, so with one, a long query (a 7-day
# aggregation, a rule test's scan) made every other analyst's page wait behind it. ClickHouse
# parallelizes each query itself, so more clients add fairness, not throughput.
READERS = 3
# One INSERT = one block, whatever the rows: the client sends the batch as one Native block (its
# own split follows an estimate of ~2 MiB a block, so it changes with the rows: 20,000 rows of
# 2 KB went as 10 blocks), and the server neither squashes blocks nor inserts asynchronously
# (chDB 26.9 has async_insert=1 by default). Deduplication is per block (``token``, ``token_1``,
# …), so a replay cut into other blocks is taken partly for the first attempt: measured in chDB
# 26.9, a batch of 1,000 whose first block of 500 had landed, replayed as one block of 1,000,
# stored 500 — the other 500 silently dropped (tests/store/test_exactly_once.py).
_ONE_BLOCK = {"async_insert": 0, "min_insert_block_size_rows": 0, "min_insert_block_size_bytes": 0}


class ClickHouseStore:
    """Insert events and run SQL. Thread-safe: inserts use one client behind a lock, queries a
    small pool of clients (each used by one thread at a time)."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._insert_lock = threading.Lock()
        self._readers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._schema = config.cluster.build() if config.cluster else None
        if self._schema and self._schema.config.database != config.database:
            theirs = self._schema.config.database
            raise StoreError(f"store database {config.database!r} is not the cluster schema's {theirs!r}")
        try:
            bootstrap = clickhouse_connect.get_client(dsn=config.dsn)
            if self._schema:
                bootstrap.command(self._schema.create_database())
            else:
                bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{config.database}`")
            self._writer = clickhouse_connect.get_client(
                dsn=config.dsn, database=config.database, settings=_SESSION_SETTINGS
            )
            self._reader_list = [
                clickhouse_connect.get_client(dsn=config.dsn, database=config.database)
                for _ in range(READERS)
            ]
            for reader in self._reader_list:
                self._readers.put(reader)
            if self._schema:
                self._writer.command(self._schema.create_table())
            else:
                self._writer.command(events_ddl(config.retention_days, dedupe_window=config.dedupe_window))
                if config.dedupe_window > 0:  # a table made before the flag was set
                    self._writer.command(
                        f"ALTER TABLE {EVENTS_TABLE} MODIFY SETTING "
                        f"non_replicated_deduplication_window = {int(config.dedupe_window)}"
                    )
            # The table's column types, read once: an insert that names them skips the DESCRIBE
            # TABLE clickhouse-connect otherwise runs before every insert (a query per batch).
            described = self._writer.query(f"DESCRIBE TABLE {EVENTS_TABLE}").result_rows
            self._column_types = {str(row[0]): str(row[1]) for row in described}
        except Exception as exc:  # clickhouse-connect raises many types; name the store
            raise StoreError(f"cannot open store {config.dsn!r}: {exc}") from exc

    # -- writing -------------------------------------------------------------------------

    def _typed_columns(self, events: Sequence[Event]) -> tuple[list[str], list[Any], list[str]]:
        """The columns a batch has, their values and their types in the table."""
        names, columns = _columns(events)
        try:
            types = [self._column_types[name] for name in names]
        except KeyError as exc:
            raise StoreError(
                f"the store's {EVENTS_TABLE} table has no column {exc.args[0]!r} (made by another version?)"
            ) from None
        return names, columns, types

    def insert_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        names, columns, types = self._typed_columns(events)
        with self._insert_lock:
            self._writer.insert(
                EVENTS_TABLE, columns, column_names=names, column_type_names=types, column_oriented=True
            )

    def insert_block(self, events: Sequence[Event], *, token: str | None, dedupe: bool = True) -> None:
        """Insert ``events`` as exactly one block (see ``_ONE_BLOCK``), for a store writer.

        ``token`` becomes the block's ``insert_deduplication_token``: a replay of the same rows
        with the same token is skipped by a table that keeps block ids (``dedupe_window`` or
        the replicated table). ``dedupe=False`` turns deduplication off for this insert
        (``deduplicate_insert = 'disable'``; ClickHouse 26 ignores ``insert_deduplicate = 0``):
        without a token a deduplicating table still drops a block equal to an earlier one by
        its content hash, so a negative control must turn it off, not only leave out the token.
        """
        if not events:
            return
        names, columns, types = self._typed_columns(events)
        settings: dict[str, Any] = dict(_ONE_BLOCK)
        if self._schema:
            settings.update(self._schema.insert_settings())
        if token is not None:
            settings["insert_deduplication_token"] = token
        if not dedupe:
            settings["deduplicate_insert"] = "disable"
        with self._insert_lock:
            context = self._writer.create_insert_context(
                EVENTS_TABLE, names, column_type_names=types, column_oriented=True, settings=settings
            )
            context.req_block_size = len(events)  # before .data: it sizes the blocks
            context.data = columns
            self._writer.data_insert(context)

    def count_range(self, tenant: str, first_seq: int, last_seq: int) -> int:
        """Rows of ``tenant`` with ``first_seq`` ≤ seq ≤ ``last_seq``."""
        (n,) = self.query(
            f"SELECT count() FROM {EVENTS_TABLE} WHERE tenant = {{t:String}} "
            f"AND seq >= {{a:UInt64}} AND seq <= {{b:UInt64}}",
            {"t": tenant, "a": first_seq, "b": last_seq},
        )[0]
        return int(n)

    def delete_tenant_from(self, tenant: str, first_seq: int) -> None:
        """Remove rows of ``tenant`` with seq ≥ ``first_seq`` (the unacknowledged-by-store tail)."""
        if self.config.dedupe_window > 0 or self._schema:
            # The block ids of deleted rows stay in the table's log: re-inserting the same rows
            # would be taken for a replay and skipped, and the rows would be gone.
            raise StoreError(
                f"cannot delete {tenant}'s rows from seq {first_seq}: this store deduplicates inserts, "
                "so rows re-inserted after a delete would be dropped as replays"
            )
        with self._insert_lock:
            self._writer.command(
                f"DELETE FROM {EVENTS_TABLE} WHERE tenant = {{t:String}} AND seq >= {{s:UInt64}}",
                parameters={"t": tenant, "s": first_seq},
            )

    # -- reading -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Any]:
        client = self._readers.get()  # blocks while every reader is busy
        try:
            yield client
        finally:
            self._readers.put(client)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._reader() as reader:
            result = reader.query(sql, parameters=parameters or {})
            return [tuple(r) for r in result.result_rows]

    def query_columns(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._reader() as reader:
            result = reader.query(sql, parameters=parameters or {}, query_formats={"String": "bytes"})
            return list(result.column_names), [tuple(r) for r in result.result_rows]

    @contextlib.contextmanager
    def stream_columns(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> Iterator[tuple[list[str], Iterator[Sequence[Sequence[Any]]]]]:
        """Column names and the rows block by block, for results too big to hold (exports).

        On a client of its own, not one of the pool's readers: an export lasts as long as its
        reader downloads, and three slow downloads would otherwise stop every search."""
        client = clickhouse_connect.get_client(dsn=self.config.dsn, database=self.config.database)
        try:
            stream = client.query_row_block_stream(
                sql, parameters=parameters or {}, settings=settings, query_formats={"String": "bytes"}
            )
            with stream:
                source: Any = stream.source  # a QueryResult (typed as the Closable it also is)
                yield list(source.column_names), stream
        finally:
            client.close()

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        with self._insert_lock:
            return self._writer.command(sql, parameters=parameters or {})

    def tenant_counts(self) -> dict[str, tuple[int, int]]:
        """tenant → (row count, max seq)."""
        rows = self.query(f"SELECT tenant, count(), max(seq) FROM {EVENTS_TABLE} GROUP BY tenant")
        return {str(t): (int(n), int(m)) for t, n, m in rows}

    def first_gap(self, tenant: str, first_seq: int, last_seq: int) -> int:
        """Lowest seq in [first_seq, last_seq+1] whose prefix is incomplete in the store.

        Rows are inserted in seq order, so everything below the first missing seq is present.
        Returns ``last_seq + 1`` when [first_seq, last_seq] is complete.
        """
        lo, hi = first_seq, last_seq + 1  # invariant: [first_seq, lo) complete; answer ≤ hi
        while lo < hi:
            mid = (lo + hi) // 2
            (n,) = self.query(
                f"SELECT count() FROM {EVENTS_TABLE} WHERE tenant = {{t:String}} "
                f"AND seq >= {{a:UInt64}} AND seq <= {{b:UInt64}}",
                {"t": tenant, "a": first_seq, "b": mid},
            )[0]
            if int(n) == mid - first_seq + 1:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def fetch_events(self, tenant: str, seqs: Iterable[int]) -> list[Event]:
        """Events of ``tenant`` with the given seqs, as stored (for evidence and verification)."""
        wanted = sorted(set(seqs))
        if not wanted:
            return []
        names, rows = self.query_columns(
            f"SELECT {', '.join(_SELECT_COLUMNS)} FROM {EVENTS_TABLE} "
            "WHERE tenant = {t:String} AND seq IN {s:Array(UInt64)} ORDER BY seq",
            {"t": tenant, "s": wanted},
        )
        return [event_from_row(dict(zip(names, row, strict=True))) for row in rows]

    def close(self) -> None:
        for client in (self._writer, *self._reader_list):
            try:
                client.close()
            except Exception as exc:  # closing is best effort, but say why it failed
                log.warning("closing store client failed: %s", exc)


_SELECT_COLUMNS = (
    "tenant",
    "seq",
    "toUnixTimestamp64Micro(ts) AS ts",
    "toUnixTimestamp64Micro(ingested) AS ingested",
    "source",
    "peer",
    *(f"`{c}`" for c in ECS_COLUMNS.values()),
    "fields",
    "message",
    "raw",
)
SELECT_EVENT_COLUMNS = ", ".join(_SELECT_COLUMNS)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def event_from_row(row: dict[str, Any]) -> Event:
    """Rebuild an :class:`Event` from a row selected with ``SELECT_EVENT_COLUMNS``."""
    ecs = {}
    for name, col in ECS_COLUMNS.items():
        value = row.get(col)
        if value:
            ecs[name] = _text(value)
    raw = row.get("raw", b"")
    fields = row.get("fields") or {}
    return Event(
        tenant=_text(row["tenant"]),
        seq=int(row["seq"]),
        ts=int(row["ts"]),
        ingested=int(row["ingested"]),
        source=_text(row["source"]),
        peer=_text(row["peer"]),
        ecs=ecs,
        fields={_text(k): _text(v) for k, v in fields.items()},
        message=_text(row.get("message", "")),
        raw=raw if isinstance(raw, bytes) else str(raw).encode("utf-8"),
    )


def _columns(events: Sequence[Event]) -> tuple[list[str], list[list[Any]]]:
    """Column names and column-oriented insert data (ClickHouse Native is columnar).

    Events carry a handful of the ~60 ECS fields, so only the ECS columns some event of the
    batch has are sent, each starting all-empty with the present values filled in. A column
    left out of the insert holds its default, ``""`` — what an empty column would have stored
    (tests/store/test_insert_columns.py) — and is neither encoded here nor parsed by ClickHouse."""
    n = len(events)
    present: dict[str, list[Any]] = {}
    for i, e in enumerate(events):
        for name, value in e.ecs.items():
            col = present.get(name)
            if col is None:
                if name not in ECS_COLUMNS:
                    continue
                col = present[name] = [""] * n
            col[i] = value
    ecs = [name for name in ECS_COLUMNS if name in present]  # table order, for stable inserts
    names = [*BASE_COLUMNS, *(ECS_COLUMNS[name] for name in ecs), *TAIL_COLUMNS]
    columns: list[list[Any]] = [
        [e.tenant for e in events],
        [e.seq for e in events],
        [e.ts for e in events],
        [e.ingested for e in events],
        [e.source for e in events],
        [e.peer for e in events],
        *(present[name] for name in ecs),
        [e.fields for e in events],
        [e.message for e in events],
        [e.raw for e in events],
    ]
    return names, columns
