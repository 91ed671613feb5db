"""One search, for the API and the CLI alike: query text + scope + time range → JSON-able result.

Both `GET /api/search` and `norrvakt search` call :func:`run_search`, so they return the same
results for the same arguments.

Queries the store refuses as too big (ClickHouse's ``max_query_size`` or AST limits, reached
by a query of many thousand words within the length limit) are the analyst's to shorten, so
they become a :class:`~norrvakt.store.query.QueryError` (400), not a server error:
:func:`store_call` does that for the histogram, facets and live tail too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from clickhouse_connect.driver.exceptions import ClickHouseError

from norrvakt.event import now_us
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.query import CompiledQuery, QueryError, compile_query, parse_time, run_query

MAX_LIMIT = 10_000
T = TypeVar("T")

# ClickHouse's own words for "this query is too big to parse or analyse" (codes 62 with
# "Max query size exceeded", 167 TOO_DEEP_AST, 168 TOO_BIG_AST, 306 TOO_DEEP_RECURSION).
_TOO_BIG = re.compile(r"Max query size exceeded|TOO_DEEP_AST|TOO_BIG_AST|TOO_DEEP_RECURSION")


def too_big(exc: BaseException) -> QueryError | None:
    """The store's refusal of a query as too big, as a QueryError; None for any other error."""
    if isinstance(exc, ClickHouseError) and (found := _TOO_BIG.search(str(exc))):
        return QueryError(
            f"query too big for the store ({found.group()}): use fewer terms, e.g. a shorter list of "
            "values or a wildcard"
        )
    return None


def store_call(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` (a store read), with a too-big query raised as :class:`QueryError`."""
    try:
        return fn(*args)
    except ClickHouseError as exc:
        if (mapped := too_big(exc)) is not None:
            raise mapped from exc
        raise


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

    Raises :class:`~norrvakt.store.query.QueryError` (a ValueError) for bad queries or times,
    queries beyond the parser's hard caps and queries the store refuses as too big."""
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
    result = store_call(run_query, store, compiled)
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
        "chart": result.chart,
    }


def compile_export(
    tenants: Sequence[str], query: str, *, since: str | None, until: str | None, max_rows: int
) -> CompiledQuery:
    """``query`` compiled for an export: every matching row (one past ``max_rows``, so an export
    knows it was cut); without ``| sort`` by tenant, then newest first (read in the table's
    order, so a big export is not sorted in memory first)."""
    now = now_us()
    return compile_query(
        query,
        tenants=list(tenants),
        since_us=parse_time(since, now) if since else None,
        until_us=parse_time(until, now) if until else None,
        limit=max_rows + 1,
        now=now,
        stream=True,
    )
