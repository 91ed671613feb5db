from __future__ import annotations

from norrvakt.event import Event, canonical_bytes
from norrvakt.store.clickhouse import ClickHouseStore


def _event(seq: int, raw: bytes = b"<13>1 - - - - - - hello") -> Event:
    return Event(
        tenant="lulea",
        seq=seq,
        ts=1_795_729_970_123_456 + seq,
        ingested=1_795_729_971_000_000,
        source="syslog-tcp",
        peer="127.0.0.1:5000",
        ecs={"event.kind": "event", "host.name": "vm", "user.name": "anna"},
        fields={"EventID": "4625", "Åtkomst": "nekad"},
        message="Failed password for anna",
        raw=raw,
    )


def test_round_trip_is_canonical(store: ClickHouseStore) -> None:
    events = [_event(1), _event(2, raw=b"\xff\xfe not utf-8")]
    store.insert_events(events)
    back = store.fetch_events("lulea", [1, 2])
    assert [canonical_bytes(e) for e in back] == [canonical_bytes(e) for e in events]


def test_first_gap_finds_partial_tail(store: ClickHouseStore) -> None:
    store.insert_events([_event(s) for s in (1, 2, 3, 5, 6)])
    assert store.first_gap("lulea", 1, 6) == 4
    assert store.first_gap("lulea", 1, 3) == 4
    store.delete_tenant_from("lulea", 4)
    assert store.tenant_counts()["lulea"] == (3, 3)


def test_a_long_query_does_not_hold_up_a_short_one(store: ClickHouseStore) -> None:
    import threading
    import time

    started = threading.Event()

    def slow() -> None:
        started.set()
        store.query("SELECT sum(sleepEachRow(0.5)) FROM numbers(4)")  # about 2 s

    worker = threading.Thread(target=slow)
    worker.start()
    started.wait()
    time.sleep(0.2)  # the slow query is running
    t0 = time.monotonic()
    assert store.query("SELECT 1") == [(1,)]
    quick = time.monotonic() - t0
    worker.join()
    assert quick < 1.0, f"a trivial query waited {quick:.2f} s behind a long one"
