"""Password guessing is slowed down the same way on every door: the console's login form and
HTTP Basic on the API share one :class:`LoginGuard`.

- Per address: at most ``PER_IP_PER_MINUTE`` failed attempts in any 60 seconds; beyond that
  every attempt from the address is refused unchecked until the window has room again.
- Per account: ``MAX_FAILURES`` failures in a row lock it for ``LOCK_S`` (any address).

The address is the caller's as the web server sees it — a forwarding proxy's header is only
believed from ``server.trusted_proxies`` — so rotating ``X-Forwarded-For`` buys nothing.

State is in the state database (:mod:`norrvakt.state.login_failures`), so several web nodes
behind a load balancer count together: five failures spread over two nodes lock the account
on both, and the address throttle counts the attempts made through either. A look is one
query, a failure two statements, a success one; old rows are pruned every ``PRUNE_EVERY_S``
(failures older than the minute; accounts whose last failure is ``KEEP_ACCOUNT_S`` old and
that are not locked — so failures "in a row" are forgotten after a day without one). Times
are the nodes' clocks, which must agree (NTP), as the journal's times do.

``check`` says whether a refusal is *new* (the first of a throttled minute or of a lock), so
callers can audit refusals without writing an audit record per request of a flood. That
one flag is per node: with N web nodes a throttled minute or a lock is audited at most N
times — still once per window, not once per request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import sqlalchemy as sa

from norrvakt.state import login_failures as rows

MAX_FAILURES = 5
LOCK_S = 15 * 60
PER_IP_PER_MINUTE = 20
WINDOW_S = 60
PRUNE_EVERY_S = 10.0
KEEP_ACCOUNT_S = 24 * 3600
_NAME_CHARS = 128  # the columns' width; longer names (no account has one) are kept as a hash
_ANNOUNCED_AT_MOST = 10_000  # refusals remembered for ``new`` (random names, many addresses)
US = 1_000_000


@dataclass(frozen=True)
class Refusal:
    reason: str
    new: bool  # the first refusal of this throttle window or lock (worth an audit record)
    retry_after_s: int


class LoginGuard:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._announced: set[tuple[str, int]] = set()
        self._pruned_at = 0.0

    def check(self, username: str, address: str, now: float | None = None) -> Refusal | None:
        """Why this attempt may not be tried, or None."""
        now = time.time() if now is None else now
        now_us = int(now * US)
        found = rows.look(self.engine, _column(address), _account(username), now_us - WINDOW_S * US)
        if found.address_failures >= PER_IP_PER_MINUTE and found.oldest_failure is not None:
            oldest = found.oldest_failure
            return self._refusal(
                "too many failed logins from this address; wait a minute",
                ("ip:" + address, oldest),
                (oldest + WINDOW_S * US - now_us) / US,
            )
        until = found.locked_until
        if until is not None and until > now_us:
            left = (until - now_us) / US
            minutes = int(left) // 60 + 1
            return self._refusal(
                f"the account is locked for {minutes} more minute(s) after repeated failures",
                ("user:" + _account(username), until),
                left,
            )
        return None

    def _refusal(self, reason: str, mark: tuple[str, int], wait: float) -> Refusal:
        new = mark not in self._announced
        if new:
            if len(self._announced) > _ANNOUNCED_AT_MOST:
                self._announced.clear()
            self._announced.add(mark)
        return Refusal(reason, new, max(1, int(wait) + 1))

    def failed(self, username: str, address: str, now: float | None = None) -> bool:
        """Record a failure; True when the account just got locked."""
        now = time.time() if now is None else now
        now_us = int(now * US)
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            rows.prune(self.engine, now_us - WINDOW_S * US, now_us - KEEP_ACCOUNT_S * US, now_us)
        return rows.record_failure(
            self.engine,
            _column(address),
            _account(username),
            now_us,
            max_failures=MAX_FAILURES,
            lock_us=LOCK_S * US,
        )

    def succeeded(self, username: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        rows.clear_failures(self.engine, _account(username), int(now * US))


def _account(username: str) -> str:
    return _column(username.lower())


def _column(value: str) -> str:
    if len(value) <= _NAME_CHARS:
        return value
    return "sha256:" + sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def login_guard(runtime: Any) -> LoginGuard:
    """The server's one guard (made on first use), on the runtime's state database."""
    guard = runtime.extras.get("login_guard")
    if not isinstance(guard, LoginGuard):
        guard = runtime.extras["login_guard"] = LoginGuard(runtime.state)
    return guard
