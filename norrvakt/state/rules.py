"""Per-rule alert settings (dedupe key fields, suppression window, on/off), per tenant or for
every tenant (``tenant = "*"``).

The tenant of a setting is ``*`` or exactly one tenant (:func:`setting_tenant`): a setting
stored for ``"boden,"`` or ``" boden"`` would switch nothing off for Boden, and say it did."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from norrvakt.state.db import rule_settings
from norrvakt.tenant_ids import exact_tenant

ALL_TENANTS = "*"


def setting_tenant(value: object, configured: Iterable[str], shown: Iterable[str]) -> str:
    """``value`` if it is ``*`` or exactly one configured tenant (never the system tenant);
    otherwise :class:`~norrvakt.tenant_ids.TenantIdError` (HTTP 400), which lists ``shown``
    (the caller's own tenants, not every tenant there is) as the ids to use."""
    if value == ALL_TENANTS:
        return ALL_TENANTS
    return exact_tenant(value, configured, what="rule setting tenant", shown=shown)


def all_settings(conn: sa.Connection) -> list[dict[str, Any]]:
    out = []
    for r in conn.execute(sa.select(rule_settings).order_by(rule_settings.c.rule_id, rule_settings.c.tenant)):
        row = dict(r._mapping)
        row["dedupe_fields"] = json.loads(row["dedupe_fields"]) if row["dedupe_fields"] else None
        out.append(row)
    return out


def put(
    engine: sa.Engine,
    rule_id: str,
    tenant: str,
    *,
    dedupe_fields: list[str] | None,
    window_s: int | None,
    enabled: bool,
    actor: str,
    at: int,
) -> None:
    values = {
        "dedupe_fields": json.dumps(dedupe_fields) if dedupe_fields is not None else None,
        "window_s": window_s,
        "enabled": enabled,
        "updated_at": at,
        "updated_by": actor,
    }
    with engine.begin() as conn:
        done = conn.execute(
            rule_settings.update()
            .where(rule_settings.c.rule_id == rule_id, rule_settings.c.tenant == tenant)
            .values(**values)
        )
        if done.rowcount == 0:
            conn.execute(rule_settings.insert().values(rule_id=rule_id, tenant=tenant, **values))
