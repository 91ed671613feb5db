"""Password hashing (argon2id) and random secrets."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_dummy_hash: list[str] = []


def burn_verification(password: str) -> None:
    """Spend the time of a real verification for an unknown or unusable account, so the time an
    answer takes does not tell a guesser which user names exist."""
    if not _dummy_hash:
        _dummy_hash.append(hash_password(secrets.token_urlsafe(16)))
    verify_password(_dummy_hash[0], password)


def new_password() -> str:
    return secrets.token_urlsafe(15)


def new_token(prefix: str) -> str:
    """A bearer secret such as ``nvi_…`` (ingest) or ``nva_…`` (API)."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
