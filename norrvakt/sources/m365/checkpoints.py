"""Where a feed stands, and which window it pulls next.

    state = FeedState.load(engine, "m365-lulea", "Audit.Exchange", "lulea", plan, now)
    window = state.next_window(now)        # (start, end, gap): gap = what expired unpulled
    if state.seen_before(item.id): …       # a record already journaled (the overlap, a re-listing)
    state.remember(item.id, item.at)       # once the record is durable
    state.done(window.end, now)            # the checkpoint moves; pruned seen-set saved with it

Windows overlap the last one by ``overlap`` (late blobs, clock skew between Microsoft and us)
and end ``delay`` before now (Graph feeds: a sign-in is listed minutes after it happened);
the seen-set — the ids of the last ``seen_keep`` (3 h) on the feed's axis, at most ``max_seen``
of them, saved with the checkpoint — makes the overlap and records Microsoft repeats in a
later blob cost requests, not duplicates. Content older than ``retention`` cannot be listed any more:
a checkpoint that fell behind that far starts again at the oldest listable time and the window
it cannot fetch is returned as the gap (the connector raises a source-health alert for it).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

import sqlalchemy as sa

from norrvakt.state.m365 import FeedCheckpoint, load_checkpoint, save_checkpoint

SECOND = 1_000_000
MINUTE = 60 * SECOND


@dataclass(frozen=True)
class WindowPlan:
    window: int = 60 * MINUTE  # µs per listing, at most 24 h (the Management API's limit)
    overlap: int = 10 * MINUTE
    retention: int = 7 * 24 * 60 * MINUTE  # content older than this cannot be listed
    margin: int = 10 * MINUTE  # keep clear of the retention edge (our clock may be ahead)
    delay: int = 0  # windows end this long before now (Graph shows records minutes after they happen)
    initial_lookback: int = 24 * 60 * MINUTE  # where a new connector starts
    seen_keep: int = (
        3 * 60 * MINUTE
    )  # ids are remembered this long (Microsoft repeats records in later blobs)
    max_seen: int = 50_000


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    gap: tuple[int, int] | None  # [from, to) µs that expired before it was pulled


class FeedState:
    def __init__(self, engine: sa.Engine, cp: FeedCheckpoint, plan: WindowPlan) -> None:
        self.engine = engine
        self.cp = cp
        self.plan = plan
        self._seen: OrderedDict[str, int] = OrderedDict((k, int(at)) for k, at in json.loads(cp.seen or "[]"))
        self.seen_dropped = 0

    @classmethod
    def load(
        cls, engine: sa.Engine, connector: str, feed: str, tenant: str, plan: WindowPlan, now: int
    ) -> FeedState:
        cp = load_checkpoint(engine, connector, feed)
        if cp is None:
            cp = FeedCheckpoint(connector, feed, tenant, done_until=now - plan.initial_lookback)
        cp.tenant = tenant
        return cls(engine, cp, plan)

    def next_window(self, now: int) -> Window | None:
        """The next window to pull, or None when caught up to ``now``."""
        plan = self.plan
        start = self.cp.done_until - plan.overlap
        earliest = now - plan.retention + plan.margin
        gap = None
        if start < earliest:
            if self.cp.done_until < earliest:
                gap = (self.cp.done_until, earliest)
            start = earliest
        # Whole seconds: the APIs take times to the second, so the window asked for is this one.
        end = min(start + plan.window, now - plan.delay) // SECOND * SECOND
        if end <= self.cp.done_until:
            return None
        return Window(start, end, gap)

    def seen_before(self, key: str) -> bool:
        return key in self._seen

    def remember(self, key: str, at: int) -> None:
        self._seen[key] = at
        self._seen.move_to_end(key)
        while len(self._seen) > self.plan.max_seen:
            self._seen.popitem(last=False)
            self.seen_dropped += 1

    def forget(self, key: str) -> None:
        """A remembered record that did not become durable after all (the journal refused)."""
        self._seen.pop(key, None)

    def done(self, end: int, now: int) -> None:
        """Everything up to ``end`` is durable: move the checkpoint and save it with the seen-set
        of what the next window can list again."""
        self.cp.done_until = max(self.cp.done_until, end)
        keep_from = self.cp.done_until - max(2 * self.plan.overlap, self.plan.seen_keep)
        for key in [k for k, at in self._seen.items() if at < keep_from]:
            del self._seen[key]
        self.cp.seen = self._seen_json()
        self.cp.last_attempt_at = now
        self.cp.last_success_at = now
        self.cp.last_error = ""
        save_checkpoint(self.engine, self.cp)

    def progress(self, records: int, duplicates: int) -> None:
        """A chunk of the window is durable: its ids are saved, so a restart in the middle of a
        window (which pulls the whole window again) skips them."""
        self.cp.records += records
        self.cp.duplicates += duplicates
        self.cp.seen = self._seen_json()
        save_checkpoint(self.engine, self.cp)

    def failed(self, why: str, now: int) -> None:
        """The attempt failed: the checkpoint stays where it is, the error is shown."""
        self.cp.last_attempt_at = now
        self.cp.last_error = why
        self.cp.seen = self._seen_json()
        save_checkpoint(self.engine, self.cp)

    def _seen_json(self) -> str:
        return json.dumps(list(self._seen.items()), separators=(",", ":"))
