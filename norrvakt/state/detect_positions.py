"""Where cluster detection stands per tenant: a row of ``detect_positions``.

A detection worker matches a tenant's stream envelope by envelope and writes the alerts of a
batch in one transaction; the same transaction moves the tenant's position from what the
worker read at its start to the batch's last envelope (:func:`advance`, a compare-and-set).
So the alerts of an envelope are in the database exactly when the position is past it: a
worker killed at any point starts again after the last committed batch, and its repeats
neither raise an alert twice nor count an event twice. Two workers that both believe they hold
the tenant (a lease that lapsed unnoticed during a pause) cannot both commit: the second one's
compare-and-set finds the position moved and its transaction is rolled back.
"""

from __future__ import annotations

import sqlalchemy as sa

from norrvakt.event import now_us
from norrvakt.state.db import detect_positions

Spot = tuple[int, int]  # (stream seq of the last envelope taken, seq of its last event)


class PositionMoved(RuntimeError):
    """Another worker moved the tenant's position: this one no longer holds the tenant."""


def load(conn: sa.Connection, tenant: str) -> Spot:
    row = conn.execute(
        sa.select(detect_positions.c.stream_seq, detect_positions.c.journal_seq).where(
            detect_positions.c.tenant == tenant
        )
    ).first()
    return (int(row.stream_seq), int(row.journal_seq)) if row is not None else (0, 0)


def advance(conn: sa.Connection, tenant: str, was: Spot, now: Spot, holder: str) -> None:
    """Move ``tenant`` from ``was`` to ``now`` inside the caller's transaction, or raise
    :class:`PositionMoved` (the caller's transaction must then roll back)."""
    values = {"stream_seq": now[0], "journal_seq": now[1], "holder": holder, "updated_at": now_us()}
    if was == (0, 0):
        exists = conn.execute(
            sa.select(detect_positions.c.tenant).where(detect_positions.c.tenant == tenant)
        ).first()
        if exists is None:
            try:
                with conn.begin_nested():  # a concurrent first insert fails here, not the whole batch
                    conn.execute(detect_positions.insert().values(tenant=tenant, **values))
                return
            except sa.exc.IntegrityError:
                pass  # someone else inserted first: the compare-and-set below then fails
    t = detect_positions.c
    done = conn.execute(
        detect_positions.update()
        .where(t.tenant == tenant, t.stream_seq == was[0], t.journal_seq == was[1])
        .values(**values)
    )
    if done.rowcount != 1:
        found = load(conn, tenant)
        raise PositionMoved(
            f"{tenant}: detection position is {found[0]} (seq {found[1]}), not {was[0]} (seq {was[1]}) "
            f"as {holder} read it — another worker took the tenant"
        )
