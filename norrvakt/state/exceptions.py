"""Rule exceptions: stored, listed, disabled — never deleted — and what they suppressed.

An exception is keyed to a rule's **id** (or a group of rules: ``tag:<tag>``), not to its text,
so it survives rule updates: SigmaHQ keeps a rule's id across versions. Its state is derived
from its times: *active* until ``expires_at``, then *expired*; *disabled* once someone turned
it off. Every change bumps the ``rule_exceptions`` version (:mod:`norrvakt.state.versions`), so
each process's alert intake reloads within a second.

The matches an exception suppressed are counted per exception and tenant
(``rule_exception_hits``) and kept — the event's journal seq, up to :data:`KEPT_MATCHES` per
exception and tenant — in ``rule_exception_matches``, written in the same transaction as the
alerts of the batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from norrvakt.errors import StatusError
from norrvakt.state.db import rule_exception_hits, rule_exception_matches, rule_exceptions, upsert
from norrvakt.state.versions import bump

RULE_EXCEPTIONS = "rule_exceptions"  # the version counter every intake watches
ALL_TENANTS = "*"
GROUP_PREFIXES = ("tag:",)
MAX_DAYS = 365  # an exception ends within a year: it is looked at again, not forgotten
MAX_FIELDS = 20
MAX_VALUES = 100
KEPT_MATCHES = 1000  # suppressed matches kept per exception and tenant; beyond, counted only
US = 1_000_000
DAY_US = 86_400 * US

ACTIVE, EXPIRED, DISABLED = "active", "expired", "disabled"


class ExceptionError(StatusError, ValueError):
    """An exception that cannot be made or changed as asked (HTTP 400 unless said)."""


class NoSuchException(ExceptionError):
    status_code = 404


@dataclass(frozen=True, slots=True)
class Suppressed:
    """One match an exception suppressed (for :func:`record_hits`)."""

    exception_id: int
    tenant: str
    rule_id: str
    rule_title: str
    event_seq: int
    event_ts: int
    keep: bool  # kept as a row (within the cap), or counted only


def state_of(row: dict[str, Any], now: int) -> str:
    if row["disabled_at"] is not None:
        return DISABLED
    return ACTIVE if now < int(row["expires_at"]) else EXPIRED


def clean_conditions(conditions: object) -> dict[str, list[str]]:
    """``{field: [values]}`` checked: at least one field, each with at least one value; values
    stripped of nothing (an exact match is exact), empty ones refused."""
    if not isinstance(conditions, dict) or not conditions:
        raise ExceptionError("conditions: at least one field and the values it must have")
    if len(conditions) > MAX_FIELDS:
        raise ExceptionError(f"conditions: at most {MAX_FIELDS} fields")
    out: dict[str, list[str]] = {}
    for name, values in conditions.items():
        field = str(name).strip()
        if not field or len(field) > 256:
            raise ExceptionError(f"conditions: field name {name!r} must be 1 to 256 characters")
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not values:
            raise ExceptionError(f"conditions: field {field!r} needs at least one value")
        if len(values) > MAX_VALUES:
            raise ExceptionError(f"conditions: field {field!r} has more than {MAX_VALUES} values")
        kept = []
        for v in values:
            if not isinstance(v, str) or v == "" or len(v) > 4096:
                raise ExceptionError(f"conditions: field {field!r}: value {v!r} must be 1 to 4096 characters")
            if v not in kept:
                kept.append(v)
        out[field] = kept
    return out


def parse_match_lines(text: str) -> dict[str, list[str]]:
    """The console's form: one ``field=value`` per line; a field on several lines takes any of
    its values. Split at the first ``=`` (values may contain one); a line starting with ``#``
    is a suggestion left out (the form offers the alert's first event's fields that way)."""
    out: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        field, sep, value = line.partition("=")
        if not sep or not field.strip():
            raise ExceptionError(f"match line {number}: {line[:80]!r} is not field=value")
        out.setdefault(field.strip(), []).append(value.strip())
    return out


def clean_scope(rule_id: str, group: str) -> tuple[str, str]:
    rule_id, group = rule_id.strip(), group.strip()
    if bool(rule_id) == bool(group):
        raise ExceptionError("give either rule_id (one rule) or group (e.g. tag:attack.t1110), not both")
    if len(rule_id) > 128 or len(group) > 128:
        raise ExceptionError("rule_id and group are at most 128 characters")
    if group and (not group.startswith(GROUP_PREFIXES) or not group.partition(":")[2].strip()):
        raise ExceptionError(f"group {group!r}: tag:<tag>, e.g. tag:attack.t1110")
    return rule_id, group.lower() if group else ""


def create(
    engine: sa.Engine,
    *,
    tenant: str,
    rule_id: str,
    group: str,
    conditions: object,
    reason: str,
    author: str,
    expires_at: int,
    now: int,
    alert_id: int | None = None,
) -> dict[str, Any]:
    """A new exception (checked); the stored row."""
    rule_id, group = clean_scope(rule_id, group)
    cleaned = clean_conditions(conditions)
    reason = reason.strip()
    if not reason:
        raise ExceptionError("reason: say why these matches are not alerts (it is audited)")
    if expires_at <= now:
        raise ExceptionError("expires: must be in the future")
    if expires_at > now + MAX_DAYS * DAY_US:
        raise ExceptionError(f"expires: at most {MAX_DAYS} days from now")
    with engine.begin() as conn:
        done = conn.execute(
            rule_exceptions.insert().values(
                tenant=tenant,
                rule_id=rule_id,
                rule_group=group,
                conditions=json.dumps(cleaned, ensure_ascii=False, sort_keys=True),
                reason=reason[:2000],
                author=author,
                created_at=now,
                expires_at=expires_at,
                alert_id=alert_id,
                disabled_at=None,
                disabled_by=None,
                expiry_audited_at=None,
                updated_at=now,
            )
        )
        new_id = int(done.inserted_primary_key[0])  # type: ignore[index]
        bump(conn, RULE_EXCEPTIONS)
        return _one(conn, new_id)


def disable(engine: sa.Engine, exception_id: int, actor: str, now: int) -> dict[str, Any]:
    """Turn an exception off (it stays, listed as disabled); 404 when there is none."""
    with engine.begin() as conn:
        done = conn.execute(
            rule_exceptions.update()
            .where(rule_exceptions.c.id == exception_id, rule_exceptions.c.disabled_at.is_(None))
            .values(disabled_at=now, disabled_by=actor, updated_at=now)
        )
        if done.rowcount:
            bump(conn, RULE_EXCEPTIONS)
        return _one(conn, exception_id)


def change(
    engine: sa.Engine,
    exception_id: int,
    *,
    reason: str | None,
    expires_at: int | None,
    now: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new reason or expiry for an exception that is not disabled (an expired one may be
    given a new expiry: it applies again); the row before and after."""
    with engine.begin() as conn:
        before = _one(conn, exception_id)
        if before["disabled_at"] is not None:
            raise ExceptionError(f"exception {exception_id} is disabled: make a new one")
        values: dict[str, Any] = {"updated_at": now}
        if reason is not None:
            if not reason.strip():
                raise ExceptionError("reason: say why these matches are not alerts (it is audited)")
            values["reason"] = reason.strip()[:2000]
        if expires_at is not None:
            if expires_at <= now:
                raise ExceptionError("expires: must be in the future (disable it to end it now)")
            if expires_at > now + MAX_DAYS * DAY_US:
                raise ExceptionError(f"expires: at most {MAX_DAYS} days from now")
            values["expires_at"] = expires_at
            values["expiry_audited_at"] = None  # a new expiry is audited when it comes
        conn.execute(rule_exceptions.update().where(rule_exceptions.c.id == exception_id).values(**values))
        bump(conn, RULE_EXCEPTIONS)
        return before, _one(conn, exception_id)


def claim_expired(engine: sa.Engine, now: int) -> list[dict[str, Any]]:
    """Exceptions whose expiry passed and is not yet audited, marked as audited now. Each row
    is claimed by one update, so of several nodes on the database only one audits it."""
    c = rule_exceptions.c
    out = []
    with engine.begin() as conn:
        due = conn.execute(
            sa.select(c.id).where(c.expires_at <= now, c.expiry_audited_at.is_(None), c.disabled_at.is_(None))
        ).scalars()
        for exception_id in list(due):
            done = conn.execute(
                rule_exceptions.update()
                .where(c.id == exception_id, c.expiry_audited_at.is_(None))
                .values(expiry_audited_at=now)
            )
            if done.rowcount:
                out.append(_one(conn, int(exception_id)))
    return out


def get(conn: sa.Connection, exception_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(rule_exceptions).where(rule_exceptions.c.id == exception_id)).first()
    return _decoded(dict(row._mapping)) if row is not None else None


def _one(conn: sa.Connection, exception_id: int) -> dict[str, Any]:
    found = get(conn, exception_id)
    if found is None:
        raise NoSuchException(f"no exception {exception_id}")
    return found


def listing(conn: sa.Connection, tenants: Iterable[str] | None) -> list[dict[str, Any]]:
    """Every exception of ``tenants`` (and those for all tenants), newest first; None = all."""
    q = sa.select(rule_exceptions).order_by(rule_exceptions.c.id.desc())
    if tenants is not None:
        q = q.where(rule_exceptions.c.tenant.in_([*tenants, ALL_TENANTS]))
    return [_decoded(dict(r._mapping)) for r in conn.execute(q)]


def current(conn: sa.Connection, now: int) -> list[dict[str, Any]]:
    """The exceptions that apply now (not disabled, not expired), for the alert intake."""
    q = sa.select(rule_exceptions).where(
        rule_exceptions.c.disabled_at.is_(None), rule_exceptions.c.expires_at > now
    )
    return [_decoded(dict(r._mapping)) for r in conn.execute(q)]


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    row["conditions"] = json.loads(row["conditions"])
    return row


def hits(conn: sa.Connection, tenants: Iterable[str] | None) -> dict[int, dict[str, Any]]:
    """Per exception: its suppressed matches in ``tenants`` (None = all) — hits, first, last."""
    q = sa.select(rule_exception_hits)
    if tenants is not None:
        q = q.where(rule_exception_hits.c.tenant.in_(list(tenants)))
    out: dict[int, dict[str, Any]] = {}
    for r in conn.execute(q):
        e = out.setdefault(int(r.exception_id), {"hits": 0, "first_hit": None, "last_hit": None})
        e["hits"] += int(r.hits)
        e["first_hit"] = min(int(r.first_hit), e["first_hit"] or int(r.first_hit))
        e["last_hit"] = max(int(r.last_hit), e["last_hit"] or 0)
    return out


def hit_counts(conn: sa.Connection) -> dict[tuple[int, str], int]:
    """(exception, tenant) → hits: where the intake's cap of kept matches starts from."""
    return {
        (int(r.exception_id), str(r.tenant)): int(r.hits)
        for r in conn.execute(sa.select(rule_exception_hits))
    }


def matches(
    conn: sa.Connection, exception_id: int, tenants: Iterable[str] | None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest suppressed matches kept for an exception, in ``tenants`` (None = all)."""
    m = rule_exception_matches
    q = sa.select(m).where(m.c.exception_id == exception_id).order_by(m.c.id.desc()).limit(limit)
    if tenants is not None:
        q = q.where(m.c.tenant.in_(list(tenants)))
    return [dict(r._mapping) for r in conn.execute(q)]


def record_hits(conn: sa.Connection, suppressed: Sequence[Suppressed], at: int) -> None:
    """Count (and keep, within the cap) the matches of one intake batch, in its transaction."""
    if not suppressed:
        return
    per: dict[tuple[int, str], list[int]] = {}
    for s in suppressed:
        entry = per.setdefault((s.exception_id, s.tenant), [0, s.event_ts, s.event_ts])
        entry[0] += 1
        entry[1] = min(entry[1], s.event_ts)
        entry[2] = max(entry[2], s.event_ts)
    for (exception_id, tenant), (n, first, last) in per.items():
        h = rule_exception_hits
        stmt = upsert(conn, h).values(
            exception_id=exception_id, tenant=tenant, hits=n, first_hit=first, last_hit=last
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[h.c.exception_id, h.c.tenant],
                set_={
                    "hits": h.c.hits + n,
                    "first_hit": sa.func.min(h.c.first_hit, first)
                    if conn.dialect.name == "sqlite"
                    else sa.func.least(h.c.first_hit, first),
                    "last_hit": sa.func.max(h.c.last_hit, last)
                    if conn.dialect.name == "sqlite"
                    else sa.func.greatest(h.c.last_hit, last),
                },
            )
        )
    kept = [
        {
            "exception_id": s.exception_id,
            "tenant": s.tenant,
            "rule_id": s.rule_id,
            "rule_title": s.rule_title[:512],
            "event_seq": s.event_seq,
            "event_ts": s.event_ts,
            "at": at,
        }
        for s in suppressed
        if s.keep
    ]
    if kept:
        conn.execute(rule_exception_matches.insert(), kept)
