"""NIS2 incident report drafts in the state database: one row per case and kind, with its
fields (JSON), its editors since the last approval, the approval and the sending."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from norrvakt.state.db import Row, as_rows, nis2_reports


def _out(row: Any) -> Row:
    out = dict(row._mapping)
    out["fields"] = json.loads(out["fields"])
    out["editors"] = json.loads(out["editors"])
    return out


def _in(values: Row) -> Row:
    out = dict(values)
    for key in ("fields", "editors"):
        if key in out:
            out[key] = json.dumps(out[key], ensure_ascii=False, sort_keys=True)
    return out


def insert(conn: sa.Connection, values: Row) -> int:
    return int(
        conn.execute(nis2_reports.insert().values(**_in(values)).returning(nis2_reports.c.id)).scalar_one()
    )


def get(conn: sa.Connection, case_id: int, kind: str, *, for_update: bool = False) -> Row | None:
    query = sa.select(nis2_reports).where(nis2_reports.c.case_id == case_id, nis2_reports.c.kind == kind)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()  # an edit and an approval of one draft: one waits
    row = conn.execute(query).first()
    return _out(row) if row is not None else None


def of_case(conn: sa.Connection, case_id: int) -> list[Row]:
    rows = conn.execute(
        sa.select(nis2_reports).where(nis2_reports.c.case_id == case_id).order_by(nis2_reports.c.id)
    )
    return [_out(r) for r in rows]


def update(conn: sa.Connection, report_id: int, values: Row) -> None:
    conn.execute(nis2_reports.update().where(nis2_reports.c.id == report_id).values(**_in(values)))


def update_if(conn: sa.Connection, report_id: int, status: str, values: Row) -> bool:
    """Update the draft only while it has ``status``; True if it did."""
    done = conn.execute(
        nis2_reports.update()
        .where(nis2_reports.c.id == report_id, nis2_reports.c.status == status)
        .values(**_in(values))
    )
    return bool(done.rowcount)


def sent_references(conn: sa.Connection, case_id: int) -> list[str]:
    """The CSIRT's references given when earlier reports of the case were sent."""
    rows = as_rows(
        conn.execute(
            sa.select(nis2_reports.c.sent_reference)
            .where(nis2_reports.c.case_id == case_id, nis2_reports.c.sent_reference.is_not(None))
            .order_by(nis2_reports.c.sent_at)
        )
    )
    return [str(r["sent_reference"]) for r in rows if r["sent_reference"]]
