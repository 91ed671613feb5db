"""The notification log: every delivery, failure and rate-limited message, per channel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from norrvakt.state.db import notifications


def log(engine: sa.Engine, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        with engine.begin() as conn:
            conn.execute(notifications.insert(), list(rows))


def recent(engine: sa.Engine, tenants: Sequence[str], limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(notifications)
                .where(notifications.c.tenant.in_(list(tenants)))
                .order_by(notifications.c.id.desc())
                .limit(limit)
            )
        ]
