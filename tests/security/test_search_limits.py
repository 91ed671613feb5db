"""Search limits (issue #11): one user cannot take the store for themselves, a query that is
too deep or too long is a 400 that says why and where (not a RecursionError or a ClickHouse
"Max query size exceeded" 500), and every failed search is in the audit trail.

A real `norrvakt serve` with the default limits (4 searches, 2 live tails per user); real HTTP
clients; the slow query is a real one (see ``SLOW``).
"""

from __future__ import annotations

import itertools
import string
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from norrvakt.search import run_search
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.query import QueryError
from tests.e2e.harness import Server, running_server

# 2,000 three-letter words (8,000 characters, within the length limit): ClickHouse takes most of
# a second to plan and run it even over an empty table (about 0.4 ms a word), so searches with
# it overlap however few events there are.
SLOW = " ".join(
    "".join(p) for p in itertools.islice(itertools.product(string.ascii_lowercase, repeat=3), 2000)
)
DEEP = ["(" * 300 + "a" + ")" * 300, "NOT " * 1200 + "a", "-" * 1200 + "a"]
ROUTES = ["/api/search", "/api/search/histogram", "/api/search/facets"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("limits"))) as srv:
        yield srv


@pytest.fixture(scope="module")
def officer(server: Server) -> dict[str, Any]:
    """A Boden officer logged in to the console (their session cookies)."""
    password = server.add_user("boden.limits", "tenant_officer", "boden")
    return {"cookies": console_login(server, "boden.limits", password), "password": password}


def console_login(server: Server, username: str, password: str) -> dict[str, str]:
    return server.login_cookies(username, password)


def _audit(server: Server, q: str, expected: int) -> list[dict[str, Any]]:
    server.wait_count(q, expected, tenant="_norrvakt")
    rows: list[dict[str, Any]] = server.search(q, tenant="_norrvakt")["rows"]
    return rows


def _at_once(calls: list[Any]) -> list[httpx.Response]:
    """Run the calls in threads released together; their answers in order."""
    barrier = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


# -- deep and long queries ----------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_deeply_nested_queries_are_400_naming_the_column(server: Server, route: str) -> None:
    for q in DEEP:
        resp = server.api("GET", route, params={"q": q})
        assert resp.status_code == 400, f"{route} {q[:12]}… → {resp.status_code}: {resp.text[:200]}"
        detail = resp.json()["detail"]
        assert "nested too deeply at column" in detail and "more than 32 levels" in detail, detail


def test_a_deep_live_tail_is_refused_before_it_starts(server: Server) -> None:
    resp = server.api("GET", "/api/tail", params={"q": DEEP[0]})  # an error answers at once
    assert resp.status_code == 400
    assert "nested too deeply at column" in resp.json()["detail"]


def test_a_very_long_query_is_400_not_a_store_error(server: Server) -> None:
    # 20,000 words in 60,000 characters (a URL httpx still sends): ~800 KB of SQL, beyond
    # ClickHouse's max_query_size — a 500 "Max query size exceeded" before
    q = " ".join(["ab"] * 20_000)
    resp = server.api("GET", "/api/search", params={"q": q})
    assert resp.status_code == 400, resp.text[:300]
    detail = resp.json()["detail"]
    assert f"query too long: {len(q):,} characters, at most 10,000" in detail
    assert "column 10001" in detail
    # audited, with the query cut to the limit and its length said
    (row,) = _audit(server, '"59,999 characters" event.outcome:failure', 1)
    assert row["fields"]["query"] == q[:10_000] + "… (59,999 characters)"
    # a long query within the limit still runs
    assert server.api("GET", "/api/search", params={"q": " OR ".join(["x"] * 2000)}).status_code == 200


def test_a_query_too_big_for_the_store_is_a_query_error(store: ClickHouseStore) -> None:
    # Within the parser's hard cap (100,000 characters) but ~500 KB of SQL: the store's refusal
    # is the analyst's to fix, so a QueryError (400), not a ClickHouse DatabaseError (500).
    q = " ".join(f"w{i}" for i in range(13_000))
    assert len(q) < 100_000
    with pytest.raises(QueryError, match=r"query too big for the store \(Max query size exceeded\)"):
        run_search(store, ["lulea"], q)


# -- per-user concurrency -----------------------------------------------------------------------


def test_one_user_runs_at_most_four_searches_at_once(server: Server, officer: dict[str, Any]) -> None:
    started = time.monotonic()
    single = server.api("GET", "/api/search", params={"q": SLOW, "limit": 1})
    assert single.status_code == 200, single.text[:300]
    assert time.monotonic() - started > 0.2, "the slow query is not slow here: the test proves nothing"

    def admin() -> httpx.Response:
        return server.api("GET", "/api/search", params={"q": SLOW, "limit": 1})

    def other_user() -> httpx.Response:
        time.sleep(0.3)  # while the admin's four run
        return httpx.get(
            f"{server.url}/api/search",
            params={"q": "anything", "limit": 1},
            auth=("boden.limits", officer["password"]),
            timeout=60,
        )

    answers = _at_once([admin] * 8 + [other_user])
    statuses = [r.status_code for r in answers[:8]]
    assert statuses.count(429) >= 1, f"eight searches of one user at once all ran: {statuses}"
    assert statuses.count(200) >= 4, statuses
    refused = next(r for r in answers[:8] if r.status_code == 429)
    assert "too many searches at once" in refused.json()["detail"]
    assert "search.max_concurrent" in refused.json()["detail"]
    assert refused.headers.get("retry-after")
    assert answers[8].status_code == 200, "another user must not wait for the admin's slots"
    # the slots come back when the searches end
    assert server.api("GET", "/api/search", params={"q": "x"}).status_code == 200
    rows = _audit(server, '"too many searches at once" event.outcome:failure', 1)
    assert rows and rows[0]["ecs"]["user.name"] == "admin"


def test_the_console_shares_the_users_limit(server: Server, officer: dict[str, Any]) -> None:
    def api_search() -> httpx.Response:
        return httpx.get(
            f"{server.url}/api/search",
            params={"q": SLOW, "limit": 1},
            cookies=officer["cookies"],
            timeout=60,
        )

    def console_search() -> httpx.Response:
        time.sleep(0.3)  # the four API searches hold the officer's slots
        return httpx.get(
            f"{server.url}/ui/search", params={"q": "boden"}, cookies=officer["cookies"], timeout=60
        )

    answers = _at_once([api_search] * 4 + [console_search])
    assert [r.status_code for r in answers[:4]] == [200] * 4
    page = answers[4]
    assert page.status_code == 200
    assert "too many searches at once" in page.text, page.text[:500]


def test_one_user_keeps_at_most_two_live_tails(server: Server) -> None:
    auth = {"Authorization": f"Bearer {server._token}"}
    clients = [httpx.Client(base_url=server.url, headers=auth, timeout=30) for _ in range(4)]
    first = clients[0].stream("GET", "/api/tail", params={"q": "x"})
    second = clients[1].stream("GET", "/api/tail", params={"q": "x"})
    try:
        r1, r2 = first.__enter__(), second.__enter__()
        assert r1.status_code == r2.status_code == 200
        chunks = r1.iter_bytes()  # kept: a dropped iterator closes the response (and the tail)
        assert next(chunks).startswith(b": live tail started")
        with clients[2].stream("GET", "/api/tail", params={"q": "x"}) as third:
            assert third.status_code == 429
            assert "too many live tails at once" in third.read().decode()
        first.__exit__(None, None, None)
        clients[0].close()
        # a closed tail frees its slot (the server sees the disconnect)
        deadline, status = time.monotonic() + 10, 0
        while status != 200 and time.monotonic() < deadline:
            with clients[3].stream("GET", "/api/tail", params={"q": "x"}) as again:
                status = again.status_code
            time.sleep(0.1)
        assert status == 200, "closing a live tail did not free its slot"
    finally:
        second.__exit__(None, None, None)
        for c in clients:
            c.close()


# -- failed searches are audited ------------------------------------------------------------------


def test_every_failed_search_is_audited_with_the_reason(server: Server, officer: dict[str, Any]) -> None:
    marker = "fail" + uuid.uuid4().hex[:8]
    bad = f"{marker} ("  # missing ')'
    for route in ROUTES:
        assert server.api("GET", route, params={"q": bad}).status_code == 400
    assert server.api("GET", "/api/tail", params={"q": bad}).status_code == 400
    page = httpx.get(f"{server.url}/ui/search", params={"q": bad}, cookies=officer["cookies"], timeout=30)
    assert "expected a search term at column" in page.text, page.text[:300]
    # an officer asking for another tenant's events: refused, and audited as a failed search
    probe = httpx.get(
        f"{server.url}/api/search",
        params={"q": marker, "tenant": "lulea"},
        cookies=officer["cookies"],
        timeout=30,
    )
    assert probe.status_code == 403

    rows = _audit(server, f"{marker} event.action:search event.outcome:failure", 6)
    modes = {r["fields"].get("mode") for r in rows}
    assert modes == {"api", "histogram", "facets", "live-tail", "console"}, rows
    for r in rows:
        assert r["ecs"]["event.outcome"] == "failure"
        assert r["fields"]["query"] in (bad, marker)
        assert r["fields"]["reason"], r
    by_mode = {(r["fields"]["mode"], r["fields"]["status"]): r for r in rows}
    assert "column" in by_mode[("histogram", "400")]["fields"]["reason"]
    denied = by_mode[("api", "403")]
    assert denied["ecs"]["user.name"] == "boden.limits"
    assert denied["fields"]["tenants"] == "lulea"
    assert "no access to tenant" in denied["fields"]["reason"]
