"""Per-user limits on work that holds the store: searches and live tails.

    limiter = UserLimiter({"search": 4, "tail": 2})
    slot = limiter.slot("search", "anna")     # LimitReached (429) when anna runs 4 already
    ...
    slot.release()                            # idempotent: a second call frees nothing

The store has a few reader clients (norrvakt.store.clickhouse.READERS); without a limit one
user with a script (or a stuck browser tab opening live tails) can keep every one of them busy
and the other analysts wait. A slot is held while the work runs — for a search until the
store has answered, for a live tail until the client goes away — and freed exactly once.

The counts are per node, by design: a limit protects the reader clients of the node that
runs the work, and a search or live tail runs (and holds its slot) on the node that took the
request. With several web nodes behind a load balancer a user may run the limit on each
node; nothing is shared, so nothing needs the state database or outlives a node.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

from norrvakt.errors import StatusError

WHAT = {"search": "searches", "tail": "live tails"}


class LimitReached(StatusError):
    """The user already runs as many of these as allowed (HTTP 429)."""

    status_code = 429


class Slot:
    """One unit of a user's allowance; :meth:`release` is idempotent."""

    def __init__(self, limiter: UserLimiter, kind: str, user: str) -> None:
        self._limiter = limiter
        self.kind = kind
        self.user = user
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limiter._release(self.kind, self.user)


class UserLimiter:
    """Counts running work per (kind, user) against ``limits`` (kind → most at once)."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)
        self._running: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()  # slots are freed from worker threads too

    def slot(self, kind: str, user: str) -> Slot:
        """Take a slot or raise :class:`LimitReached` naming the limit."""
        limit = self.limits[kind]
        with self._lock:
            if self._running[(kind, user)] >= limit:
                raise LimitReached(
                    f"too many {WHAT.get(kind, kind)} at once: {user} already runs {limit}, the "
                    f"most allowed (search.max_{'live_tails' if kind == 'tail' else 'concurrent'}); "
                    "wait for one to finish and try again"
                )
            self._running[(kind, user)] += 1
        return Slot(self, kind, user)

    def _release(self, kind: str, user: str) -> None:
        with self._lock:
            self._running[(kind, user)] -= 1
            if self._running[(kind, user)] <= 0:
                del self._running[(kind, user)]
