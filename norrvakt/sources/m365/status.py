"""What the console and ``GET /api/m365/connectors`` show of the Microsoft 365 connectors.

    rows = connector_status(settings, engine, scope=["lulea"], central=False, now=now_us())

Per connector: its tenant, Microsoft directory, each feed's checkpoint (``lag_s``: how far
behind now the checkpoint is; last attempt and success; the last error; records and duplicates
pulled) and the connector's worst lag and oldest last success. Only connectors of ``scope``
are listed — another tenant's connector is not even named. The credential appears only for
central users (``central``), and then only its kind and when it was set: never the secret, the
ciphertext or the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from norrvakt.state.m365 import credential_facts, statuses

if TYPE_CHECKING:
    from norrvakt.config import Settings


def connector_status(
    settings: Settings, engine: sa.Engine, scope: list[str], *, central: bool, now: int
) -> list[dict[str, Any]]:
    configured = [s for s in settings.sources if s.type == "m365" and s.tenant in scope]
    if not configured:
        return []
    rows = statuses(engine, sorted({s.tenant for s in configured}))
    creds = credential_facts(engine, [s.id for s in configured]) if central else {}
    out: list[dict[str, Any]] = []
    for src in configured:
        mine = {r["feed"]: r for r in rows if r["connector"] == src.id and r["tenant"] == src.tenant}
        feeds = []
        for feed in src.m365.feeds:
            r = mine.get(feed)
            feeds.append(
                {
                    "feed": feed,
                    "checkpoint": r["done_until"] if r else None,
                    "lag_s": round((now - r["done_until"]) / 1e6) if r else None,
                    "last_attempt_at": r["last_attempt_at"] if r else None,
                    "last_success_at": r["last_success_at"] if r else None,
                    "last_error": r["last_error"] if r else "not pulled yet",
                    "records": r["records"] if r else 0,
                    "duplicates": r["duplicates"] if r else 0,
                }
            )
        successes: list[int | None] = [
            r["last_success_at"] if (r := mine.get(f)) else None for f in src.m365.feeds
        ]
        lags = [int(f["lag_s"]) for f in feeds if f["lag_s"] is not None]
        item: dict[str, Any] = {
            "id": src.id,
            "tenant": src.tenant,
            "directory_id": src.m365.directory_id,
            "feeds": feeds,
            "lag_s": max(lags) if lags else None,
            # the feed that has gone longest without success decides (None: one never succeeded)
            "last_success_at": min(x for x in successes if x is not None)
            if successes and None not in successes
            else None,
            "ok": all(not f["last_error"] for f in feeds),
        }
        if central:
            fact = creds.get(src.id)
            item["credential"] = (
                {"kind": fact["kind"], "updated_at": fact["updated_at"], "updated_by": fact["updated_by"]}
                if fact is not None and fact["tenant"] == src.tenant
                else None
            )
        out.append(item)
    return out
