"""The notification outbox: a notice is stored here before it is queued for a channel, and
removed when the channel has handled it (sent, or failed after its retries). Notices still
here at start were queued when the server stopped or died; the dispatcher sends them again.

Delivery is therefore at least once: a server killed between a send and its removal sends
that notice again after the restart (receivers can tell by kind + alert/case id + ``at``).

Several processes may send notifications from one state database (web nodes, a cluster's
detection workers). Each row names the process that queued it (``owner``), and a process that
starts takes back its own rows and those another one has left for ``orphaned`` — not what a
live one is sending right now. Rows from before the owner was kept ("") are anyone's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from norrvakt.state.db import notification_outbox


def put(
    engine: sa.Engine, items: Sequence[tuple[str, dict[str, Any]]], at: int, owner: str = ""
) -> list[int]:
    """Store ``(channel, notice as a JSON-able dict)`` pairs in one transaction; their ids, in order."""
    ids: list[int] = []
    if not items:
        return ids
    with engine.begin() as conn:
        for channel, notice in items:
            done = conn.execute(
                notification_outbox.insert().values(
                    created_at=at, channel=channel, notice=json.dumps(notice), owner=owner
                )
            )
            key = done.inserted_primary_key
            assert key is not None  # an INSERT of one row always has one
            ids.append(int(key[0]))
    return ids


def remove(engine: sa.Engine, ids: Iterable[int]) -> None:
    wanted = list(ids)
    if wanted:
        with engine.begin() as conn:
            conn.execute(notification_outbox.delete().where(notification_outbox.c.id.in_(wanted)))


def pending(
    engine: sa.Engine, owner: str | None = None, orphaned_before: int | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    """The waiting notices as ``(id, channel, notice dict)``, oldest first: every one, or (an
    ``owner`` given) that owner's, the owner-less ones, and others' queued before
    ``orphaned_before`` (µs)."""
    t = notification_outbox.c
    query = sa.select(notification_outbox).order_by(t.id)
    if owner is not None:
        mine = sa.or_(t.owner == owner, t.owner == "")
        if orphaned_before is not None:
            mine = sa.or_(mine, t.created_at < orphaned_before)
        query = query.where(mine)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [(int(r.id), str(r.channel), json.loads(r.notice)) for r in rows]
