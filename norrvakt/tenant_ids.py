"""Tenant ids are exact: a value names one configured tenant, byte for byte, or it is refused.

Everything that stores a tenant id for later — an ingest token, a user's scope, a rule
setting, an import — must go through :func:`exact_tenant`. A lenient check (stripping
spaces, splitting on commas, lower-casing) lets ``"boden,"`` or ``" boden"`` through to be
stored verbatim, and events sent with such a token vanish into a pseudo-tenant nobody can
search or verify.

The system tenant (``_norrvakt``, Norrvakt's own audit trail) is never a valid target for
anything a client sends: nobody may write into the audit trail from outside.
"""

from __future__ import annotations

from collections.abc import Iterable

from norrvakt.errors import StatusError
from norrvakt.event import SYSTEM_TENANT


class TenantIdError(StatusError, ValueError):
    """A tenant id that is not exactly one configured tenant (HTTP 400)."""

    status_code = 400


def exact_tenant(
    value: object, configured: Iterable[str], *, what: str = "tenant", shown: Iterable[str] | None = None
) -> str:
    """``value`` if it is exactly one of ``configured`` (never the system tenant), else raise.

    ``what`` names the thing in the message, e.g. ``"token tenant"``; ``shown`` are the ids the
    message offers instead (default: every configured one — pass the caller's own tenants
    where the caller should not learn the others)."""
    known = [t for t in configured if t != SYSTEM_TENANT]
    if not isinstance(value, str):
        raise TenantIdError(f"{what}: {value!r} is not a tenant id")
    if value == SYSTEM_TENANT:
        raise TenantIdError(
            f"{what}: {SYSTEM_TENANT!r} is Norrvakt's own audit trail; "
            "nothing may be written to it from outside"
        )
    if value not in known:
        offered = known if shown is None else [t for t in shown if t != SYSTEM_TENANT]
        raise TenantIdError(f"{what}: {value!r} is not a configured tenant (one of: {', '.join(offered)})")
    return value


def exact_tenants(values: Iterable[object], configured: Iterable[str], *, what: str = "tenant") -> list[str]:
    """Every value exact (see :func:`exact_tenant`), in order, without duplicates."""
    known = list(configured)
    out: list[str] = []
    for v in values:
        t = exact_tenant(v, known, what=what)
        if t not in out:
            out.append(t)
    return out
