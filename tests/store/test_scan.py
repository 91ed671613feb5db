from __future__ import annotations

from norrvakt.event import Event
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.scan import EventScan

T0 = 1_795_729_200_000_000  # 2026-11-26T19:00:00Z
HOUR = 3600 * 1_000_000


def _events() -> list[Event]:
    # Two tenants, events a minute apart; every fifth shares its time with the one before, so
    # the page keys must tell rows with the same time apart.
    out = []
    for i in range(50):
        tenant = "lulea" if i % 2 else "boden"
        out.append(
            Event(
                tenant=tenant,
                seq=i + 1,
                ts=T0 + (i - (i % 5 == 4)) * 60_000_000,
                ingested=T0,
                source="s",
                peer="p",
                message=f"event {i}",
            )
        )
    return out


def test_scan_reads_every_event_of_the_scope_once_in_time_order(store: ClickHouseStore) -> None:
    store.insert_events(_events())
    scan = EventScan.open(store, ["lulea", "boden"], T0, T0 + HOUR, limit=1000)
    got = [e for batch in scan.batches(page=7) for e in batch]
    assert scan.total == 50 and scan.start_key is None
    assert sorted(e.seq for e in got) == list(range(1, 51))
    assert [(e.ts, e.tenant, e.seq) for e in got] == sorted((e.ts, e.tenant, e.seq) for e in got)


def test_scan_keeps_to_its_tenants_and_time_range(store: ClickHouseStore) -> None:
    store.insert_events(_events())
    scan = EventScan.open(store, ["lulea"], T0 + 10 * 60_000_000, T0 + 20 * 60_000_000, limit=1000)
    got = [e for batch in scan.batches(page=3) for e in batch]
    assert got and {e.tenant for e in got} == {"lulea"}
    assert all(T0 + 10 * 60_000_000 <= e.ts < T0 + 20 * 60_000_000 for e in got)
    assert scan.total == len(got)


def test_scan_over_the_limit_takes_the_newest_events(store: ClickHouseStore) -> None:
    store.insert_events(_events())
    scan = EventScan.open(store, ["lulea", "boden"], T0, T0 + HOUR, limit=12)
    got = [e for batch in scan.batches(page=5) for e in batch]
    every = sorted(_events(), key=lambda e: (e.ts, e.tenant, e.seq))
    assert scan.total == 50
    assert [e.seq for e in got] == [e.seq for e in every[-12:]]
    assert scan.first_us == every[-12].ts
