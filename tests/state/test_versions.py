"""Version counters of cached state on both backends: a change through one node's code reaches
another node's cache (tokens, module subscriptions) within the watch's interval."""

from __future__ import annotations

import sqlalchemy as sa

from norrvakt.modules import TenantModules
from norrvakt.sources.http import TokenCache
from norrvakt.state.accounts import create_ingest_token, ingest_token, revoke_token, token_row
from norrvakt.state.db import tokens
from norrvakt.state.versions import TOKENS, VersionWatch, bump, read
from tests.state.conftest import engine  # noqa: F401 - the two-backend fixture


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bump_counts_up_from_nothing(engine: sa.Engine) -> None:  # noqa: F811
    with engine.begin() as conn:
        assert read(conn, "x") == 0
        bump(conn, "x")
        bump(conn, "x")
    with engine.connect() as conn:
        assert read(conn, "x") == 2 and read(conn, "y") == 0


def test_a_watch_reads_at_most_once_per_interval_and_reports_a_move_once(engine: sa.Engine) -> None:  # noqa: F811
    clock = Clock()
    watch = VersionWatch(engine, "x", every_s=1.0, clock=clock)
    with engine.begin() as conn:
        bump(conn, "x")
    assert not watch.moved()  # not looked yet: within the interval
    clock.now += 1.0
    assert watch.moved()
    clock.now += 1.0
    assert not watch.moved()  # nothing new


def test_a_token_revoked_through_one_node_is_refused_by_the_others_cache(engine: sa.Engine) -> None:  # noqa: F811
    clock = Clock()
    token = create_ingest_token(engine, "lulea", "lulea-fw")
    node_b = TokenCache(lambda t: ingest_token(engine, t), VersionWatch(engine, TOKENS, clock=clock))
    assert node_b.get(token) is not None  # cached now
    with engine.connect() as conn:
        token_id = conn.execute(sa.select(tokens.c.id)).scalar_one()
    revoke_token(engine, token_id)  # through "node A"
    assert token_row(engine, token_id)["revoked_at"] is not None  # type: ignore[index]
    assert node_b.get(token) is not None  # the cached lookup, until the next look
    clock.now += 1.0
    assert node_b.get(token) is None


def test_a_module_change_through_one_node_reaches_the_other(engine: sa.Engine) -> None:  # noqa: F811
    clock = Clock()
    node_a = TenantModules(engine)
    node_b = TenantModules(engine)
    node_b.watch = VersionWatch(engine, "tenant_modules", clock=clock)
    assert node_b.enabled("kiruna", "detection")
    node_a.set("kiruna", {"detection": False}, "admin")
    assert not node_a.enabled("kiruna", "detection")  # its own node at once
    clock.now += 1.0
    assert not node_b.enabled("kiruna", "detection")
    node_a.set("kiruna", {"detection": True}, "admin")
    clock.now += 1.0
    assert node_b.table(["kiruna"])["kiruna"]["detection"]
