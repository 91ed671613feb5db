"""Report runs: one row per report and period, claimed before it is made, so a period's
report is sent once — by one node of a cluster — and a failed one is tried again.

    claim(engine, "lulea", "monthly", "2026-11", "sv", recipients, owner, now, retry_after_us, max_attempts)
    mark_sent(engine, run_id, pdf_sha256, html_sha256, size, now)   |   mark_failed(engine, run_id, why)

A claim takes a period nobody has (a new row, ``sending``), or one that failed at least
``retry_after_us`` ago and has attempts left, or one left ``sending`` by a node that died
(older than ``retry_after_us``). A sent row is never claimed again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from norrvakt.state.db import Row, as_rows, report_runs

SENDING, SENT, FAILED = "sending", "sent", "failed"


def claim(
    engine: sa.Engine,
    tenant: str,
    schedule: str,
    period: str,
    language: str,
    recipients: Sequence[str],
    owner: str,
    now: int,
    retry_after_us: int,
    max_attempts: int,
) -> int | None:
    """The run's id if this caller may make and send the report now, else None."""
    c = report_runs.c
    values = {
        "language": language,
        "status": SENDING,
        "owner": owner,
        "recipients": ",".join(recipients),
        "claimed_at": now,
        "error": "",
    }
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(c.id, c.status, c.attempts, c.claimed_at).where(
                c.tenant == tenant, c.schedule == schedule, c.period == period
            )
        ).first()
        if row is None:
            try:
                with conn.begin_nested():
                    return int(
                        conn.execute(
                            report_runs.insert()
                            .values(
                                tenant=tenant,
                                schedule=schedule,
                                period=period,
                                attempts=1,
                                created_at=now,
                                **values,
                            )
                            .returning(c.id)
                        ).scalar_one()
                    )
            except sa.exc.IntegrityError:  # another node claimed it a moment ago
                return None
        if row.status == SENT or row.attempts >= max_attempts or row.claimed_at > now - retry_after_us:
            return None
        # Compare-and-set on what was read: of two nodes retrying at once, one wins.
        done = conn.execute(
            report_runs.update()
            .where(c.id == row.id, c.status == row.status, c.claimed_at == row.claimed_at)
            .values(attempts=row.attempts + 1, **values)
        )
        return int(row.id) if done.rowcount else None


def mark_sent(engine: sa.Engine, run_id: int, pdf_sha256: str, html_sha256: str, size: int, now: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            report_runs.update()
            .where(report_runs.c.id == run_id)
            .values(status=SENT, sent_at=now, pdf_sha256=pdf_sha256, html_sha256=html_sha256, pdf_bytes=size)
        )


def mark_failed(engine: sa.Engine, run_id: int, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            report_runs.update().where(report_runs.c.id == run_id).values(status=FAILED, error=error[:4000])
        )


def listing(engine: sa.Engine, tenants: Sequence[str], limit: int = 200) -> list[Row]:
    """Runs of ``tenants`` (``_region`` for the region report), newest first."""
    c = report_runs.c
    with engine.connect() as conn:
        return as_rows(
            conn.execute(
                sa.select(report_runs)
                .where(c.tenant.in_(list(tenants)))
                .order_by(c.created_at.desc(), c.id.desc())
                .limit(limit)
            )
        )


def get(engine: sa.Engine, tenant: str, schedule: str, period: str) -> Row | None:
    c = report_runs.c
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(report_runs).where(c.tenant == tenant, c.schedule == schedule, c.period == period)
        ).first()
    return dict(row._mapping) if row is not None else None
