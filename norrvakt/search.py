"""One search, for the API and the CLI alike: query text + scope + time range → JSON-able result.

Both `GET /api/search` and `norrvakt search` call :func:`run_search`, so they return the same
results for the same arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from norrvakt.event import now_us
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.query import compile_query, parse_time, run_query

MAX_LIMIT = 10_000


def run_search(
    store: ClickHouseStore,
    tenants: Sequence[str],
    query: str,
    *,
    since: str | None = None,
    until: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Run ``query`` over ``tenants`` (the caller's scope, already checked).

    Raises :class:`~norrvakt.store.query.QueryError` (a ValueError) for bad queries or times."""
    now = now_us()
    since_us = parse_time(since, now) if since else None
    until_us = parse_time(until, now) if until else None
    limit = max(1, min(int(limit), MAX_LIMIT))
    compiled = compile_query(
        query,
        tenants=list(tenants),
        since_us=since_us,
        until_us=until_us,
        limit=limit,
        offset=max(0, int(offset)),
    )
    result = run_query(store, compiled)
    return {
        "query": query,
        "kind": result.kind,
        "columns": result.columns,
        "total": result.total,
        "limit": limit,
        "offset": offset,
        "since": since_us,
        "until": until_us,
        "elapsed_ms": round(result.elapsed_ms, 2),
        "rows": result.rows,
    }
