"""Source-health events of a connector: journaled in the connector's tenant, where the
built-in rule ``norrvakt/detect/rules/connector_health.yml`` turns them into alerts.

    stale_event(cfg_id, tenant, feed, last_success, now, why)   # not succeeded for N minutes
    gap_event(cfg_id, tenant, feed, gap_from, gap_to, now)      # content expired unpulled (> 7 days)

``event.dataset`` is ``connector.health``; ``event.action`` says which
(``connector_stale`` | ``retention_gap``). The events are evidence as well: when the feed
stopped, which window is missing for good.
"""

from __future__ import annotations

import datetime as dt

from norrvakt.event import Event

DATASET = "connector.health"


def _when(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC).isoformat(timespec="seconds")


def _event(
    connector: str, tenant: str, feed: str, now: int, action: str, message: str, **extra: str
) -> Event:
    return Event(
        tenant=tenant,
        ts=now,
        ingested=now,
        source=connector,
        peer=f"m365:{feed}",
        ecs={
            "event.kind": "event",
            "event.category": "configuration",
            "event.dataset": DATASET,
            "event.action": action,
            "event.outcome": "failure",
            "event.provider": "norrvakt",
        },
        fields={"connector": connector, "feed": feed, **extra},
        message=message,
    )


def stale_event(
    connector: str, tenant: str, feed: str, last_success: int | None, since: int, now: int, why: str
) -> Event:
    minutes = (now - (last_success or since)) / 60e6
    last = _when(last_success) if last_success else "never"
    return _event(
        connector,
        tenant,
        feed,
        now,
        "connector_stale",
        f"connector {connector} feed {feed}: no successful pull for {minutes:.0f} min "
        f"(last success: {last}); last error: {why[:300] or 'none'}",
        silent_minutes=f"{minutes:.0f}",
        last_success=last,
        last_error=why[:500],
    )


def gap_event(connector: str, tenant: str, feed: str, gap_from: int, gap_to: int, now: int) -> Event:
    return _event(
        connector,
        tenant,
        feed,
        now,
        "retention_gap",
        f"connector {connector} feed {feed}: content from {_when(gap_from)} to {_when(gap_to)} "
        "is older than Microsoft keeps it listable and was never pulled — a gap in the log",
        gap_from=_when(gap_from),
        gap_to=_when(gap_to),
        gap_hours=f"{(gap_to - gap_from) / 3600e6:.1f}",
    )
