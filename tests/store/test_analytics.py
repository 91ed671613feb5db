from __future__ import annotations

from norrvakt.event import Event
from norrvakt.store.analytics import bucket_seconds, facets, field_names, histogram
from norrvakt.store.clickhouse import ClickHouseStore

T0 = 1_795_729_200_000_000  # 2026-11-26T19:00:00Z


def _events() -> list[Event]:
    out = []
    for i in range(60):
        out.append(
            Event(
                tenant="lulea" if i % 3 else "boden",
                seq=i + 1,
                ts=T0 + i * 60_000_000,
                ingested=T0,
                source="s",
                peer="p",
                ecs={"event.code": "4625" if i % 2 else "4624", "user.name": f"u{i % 4}"},
                fields={"LogonType": str(i % 3)},
                message=f"logon {i}",
                raw=b"x",
            )
        )
    return out


def test_histogram_counts_per_bucket_within_scope(store: ClickHouseStore) -> None:
    store.insert_events(_events())
    result = histogram(store, ["lulea"], "event.code:4625", T0, T0 + 3600 * 1_000_000, buckets=6)
    assert result["step_s"] == 600
    assert sum(b["count"] for b in result["buckets"]) == sum(1 for i in range(60) if i % 3 and i % 2)
    assert all(b["t"] % (600 * 1_000_000) == 0 for b in result["buckets"])


def test_facets_and_field_names(store: ClickHouseStore) -> None:
    store.insert_events(_events())
    top = facets(store, ["lulea", "boden"], "", T0, T0 + 3600 * 1_000_000, ["user.name", "LogonType"], top=2)
    assert [f["count"] for f in top["user.name"]] == [15, 15]
    assert len(top["LogonType"]) == 2
    names = field_names(store, ["lulea"], since_us=T0)
    assert "LogonType" in names and "user.name" in names


def test_bucket_widths_are_round() -> None:
    assert bucket_seconds(3600 * 1_000_000, 60) == 60
    assert bucket_seconds(7 * 86400 * 1_000_000, 60) == 3 * 3600


def test_source_health_is_cached_per_scope_with_fresh_ages(store: ClickHouseStore) -> None:
    from norrvakt.store.analytics import SourceHealthCache

    store.insert_events(_events())
    cache = SourceHealthCache(store, ttl_s=30, silent_after_s=900)
    now = T0 + 60 * 1_000_000
    first = cache.get(["lulea"], now)
    assert [(r["tenant"], r["source"], r["count"], r["silent"]) for r in first] == [("lulea", "s", 40, False)]
    later = cache.get(["lulea"], now + 20 * 1_000_000)  # within the TTL: no query, ages move on
    assert cache.reads == 1 and later[0]["age_s"] == first[0]["age_s"] + 20
    assert cache.get(["boden"], now)[0]["count"] == 20 and cache.reads == 2  # another scope
    quiet = cache.get(["lulea"], now + 1000 * 1_000_000)  # past the TTL: read again, now silent
    assert cache.reads == 3 and quiet[0]["silent"]
