"""The login guard on both state backends, with two guards on one database standing for two web
nodes: failures made through either count for both."""

from __future__ import annotations

import sqlalchemy as sa

from norrvakt.auth.guard import LOCK_S, MAX_FAILURES, PER_IP_PER_MINUTE, LoginGuard
from norrvakt.state.db import login_accounts, login_failures
from tests.state.conftest import engine  # noqa: F401 - the two-backend fixture

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def test_failures_alternating_between_two_nodes_lock_the_account_on_both(engine: sa.Engine) -> None:  # noqa: F811
    a, b = LoginGuard(engine), LoginGuard(engine)
    locked = [(a if i % 2 == 0 else b).failed("Anna", f"10.0.0.{i}", now=T0 + i) for i in range(MAX_FAILURES)]
    assert locked == [False] * (MAX_FAILURES - 1) + [True]  # exactly one node is told it locked it
    for guard in (a, b):
        refusal = guard.check("anna", "10.9.9.9", now=T0 + 10)
        assert refusal is not None and "locked for 15 more minute(s)" in refusal.reason
        assert refusal.new  # each node audits the lock once
        assert guard.check("ANNA", "10.9.9.9", now=T0 + 11).new is False  # type: ignore[union-attr]
    assert a.check("anna", "10.9.9.9", now=T0 + MAX_FAILURES - 1 + LOCK_S + 1) is None  # the lock ran out
    assert a.check("bertil", "10.9.9.9", now=T0 + 10) is None  # other accounts are not touched


def test_the_address_throttle_counts_the_failures_made_through_both_nodes(engine: sa.Engine) -> None:  # noqa: F811
    a, b = LoginGuard(engine), LoginGuard(engine)
    for i in range(PER_IP_PER_MINUTE):  # a different name each time: no account lock is reached
        (a if i % 2 == 0 else b).failed(f"guess{i}", "192.0.2.7", now=T0 + i)
    refusal = b.check("someone", "192.0.2.7", now=T0 + 30)
    assert refusal is not None and "too many failed logins from this address" in refusal.reason
    assert refusal.retry_after_s == 31  # until the first failure leaves the minute
    assert a.check("someone", "192.0.2.8", now=T0 + 30) is None  # another address may try
    assert a.check("someone", "192.0.2.7", now=T0 + 61) is None  # the minute has room again


def test_a_success_forgets_the_failures_in_a_row(engine: sa.Engine) -> None:  # noqa: F811
    a, b = LoginGuard(engine), LoginGuard(engine)
    for i in range(MAX_FAILURES - 1):
        a.failed("cecilia", "10.0.0.1", now=T0 + i)
    b.succeeded("Cecilia", now=T0 + 5)
    assert not any(a.failed("cecilia", "10.0.0.1", now=T0 + 10 + i) for i in range(MAX_FAILURES - 1))
    assert b.failed("cecilia", "10.0.0.1", now=T0 + 20)  # the fifth in a row since the success


def test_a_success_does_not_lift_a_lock(engine: sa.Engine) -> None:  # noqa: F811
    guard = LoginGuard(engine)
    for i in range(MAX_FAILURES):
        guard.failed("david", "10.0.0.1", now=T0 + i)
    guard.succeeded("david", now=T0 + 10)  # e.g. a check that passed on another node just before
    assert guard.check("david", "10.0.0.2", now=T0 + 11) is not None


def test_old_rows_are_pruned(engine: sa.Engine) -> None:  # noqa: F811
    guard = LoginGuard(engine)
    guard.failed("erik", "10.0.0.1", now=T0)
    guard.failed("fredrika", "10.0.0.2", now=T0 + 1)
    guard.failed("gustav", "10.0.0.3", now=T0 + 2 * 86400)  # prunes what is older than its limits
    with engine.connect() as conn:
        addresses = conn.execute(sa.select(login_failures.c.address)).scalars().all()
        accounts = conn.execute(sa.select(login_accounts.c.username)).scalars().all()
    assert addresses == ["10.0.0.3"] and accounts == ["gustav"]


def test_names_longer_than_the_column_are_counted_under_their_hash(engine: sa.Engine) -> None:  # noqa: F811
    guard = LoginGuard(engine)
    name = "x" * 5000
    for i in range(MAX_FAILURES):
        guard.failed(name, "a" * 300, now=T0 + i)
    assert guard.check(name.upper(), "10.0.0.1", now=T0 + 10) is not None
