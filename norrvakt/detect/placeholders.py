"""Values of Sigma's ``|expand`` placeholders, per tenant.

A rule such as ``SubjectUserName|expand: '%admins%'`` means "one of *this municipality's*
admin accounts": each tenant has its own. Values come from two places, the tenant's own first::

    [detection.placeholders."*"]          # every tenant (over the mapping's placeholders:)
    admins = ["adm-*"]
    [detection.placeholders.lulea]        # Luleå's own
    admins = ["adm-*", "lul-admin-*"]
    servers = ["LULSRV*"]

:func:`with_placeholders` puts them on the :class:`~norrvakt.detect.logsource.Pipeline` (and in
its digest, so the compiled-rules cache follows a change); :func:`scopes` tells the compiler,
for the placeholder names one rule uses, which groups of tenants share which values and which
tenants have none. The compiler (:mod:`norrvakt.detect.sigma`) gives each group its own branch,
guarded by a tenant test (op ``tenant``), so one loaded rule matches each tenant's own values;
a tenant without values for a name the rule uses is named in the load report and the rule
does not run for it - it never silently matches nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from norrvakt.detect.logsource import Pipeline

ALL_TENANTS = "*"  # the key of the values every tenant gets


@dataclass(frozen=True, slots=True)
class Scope:
    """Tenants that share the same values for a rule's placeholders.

    ``tenants`` None: every tenant not in ``others`` (those with values of their own)."""

    tenants: tuple[str, ...] | None
    values: dict[str, tuple[str, ...]]
    others: tuple[str, ...] = ()


def with_placeholders(
    pipeline: Pipeline, table: Mapping[str, Mapping[str, Sequence[str]]], tenants: Iterable[str] = ()
) -> Pipeline:
    """``pipeline`` with the placeholder values of ``table`` (tenant or ``"*"`` -> name -> values)
    and the list of every tenant."""
    shared = dict(pipeline.placeholders)
    own: dict[str, dict[str, tuple[str, ...]]] = {}
    for tenant, names in table.items():
        values = {str(n): tuple(str(v) for v in vs) for n, vs in names.items()}
        if tenant == ALL_TENANTS:
            shared.update(values)
        else:
            own[str(tenant)] = values
    known = tuple(sorted(set(tenants)))
    digest = hashlib.sha256(pipeline.digest.encode())
    digest.update(json.dumps([shared, own, known], sort_keys=True).encode())
    return replace(
        pipeline,
        placeholders=shared,
        tenant_placeholders=own,
        tenants=known,
        digest=digest.hexdigest(),
        _memo={},
    )


def scopes(pipeline: Pipeline, names: Iterable[str]) -> tuple[list[Scope], dict[str, list[str]]]:
    """For the placeholder ``names`` of one rule: the scopes with all values, and the tenants
    without (tenant, or ``"*"`` for every other tenant when the tenants are not known -> the
    names it lacks)."""
    wanted = sorted(set(names))
    shared = pipeline.placeholders
    own = {t: v for t, v in pipeline.tenant_placeholders.items() if any(n in v for n in wanted)}
    missing: dict[str, list[str]] = {}
    groups: dict[str, list[str]] = {}  # values as JSON -> tenants
    values_of: dict[str, dict[str, tuple[str, ...]]] = {}
    for tenant in sorted(own):
        values = {n: own[tenant].get(n, shared.get(n)) for n in wanted}
        lacking = [n for n, v in values.items() if v is None]
        if lacking:
            missing[tenant] = lacking
            continue
        complete = {n: v for n, v in values.items() if v is not None}
        key = json.dumps(complete, sort_keys=True)
        groups.setdefault(key, []).append(tenant)
        values_of[key] = complete
    out = [Scope(tuple(ts), values_of[key]) for key, ts in groups.items()]
    rest = [t for t in pipeline.tenants if t not in own]
    if pipeline.tenants and not rest:
        return out, missing  # every tenant has values of its own
    lacking = [n for n in wanted if n not in shared]
    if lacking:
        for tenant in rest or [ALL_TENANTS]:
            missing[tenant] = lacking
    else:
        out.append(Scope(None, {n: shared[n] for n in wanted}, tuple(sorted(own))))
    return out, missing


def describe_missing(missing: dict[str, list[str]]) -> str:
    """``%admins% has no values for tenant(s) boden, pitea`` (for the load report)."""
    by_names: dict[tuple[str, ...], list[str]] = {}
    for tenant, lacking in missing.items():
        by_names.setdefault(tuple(lacking), []).append(tenant)
    parts = []
    for names, tenants in sorted(by_names.items()):
        who = (
            "any tenant without values of its own"
            if tenants == [ALL_TENANTS]
            else "tenant(s) " + ", ".join(t if t != ALL_TENANTS else "every other" for t in sorted(tenants))
        )
        parts.append(f"{', '.join('%' + n + '%' for n in names)} has no values for {who}")
    return "; ".join(parts)
