"""Token bucket: ``rate_per_minute`` messages a minute on average, up to ``burst`` (default: as
many as a minute allows) at once."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate_per_minute: int, clock: Callable[[], float] = time.monotonic, burst: int | None = None
    ) -> None:
        self.capacity = float(burst if burst is not None else rate_per_minute)
        self.per_second = rate_per_minute / 60.0
        self.clock = clock
        self.tokens = self.capacity
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now

    def take(self) -> bool:
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_s(self) -> float:
        """Seconds until the next token."""
        self._refill()
        return max(0.0, (1.0 - self.tokens) / self.per_second)
