"""Failed logins as the login guard (:mod:`norrvakt.auth.guard`) counts them, in the state
database so that every web node sees the failures made through the others.

- ``login_failures``: one row per failed attempt (address, time), read for the last minute;
- ``login_accounts``: per account name as typed, failures in a row and the lock they set.

One statement per look (:func:`look`), two per failure (:func:`record_failure`), one per
success (:func:`clear_failures`); :func:`prune` drops old rows. Times are microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from norrvakt.state.db import login_accounts, login_failures, upsert


@dataclass(frozen=True)
class LoginState:
    address_failures: int  # failures from the address since the window's start
    oldest_failure: int | None  # the first of them
    locked_until: int | None  # the account's lock (may be over already)


def look(engine: sa.Engine, address: str, account: str, since: int) -> LoginState:
    """The address's failures since ``since`` and the account's lock, in one query."""
    recent = login_failures.c.address == address, login_failures.c.at >= since
    count = sa.select(sa.func.count()).select_from(login_failures).where(*recent).scalar_subquery()
    oldest = sa.select(sa.func.min(login_failures.c.at)).where(*recent).scalar_subquery()
    until = (
        sa.select(login_accounts.c.locked_until).where(login_accounts.c.username == account).scalar_subquery()
    )
    with engine.connect() as conn:
        row = conn.execute(sa.select(count, oldest, until)).one()
    return LoginState(int(row[0] or 0), None if row[1] is None else int(row[1]), row[2])


def record_failure(
    engine: sa.Engine, address: str, account: str, now: int, *, max_failures: int, lock_us: int
) -> bool:
    """Count a failure of ``account`` from ``address``; True when it just locked the account.

    The account's count goes up and, at ``max_failures``, starts again at 0 with the lock set
    — in one atomic statement, so failures made through several nodes at once add up and
    exactly one of them is told that it locked the account."""
    lock_at = now + lock_us
    reaches = login_accounts.c.failures + 1 >= max_failures
    with engine.begin() as conn:
        conn.execute(login_failures.insert().values(address=address, at=now))
        first_locks = max_failures <= 1
        stmt = upsert(conn, login_accounts).values(
            username=account,
            failures=0 if first_locks else 1,
            locked_until=lock_at if first_locks else None,
            last_failure_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[login_accounts.c.username],
            set_={
                "failures": sa.case((reaches, 0), else_=login_accounts.c.failures + 1),
                "locked_until": sa.case((reaches, lock_at), else_=login_accounts.c.locked_until),
                "last_failure_at": now,
            },
        ).returning(login_accounts.c.locked_until)
        until = conn.execute(stmt).scalar_one()
    return bool(until == lock_at)


def clear_failures(engine: sa.Engine, account: str, now: int) -> None:
    """A success: the account's failures in a row are forgotten (a lock that holds stays)."""
    with engine.begin() as conn:
        conn.execute(
            login_accounts.delete().where(
                login_accounts.c.username == account,
                sa.or_(login_accounts.c.locked_until.is_(None), login_accounts.c.locked_until <= now),
            )
        )


def prune(engine: sa.Engine, failures_before: int, accounts_before: int, now: int) -> None:
    """Drop address failures older than ``failures_before`` and the rows of accounts whose
    last failure is older than ``accounts_before`` and that are not locked."""
    with engine.begin() as conn:
        conn.execute(login_failures.delete().where(login_failures.c.at < failures_before))
        conn.execute(
            login_accounts.delete().where(
                login_accounts.c.last_failure_at < accounts_before,
                sa.or_(login_accounts.c.locked_until.is_(None), login_accounts.c.locked_until <= now),
            )
        )
