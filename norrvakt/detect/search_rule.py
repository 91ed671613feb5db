"""Alert rules written in the search language: a search, then what about it raises an alert.

Sample rules it reads::

    event.code:4625 | count > 50 in 10m by source.ip
    event.dataset:sshd "Failed password" | count >= 20 in 5m by source.ip, user.name
    host.name:lulea-dc01 | absent in 1h
    event.dataset:winlogbeat | absent in 30m by host.name

Grammar of the last pipeline step (keywords in any case)::

    rule      = threshold | absence
    threshold = "count" ( ">" | ">=" ) N "in" duration [ "by" field { [","] field } ]
    absence   = ( "absent" | "none" ) "in" duration [ "by" field { [","] field } ]
    duration  = N ( "s" | "m" | "h" | "d" )          e.g. 30s, 10m, 1h, 7d

Everything before that step is an ordinary search filter (:mod:`norrvakt.store.query_parse`);
pipeline commands before it (``| stats``, ``| head`` …) are refused — a rule counts events,
it does not shape a result. A *threshold* rule fires for every tenant and group (the ``by``
values) with more than N matching events in the last window. An *absence* rule fires for every
tenant and group that had matching events in the look-back before the window (24 hours, or
the window itself when it is longer) and none within it: a host that never sent is not
"silent", one that stopped is.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

from norrvakt.store.query_ast import MatchAll, Query, QueryError
from norrvakt.store.query_parse import parse_query

UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LOOKBACK_S = 86400  # an absence rule's groups: seen within this before the window
MAX_BY = 5

_DURATION = r"(\d{1,7})\s*([smhd])"
_BY = r"(?:\s+by\s+(?P<by>.+?))?"
_THRESHOLD = re.compile(
    rf"count\s*(?:\(\s*\))?\s*(?P<op>>=|>)\s*(?P<n>\d{{1,12}})\s+in\s+{_DURATION}{_BY}\s*", re.IGNORECASE
)
_ABSENCE = re.compile(rf"(?:absent|none)\s+in\s+{_DURATION}{_BY}\s*", re.IGNORECASE)
_FIELD = re.compile(r"[^\W\d][\w.@-]*|@[\w.@-]+")
_EVERY = re.compile(rf"\s*(?:every\s+)?{_DURATION}\s*", re.IGNORECASE)
HINT = "end the query with e.g. `| count > 50 in 10m by source.ip` or `| absent in 1h by host.name`"


@dataclass(frozen=True)
class SearchRule:
    """A parsed rule: ``query`` is the filter part as typed (``parsed`` its tree)."""

    text: str
    query: str
    parsed: Query
    kind: Literal["threshold", "absence"]
    window_s: int
    by: tuple[str, ...] = ()
    op: Literal[">", ">="] = ">"
    threshold: int = 0

    @property
    def lookback_s(self) -> int:
        """Absence: how long before the window a group must have been seen."""
        return max(LOOKBACK_S, self.window_s) if self.kind == "absence" else 0

    @property
    def scanned_s(self) -> int:
        """The span one run reads: the window, and for absence the look-back before it."""
        return self.window_s + self.lookback_s

    def describe(self) -> str:
        by = f" by {', '.join(self.by)}" if self.by else ""
        window = human_s(self.window_s)
        if self.kind == "threshold":
            return f"count {self.op} {self.threshold} in {window}{by}"
        return f"absent in {window}{by} (seen in the {human_s(self.lookback_s)} before)"


def human_s(seconds: int) -> str:
    """``90`` → ``90s``, ``600`` → ``10m``, ``3600`` → ``1h``, ``86400`` → ``1d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def split_rule(text: str) -> tuple[str, str | None, int]:
    """``(query, rule step or None, offset of the step)`` — the step is the text after the last
    ``|`` outside quotes when it reads as a rule (``count …`` / ``absent …`` / ``none …``)."""
    last = -1
    quoted = escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "|" and not quoted:
            last = i
    if last < 0:
        return text, None, len(text)
    step = text[last + 1 :]
    head = step.strip().split(maxsplit=1)
    word = re.split(r"[\s(>]", head[0], maxsplit=1)[0].lower() if head else ""
    if word not in ("count", "absent", "none"):
        return text, None, len(text)
    return text[:last], step, last + 1


def is_rule(text: str) -> bool:
    """Whether ``text`` ends in a rule step (a scheduled search) rather than being a plain search."""
    return split_rule(text)[1] is not None


def parse_rule(
    text: str, *, max_length: int = 10_000, max_depth: int = 32, max_window_s: int = 7 * 86400
) -> SearchRule:
    """The rule of ``text``; a :class:`QueryError` naming the column when it is not one."""
    query, step, at = split_rule(text)
    if step is None:
        raise QueryError(f"not an alert rule: {HINT}", len(text.rstrip()), text)
    parsed = parse_query(query, max_length=max_length, max_depth=max_depth)
    if dataclasses.replace(parsed, where=MatchAll()) != Query(where=MatchAll()):
        raise QueryError(
            "an alert rule counts the events of a filter: leave out pipeline commands (| stats, | sort, "
            "| head, | fields …) before the rule step",
            query.find("|") if "|" in query else 0,
            text,
        )
    body = step.strip()
    offset = at + (len(step) - len(step.lstrip()))
    if (m := _THRESHOLD.fullmatch(body)) is not None:
        window = _window(m.group(3), m.group(4), text, offset + m.start(3), max_window_s)
        by = _fields(m.group("by"), text, offset + (m.start("by") if m.group("by") else 0))
        n = int(m.group("n"))
        if m.group("op") == ">=" and n < 1:
            raise QueryError(
                "count >= 0 is always true: give a count of at least 1", offset + m.start("n"), text
            )
        op: Literal[">", ">="] = ">=" if m.group("op") == ">=" else ">"
        return SearchRule(text, query, parsed, "threshold", window, by, op, n)
    if (m := _ABSENCE.fullmatch(body)) is not None:
        window = _window(m.group(1), m.group(2), text, offset + m.start(1), max_window_s)
        by = _fields(m.group("by"), text, offset + (m.start("by") if m.group("by") else 0))
        return SearchRule(text, query, parsed, "absence", window, by)
    raise QueryError(f"cannot read the rule step {body!r}: {HINT}", offset, text)


def _window(amount: str, unit: str, text: str, at: int, max_window_s: int) -> int:
    seconds = int(amount) * UNIT_S[unit.lower()]
    if seconds < 60:
        raise QueryError(f"window {amount}{unit}: at least 1 minute (1m)", at, text)
    if seconds > max_window_s:
        raise QueryError(
            f"window {amount}{unit}: at most {max_window_s // 3600} hours (search_rules.max_window_s)",
            at,
            text,
        )
    return seconds


def _fields(by: str | None, text: str, at: int) -> tuple[str, ...]:
    if not by:
        return ()
    names = [n for n in re.split(r"[\s,]+", by.strip()) if n]
    for name in names:
        if not _FIELD.fullmatch(name):
            raise QueryError(f"by: {name!r} is not a field name", at + by.find(name), text)
    if len(names) > MAX_BY:
        raise QueryError(f"by: at most {MAX_BY} fields, got {len(names)}", at, text)
    if len(set(names)) != len(names):
        raise QueryError("by: a field is named twice", at, text)
    return tuple(names)


def parse_every(text: str, *, min_s: int, window_s: int | None = None) -> int:
    """Seconds between runs of a schedule such as ``5m``, ``every 1h``; ValueError saying why not.

    A schedule longer than the rule's window would leave events between two runs uncounted."""
    m = _EVERY.fullmatch(text or "")
    if m is None:
        raise ValueError(f"schedule {text!r}: a duration such as 1m, 5m, 1h (every 5m)")
    seconds = int(m.group(1)) * UNIT_S[m.group(2).lower()]
    if seconds < min_s:
        raise ValueError(f"schedule {text!r}: at least every {min_s} s (search_rules.min_every_s)")
    if seconds > 86400:
        raise ValueError(f"schedule {text!r}: at least once a day (at most 1d)")
    if window_s is not None and seconds > window_s:
        raise ValueError(
            f"schedule {text!r} is longer than the rule's window ({window_s} s): the events between two "
            "runs would never be counted; run it at least once per window"
        )
    return seconds
