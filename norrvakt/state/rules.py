"""Per-rule alert settings (dedupe key fields, suppression window, on/off), per tenant or for
every tenant (``tenant = "*"``)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from norrvakt.state.db import rule_settings

ALL_TENANTS = "*"


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
