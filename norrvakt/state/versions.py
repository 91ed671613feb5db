"""Version counters of cached state, so that a change made through one node reaches the caches
of every node on the same state database.

    with engine.begin() as conn:
        conn.execute(tokens.update()...)        # the change
        bump(conn, TOKENS)                       # in the same transaction
    ...
    watch = VersionWatch(engine, TOKENS)         # on every node, next to its cache
    if watch.moved():                            # reads the counter at most once a second
        cache.clear()

A counter only ever grows; a node that sees it differ from what it saw last drops its cache
and reads again. So a change is seen everywhere within ``CHECK_EVERY_S`` of its commit (plus
the time of one read), and a node never needs to know who the others are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from norrvakt.state.db import state_versions, upsert

log = logging.getLogger(__name__)

TOKENS = "tokens"  # ingest tokens (created, revoked)
TENANT_MODULES = "tenant_modules"  # module subscriptions per tenant
CHECK_EVERY_S = 1.0


def bump(conn: sa.Connection, name: str) -> None:
    """Count one change of ``name`` (inside the change's own transaction)."""
    stmt = upsert(conn, state_versions).values(name=name, counter=1)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[state_versions.c.name], set_={"counter": state_versions.c.counter + 1}
        )
    )


def read(conn: sa.Connection, name: str) -> int:
    """The counter of ``name``; 0 before its first change."""
    found = conn.execute(
        sa.select(state_versions.c.counter).where(state_versions.c.name == name)
    ).scalar_one_or_none()
    return int(found or 0)


class VersionWatch:
    """Says when ``name`` changed since the last look, reading its counter at most every
    ``every_s`` seconds (thread-safe; a caller that finds another one reading goes on with
    the cache). The first counter is read when the watch is made: make it before loading
    what it guards, so a change between the two is not missed."""

    def __init__(
        self,
        engine: sa.Engine,
        name: str,
        every_s: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.name = name
        self.every_s = every_s
        self.clock = clock
        self._lock = threading.Lock()
        self._checked = clock()
        self._seen = self._read()
        self._failing = False

    def _read(self) -> int:
        with self.engine.connect() as conn:
            return read(conn, self.name)

    def moved(self) -> bool:
        """True once for every look that found the counter moved."""
        if self.clock() - self._checked < self.every_s or not self._lock.acquire(blocking=False):
            return False
        try:
            self._checked = self.clock()
            try:
                current = self._read()
            except sa.exc.SQLAlchemyError as exc:
                # The state database cannot be read: keep the cache as it is (what it guards
                # cannot be read afresh either) and look again next time; said once per
                # outage, not per request.
                if not self._failing:
                    log.warning("cannot read the %s version from the state database: %s", self.name, exc)
                self._failing = True
                return False
            self._failing = False
            if current == self._seen:
                return False
            self._seen = current
            return True
        finally:
            self._lock.release()
