"""Reading stored events in time order, in pages — for replaying them through the rules.

    scan = EventScan.open(store, ["lulea"], since_us, until_us, limit=100_000)
    scan.total, scan.first_us        # events in the range; where the scan starts
    for batch in scan.batches():     # lists of Event, oldest first, at most ``limit`` in all
        ...

Order is (event time, tenant, seq), the order a correlation window wants. When the range holds
more than ``limit`` events, the scan takes the newest ``limit`` of them (a rule test asks
about what happened lately), still oldest first. Pages are read by key (the last row's time,
tenant and seq), not by offset, so each page costs the same; events that arrive while the scan
runs are not read (ingested after it started), so the pages neither skip nor repeat a row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from norrvakt.event import Event, now_us
from norrvakt.store.clickhouse import SELECT_EVENT_COLUMNS, ClickHouseStore, event_from_row
from norrvakt.store.schema import EVENTS_TABLE

PAGE = 5_000

_KEY = f"({EVENTS_TABLE}.ts, tenant, seq)"
_AFTER = "(fromUnixTimestamp64Micro({kt:Int64}, 'UTC'), {kn:String}, {ks:UInt64})"


@dataclass
class EventScan:
    store: ClickHouseStore
    tenants: list[str]
    since_us: int
    until_us: int
    limit: int
    started_us: int  # rows ingested later are not read
    total: int  # events in the range
    start_key: tuple[int, str, int] | None  # the first row read, when the range holds more than limit

    @classmethod
    def open(
        cls,
        store: ClickHouseStore,
        tenants: Sequence[str],
        since_us: int,
        until_us: int,
        limit: int,
    ) -> EventScan:
        if isinstance(tenants, str) or not tenants:
            raise ValueError("tenants must be a non-empty list of tenant ids")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        scan = cls(store, list(tenants), since_us, until_us, limit, now_us(), 0, None)
        where, params = scan._where()
        ((total,),) = store.query(f"SELECT count() FROM {EVENTS_TABLE} WHERE {where}", params)
        scan.total = int(total)
        if scan.total > limit:
            rows = store.query(
                f"SELECT toUnixTimestamp64Micro({EVENTS_TABLE}.ts), tenant, seq FROM {EVENTS_TABLE} "
                f"WHERE {where} ORDER BY {EVENTS_TABLE}.ts DESC, tenant DESC, seq DESC "
                f"LIMIT 1 OFFSET {int(limit) - 1}",
                params,
            )
            if rows:
                ts, tenant, seq = rows[0]
                scan.start_key = (int(ts), _text(tenant), int(seq))
        return scan

    @property
    def first_us(self) -> int:
        return self.start_key[0] if self.start_key is not None else self.since_us

    def _where(self) -> tuple[str, dict[str, object]]:
        where = (
            f"tenant IN {{t:Array(String)}} "
            f"AND {EVENTS_TABLE}.ts >= fromUnixTimestamp64Micro({{s:Int64}}, 'UTC') "
            f"AND {EVENTS_TABLE}.ts < fromUnixTimestamp64Micro({{u:Int64}}, 'UTC') "
            f"AND {EVENTS_TABLE}.ingested <= fromUnixTimestamp64Micro({{i:Int64}}, 'UTC')"
        )
        params: dict[str, object] = {
            "t": self.tenants,
            "s": self.since_us,
            "u": self.until_us,
            "i": self.started_us,
        }
        return where, params

    def batches(self, page: int = PAGE) -> Iterator[list[Event]]:
        """Events oldest first, ``page`` at a time, ``limit`` at most."""
        where, params = self._where()
        key = self.start_key
        inclusive = True  # the start key is the first row to read; later keys are the last read
        left = self.limit
        while left > 0:
            sql_where = where
            if key is not None:
                sql_where += f" AND {_KEY} {'>=' if inclusive else '>'} {_AFTER}"
                params = {**params, "kt": key[0], "kn": key[1], "ks": key[2]}
            names, rows = self.store.query_columns(
                f"SELECT {SELECT_EVENT_COLUMNS} FROM {EVENTS_TABLE} WHERE {sql_where} "
                f"ORDER BY {EVENTS_TABLE}.ts, tenant, seq LIMIT {min(page, left)}",
                params,
            )
            if not rows:
                return
            events = [event_from_row(dict(zip(names, row, strict=True))) for row in rows]
            yield events
            left -= len(events)
            last = events[-1]
            key, inclusive = (last.ts, last.tenant, last.seq), False
            if len(rows) < page:
                return


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
