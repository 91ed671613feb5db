"""Case (and alert) statuses and the moves between them.

    new ─► acknowledged ─► investigating ─► resolved
     │          │               │         └► false_positive
     │          └───────────────┴──────────► resolved / false_positive
     └► false_positive (dismissed at a glance)
    resolved / false_positive ─► investigating (reopened)

A merged case ends as ``merged`` (pointing at the case it went into) and moves no further.
"""

from __future__ import annotations

from norrvakt.alerts.errors import InvalidTransition

NEW = "new"
ACKNOWLEDGED = "acknowledged"
INVESTIGATING = "investigating"
RESOLVED = "resolved"
FALSE_POSITIVE = "false_positive"
MERGED = "merged"

STATUSES = (NEW, ACKNOWLEDGED, INVESTIGATING, RESOLVED, FALSE_POSITIVE)
OPEN = frozenset({NEW, ACKNOWLEDGED, INVESTIGATING})
CLOSED = frozenset({RESOLVED, FALSE_POSITIVE, MERGED})

ALLOWED: dict[str, frozenset[str]] = {
    NEW: frozenset({ACKNOWLEDGED, FALSE_POSITIVE}),
    ACKNOWLEDGED: frozenset({INVESTIGATING, RESOLVED, FALSE_POSITIVE}),
    INVESTIGATING: frozenset({RESOLVED, FALSE_POSITIVE}),
    RESOLVED: frozenset({INVESTIGATING}),
    FALSE_POSITIVE: frozenset({INVESTIGATING}),
    MERGED: frozenset(),
}


def check_transition(what: str, current: str, wanted: str) -> None:
    """Raise :class:`InvalidTransition` naming ``what`` (e.g. "case 12") unless allowed."""
    if wanted not in STATUSES:
        raise InvalidTransition(f"{what}: unknown status {wanted!r}; one of {', '.join(STATUSES)}")
    allowed = ALLOWED.get(current, frozenset())
    if wanted not in allowed:
        options = ", ".join(sorted(allowed)) or "none (it is final)"
        raise InvalidTransition(f"{what} is {current!r}; it cannot become {wanted!r} (allowed: {options})")
