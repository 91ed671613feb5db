"""Browser sessions: a signed cookie naming a server-side session, and CSRF tokens.

The session cookie (``nv_session``; HttpOnly, SameSite=Lax, Secure over https) holds only the
session id, a CSRF token, when it was issued and the language, signed with HMAC-SHA256. Who is
logged in is the session's row in the state database (:mod:`norrvakt.state.logins`): logging
out, a password change, disabling or deleting the account end it there, so a copied cookie
stops working at once. Sessions last at most ``MAX_AGE_S``. Every state-changing request made
with a session must carry the CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``) — API tokens are exempt, as they are not sent automatically by a browser.

The signing key is kept in the state database (:func:`session_key`,
:mod:`norrvakt.state.shared_keys`), made at the first start: every web node of one state
database signs and checks with the same key, so a browser behind a load balancer may land on
any of them. A data directory of an older version has its key in ``keys/session.key``; the
first start after the upgrade moves that key into the state database (the file is left as it
was and no longer used once the database has a key), so nobody is logged out by the upgrade.
Whoever reads the state database can read the key: it lets them sign the login form's token
and the OIDC state cookie, not open a session — the database holds only the hashes of
session ids, and a cookie must name a live session.

The login form has a CSRF token of its own, before there is a session: a random value in a
cookie (``nv_login``) and its HMAC in the form. Another site can neither read the cookie nor
compute the HMAC, so it cannot log a browser into an account of its choosing.

Cookies are marked Secure when the request came over https — directly, or through a proxy
of ``server.trusted_proxies`` saying ``X-Forwarded-Proto: https`` — when ``public_url`` is
https, or always with ``server.secure_cookies``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request

from norrvakt.state.shared_keys import stored_key

COOKIE = "nv_session"
LOGIN_COOKIE = "nv_login"
MAX_AGE_S = 12 * 3600
LOGIN_FORM_S = 3600  # a login form older than an hour asks to be reloaded

log = logging.getLogger(__name__)


SESSION_KEY = "session"  # its name in the state database's shared_keys


def session_key(engine: sa.Engine, legacy: Path) -> bytes:
    """The cookie signing key of every web node on ``engine``'s state database; at the first
    start the data directory's old key file (``legacy``), if there is one, becomes that key."""
    own = legacy.read_bytes() if legacy.exists() else None
    key = stored_key(engine, SESSION_KEY, own if own else secrets.token_bytes(32))
    if own and own != key:
        log.warning(
            "%s is not the session key of the state database (another node stored one first): "
            "cookies signed with the file's key are not accepted; the file is no longer used",
            legacy,
        )
    return key


@dataclass(frozen=True)
class SessionData:
    session_id: str
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
        doc = {"s": data.session_id, "c": data.csrf, "i": data.issued, "l": data.lang}
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
            data = SessionData(str(doc["s"]), str(doc["c"]), float(doc["i"]), str(doc.get("l", "sv")))
        except (ValueError, KeyError, TypeError):
            return None
        if (now or time.time()) - data.issued > MAX_AGE_S:
            return None
        return data

    # -- the login form's CSRF token (double submit, the form's half signed) --------------------

    def login_token(self, nonce: str) -> str:
        return self._sign(b"login-form:" + nonce.encode())

    def login_token_ok(self, nonce: str, token: str) -> bool:
        return bool(nonce) and bool(token) and hmac.compare_digest(self.login_token(nonce), token)


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


def new_session(session_id: str, lang: str = "sv") -> SessionData:
    return SessionData(session_id, secrets.token_urlsafe(24), time.time(), lang)


def secure_cookies(request: Request) -> bool:
    """Whether cookies set on this request must be Secure (see the module docstring)."""
    server = request.app.state.runtime.settings.server
    return server.secure_cookies or request.url.scheme == "https" or server.public_url.startswith("https://")
