"""Which loaded rules run live, for which tenant: the live-set policy.

    policy = LivePolicyConfig(statuses=("stable", "test"), min_level="medium").build()
    live = policy.live_set(engine.rules.rules, engine.rules.correlations, overrides, tenants)
    live.rule_on("boden", 12)            # does rule 12 raise alerts for Boden?
    live.why_not("boden", "5f1c...")      # "" when live, else the reason

Loading a rule and running it live are two steps. Every rule file found loads (the load report
says which did not and why), but only the rules the policy admits raise alerts — a SigmaHQ
bundle holds ~3,000 rules, many experimental, informational or written for threat hunting,
and running them all would bury a SOC in noise. The policy, in this order:

1. **Built-in rules** (``norrvakt/detect/rules``) are always in: they are written for this
   SIEM and its municipalities.
2. **Pack**: where the rule file sits. A SigmaHQ folder name on its path gives the pack —
   ``rules`` → ``core``, ``rules-emerging-threats`` → ``emerging-threats``,
   ``rules-threat-hunting`` → ``threat-hunting``, ``rules-compliance``, ``rules-dfir``,
   ``rules-placeholder``, ``deprecated``; a file under none of them is ``local`` (a folder of
   your own). The pack must be one of ``detection.live_packs``.
3. **Status** must be one of ``detection.live_status``; **level** at least
   ``detection.live_min_level``. A rule that states no status (or no level) passes that test:
   there is nothing to filter on, and SigmaHQ's rules always state both.
4. **Per tenant**, a rule setting (``PUT /api/alerts/rules/{id}``, for one tenant or ``*``) is
   an explicit choice that beats the policy: ``enabled: false`` takes the rule out for that
   tenant, ``enabled: true`` puts a rule the policy leaves out in. A tenant's own setting beats
   the ``*`` one.

Correlation rules follow the same policy; the rules a live correlation references are matched
even when they are not live themselves (they feed the correlation but raise nothing alone).
Rules that are live for no tenant are not matched at all, so they cost nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from norrvakt.detect.correlation import CorrelationSpec
from norrvakt.detect.ir import RuleInfo

LEVELS = ("informational", "low", "medium", "high", "critical")
STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported")
ALL_TENANTS = "*"

# SigmaHQ's rule folders (in a checkout and in its release zips) and the pack each one is.
SIGMA_FOLDERS = {
    "rules": "core",
    "rules-emerging-threats": "emerging-threats",
    "rules-threat-hunting": "threat-hunting",
    "rules-compliance": "compliance",
    "rules-dfir": "dfir",
    "rules-placeholder": "placeholder",
    "deprecated": "deprecated",
}
BUILTIN_PACK = "builtin"
LOCAL_PACK = "local"
PACKS = (BUILTIN_PACK, *SIGMA_FOLDERS.values(), LOCAL_PACK)
SIGMA_PACKS = tuple(SIGMA_FOLDERS.values())


class LivePolicyError(ValueError):
    """A policy setting that names an unknown status, level or pack."""


@dataclass(frozen=True)
class LivePolicyConfig:
    """The policy's settings (``[detection]`` ``live_status``, ``live_min_level``,
    ``live_packs``); ``builtin_dir`` is where the built-in rules are (always live)."""

    statuses: tuple[str, ...] = ("stable", "test")
    min_level: str = "medium"
    packs: tuple[str, ...] = ("core", "emerging-threats", LOCAL_PACK)
    builtin_dir: str = ""

    @classmethod
    def from_settings(cls, detection: Any, builtin_dir: Path | None = None) -> LivePolicyConfig:
        return cls(
            statuses=tuple(detection.live_status),
            min_level=detection.live_min_level,
            packs=tuple(detection.live_packs),
            builtin_dir=str(builtin_dir or ""),
        )

    def build(self) -> LivePolicy:
        bad = [s for s in self.statuses if s.lower() not in STATUSES]
        if bad:
            raise LivePolicyError(f"detection.live_status {bad}: use {', '.join(STATUSES)}")
        if self.min_level.lower() not in LEVELS:
            raise LivePolicyError(f"detection.live_min_level {self.min_level!r}: use {', '.join(LEVELS)}")
        unknown = [p for p in self.packs if p.lower() not in PACKS]
        if unknown:
            raise LivePolicyError(f"detection.live_packs {unknown}: use {', '.join(PACKS)}")
        return LivePolicy(self)


def pack_of(path: str, builtin_dir: str = "") -> str:
    """The pack of the rule file at ``path``: built-in, a SigmaHQ folder's pack, or local."""
    if builtin_dir and _under(path, builtin_dir):
        return BUILTIN_PACK
    for part in reversed(PurePath(path).parts[:-1]):
        pack = SIGMA_FOLDERS.get(part)
        if pack is not None:
            return pack
    return LOCAL_PACK


def _under(path: str, folder: str) -> bool:
    try:
        PurePath(path).relative_to(folder)
    except ValueError:
        return False
    return True


class LivePolicy:
    def __init__(self, config: LivePolicyConfig) -> None:
        self.config = config
        self._statuses = frozenset(s.lower() for s in config.statuses)
        self._min = LEVELS.index(config.min_level.lower())
        self._packs = frozenset(p.lower() for p in config.packs)

    def describe(self) -> str:
        c = self.config
        return (
            f"status {'/'.join(c.statuses) or '(none)'}, level >= {c.min_level}, "
            f"packs {', '.join(c.packs) or '(none)'} (+ built-in)"
        )

    def verdict(self, info: RuleInfo) -> str:
        """Why the policy leaves ``info`` out ("" = it is in)."""
        pack = pack_of(info.path, self.config.builtin_dir)
        if pack == BUILTIN_PACK:
            return ""
        if pack not in self._packs:
            return f"pack {pack} is not in detection.live_packs"
        status = info.status.lower()
        if status and status not in self._statuses:
            return f"status {status} is not in detection.live_status"
        level = info.level.lower()
        if level in LEVELS and LEVELS.index(level) < self._min:
            return f"level {level} is below detection.live_min_level ({self.config.min_level})"
        return ""

    def live_set(
        self,
        rules: Sequence[RuleInfo],
        correlations: Sequence[CorrelationSpec] = (),
        overrides: Iterable[Mapping[str, Any]] = (),
        tenants: Iterable[str] = (),
    ) -> LiveSet:
        """The live set of these rules and correlations; ``overrides`` are rule-settings rows
        (``rule_id``, ``tenant``, ``enabled``)."""
        return LiveSet.build(self, rules, correlations, overrides, tenants)


@dataclass(frozen=True)
class _Choice:
    enabled: bool
    tenant: str  # the tenant of the setting that decided, or "*"


@dataclass
class LiveSet:
    """Which rule numbers (into ``RuleSet.rules``) and correlation numbers (into
    ``RuleSet.correlations``) raise alerts for which tenant."""

    policy: LivePolicy
    rule_ids: tuple[str, ...]
    spec_ids: tuple[str, ...]
    rule_packs: tuple[str, ...]
    rule_verdicts: tuple[str, ...]  # per rule: why the policy leaves it out ("" = in)
    spec_verdicts: tuple[str, ...]
    default_rules: frozenset[int]  # for a tenant without settings of its own
    default_specs: frozenset[int]
    tenant_rules: dict[str, frozenset[int]] = field(default_factory=dict)
    tenant_specs: dict[str, frozenset[int]] = field(default_factory=dict)
    choices: dict[str, dict[str, _Choice]] = field(default_factory=dict)  # rule id -> tenant -> choice
    active: frozenset[int] = (
        frozenset()
    )  # rules matched at all: live somewhere, or feeding a live correlation

    @classmethod
    def build(
        cls,
        policy: LivePolicy,
        rules: Sequence[RuleInfo],
        correlations: Sequence[CorrelationSpec],
        overrides: Iterable[Mapping[str, Any]],
        tenants: Iterable[str],
    ) -> LiveSet:
        rule_verdicts = tuple(policy.verdict(r) for r in rules)
        spec_verdicts = tuple(policy.verdict(s.info) for s in correlations)
        choices: dict[str, dict[str, _Choice]] = {}
        for row in overrides:
            tenant = str(row["tenant"])
            choices.setdefault(str(row["rule_id"]), {})[tenant] = _Choice(bool(row["enabled"]), tenant)
        rule_ids = tuple(r.id for r in rules)
        spec_ids = tuple(s.info.id for s in correlations)

        def chosen(ids: tuple[str, ...], verdicts: tuple[str, ...], tenant: str) -> frozenset[int]:
            out = set()
            for n, (rid, why) in enumerate(zip(ids, verdicts, strict=True)):
                pick = _pick(choices.get(rid), tenant)
                if pick.enabled if pick is not None else not why:
                    out.add(n)
            return frozenset(out)

        default_rules = chosen(rule_ids, rule_verdicts, "")
        default_specs = chosen(spec_ids, spec_verdicts, "")
        named = {t for c in choices.values() for t in c if t != ALL_TENANTS} | set(tenants)
        tenant_rules: dict[str, frozenset[int]] = {}
        tenant_specs: dict[str, frozenset[int]] = {}
        for tenant in sorted(named):
            r = chosen(rule_ids, rule_verdicts, tenant)
            s = chosen(spec_ids, spec_verdicts, tenant)
            if r != default_rules:
                tenant_rules[tenant] = r
            if s != default_specs:
                tenant_specs[tenant] = s
        live_rules = set(default_rules).union(*tenant_rules.values())
        live_specs = set(default_specs).union(*tenant_specs.values())
        return cls(
            policy,
            rule_ids,
            spec_ids,
            tuple(pack_of(r.path, policy.config.builtin_dir) for r in rules),
            rule_verdicts,
            spec_verdicts,
            default_rules,
            default_specs,
            tenant_rules,
            tenant_specs,
            choices,
            frozenset(live_rules | _spec_feed(correlations, live_specs)),
        )

    # -- asked per detection (the worker thread) ---------------------------------------------

    def rule_on(self, tenant: str, rule: int) -> bool:
        return rule in self.tenant_rules.get(tenant, self.default_rules)

    def spec_on(self, tenant: str, spec: int) -> bool:
        return spec in self.tenant_specs.get(tenant, self.default_specs)

    # -- asked by the rules page ---------------------------------------------------------------

    def count(self, pack_filter: Iterable[str] = ()) -> int:
        """Rules live for at least one tenant, only those of the packs named (all if none)."""
        wanted = set(pack_filter)
        live = set(self.default_rules).union(*self.tenant_rules.values())
        if not wanted:
            return len(live)
        return sum(1 for n in live if self.pack(n) in wanted)

    def pack(self, rule: int) -> str:
        """The pack of rule number ``rule``."""
        return self.rule_packs[rule]

    def why_not(self, tenant: str, rule_id: str) -> str:
        """For the rule (or correlation) ``rule_id``: "" when it is live for ``tenant``, else
        why not (the policy's reason, or the rule setting that took it out)."""
        for ids, verdicts in ((self.rule_ids, self.rule_verdicts), (self.spec_ids, self.spec_verdicts)):
            if rule_id in ids:
                n = ids.index(rule_id)
                pick = _pick(self.choices.get(rule_id), tenant)
                if pick is not None:
                    if pick.enabled:
                        return ""
                    return f"switched off by a rule setting for {pick.tenant}"
                return verdicts[n]
        return "not a rule of the running set"


def _pick(choices: dict[str, _Choice] | None, tenant: str) -> _Choice | None:
    """The tenant's own rule setting, else the one for every tenant."""
    if not choices:
        return None
    return choices.get(tenant) or choices.get(ALL_TENANTS)


def _spec_feed(correlations: Sequence[CorrelationSpec], live_specs: set[int]) -> set[int]:
    """Rules that live correlations reach through chains of correlations."""
    out: set[int] = set()
    seen: set[int] = set()
    todo = list(live_specs)
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        for kind, n in correlations[i].refs:
            if kind == "rule":
                out.add(n)
            else:
                todo.append(n)
    return out
