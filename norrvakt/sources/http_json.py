"""The JSON events of an HTTP ingest body, each checked for size and nesting before use.

    {"event":"one"}{"event":"two"}                       HEC: concatenated objects
    {"event":"one"}\\n{"event":"two"}                     HEC, /ingest, _bulk: one per line
    {"event":[[[[[[[[[[[[ … 100,000 × "[" … ]]]]]]]]]]]]}  refused: too deep

Two limits keep one bad event from costing more than it is worth:

- ``max_event_bytes`` (``server.max_event_bytes``): a longer event is not parsed; its first
  ``max_event_bytes`` are kept in a pipeline_error event.
- :data:`MAX_JSON_DEPTH`: a deeper document is not parsed (orjson could not anyway, and
  Python's own json module would raise RecursionError — a 500 before this check).

Either becomes a :class:`Problem` naming the event, its size or depth and the limit; the
route keeps it as a pipeline_error event and reports it the way its protocol reports a bad
event. Events whose boundaries are known (one per line, or found by the scanner below) are
checked one by one, so a bad one does not take its neighbours with it.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from itertools import accumulate, count
from typing import Any, NamedTuple

import orjson

# orjson.loads refuses documents nested deeper than this (a fixed limit in orjson), so it is
# the deepest document that can be read at all. Real logs nest a handful of levels (a Windows
# event about six) and the parsers flatten at most 64 (parsers.base.MAX_JSON_DEPTH), so
# nothing real is refused. tests/security/test_http_ingest_limits.py checks orjson still
# stops exactly here.
MAX_JSON_DEPTH = 1024

# The depth named in an error is counted over at most this many bytes of the event.
_DEPTH_SCAN_BYTES = 16 * 1024 * 1024

_WHITESPACE = re.compile(rb"[ \t\r\n]*")
# After escaped backslashes and quotes are blanked (see _neutral), a string has no quote
# inside, so this cannot backtrack: each byte is looked at a bounded number of times.
_TOKEN = re.compile(rb'"[^"]*"|[\[\]{}]')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = bytes.maketrans(b"[]{}", b"\x02\x00\x02\x00")  # opening 2, closing 0; minus 1 each


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an event is not taken: ``kind`` (``too_large``, ``too_deep``, ``malformed``,
    ``not_object``) becomes the end of the pipeline_error's ``error.type``."""

    kind: str
    reason: str


class Part(NamedTuple):
    """One event of a body: its bytes (cut to ``max_event_bytes`` when it has a problem),
    its number in the body (0-based, as HEC counts) and its byte offset. (A tuple: a batch
    holds thousands, and the garbage collector does not walk tuples of plain values.)"""

    data: bytes
    number: int
    offset: int
    problem: Problem | None = None


def too_large(size: int, limit: int) -> Problem:
    return Problem(
        "too_large",
        f"{size} bytes, over the limit of {limit} bytes (server.max_event_bytes); "
        f"the first {limit} bytes are kept",
    )


def too_deep(data: bytes) -> Problem:
    depth, exact = nesting_depth(data)
    return Problem(
        "too_deep",
        f"JSON nested {depth}{'' if exact else ' or more'} levels deep; the limit is {MAX_JSON_DEPTH} levels",
    )


def load_event(data: bytes, max_event_bytes: int) -> tuple[Any, Problem | None]:
    """One event's JSON value, or the problem that keeps it from being read."""
    if len(data) > max_event_bytes:
        return None, too_large(len(data), max_event_bytes)
    try:
        return orjson.loads(data), None
    except orjson.JSONDecodeError as exc:
        if _is_depth_error(exc):
            return None, too_deep(data)
        return None, Problem("malformed", str(exc))


def object_problem(data: bytes, max_event_bytes: int) -> Problem | None:
    """Why ``data`` is not one JSON object within the limits, or None."""
    value, problem = load_event(data, max_event_bytes)
    if problem is None and not isinstance(value, dict):
        problem = _not_object(value)
    return problem


def _is_depth_error(exc: orjson.JSONDecodeError) -> bool:
    # "depth limit exceeded" in orjson 3.10+, "recursion limit reached" before.
    return "depth" in exc.msg or "recursion" in exc.msg


def nesting_depth(data: bytes) -> tuple[int, bool]:
    """The deepest nesting of brackets outside strings, and whether all of ``data`` was counted.

    Runs at C speed (no loop per byte in Python): 100,000 ``[`` take a few milliseconds."""
    scanned = data[:_DEPTH_SCAN_BYTES]
    outside = b"".join(_neutral(scanned).split(b'"')[::2])  # every other piece is inside a string
    steps = outside.translate(_BRACKET_STEP, _NOT_BRACKETS)
    depth = max(map(operator.sub, accumulate(steps), count(1)), default=0)
    return max(depth, 0), len(scanned) == len(data)


def _neutral(data: bytes) -> bytes:
    """``data`` with escaped backslashes and escaped quotes blanked, the length unchanged.

    Backslash pairs go first: in ``\\\\"`` the quote ends the string; in ``\\"`` it does not."""
    return data.replace(b"\\\\", b"__").replace(b'\\"', b"__")


def split_json_objects(body: bytes, max_event_bytes: int) -> list[Part]:
    """The events of a HEC body: JSON objects one per line or simply one after another.

    An event with a problem is a Part with ``problem`` set; the ones after it still come when
    its end is known. A body that stops making sense (a syntax error, a value that is no
    object or array) ends with one Part holding the rest of the body, cut to the limit."""
    parts = _split_at_braces(body, max_event_bytes)
    return parts if parts is not None else _scan(body, max_event_bytes)


# "}" then "{" with only whitespace between can sit inside a string too, but a cut there
# leaves a piece with an unterminated string, which does not parse: when every piece parses
# as an object, every cut was between two objects.
_BETWEEN_OBJECTS = re.compile(rb"\}[ \t\r\n]*\{")


def _split_at_braces(body: bytes, max_event_bytes: int) -> list[Part] | None:
    """The fast path (orjson per event, no loop per byte): the events when every one is a
    well-formed object within the limits, else None (the scanner then finds out which is not)."""
    # Each event is decoded here to check it and again by its parser. Handing the parser the
    # object decoded here was tried (issue #12): 20 % fewer instructions for the decoding, but
    # 3 µs *more* per event for a 500-event HEC body — the 500 objects wait for the parse,
    # cold in the CPU cache and walked by the garbage collector. It pays off only if each
    # event is parsed right after it is checked.
    parts: list[Part] = []
    start = len(body) - len(body.lstrip())
    ends = [(m.start() + 1, m.end() - 1) for m in _BETWEEN_OBJECTS.finditer(body)]
    ends.append((len(body.rstrip()), len(body)))
    for end, following in ends:
        event = body[start:end]
        if len(event) > max_event_bytes:
            return None
        try:
            value = orjson.loads(event)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
        parts.append(Part(event, len(parts), start))
        start = following
    return parts


def _not_object(value: Any) -> Problem:
    return Problem("not_object", f"a JSON {type(value).__name__}, not an object")


def _scan(body: bytes, max_event_bytes: int) -> list[Part]:
    """The slow path: find each value's end by its brackets, then parse it on its own."""
    neutral = _neutral(body)
    parts: list[Part] = []
    pos = 0
    n = len(body)
    while True:
        pos = _WHITESPACE.match(body, pos).end()  # type: ignore[union-attr]  # matches ""
        if pos >= n:
            return parts
        index = len(parts)
        if body[pos] not in b"{[":
            why = f"expected a JSON object at byte offset {pos}, got {body[pos : pos + 20]!r}"
            parts.append(_rest(body, pos, index, Problem("malformed", why), max_event_bytes))
            return parts
        end, depth = _extent(neutral, pos)
        if end is None:
            unclosed = (
                too_deep(body[pos:])
                if depth > MAX_JSON_DEPTH
                else Problem("malformed", f"unterminated JSON value from byte offset {pos}")
            )
            parts.append(_rest(body, pos, index, unclosed, max_event_bytes))
            return parts
        data = body[pos:end]
        if depth > MAX_JSON_DEPTH:
            parts.append(Part(data[:max_event_bytes], index, pos, too_deep(data)))
        elif len(data) > max_event_bytes:
            parts.append(Part(data[:max_event_bytes], index, pos, too_large(len(data), max_event_bytes)))
        else:
            try:
                value = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                why = f"{exc} (the event starts at byte offset {pos})"
                parts.append(_rest(body, pos, index, Problem("malformed", why), max_event_bytes))
                return parts
            parts.append(Part(data, index, pos, None if isinstance(value, dict) else _not_object(value)))
        pos = end


def _extent(neutral: bytes, pos: int) -> tuple[int | None, int]:
    """Where the value opening at ``pos`` ends (None: never), and its deepest nesting."""
    depth = deepest = 0
    for m in _TOKEN.finditer(neutral, pos):
        c = neutral[m.start()]
        if c == 0x22:  # a whole string: brackets inside it do not count
            continue
        if c in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
            if depth == 0:
                return m.end(), deepest
    return None, deepest


def _rest(body: bytes, pos: int, index: int, problem: Problem, limit: int) -> Part:
    rest = len(body) - pos
    kept = "" if rest <= limit else f"; the first {limit} of its {rest} bytes are kept"
    reason = f"{problem.reason} — the rest of the body from here is not read as events{kept}"
    return Part(body[pos : pos + limit], index, pos, Problem(problem.kind, reason))


_ARRAY_TOKEN = re.compile(rb'"[^"]*"|[\[\]{},]')


def split_json_array(body: bytes, max_event_bytes: int) -> tuple[list[Part], Problem | None]:
    """The elements of a body that is one JSON array (``[{...}, {...}]``), each checked alone.

    Returns the elements, or a problem with the array as a whole (unterminated, too deep to
    find its end, data after it) and no elements."""
    neutral = _neutral(body)
    parts: list[Part] = []
    depth = deepest = 0
    last = body.index(b"[")  # the byte before the current element
    for m in _ARRAY_TOKEN.finditer(neutral, last):
        c = neutral[m.start()]
        if c == 0x22:
            continue
        if c in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth - 1)
            continue
        if c == 0x2C and depth != 1:  # a comma inside an element
            continue
        if c != 0x2C:
            depth -= 1
            if depth:
                continue
        element = body[last + 1 : m.start()]
        if c == 0x2C or element.strip() or parts:
            parts.append(_element(element, len(parts), last + 1, deepest, max_event_bytes))
        deepest = 0
        last = m.start()
        if depth == 0:
            after = body[m.end() :].strip()
            if after:
                why = f"data after the array at byte offset {m.end()}: {after[:20]!r}"
                return [], Problem("malformed", why)
            return parts, None
    if deepest > MAX_JSON_DEPTH:
        return [], too_deep(body)
    return [], Problem("malformed", "the array is not closed (no final ']')")


def _element(data: bytes, index: int, offset: int, depth: int, max_event_bytes: int) -> Part:
    event = data.strip()
    if depth > MAX_JSON_DEPTH:
        return Part(event[:max_event_bytes], index, offset, too_deep(event))
    return Part(event[:max_event_bytes], index, offset, object_problem(event, max_event_bytes))
