"""Browser sessions: a signed cookie, CSRF tokens, and login throttling with lockout.

The session cookie (``nv_session``; HttpOnly, SameSite=Lax, Secure behind https) holds who is
logged in, a fingerprint of their password hash (changing the password ends every session),
a CSRF token and when it was issued; it is signed with HMAC-SHA256 under a key generated at
first start (``<data_dir>/keys/session.key``, mode 0600). Sessions last at most
``MAX_AGE_S``. Every state-changing request made with a session must carry the CSRF token
(form field ``csrf_token`` or header ``X-CSRF-Token``) — API tokens are exempt, as they are
not sent automatically by a browser.

Logins are throttled per address (``PER_IP_PER_MINUTE``) and an account is locked for
``LOCK_S`` after ``MAX_FAILURES`` failed attempts in a row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COOKIE = "nv_session"
MAX_AGE_S = 12 * 3600
MAX_FAILURES = 5
LOCK_S = 15 * 60
PER_IP_PER_MINUTE = 20


def load_or_create_key(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SessionData:
    username: str
    fingerprint: str
    csrf: str
    issued: float
    lang: str = "sv"


class SessionCodec:
    def __init__(self, key: bytes) -> None:
        self.key = key

    def _sign(self, payload: bytes) -> str:
        digest = hmac.new(self.key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def encode(self, data: SessionData) -> str:
        doc = {"u": data.username, "f": data.fingerprint, "c": data.csrf, "i": data.issued, "l": data.lang}
        payload = json.dumps(doc, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._sign(payload)

    def decode(self, value: str, now: float | None = None) -> SessionData | None:
        try:
            body, sig = value.split(".", 1)
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(self._sign(payload), sig):
            return None
        try:
            doc: dict[str, Any] = json.loads(payload)
            data = SessionData(
                str(doc["u"]), str(doc["f"]), str(doc["c"]), float(doc["i"]), str(doc.get("l", "sv"))
            )
        except (ValueError, KeyError, TypeError):
            return None
        if (now or time.time()) - data.issued > MAX_AGE_S:
            return None
        return data


def sign_blob(codec: SessionCodec, doc: dict[str, str]) -> str:
    """A small signed value for a cookie (e.g. the OIDC state between redirect and callback)."""
    payload = json.dumps({**doc, "_t": time.time()}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + codec._sign(payload)


def unsign_blob(codec: SessionCodec, value: str, max_age_s: float = 600) -> dict[str, str] | None:
    try:
        body, sig = value.split(".", 1)
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(codec._sign(payload), sig):
        return None
    doc: dict[str, Any] = json.loads(payload)
    if time.time() - float(doc.pop("_t", 0)) > max_age_s:
        return None
    return {str(k): str(v) for k, v in doc.items()}


def new_session(username: str, password_hash: str, lang: str = "sv") -> SessionData:
    return SessionData(username, fingerprint(password_hash), secrets.token_urlsafe(24), time.time(), lang)


class LoginGuard:
    """Throttling per address and lockout per account, in memory (one server owns the data dir)."""

    def __init__(self) -> None:
        self._attempts: dict[str, deque[float]] = defaultdict(deque)
        self._failures: dict[str, int] = defaultdict(int)
        self._locked_until: dict[str, float] = {}

    def check(self, username: str, address: str, now: float | None = None) -> str | None:
        """Why this attempt may not proceed, or None."""
        now = now or time.time()
        window = self._attempts[address]
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= PER_IP_PER_MINUTE:
            return "too many login attempts from this address; wait a minute"
        window.append(now)
        until = self._locked_until.get(username.lower(), 0)
        if until > now:
            minutes = int(until - now) // 60 + 1
            return f"the account is locked for {minutes} more minute(s) after repeated failures"
        return None

    def failed(self, username: str, now: float | None = None) -> bool:
        """Record a failure; True when the account just got locked."""
        key = username.lower()
        self._failures[key] += 1
        if self._failures[key] >= MAX_FAILURES:
            self._locked_until[key] = (now or time.time()) + LOCK_S
            self._failures[key] = 0
            return True
        return False

    def succeeded(self, username: str) -> None:
        self._failures.pop(username.lower(), None)
