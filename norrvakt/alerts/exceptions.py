"""Exceptions at the alert intake: a rule match that an active exception covers raises no
alert — it is counted on the exception and kept as a suppressed match instead.

    found = ExceptionSet.of(rows).find(inp, now)    # the exception that covers it, or None

An exception covers a match when the tenant is its tenant (or it is for all, ``*``), the rule
is its rule (by id) or carries a tag of its group (``tag:attack.t1110`` covers
``attack.t1110`` and ``attack.t1110.003``), and every field of its conditions has one of its
values in the match's event — exact, case-insensitive, as Sigma compares by default. A field is
looked up in the event (ECS name, the source's own name, ``message``) and then in the alert's
entities (a correlation's group-by values have no single event).

Checked here rather than in the rule engine: the engine stays as fast as it is (no exception
costs it anything), and the intake sees the rule id, its tags and the event's fields, for
rule, correlation and intel matches alike. With no exceptions the cost per match is one
``if``; with some, a dictionary lookup by rule id and the group exceptions' tag tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from norrvakt.alerts.model import AlertInput

ALL_TENANTS = "*"


@dataclass(frozen=True, slots=True)
class RuleException:
    id: int
    tenant: str  # a tenant, or "*"
    rule_id: str  # "" for a group exception
    group_tag: str  # the tag of a group exception ("attack.t1110"), lowercased; "" otherwise
    conditions: tuple[tuple[str, frozenset[str]], ...]  # field → casefolded values
    expires_at: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RuleException:
        group = str(row.get("rule_group") or "")
        return cls(
            id=int(row["id"]),
            tenant=str(row["tenant"]),
            rule_id=str(row.get("rule_id") or ""),
            group_tag=group.partition(":")[2].strip().lower() if group else "",
            conditions=tuple(
                (str(f), frozenset(str(v).casefold() for v in vs))
                for f, vs in sorted(dict(row["conditions"]).items())
            ),
            expires_at=int(row["expires_at"]),
        )

    def covers(self, inp: AlertInput, now: int) -> bool:
        if now >= self.expires_at or (self.tenant != ALL_TENANTS and self.tenant != inp.tenant):
            return False
        if self.group_tag and not any(_in_group(t, self.group_tag) for t in inp.tags):
            return False
        event = inp.event
        for name, values in self.conditions:
            value = event.get(name) if event is not None else None
            if value is None or value == "":
                value = inp.entities.get(name)
            if value is None or value.casefold() not in values:
                return False
        return True


def _in_group(tag: str, group: str) -> bool:
    t = tag.lower()
    return t == group or t.startswith(group + ".")


class ExceptionSet:
    """The exceptions in force, indexed by rule id (group exceptions are few: tried in order)."""

    __slots__ = ("by_rule", "groups")

    def __init__(self, exceptions: Iterable[RuleException] = ()) -> None:
        self.by_rule: dict[str, list[RuleException]] = {}
        self.groups: list[RuleException] = []
        for e in exceptions:
            if e.rule_id:
                self.by_rule.setdefault(e.rule_id, []).append(e)
            else:
                self.groups.append(e)

    @classmethod
    def of(cls, rows: Iterable[Mapping[str, Any]]) -> ExceptionSet:
        return cls(RuleException.from_row(r) for r in rows)

    def __bool__(self) -> bool:
        return bool(self.by_rule) or bool(self.groups)

    def find(self, inp: AlertInput, now: int) -> RuleException | None:
        """The first exception (lowest id) that covers ``inp``, or None."""
        found: RuleException | None = None
        for e in self.by_rule.get(inp.rule_id, ()):
            if (found is None or e.id < found.id) and e.covers(inp, now):
                found = e
        for e in self.groups:
            if (found is None or e.id < found.id) and e.covers(inp, now):
                found = e
        return found
