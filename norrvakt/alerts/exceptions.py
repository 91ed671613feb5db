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
``if``; with some, a lookup by rule id (and by each tag's groups, when there are group
exceptions), then one by the value of the first field the rule's exceptions test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from norrvakt.alerts.model import AlertInput

ALL_TENANTS = "*"
TAG_MEMO = 100_000  # distinct tags remembered (SigmaHQ's rules have a few thousand)


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
        if self.rule_id and self.rule_id != inp.rule_id:
            return False
        for name, values in self.conditions:
            value = field_value(inp, name)
            if value is None or value.casefold() not in values:
                return False
        return True


def field_value(inp: AlertInput, name: str) -> str | None:
    """A field of the match: the event's (ECS, the source's own, ``message``), else the entities'."""
    event = inp.event
    value = event.get(name) if event is not None else None
    if value is None or value == "":
        value = inp.entities.get(name)
    return value


def _in_group(tag: str, group: str) -> bool:
    t = tag.lower()
    return t == group or t.startswith(group + ".")


def _groups_of(tag: str) -> list[str]:
    """The groups a tag belongs to: ``attack.t1110.003`` → itself, ``attack.t1110``, ``attack``."""
    parts = tag.lower().split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


class _Bucket:
    """Exceptions of one rule (or one tag group), by the casefolded value of their first
    condition's field: a match costs one lookup per distinct first field (most exceptions of a
    rule test the same one or two), and only those whose first value it has are checked."""

    __slots__ = ("by_field",)

    def __init__(self) -> None:
        self.by_field: dict[str, dict[str, list[RuleException]]] = {}

    def add(self, e: RuleException) -> None:
        name, values = e.conditions[0]
        table = self.by_field.setdefault(name, {})
        for v in values:
            table.setdefault(v, []).append(e)

    def find(self, inp: AlertInput, now: int, found: RuleException | None) -> RuleException | None:
        for name, table in self.by_field.items():
            value = field_value(inp, name)
            if value is None:
                continue
            for e in table.get(value.casefold(), ()):
                if (found is None or e.id < found.id) and e.covers(inp, now):
                    found = e
        return found


class ExceptionSet:
    """The exceptions in force, by rule id and by tag group."""

    __slots__ = ("_tag_groups", "by_group", "by_rule")

    def __init__(self, exceptions: Iterable[RuleException] = ()) -> None:
        self.by_rule: dict[str, _Bucket] = {}
        self.by_group: dict[str, _Bucket] = {}
        # tag → the buckets of the groups it belongs to (usually none): rules' tags repeat, so
        # a match costs one lookup per tag, not a split and a join
        self._tag_groups: dict[str, tuple[_Bucket, ...]] = {}
        for e in exceptions:
            if not e.conditions:  # the state refuses these; never "every match"
                continue
            if e.rule_id:
                self.by_rule.setdefault(e.rule_id, _Bucket()).add(e)
            else:
                self.by_group.setdefault(e.group_tag, _Bucket()).add(e)

    @classmethod
    def of(cls, rows: Iterable[Mapping[str, Any]]) -> ExceptionSet:
        return cls(RuleException.from_row(r) for r in rows)

    def __bool__(self) -> bool:
        return bool(self.by_rule) or bool(self.by_group)

    def find(self, inp: AlertInput, now: int) -> RuleException | None:
        """The first exception (lowest id) that covers ``inp``, or None."""
        found: RuleException | None = None
        bucket = self.by_rule.get(inp.rule_id)
        if bucket is not None:
            found = bucket.find(inp, now, found)
        if self.by_group:
            memo = self._tag_groups
            for tag in inp.tags:
                buckets = memo.get(tag)
                if buckets is None:
                    if len(memo) >= TAG_MEMO:
                        memo.clear()
                    groups = (self.by_group.get(g) for g in _groups_of(tag))
                    buckets = memo[tag] = tuple(b for b in groups if b is not None)
                for gb in buckets:
                    found = gb.find(inp, now, found)
        return found
