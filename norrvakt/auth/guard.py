"""Password guessing is slowed down the same way on every door: the console's login form and
HTTP Basic on the API share one :class:`LoginGuard`.

- Per address: at most ``PER_IP_PER_MINUTE`` failed attempts in any 60 seconds; beyond that
  every attempt from the address is refused unchecked until the window has room again.
- Per account: ``MAX_FAILURES`` failures in a row lock it for ``LOCK_S`` (any address).

The address is the caller's as the web server sees it — a forwarding proxy's header is only
believed from ``server.trusted_proxies`` — so rotating ``X-Forwarded-For`` buys nothing.
State is in memory: one server owns a data directory, and a restart forgets the counters
(as it should not matter: an attacker cannot restart the server).

``check`` says whether a refusal is *new* (the first of a throttled minute or of a lock), so
callers can audit refusals without writing an audit record per request of a flood.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

MAX_FAILURES = 5
LOCK_S = 15 * 60
PER_IP_PER_MINUTE = 20
_PRUNE_AT = 10_000  # entries per table before old ones are dropped (random names, many addresses)


@dataclass(frozen=True)
class Refusal:
    reason: str
    new: bool  # the first refusal of this throttle window or lock (worth an audit record)
    retry_after_s: int


class LoginGuard:
    def __init__(self) -> None:
        self._failed_at: dict[str, deque[float]] = {}
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}
        self._announced: set[tuple[str, float]] = set()

    def check(self, username: str, address: str, now: float | None = None) -> Refusal | None:
        """Why this attempt may not be tried, or None."""
        now = time.time() if now is None else now
        window = self._failed_at.get(address)
        if window is not None:
            while window and now - window[0] > 60:
                window.popleft()
            if len(window) >= PER_IP_PER_MINUTE:
                return self._refusal(
                    "too many failed logins from this address; wait a minute",
                    ("ip:" + address, window[0]),
                    window[0] + 60 - now,
                )
        key = username.lower()
        until = self._locked_until.get(key, 0.0)
        if until > now:
            minutes = int(until - now) // 60 + 1
            return self._refusal(
                f"the account is locked for {minutes} more minute(s) after repeated failures",
                ("user:" + key, until),
                until - now,
            )
        return None

    def _refusal(self, reason: str, mark: tuple[str, float], wait: float) -> Refusal:
        new = mark not in self._announced
        if new:
            if len(self._announced) > _PRUNE_AT:
                self._announced.clear()
            self._announced.add(mark)
        return Refusal(reason, new, max(1, int(wait) + 1))

    def failed(self, username: str, address: str, now: float | None = None) -> bool:
        """Record a failure; True when the account just got locked."""
        now = time.time() if now is None else now
        self._prune(now)
        self._failed_at.setdefault(address, deque()).append(now)
        key = username.lower()
        self._failures[key] = self._failures.get(key, 0) + 1
        if self._failures[key] >= MAX_FAILURES:
            self._locked_until[key] = now + LOCK_S
            self._failures[key] = 0
            return True
        return False

    def succeeded(self, username: str) -> None:
        self._failures.pop(username.lower(), None)

    def _prune(self, now: float) -> None:
        if len(self._failed_at) > _PRUNE_AT:
            for address in [a for a, w in self._failed_at.items() if not w or now - w[-1] > 60]:
                del self._failed_at[address]
        if len(self._locked_until) > _PRUNE_AT:
            for key in [k for k, until in self._locked_until.items() if until <= now]:
                del self._locked_until[key]
        if len(self._failures) > _PRUNE_AT:
            self._failures.clear()  # counts of failures in a row; a lock already set stays


def login_guard(runtime: Any) -> LoginGuard:
    """The server's one guard (made on first use)."""
    guard: LoginGuard = runtime.extras.setdefault("login_guard", LoginGuard())
    return guard
