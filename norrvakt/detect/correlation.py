"""Sigma correlation rules -> :class:`CorrelationSpec` (what :mod:`norrvakt.detect.correlate` runs).

    title: Password spraying
    correlation:
      type: value_count            # event_count | value_count | temporal | temporal_ordered
      rules: [norrvakt_auth_failure]   # rule (or correlation) ids or names
      group-by: [source.ip]
      timespan: 10m
      condition: {gte: 10, field: user.name}

pySigma parses the document (``SigmaCorrelationRule``); this module resolves the referenced
rules against the compiled rule set (by id or ``name``, also other correlations: chains) and
checks that the engine can evaluate the rule in bounded memory. A correlation it cannot
evaluate is reported as not loaded, with the reason; nothing is approximated silently.
The specs are plain frozen dataclasses: they are cached with the compiled rules.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from norrvakt.detect.ir import RuleInfo

# Entries one group's window may hold. A threshold above it could never be reached without
# keeping more per group, so such a rule is not loaded (with this number in the reason).
MAX_WINDOW = 10_000

TYPES = (
    "event_count",
    "value_count",
    "temporal",
    "temporal_ordered",
    "value_sum",
    "value_avg",
    "value_percentile",
    "value_median",
)
OPS = ("gt", "gte", "lt", "lte", "eq", "neq")

Ref = tuple[str, int]  # ("rule", index into Plan.rules) | ("correlation", index into the specs)
# An extended (boolean) temporal condition over the refs' positions:
#   node := position | ("&", (node, ...)) | ("|", (node, ...)) | ("!", (node,))
Cond = int | tuple[str, tuple["Cond", ...]]


class UnsupportedCorrelation(Exception):
    """A correlation rule the engine cannot evaluate; the message says why."""


@dataclass(frozen=True, slots=True)
class CorrelationSpec:
    info: RuleInfo
    type: str
    refs: tuple[Ref, ...]  # in the rule's order (temporal_ordered needs it)
    group_by: tuple[str, ...]
    # group-by name -> the event field per ref position (aliases); a name without an alias
    # is read under its own name
    aliases: tuple[tuple[str, tuple[str, ...]], ...]
    timespan: int  # microseconds
    op: str
    count: float
    fields: tuple[str, ...] = ()  # value_count / value_* : the field(s) measured
    percentile: int = 0
    generate: bool = False
    # temporal with an extended condition (``condition: a and (b or c)``): which of the rules
    # must have hits in the window, instead of a count
    expression: Cond | None = None
    expression_text: str = ""  # as written, for describe()

    @property
    def windowed(self) -> bool:
        """Whether the condition is judged when a window has passed (not as hits arrive): the
        counting correlations with lt/lte/eq/neq, and extended conditions with ``not``."""
        if self.expression is not None:
            return _has_not(self.expression)
        return not self.rising and self.type in ("event_count", "value_count")

    @property
    def rising(self) -> bool:
        """Whether more events can only make the condition truer (count-like measure with
        gt/gte): then it fires as soon as it holds. Otherwise it is judged when the window closes."""
        return self.op in ("gt", "gte") and self.type in (
            "event_count",
            "value_count",
            "temporal",
            "temporal_ordered",
        )

    def holds_for(self, present: Container[object], value: float) -> bool:
        """The condition, given the refs with hits in the window and the measured value."""
        if self.expression is None:
            return self.holds(value)
        return _evaluate(self.expression, self.refs, present)

    def holds(self, value: float) -> bool:
        c = self.count
        op = self.op
        if op == "gte":
            return value >= c
        if op == "gt":
            return value > c
        if op == "lte":
            return value <= c
        if op == "lt":
            return value < c
        if op == "eq":
            return value == c
        return value != c

    def describe(self) -> str:
        if self.expression is not None:
            by = f" per {', '.join(self.group_by)}" if self.group_by else ""
            return f"rules {self.expression_text} within {self.timespan // 1_000_000} s{by}"
        what = {
            "event_count": "events",
            "value_count": f"distinct {'+'.join(self.fields)}",
            "temporal": "of the rules",
            "temporal_ordered": "rules in order",
        }.get(self.type, f"{self.type.removeprefix('value_')} of {'+'.join(self.fields)}")
        by = f" per {', '.join(self.group_by)}" if self.group_by else ""
        return f"{what} {self.op} {self.count:g} within {self.timespan // 1_000_000} s{by}"


def compile_correlation(
    rule: Any, info: RuleInfo, refs: tuple[Ref, ...], ref_names: list[str]
) -> CorrelationSpec:
    """The spec of a pySigma ``SigmaCorrelationRule`` whose references are already resolved."""
    from sigma.correlations import SigmaCorrelationCondition

    kind = rule.type.name.lower()
    if kind not in TYPES:
        raise UnsupportedCorrelation(f"correlation type {kind!r} is not supported")
    condition = rule.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        return _extended(rule, info, kind, refs, ref_names)
    op = condition.op.name.lower()
    count = float(condition.count)
    fields: tuple[str, ...] = ()
    if condition.fieldref is not None:
        fields = tuple(condition.fieldref) if isinstance(condition.fieldref, list) else (condition.fieldref,)
    if kind != "event_count" and kind.startswith("value_") and not fields:
        raise UnsupportedCorrelation(f"{kind} needs condition.field")
    if kind in ("temporal", "temporal_ordered"):
        distinct = len(set(refs))
        if op not in ("gt", "gte"):
            raise UnsupportedCorrelation(
                f"{kind} with condition {op!r}: only gte/gt (how many of the rules) are supported"
            )
        if kind == "temporal_ordered" and (count != len(refs) or op != "gte"):
            raise UnsupportedCorrelation(
                f"temporal_ordered with condition {op} {count:g}: "
                f"only all {len(refs)} rules in order is supported"
            )
        if kind == "temporal" and count > distinct:
            raise UnsupportedCorrelation(
                f"temporal condition {op} {count:g} but only {distinct} distinct rules"
            )
    if count > MAX_WINDOW and op in ("gt", "gte"):
        raise UnsupportedCorrelation(
            f"threshold {count:g} is above the engine's window limit of {MAX_WINDOW} entries per group"
        )
    if kind == "value_percentile" and not 0 <= (condition.percentile or 0) <= 100:
        raise UnsupportedCorrelation(f"percentile {condition.percentile} is not in 0..100")
    group_by, aliases = _grouping(rule, ref_names)
    return CorrelationSpec(
        info=info,
        type=kind,
        refs=refs,
        group_by=group_by,
        aliases=aliases,
        timespan=int(rule.timespan.seconds) * 1_000_000,
        op=op,
        count=count,
        fields=fields,
        percentile=int(condition.percentile or 0),
        generate=bool(rule.generate),
    )


def _grouping(
    rule: Any, ref_names: list[str]
) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
    group_by = tuple(rule.group_by or ())
    aliases = []
    for alias in rule.aliases:
        per_rule = {ref.reference: name for ref, name in alias.mapping.items()}
        missing = [n for n in ref_names if n not in per_rule]
        if missing:
            raise UnsupportedCorrelation(
                f"alias {alias.alias!r} names no field for rule(s) {', '.join(missing)}"
            )
        aliases.append((alias.alias, tuple(per_rule[n] for n in ref_names)))
    return group_by, tuple(aliases)


def _extended(
    rule: Any, info: RuleInfo, kind: str, refs: tuple[Ref, ...], ref_names: list[str]
) -> CorrelationSpec:
    """A temporal correlation whose condition is a boolean expression over its rules
    (``condition: failed and (good or reset)``): it fires as soon as the rules with hits in the
    window make the expression true. With ``not`` (``failed and not reset``) that a rule did
    *not* hit is only known when the window has passed: such a window opens at the group's
    first hit and is judged after ``timespan``. An order does not combine with a boolean
    expression: temporal_ordered with one is refused."""
    from sigma.correlations import (
        CorrelationConditionAND,
        CorrelationConditionNOT,
        CorrelationConditionOR,
        SigmaRuleReference,
    )

    expression = rule.condition.expression
    if kind != "temporal":
        raise UnsupportedCorrelation(
            f"extended condition {expression!r} with type {kind}: only temporal is supported"
        )
    position = {name: i for i, name in enumerate(ref_names)}

    def convert(node: Any) -> Cond:
        if isinstance(node, SigmaRuleReference):
            if node.reference not in position:  # pragma: no cover - pySigma lists every reference
                raise UnsupportedCorrelation(f"condition names {node.reference!r}, not in rules")
            return position[node.reference]
        if isinstance(node, CorrelationConditionNOT):
            return ("!", (convert(node.args[0]),))
        if isinstance(node, (CorrelationConditionAND, CorrelationConditionOR)):
            op = "&" if isinstance(node, CorrelationConditionAND) else "|"
            return (op, tuple(convert(a) for a in node.args))
        raise UnsupportedCorrelation(f"extended condition element {type(node).__name__} is not supported")

    tree = convert(rule.condition.parsed)
    group_by, aliases = _grouping(rule, ref_names)
    return CorrelationSpec(
        info=info,
        type=kind,
        refs=refs,
        group_by=group_by,
        aliases=aliases,
        timespan=int(rule.timespan.seconds) * 1_000_000,
        op="gte",
        count=1.0,
        generate=bool(rule.generate),
        expression=tree,
        expression_text=str(expression),
    )


def _evaluate(node: Cond, refs: tuple[Ref, ...], present: Container[object]) -> bool:
    if isinstance(node, int):
        return refs[node] in present
    op, items = node
    if op == "&":
        return all(_evaluate(i, refs, present) for i in items)
    if op == "!":
        return not _evaluate(items[0], refs, present)
    return any(_evaluate(i, refs, present) for i in items)


def _has_not(node: Cond) -> bool:
    if isinstance(node, int):
        return False
    return node[0] == "!" or any(_has_not(i) for i in node[1])


def reference_names(rule: Any) -> list[str]:
    """The references of a correlation rule as written (ids or names), in order."""
    from sigma.correlations import SigmaExtendedCorrelationCondition

    if rule.rules is not None:
        return [r.reference for r in rule.rules]
    if isinstance(rule.condition, SigmaExtendedCorrelationCondition):
        return list(rule.condition.get_referenced_rules())
    return []
