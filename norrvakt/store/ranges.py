"""Batch ranges of a store writer: which seqs go into one INSERT, and the INSERT's dedupe token.

A store writer consumes one tenant's stream — seq 1, 2, 3, … gapless, the journal's seq — and
must cut its batches so that, restarted after a crash, it forms exactly the batch it may already
have inserted: the same rows under the same token, or ClickHouse cannot recognise the replay.

The rules (``batch_rows`` = B, fixed per replica and recorded in the writer's ledger):

- a range starts at the first seq not stored yet, never anywhere else;
- it never crosses an aligned boundary: it ends at most at ⌈first / B⌉ · B;
- it is inserted when it reaches that boundary (full), or — partial — when its oldest event has
  waited the linger (the only cut that depends on time, not on seqs);
- its token is ``{tenant}:{first}-{last}`` of the rows actually inserted.

One token therefore always means one set of rows: a partial range [k·B+1, m] gets its own
token, and what follows is [m+1, (k+1)·B] with another — never [k·B+1, (k+1)·B] again with more
rows under a token already used. (ClickHouse takes a block whose token it has seen for a replay
and drops it whole: reusing a token for other rows silently loses them.) Aligned boundaries
bring every writer back onto the same grid after a partial cut, so full ranges — almost all of
them under load — are the same for any writer of the tenant.

A partial cut is the one thing a restarted writer could not re-form from seqs alone (more events
may be available now than when it cut), which is why the writer records each range in its
ledger *before* inserting it, and after a crash replays exactly that range (norrvakt.store.writer).
"""

from __future__ import annotations


def range_end(first: int, batch_rows: int) -> int:
    """The aligned boundary a range starting at ``first`` may not cross: ⌈first / B⌉ · B."""
    if first < 1 or batch_rows < 1:
        raise ValueError(f"range_end: first {first} and batch_rows {batch_rows} must be ≥ 1")
    return -(-first // batch_rows) * batch_rows


def next_range(first: int, available: int, batch_rows: int, *, partial: bool) -> tuple[int, int] | None:
    """The range to insert next, given ``first`` (the first unstored seq) and ``available`` (the
    highest seq at hand, gapless from ``first``); ``partial``: the linger has passed, so a range
    short of its boundary may go. None when nothing should be inserted yet."""
    if available < first:
        return None
    end = range_end(first, batch_rows)
    if available >= end:
        return first, end
    return (first, available) if partial else None


def dedupe_token(tenant: str, first: int, last: int) -> str:
    """The INSERT's ``insert_deduplication_token``: which rows it holds, nothing else."""
    return f"{tenant}:{first}-{last}"
