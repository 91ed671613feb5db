"""The SIEM audits itself: searches, exports, proofs, verifications, imports and admin changes
become events in the system tenant ``_norrvakt``, journaled and sealed like any other log —
so misuse of Norrvakt itself is visible (and an auditor can search it).
"""

from __future__ import annotations

import json
import logging

from norrvakt.event import SYSTEM_TENANT, Event, now_us
from norrvakt.node.pipeline import Pipeline, PipelineUnavailable

log = logging.getLogger(__name__)

CATEGORIES = {
    "search": "database",
    "export": "database",
    "import": "database",
    "prove": "database",
    "verify": "database",
    "login": "authentication",
    "key-rotate": "configuration",
    "token-create": "iam",
    "token-revoke": "iam",
    "user-create": "iam",
    "logout": "authentication",
    "password-change": "iam",
    "password-reset": "iam",
    "user-disable": "iam",
    "user-enable": "iam",
    "user-delete": "iam",
    "sessions-revoke": "authentication",
    "sso-link": "iam",
    "sso-unlink": "iam",
    "dispose": "database",
    "legal-hold": "configuration",
    "archive-export": "database",
}


def audit_event(
    actor: str,
    action: str,
    *,
    peer: str = "",
    outcome: str = "success",
    details: dict[str, str] | None = None,
) -> Event:
    details = {k: str(v) for k, v in (details or {}).items()}
    now = now_us()
    summary = ", ".join(f"{k}={v}" for k, v in sorted(details.items()) if len(v) < 200)
    return Event(
        tenant=SYSTEM_TENANT,
        ts=now,
        ingested=now,
        source="norrvakt-audit",
        peer=peer or "local",
        ecs={
            "event.kind": "event",
            "event.category": CATEGORIES.get(action, "configuration"),
            "event.action": action,
            "event.outcome": outcome,
            "event.dataset": "norrvakt.audit",
            "user.name": actor,
        },
        fields=details,
        message=f"{actor} {action}" + (f": {summary}" if summary else ""),
        raw=json.dumps(
            {"actor": actor, "action": action, "outcome": outcome, **details},
            sort_keys=True,
            ensure_ascii=False,
        ).encode("utf-8"),
    )


async def record(
    pipeline: Pipeline,
    actor: str,
    action: str,
    *,
    peer: str = "",
    outcome: str = "success",
    **details: object,
) -> None:
    """Journal an audit event (durably, before the caller answers).

    While the journal cannot write (disk full, no descriptors) the event is held by the
    pipeline and journaled first once it can, and a copy goes to this process's log: reading
    and logging in keep working during such an episode, and their audit records are kept."""
    event = audit_event(
        actor, action, peer=peer, outcome=outcome, details={k: str(v) for k, v in details.items()}
    )
    try:
        await pipeline.commit([event])
    except PipelineUnavailable as exc:
        pipeline.hold([event])
        log.warning("audit event held until the journal can write (%s): %s", exc, event.message)
