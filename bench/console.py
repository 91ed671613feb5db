"""Console and API latency with 10 million events and 10,000 alerts stored.

Goal (the issue): median under 300 ms and 95th percentile under 1 s for the alert queue, a
search page and the dashboard, each with the JSON calls behind it.

1. **Serve** — the real ``norrvakt.node.server.serve`` (uvicorn on a local port, the SOC
   workflow, live detection) runs in this process, in a thread with its own event loop, on a
   fresh data directory: embedded chDB store, SQLite state database.
2. **Seed** that server's store and state while it runs. The events must go in after start-up:
   they are written straight into the store, not the journal, and the indexer's start-up
   reconcile rightly deletes store rows the journal does not have. 10M events go in with
   ``INSERT … SELECT FROM numbers(N)`` (``populate`` of ``bench/search.py``: 14 tenants,
   5,000 users, 50,000 addresses, 7 days); 10,000 alerts over the 14 tenants, 20 rules and
   five levels through the server's ``AlertService.ingest`` (dedupe, evidence, grouping into
   cases); then the cases are moved through the workflow (``CaseService.set_status``) so the
   alerts carry every status — about 35 % new, 15 % acknowledged, 10 % investigating, 30 %
   resolved, 10 % false positive.
3. **Measure** — the admin (region: all 14 tenants) and a tenant officer of Luleå (made with
   ``POST /api/admin/users``, like the end-to-end tests) log in through ``POST /login`` like a
   browser and keep the session cookie in one httpx client (keep-alive). Every endpoint gets
   3 warm-up requests, then ``--runs`` timed ones, one at a time; the time is the whole
   response, body read.

The background verification is off (``integrity.verify_every_minutes = 0``): the seeded
events are not in the journal, so it would rightly report them, and a full verification run
would compete for the cores.

    .venv/bin/python bench/console.py [--events 10000000] [--alerts 10000] [--runs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import REPO, print_table, write_result
from search import DAY_US, populate

from norrvakt.config import MUNICIPALITIES, load_settings

MEDIAN_GOAL_MS = 300.0
P95_GOAL_MS = 1000.0
WARMUP = 3
OFFICER_TENANT = "lulea"
QUERY = "event.code:4625 user.name:user42"
STATUS_SHARES = [
    ("new", 0.35),
    ("acknowledged", 0.15),
    ("investigating", 0.10),
    ("resolved", 0.30),
    ("false_positive", 0.10),
]
PATHS = {  # the workflow's moves (norrvakt/alerts/workflow.py) from new to each status
    "new": [],
    "acknowledged": ["acknowledged"],
    "investigating": ["acknowledged", "investigating"],
    "resolved": ["acknowledged", "resolved"],
    "false_positive": ["false_positive"],
}
# (rule id, title, level, ATT&CK tags): 20 rules, a spread of levels like a real ruleset.
RULES = [
    (
        "win-failed-logon-burst",
        "Failed logons, burst",
        "medium",
        ["attack.credential_access", "attack.t1110"],
    ),
    ("password-spraying", "Password spraying", "high", ["attack.credential_access", "attack.t1110.003"]),
    ("ssh-brute-force", "SSH brute force", "medium", ["attack.credential_access", "attack.t1110.001"]),
    ("after-hours-logon", "Logon after working hours", "low", ["attack.initial_access", "attack.t1078"]),
    ("log-cleared", "Security log cleared", "high", ["attack.defense_evasion", "attack.t1070.001"]),
    (
        "admin-group-change",
        "Member added to a privileged group",
        "high",
        ["attack.persistence", "attack.t1098"],
    ),
    ("kerberoasting", "Kerberoasting", "high", ["attack.credential_access", "attack.t1558.003"]),
    ("mfa-fatigue", "MFA fatigue", "medium", ["attack.credential_access", "attack.t1621"]),
    ("door-forced", "Door forced open", "low", ["attack.initial_access"]),
    ("protected-record-read", "Protected identity record read", "medium", ["attack.collection"]),
    ("bulk-export", "Bulk export of records", "medium", ["attack.exfiltration", "attack.t1567"]),
    ("intel-ip-match", "Threat intel: known bad address", "critical", ["attack.command_and_control"]),
    ("new-service", "New service installed", "medium", ["attack.persistence", "attack.t1543.003"]),
    (
        "rdp-from-internet",
        "RDP logon from the internet",
        "high",
        ["attack.lateral_movement", "attack.t1021.001"],
    ),
    ("encoded-powershell", "Encoded PowerShell", "high", ["attack.execution", "attack.t1059.001"]),
    ("ransomware-notes", "Ransom note files", "critical", ["attack.impact", "attack.t1486"]),
    ("dns-tunnel", "DNS tunnelling", "medium", ["attack.command_and_control", "attack.t1071.004"]),
    ("account-lockouts", "Account lockouts", "informational", ["attack.credential_access"]),
    ("usb-storage", "USB storage attached", "informational", ["attack.exfiltration", "attack.t1052"]),
    ("silent-source", "Log source went silent", "low", ["attack.defense_evasion", "attack.t1562"]),
]


# -- the server -------------------------------------------------------------------------------


@contextmanager
def running_server(data_dir: Path) -> Iterator[tuple[Any, str]]:
    """`norrvakt serve` in a thread of this process; yields its runtime and URL."""
    import norrvakt.node.server as server_module

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    settings = load_settings(
        None,
        {
            "data_dir": str(data_dir),
            "timezone": "UTC",
            "log_level": "warning",
            "server.port": port,
            "sources": [],  # nothing is sent to it; no syslog ports needed
            "integrity.verify_every_minutes": 0,
        },
    )
    opened: list[Any] = []
    real_open = server_module.open_runtime

    def open_and_keep(s: Any) -> Any:  # serve() opens its runtime itself: keep a handle to seed it
        rt = real_open(s)
        opened.append(rt)
        return rt

    server_module.open_runtime = open_and_keep  # type: ignore[assignment]
    loop = asyncio.new_event_loop()
    task = loop.create_task(server_module.serve(settings, banner=False))

    def run() -> None:
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="norrvakt-serve", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if not thread.is_alive():
                raise RuntimeError("norrvakt serve stopped during start-up (see the log above)")
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("norrvakt serve did not answer /api/health within 120 s")
            time.sleep(0.2)
        yield opened[0], url
    finally:
        server_module.open_runtime = real_open  # type: ignore[assignment]
        loop.call_soon_threadsafe(task.cancel)  # serve() closes the runtime on its way out
        thread.join(timeout=120)


# -- seeding -----------------------------------------------------------------------------------


def seed(rt: Any, events: int, alerts: int) -> dict[str, Any]:
    end_us = int(time.time()) * 1_000_000
    out: dict[str, Any] = {"events_s": round(populate(rt.store, events, end_us), 1)}
    log("  optimizing the events table (OPTIMIZE TABLE events FINAL, as bench/search.py) …")
    started = time.monotonic()
    rt.store.command("OPTIMIZE TABLE events FINAL")
    out["optimize_s"] = round(time.monotonic() - started, 1)
    (out["events"],) = rt.store.query("SELECT count() FROM events WHERE tenant != '_norrvakt'")[0]
    out.update(seed_alerts(rt, alerts, events, end_us))
    return out


def seed_alerts(rt: Any, n: int, events: int, end_us: int) -> dict[str, Any]:
    """``n`` alerts through the alert service, then statuses through the case workflow."""
    import sqlalchemy as sa

    from norrvakt.alerts.model import AlertInput

    rng = random.Random(42)
    tenants = list(MUNICIPALITIES)
    per_tenant_seqs = max(1, events // len(tenants))
    inputs = []
    for i in range(n):
        tenant = tenants[i % len(tenants)]
        rule_id, title, level, tags = RULES[rng.randrange(len(RULES))]
        ip_n = (i * 7919) % 50_000  # distinct per alert: no two inputs share a dedupe key
        inputs.append(
            AlertInput(
                tenant=tenant,
                rule_id=rule_id,
                rule_title=title,
                level=level,
                tags=list(tags),
                event_seq=rng.randrange(1, per_tenant_seqs + 1),
                event_ts=end_us - rng.randrange(7 * DAY_US),
                entities={
                    "host.name": f"{tenant}-srv{rng.randrange(40)}",
                    "source.ip": f"10.0.{ip_n // 256}.{ip_n % 256}",
                    "user.name": f"user{rng.randrange(5000)}",
                },
            )
        )
    inputs.sort(key=lambda a: a.event_ts)  # as detection would hand them in
    soc = rt.extras["soc"]  # the server's own SOC workflow (start_soc)
    started = time.monotonic()
    for base in range(0, n, 500):
        soc.alerts.ingest(inputs[base : base + 500])
        if (base + 500) % 2000 == 0 or base + 500 >= n:
            log(f"  ingested {min(base + 500, n):,} alert inputs")
    alerts_s = time.monotonic() - started
    stats = soc.alerts.stats.as_dict()
    if stats["created"] != n or stats["flooded"]:
        raise RuntimeError(f"wanted {n} distinct alerts, the alert service reports {stats}")
    with rt.state.connect() as conn:
        case_ids = [int(c) for c in conn.execute(sa.text("SELECT id FROM cases ORDER BY id")).scalars()]
    started = time.monotonic()
    every = [*rt.tenants]
    for k, case_id in enumerate(case_ids):
        status = rng.choices([s for s, _ in STATUS_SHARES], [w for _, w in STATUS_SHARES])[0]
        for step in PATHS[status]:
            soc.cases.set_status(case_id, step, "bench", every)
        if (k + 1) % 2000 == 0:
            log(f"  statuses set on {k + 1:,} of {len(case_ids):,} cases")
    statuses_s = time.monotonic() - started
    with rt.state.connect() as conn:
        by_status = {
            str(s): int(c)
            for s, c in conn.execute(sa.text("SELECT status, count(*) FROM alerts GROUP BY status"))
        }
        by_level = {
            str(s): int(c)
            for s, c in conn.execute(sa.text("SELECT level, count(*) FROM alerts GROUP BY level"))
        }
    return {
        "alerts": n,
        "cases": len(case_ids),
        "alerts_by_status": by_status,
        "alerts_by_level": by_level,
        "alerts_s": round(alerts_s, 1),
        "statuses_s": round(statuses_s, 1),
    }


def log(text: str) -> None:
    print(text, flush=True)


# -- measuring ---------------------------------------------------------------------------------


def login(url: str, username: str, password: str) -> httpx.Client:
    """A browser-like client: logged in through the form, the session cookie kept."""
    client = httpx.Client(base_url=url, timeout=120)
    form = client.get("/login").text  # the form's hidden fields: its CSRF token
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    resp = client.post("/login", data={**hidden, "username": username, "password": password, "next": "/"})
    if resp.status_code != 303 or "nv_session" not in str(resp.headers.get("set-cookie", "")):
        raise RuntimeError(f"login of {username} failed: {resp.status_code} {resp.text[:300]}")
    return client


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(client: httpx.Client, path: str, params: dict[str, str], runs: int) -> dict[str, Any]:
    times: list[float] = []
    resp = None
    for i in range(WARMUP + runs):
        started = time.perf_counter()
        resp = client.get(path, params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if resp.status_code != 200:
            raise RuntimeError(f"GET {path} {params}: {resp.status_code} {resp.text[:300]}")
        if i >= WARMUP:
            times.append(elapsed)
    assert resp is not None
    median, p95 = statistics.median(times), percentile(times, 0.95)
    out: dict[str, Any] = {
        "median_ms": round(median, 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(max(times), 1),
        "bytes": len(resp.content),
        "pass": median < MEDIAN_GOAL_MS and p95 < P95_GOAL_MS,
    }
    if resp.headers.get("content-type", "").startswith("application/json"):
        body = resp.json()
        for key in ("total", "elapsed_ms"):
            if key in body:
                out[key] = body[key]
    return out


def measure_together(
    url: str, username: str, password: str, analysts: int, rounds: int
) -> list[dict[str, Any]]:
    """``analysts`` people at once, each with their own session, each going round the alert
    queue, the search page with a query and the region dashboard ``rounds`` times."""
    pages = [
        ("alert queue page", "/alerts", {}),
        ("search page, q + 24h", "/search", {"q": QUERY, "since": "24h"}),
        ("dashboard page (24 h)", "/dashboards", {}),
    ]
    times: dict[str, list[float]] = {what: [] for what, _, _ in pages}
    clients = [login(url, username, password) for _ in range(analysts)]
    gate = threading.Barrier(analysts)

    def analyst(client: httpx.Client, offset: int) -> None:
        gate.wait()
        for r in range(rounds):
            for i in range(len(pages)):
                what, path, params = pages[(i + offset + r) % len(pages)]  # not all on one page
                started = time.perf_counter()
                resp = client.get(path, params=params)
                elapsed = (time.perf_counter() - started) * 1000
                if resp.status_code != 200:
                    raise RuntimeError(f"GET {path}: {resp.status_code} {resp.text[:300]}")
                times[what].append(elapsed)  # list.append is atomic under the GIL

    threads = [threading.Thread(target=analyst, args=(c, n)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    out = []
    for what, path, params in pages:
        got = times[what]
        median, p95 = statistics.median(got), percentile(got, 0.95)
        out.append(
            {
                "user": f"{analysts} admins at once",
                "endpoint": what,
                "path": path,
                "params": params,
                "requests": len(got),
                "median_ms": round(median, 1),
                "p95_ms": round(p95, 1),
                "max_ms": round(max(got), 1),
                "pass": median < MEDIAN_GOAL_MS and p95 < P95_GOAL_MS,
            }
        )
    return out


def endpoints(tenant: str) -> list[tuple[str, str, dict[str, str]]]:
    """(what, path, query parameters) — the pages and the calls they make."""
    scope = {"tenant": tenant} if tenant else {}
    search = {"q": QUERY, "since": "24h", **scope}
    return [
        ("alert queue page", "/alerts", scope),
        ("alert queue counts (polled every 5 s)", "/ui/alerts/counts", scope),
        ("GET /api/alerts (first page)", "/api/alerts", scope),
        ("search page, q + 24h", "/search", search),
        ("GET /api/search, q + 24h", "/api/search", search),
        ("GET /api/search/histogram (search page)", "/api/search/histogram", search),
        ("GET /api/search/facets", "/api/search/facets", search),
        ("search page, empty q (all events 24h)", "/search", {"q": "", "since": "24h", **scope}),
        ("dashboard page (24 h)", "/dashboards", scope),
        ("GET /api/cases/sla (dashboard SLA tile)", "/api/cases/sla", scope),
        ("GET /api/stats", "/api/stats", {}),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--analysts", type=int, default=4, help="people at once in the concurrent phase")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="norrvakt-console-") as tmp:
        data = Path(tmp) / "data"
        log("starting norrvakt serve (in this process) …")
        started = time.monotonic()
        with running_server(data) as (rt, url):
            startup_s = time.monotonic() - started
            log(f"seeding {args.events:,} events and {args.alerts:,} alerts into the running server …")
            started = time.monotonic()
            seeded = seed(rt, args.events, args.alerts)
            seeded["total_s"] = round(time.monotonic() - started, 1)
            log(f"seeded in {seeded['total_s']} s: {seeded}")
            cli_token = (data / "cli.token").read_text().strip()
            # The generated passwords are temporary (changed at first login): the bench chooses its own.
            admin_pw, officer_pw = "bench-admin-" + uuid.uuid4().hex, "bench-officer-" + uuid.uuid4().hex
            httpx.post(
                f"{url}/api/admin/users/admin/password",
                json={"password": admin_pw},
                headers={"Authorization": f"Bearer {cli_token}"},
            ).raise_for_status()
            officer = f"{OFFICER_TENANT}.officer"
            made = httpx.post(
                f"{url}/api/admin/users",
                json={
                    "username": officer,
                    "role": "tenant_officer",
                    "tenants": [OFFICER_TENANT],
                    "password": officer_pw,
                },
                headers={"Authorization": f"Bearer {cli_token}"},
            )
            made.raise_for_status()
            users = [
                ("admin (14 tenants)", login(url, "admin", admin_pw), ""),
                (f"officer ({OFFICER_TENANT})", login(url, officer, officer_pw), OFFICER_TENANT),
            ]
            measured = []
            for who, client, tenant in users:
                for what, path, params in endpoints(tenant):
                    got = measure(client, path, params, args.runs)
                    verdict = "pass" if got["pass"] else "FAIL"
                    log(f"  {who:20s} {what:42s} {got['median_ms']:8.1f} {got['p95_ms']:8.1f} ms  {verdict}")
                    measured.append({"user": who, "endpoint": what, "path": path, "params": params, **got})
                client.close()
            log(f"{args.analysts} admins at once (alert queue, search, dashboard) …")
            together = measure_together(url, "admin", admin_pw, args.analysts, max(5, args.runs // 3))
            for got in together:
                verdict = "pass" if got["pass"] else "FAIL"
                who, what = got["user"], got["endpoint"]
                log(f"  {who:20s} {what:42s} {got['median_ms']:8.1f} {got['p95_ms']:8.1f} ms  {verdict}")
    result = {
        "events": seeded["events"],
        "alerts": seeded["alerts"],
        "seed": seeded,
        "server": "norrvakt.node.server.serve in this process (uvicorn in a thread), embedded chDB, SQLite",
        "client": "httpx, session cookie from POST /login, keep-alive, one request at a time",
        "server_startup_s": round(startup_s, 1),
        "runs": args.runs,
        "warmup": WARMUP,
        "goal": {"median_ms": MEDIAN_GOAL_MS, "p95_ms": P95_GOAL_MS},
        "query": QUERY,
        "endpoints": measured,
        "all_pass": all(m["pass"] for m in measured),
        "concurrent": {
            "analysts": args.analysts,
            "note": "each with its own session, all at once; the goal is the single-user one",
            "endpoints": together,
        },
    }
    path = write_result("console", result)
    rows = [
        (
            f"{m['user']}: {m['endpoint']}",
            f"{m['median_ms']:.0f} / {m['p95_ms']:.0f} / {m['max_ms']:.0f} ms  "
            + ("pass" if m["pass"] else "FAIL"),
        )
        for m in [*measured, *together]
    ]
    rows.append(("seeding (events + optimize + alerts + statuses)", f"{seeded['total_s']:.0f} s"))
    print_table(
        f"console over {seeded['events']:,} events and {seeded['alerts']:,} alerts — median / p95 / max "
        f"(goal < {MEDIAN_GOAL_MS:.0f} / < {P95_GOAL_MS:.0f} ms) ({path.relative_to(REPO)})",
        rows,
    )


if __name__ == "__main__":
    main()
