"""Small pieces the report figures share: percent changes, ATT&CK tactics of tags, counting
by severity, and the NIS2 verdict per deadline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from norrvakt.config import LEVELS

# The ATT&CK enterprise tactics, in the matrix's order (tags are attack.<tactic>).
TACTICS = (
    "reconnaissance",
    "resource_development",
    "initial_access",
    "execution",
    "persistence",
    "privilege_escalation",
    "defense_evasion",
    "credential_access",
    "discovery",
    "lateral_movement",
    "collection",
    "command_and_control",
    "exfiltration",
    "impact",
)
SEVERITIES = tuple(reversed(LEVELS))  # critical first, as a reader looks


def change_pct(now: int, before: int) -> float | None:
    """+25.0 for 125 after 100; None when there was nothing before (no trend to state)."""
    if before == 0:
        return None
    return round(100.0 * (now - before) / before, 1)


def tactics_of(tags: Iterable[str]) -> list[str]:
    found = {t.lower().removeprefix("attack.") for t in tags}
    return [t for t in TACTICS if t in found]


def by_severity(rows: Iterable[dict[str, Any]], key: str) -> dict[str, int]:
    counts = Counter(str(r[key]) for r in rows)
    return {level: counts.get(level, 0) for level in SEVERITIES}


def by_tactic(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Rows counted under every tactic their tags name; those naming none under ``none``."""
    counts: Counter[str] = Counter()
    for r in rows:
        tactics = tactics_of(r["tags"])
        counts.update(tactics or ["none"])
    return {t: counts[t] for t in (*TACTICS, "none") if counts[t]}


def deadline_verdict(due: int | None, sent: int | None, now: int) -> str:
    """met | late (sent after the due time) | overdue (not sent, past due) | pending."""
    if due is None:
        return "pending"
    if sent is not None:
        return "met" if sent <= due else "late"
    return "overdue" if due < now else "pending"
