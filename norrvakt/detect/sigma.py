"""pySigma rules -> the compiled form (:mod:`norrvakt.detect.ir`).

pySigma parses the YAML, applies the value modifiers (``contains``, ``windash``,
``base64offset``, ``cidr``, ``re`` with its flags, ...) into typed values and parses the
condition into a tree; this module walks that tree once per log source variant and turns every
leaf into :class:`~norrvakt.detect.ir.Atom` s::

    selection: {Image|endswith: '\\rundll32.exe', CommandLine|contains|all: [' -a', ' -b']}
    condition: selection and not filter
      ->  And(Atom(Image suffix '\\rundll32.exe'), And(Atom(CommandLine contains ' -a'), ...),
              Not(...))

Anything the engine cannot evaluate faithfully raises :class:`UnsupportedRule` with the reason;
the loader reports the rule as not loaded. Nothing is approximated silently.
"""

from __future__ import annotations

import re
from typing import Any, cast

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.modifiers import SigmaWideModifier, modifier_mapping
from sigma.policy import SigmaPolicy
from sigma.policy.regex_engine import RegexEngine, RegexPattern
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule, SigmaRuleBase
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
    TimestampPart,
)

from norrvakt.detect.ir import (
    FALSE,
    TENANT,
    TRUE,
    And,
    Atom,
    Branch,
    CompiledRule,
    Expr,
    Or,
    RuleInfo,
    all_of,
    any_of,
    negate,
)
from norrvakt.detect.logsource import Pipeline, Variant
from norrvakt.detect.placeholders import Scope, describe_missing, scopes
from norrvakt.detect.regex import (
    DOTALL,
    IGNORECASE,
    MULTILINE,
    RegexError,
    checked,
    fullmatch_test,
    sigma_regex,
)

# The Sigma specification calls the UTF-16LE encoding modifier `utf16le` (alias `wide`);
# pySigma 2.0 registers only `wide`. Its modifier table is the registry plugins extend too.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)


class _MatcherRE2(RegexEngine):
    """pySigma checks ``|re`` values (and condition selectors) with a regex engine; this one is
    the RE2 of the matcher (:mod:`norrvakt.detect.regex`): same limits, our reasons, and nothing
    written to stderr. pySigma's own default is RE2 with other limits, which logs every refusal."""

    def compile(self, pattern: str, flags: int = 0) -> RegexPattern:
        return cast(RegexPattern, checked(pattern, flags))

    @property
    def error(self) -> type[Exception]:
        return RegexError


POLICY = SigmaPolicy(regex_engine=_MatcherRE2())  # for every rule the loader parses


class UnsupportedRule(Exception):
    """A rule (or one of its values) the engine cannot evaluate; the message says which and why."""


_CMP = {
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
    CompareOperators.NEQ: "neq",
}
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: DOTALL,
}
_TIME_PARTS = {
    TimestampPart.MINUTE: "minute",
    TimestampPart.HOUR: "hour",
    TimestampPart.DAY: "day",
    TimestampPart.WEEK: "week",
    TimestampPart.MONTH: "month",
    TimestampPart.YEAR: "year",
}


def rule_info(rule: SigmaRuleBase, path: str, line: int, fallback_id: str) -> RuleInfo:
    ls = getattr(rule, "logsource", None)  # correlation rules have none
    return RuleInfo(
        id=str(rule.id) if rule.id is not None else (rule.name or fallback_id),
        title=rule.title or "",
        level=rule.level.name.lower() if rule.level is not None else "",
        tags=tuple(str(t) for t in rule.tags),
        status=rule.status.name.lower() if rule.status is not None else "",
        description=rule.description or "",
        author=rule.author or "",
        falsepositives=tuple(str(f) for f in rule.falsepositives),
        references=tuple(str(r) for r in rule.references),
        path=path,
        line=line,
        logsource=(ls.product or "", ls.category or "", ls.service or "") if ls else ("", "", ""),
        name=rule.name or "",
        custom=custom_attributes(rule),
    )


def custom_attributes(rule: SigmaRuleBase) -> tuple[tuple[str, str], ...]:
    """The rule's ``norrvakt:`` mapping (e.g. ``{suppress_by: [user.name]}``) as sorted pairs;
    list values are joined with commas. Unknown top-level keys are pySigma's business."""
    raw = rule.custom_attributes.get("norrvakt") if rule.custom_attributes else None
    if not isinstance(raw, dict):
        return ()
    out = []
    for key, value in raw.items():
        text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        out.append((str(key), text))
    return tuple(sorted(out))


def compile_rule(rule: SigmaRule, pipeline: Pipeline, info: RuleInfo) -> CompiledRule:
    """The compiled form of ``rule``; :class:`UnsupportedRule` when it cannot be evaluated."""
    ls = rule.logsource
    resolution = pipeline.resolve(ls.product, ls.category, ls.service)
    trees = []  # pySigma re-parses on every access to .parsed: once per rule, not per variant
    for cond in rule.detection.parsed_condition:
        try:
            trees.append(cond.parsed)
        except SigmaError as exc:
            raise UnsupportedRule(f"condition {cond.condition!r}: {_sigma_message(exc)}") from None
    notes = [resolution.note] if resolution.note else []
    names = placeholder_names(rule)
    if names:
        # |expand: one branch set per group of tenants sharing values (see placeholders.py)
        found, missing = scopes(pipeline, names)
        if not found:
            raise UnsupportedRule(
                f"expand placeholder(s) {', '.join('%' + n + '%' for n in sorted(names))} have no "
                f"values: {describe_missing(missing)} (the placeholders section of pipeline "
                f"{pipeline.name!r}, or detection.placeholders)"
            )
        if missing:
            notes.append(f"not run for these tenants: {describe_missing(missing)}")
        parts = [(_scope_expr(scope), _Compiler(pipeline, scope.values)) for scope in found]
    else:
        parts = [(TRUE, _Compiler(pipeline, pipeline.placeholders))]
    branches = []
    for variant in resolution.variants:
        rename = dict(variant.rename)
        where = _where_expr(variant)
        for scope_expr, compiler in parts:
            detection = any_of([compiler.expr(tree, rename) for tree in trees])
            expr = all_of([where, scope_expr, detection])
            if expr != FALSE:
                branches.append(Branch(expr, index_keys(expr, pipeline.index_fields)))
    if not branches:
        raise UnsupportedRule("the condition can never be true")
    return CompiledRule(info, tuple(branches), tuple(notes))


def _scope_expr(scope: Scope) -> Expr:
    if scope.tenants is not None:
        return Atom(TENANT, "tenant", scope.tenants)
    return negate(Atom(TENANT, "tenant", scope.others)) if scope.others else TRUE


def placeholder_names(rule: SigmaRule) -> set[str]:
    """The names of the ``%placeholders%`` the rule's ``|expand`` values use."""
    out: set[str] = set()

    def value(v: Any) -> None:
        if isinstance(v, SigmaExpansion):
            for sub in v.values:
                value(sub)
        elif isinstance(v, SigmaRegularExpression):
            value(v.regexp)
        elif isinstance(v, SigmaString) and v.contains_placeholder():
            out.update(p.name for p in v.s if isinstance(p, Placeholder))

    def detection(d: SigmaDetection | SigmaDetectionItem) -> None:
        if isinstance(d, SigmaDetectionItem):
            for v in d.value:
                value(v)
        else:
            for item in d.detection_items:
                detection(item)

    for d in rule.detection.detections.values():
        detection(d)
    return out


def _sigma_message(exc: SigmaError) -> str:
    # SigmaError.__str__ appends " in <path>"; the report names the file itself.
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _where_expr(variant: Variant) -> Expr:
    return all_of(
        [any_of([Atom(name, "eq", v.casefold()) for v in values]) for name, values in variant.where]
    )


class _Compiler:
    def __init__(self, pipeline: Pipeline, placeholders: dict[str, tuple[str, ...]]) -> None:
        self.pipeline = pipeline
        self.placeholders = placeholders  # the values of one scope of tenants

    def expr(self, node: Any, rename: dict[str, str]) -> Expr:
        if node is None:  # pySigma leaves None where a detection ended up empty
            return FALSE
        if isinstance(node, ConditionAND):
            return all_of([self.expr(a, rename) for a in node.args])
        if isinstance(node, ConditionOR):
            return any_of([self.expr(a, rename) for a in node.args])
        if isinstance(node, ConditionNOT):
            return negate(self.expr(node.args[0], rename))
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return self.value(rename.get(node.field, node.field), node.value, rename, _modified(node))
        if isinstance(node, ConditionValueExpression):
            return self.value(None, node.value, rename, _modified(node))
        if isinstance(node, ConditionItem):
            raise UnsupportedRule(f"condition element {type(node).__name__} is not supported")
        raise UnsupportedRule(f"unexpected condition element {type(node).__name__}")

    def value(self, name: str | None, value: SigmaType, rename: dict[str, str], modified: bool) -> Expr:
        if isinstance(value, SigmaExpansion):  # windash, base64offset: any of the expanded forms
            return any_of([self.value(name, v, rename, modified) for v in value.values])
        if isinstance(value, SigmaString):  # also SigmaCasedString
            return any_of([self.string(name, s, modified) for s in self._expand(value)])
        if isinstance(value, SigmaRegularExpression):
            return self.regex(name, value)
        if isinstance(value, SigmaTimestampPart):  # before SigmaNumber: it is one
            _need_field(name, "timestamp part modifiers")
            return Atom(name, "time", (_TIME_PARTS[value.timestamp_part], value.number))
        if isinstance(value, SigmaNumber):
            return Atom(name, "eq", str(value.number)) if name else Atom(None, "contains", str(value.number))
        if isinstance(value, SigmaBool):
            text = "true" if value.boolean else "false"
            return Atom(name, "eq", text) if name else Atom(None, "contains", text)
        if isinstance(value, SigmaNull):
            _need_field(name, "null")
            return Atom(name, "null")
        if isinstance(value, SigmaExists):
            _need_field(name, "exists")
            return Atom(name, "exists", bool(value.exists))
        if isinstance(value, SigmaCIDRExpression):
            _need_field(name, "cidr")
            return Atom(name, "cidr", str(value.network))
        if isinstance(value, SigmaCompareExpression):
            _need_field(name, "lt/lte/gt/gte")
            return Atom(name, "cmp", (_CMP[value.op], value.number.number))
        if isinstance(value, SigmaFieldReference):
            _need_field(name, "fieldref")
            mode = {(False, False): "eq", (True, False): "prefix", (False, True): "suffix"}.get(
                (value.starts_with, value.ends_with), "contains"
            )
            return Atom(name, "fieldref", (rename.get(value.field, value.field), mode))
        raise UnsupportedRule(f"value type {type(value).__name__} ({value!s:.60}) is not supported")

    def _expand(self, value: SigmaString) -> list[SigmaString]:
        if not value.contains_placeholder():
            return [value]
        missing = sorted(
            {p.name for p in value.s if isinstance(p, Placeholder) and p.name not in self.placeholders}
        )
        if missing:
            raise UnsupportedRule(
                f"expand placeholder(s) {', '.join('%' + m + '%' for m in missing)} have no values "
                f"in the placeholders section of pipeline {self.pipeline.name!r}"
            )
        # Values are Sigma strings, so a placeholder value may carry wildcards ("adm-*").
        expanded = value.replace_placeholders(
            lambda p: iter([SigmaString(v) for v in self.placeholders[p.name]])
        )
        if isinstance(value, SigmaCasedString):
            return [SigmaCasedString.from_sigma_string(v) for v in expanded]
        return expanded

    def string(self, name: str | None, value: SigmaString, modified: bool) -> Expr:
        cased = isinstance(value, SigmaCasedString)
        parts: list[str | SpecialChars] = []
        for part in value.s:
            if isinstance(part, Placeholder):  # pragma: no cover - _expand replaced them all
                raise UnsupportedRule(f"unexpanded placeholder %{part.name}%")
            if isinstance(part, str):
                part = part if cased else part.casefold()
                if parts and isinstance(parts[-1], str):
                    parts[-1] += part
                    continue
            parts.append(part)
        if name is None and not modified:
            # A plain keyword matches anywhere in the event's text, as a full-text search does.
            if not parts or parts[0] is not SpecialChars.WILDCARD_MULTI:
                parts.insert(0, SpecialChars.WILDCARD_MULTI)
            if parts[-1] is not SpecialChars.WILDCARD_MULTI:
                parts.append(SpecialChars.WILDCARD_MULTI)
        op, arg = string_test(parts)
        if op == "glob":
            try:
                fullmatch_test(arg)  # as regex values: refused here when RE2 cannot run it
            except RegexError as exc:
                raise UnsupportedRule(f"wildcard value {value!s:.80}: {exc}") from None
        return Atom(name, op + "_cs" if cased else op, arg)

    def regex(self, name: str | None, value: SigmaRegularExpression) -> Expr:
        if value.regexp.contains_placeholder():
            return any_of([self.regex(name, v) for v in self._expand_regex(value)])
        flags = 0
        for flag in value.flags:
            flags |= _RE_FLAGS[flag]
        pattern = str(value.regexp)
        try:
            sigma_regex(pattern, flags)  # the test an event meets (atoms.lazy_test) is this RE2 one
        except RegexError as exc:
            raise UnsupportedRule(f"regular expression {pattern!r} is invalid: {exc}") from None
        return Atom(name, "re", (pattern, flags))

    def _expand_regex(self, value: SigmaRegularExpression) -> list[SigmaRegularExpression]:
        strings = self._expand(value.regexp)
        return [SigmaRegularExpression(str(s), value.flags, policy=POLICY) for s in strings]


def string_test(parts: list[str | SpecialChars]) -> tuple[str, str]:
    """The string op and its argument for a Sigma string given as literal and wildcard parts."""
    lead = bool(parts) and parts[0] is SpecialChars.WILDCARD_MULTI
    trail = len(parts) > int(lead) and parts[-1] is SpecialChars.WILDCARD_MULTI
    core = parts[int(lead) : len(parts) - int(trail)]
    if all(isinstance(p, str) for p in core):
        literal = "".join(p for p in core if isinstance(p, str))
        if lead and trail:
            return "contains", literal
        if lead:
            return "suffix", literal
        if trail:
            return "prefix", literal
        return "eq", literal
    return "glob", glob_regex(parts)


def glob_regex(parts: list[str | SpecialChars]) -> str:
    """A regex (for fullmatch) equivalent to the wildcard pattern; valid for Python re and RE2."""
    out = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            out.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:
            out.append(re.escape(str(part)))
    return "(?s)" + "".join(out)


def _modified(node: Any) -> bool:
    """Whether the detection item behind a condition leaf had value modifiers."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, SigmaDetectionItem):
            return bool(parent.modifiers)
        parent = getattr(parent, "parent", None)
    return False


def _need_field(name: str | None, what: str) -> None:
    if name is None:
        raise UnsupportedRule(f"{what} needs a field name; it cannot be a keyword")


def index_keys(expr: Expr, index_fields: tuple[str, ...]) -> tuple[frozenset[str] | None, ...]:
    """For each index field, the values ``expr`` requires it to have (None = unconstrained)."""
    return tuple(_required(expr, name) for name in index_fields)


def _required(expr: Expr, name: str) -> frozenset[str] | None:
    if isinstance(expr, Atom):
        if expr.field == name and expr.op == "eq" and isinstance(expr.arg, str):
            return frozenset((expr.arg,))
        return None
    if isinstance(expr, And):
        found = [r for r in (_required(i, name) for i in expr.items) if r is not None]
        if not found:
            return None
        out: frozenset[str] = found[0]
        for other in found[1:]:
            out = out & other
        return out
    if isinstance(expr, Or):
        union: set[str] = set()
        for item in expr.items:
            needed = _required(item, name)
            if needed is None:
                return None
            union |= needed
        return frozenset(union)
    return None  # Not, Const: no constraint
