"""Search latency with 10 million events stored (chDB, embedded).

Events are generated inside ClickHouse (INSERT … SELECT FROM numbers(N)) — realistic shapes:
14 tenants, 5,000 users, 50,000 source addresses, sshd/Windows-like messages over 7 days, and a
rare token in 20 events. Queries run through the same code as `GET /api/search`
(`norrvakt.search.run_search`); each is run 7 times and the median and max reported.

    .venv/bin/python bench/search.py [--events 10000000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import REPO, print_table, write_result

from norrvakt.config import MUNICIPALITIES
from norrvakt.search import run_search
from norrvakt.store.clickhouse import StoreConfig

DAY_US = 86_400_000_000


def populate(store, events: int, end_us: int) -> float:  # type: ignore[no-untyped-def]
    tenants = list(MUNICIPALITIES)
    start = time.monotonic()
    chunk = 1_000_000
    for base in range(0, events, chunk):
        n = min(chunk, events - base)
        store.command(
            f"""
INSERT INTO events (tenant, seq, ts, ingested, source, peer, event_kind, event_code, event_outcome, host_name,
                    user_name, source_ip, source_port, fields, message, raw)
SELECT
  arrayElement({tenants!r}, (number % 14) + 1) AS tenant,
  intDiv(number, 14) + 1 + {base // 14},
  fromUnixTimestamp64Micro(toInt64({end_us} - (cityHash64(number) % (7 * {DAY_US})))),
  fromUnixTimestamp64Micro(toInt64({end_us})),
  'syslog-tcp', '10.0.0.1:514', 'event',
  if(number % 3 = 0, '4625', if(number % 3 = 1, '4624', '')),
  if(number % 5 = 0, 'failure', 'success'),
  concat(tenant, '-srv', toString(number % 40)),
  concat('user', toString(cityHash64(number, 1) % 5000)),
  IPv4NumToString(toUInt32(167772160 + cityHash64(number, 2) % 50000)),
  toString(1024 + number % 60000),
  map('EventID', if(number % 3 = 0, '4625', '4624'), 'LogonType', toString(number % 11)),
  if((number + {base}) % 500000 = 7,
     concat('Suspicious xyzzyrare beacon from host', toString(number)),
     concat(if(number % 2 = 0, 'Failed password for ', 'Accepted publickey for '),
            'user', toString(cityHash64(number, 1) % 5000), ' from ',
            IPv4NumToString(toUInt32(167772160 + cityHash64(number, 2) % 50000)), ' port ',
            toString(1024 + number % 60000), ' ssh2')),
  ''
FROM numbers({n})
"""
        )
        print(f"  inserted {base + n:,} events", flush=True)
    return time.monotonic() - start


def timed(store, tenants, q, since_us, until_us, runs=7):  # type: ignore[no-untyped-def]
    times = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = run_search(
            store, tenants, q, since=str(since_us // 1_000_000), until=str(until_us // 1_000_000), limit=100
        )
        times.append((time.perf_counter() - t) * 1000)
    assert result is not None
    return statistics.median(times), max(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    args = ap.parse_args()
    end_us = int(time.time()) * 1_000_000
    with tempfile.TemporaryDirectory(prefix="norrvakt-search-") as tmp:
        store = StoreConfig(dsn=f"chdb://{Path(tmp) / 'store'}", retention_days=0).build()
        load_s = populate(store, args.events, end_us)
        store.command("OPTIMIZE TABLE events FINAL")
        (count,) = store.query("SELECT count() FROM events")[0]
        all_tenants = list(MUNICIPALITIES)
        cases = [
            ("a: tenant + user + 24h", ["lulea"], "user.name:user42", end_us - DAY_US, end_us),
            ("b: rare token, all tenants, 7d", all_tenants, "xyzzyrare", end_us - 7 * DAY_US, end_us),
            (
                "c: stats count by source.ip, 1 day",
                all_tenants,
                "| stats count by source.ip",
                end_us - DAY_US,
                end_us,
            ),
            (
                "d: failed logons from a /16, one tenant, 7d",
                ["pitea"],
                "event.code:4625 source.ip:10.0.0.0/16",
                end_us - 7 * DAY_US,
                end_us,
            ),
        ]
        rows = []
        out = []
        for name, tenants, q, since, until in cases:
            median, worst, result = timed(store, tenants, q, since, until)
            rows.append((name, f"{median:.1f} ms median, {worst:.1f} ms max, {result['total']:,} hits"))
            out.append(
                {
                    "case": name,
                    "query": q,
                    "tenants": len(tenants),
                    "median_ms": round(median, 1),
                    "max_ms": round(worst, 1),
                    "hits": result["total"],
                }
            )
        store.close()
    result = {"events": int(count), "load_seconds": round(load_s, 1), "queries": out, "goal_ms": 1000}
    path = write_result("search", result)
    print_table(f"search over {count:,} events ({path.relative_to(REPO)})", rows)


if __name__ == "__main__":
    main()
