"""Sigma ``|re`` patterns and wildcard values, matched by RE2: time linear in the value.

    rx = sigma_regex(r"net\\s+user", re.IGNORECASE)   # RegexError with the reason if RE2 cannot
    rx.search("cmd /c NET  USER x")                    # True

Python's ``re`` backtracks. ``(a+)+$`` doubles its time with every character of a value that
almost matches (8.9 s at 28 characters) and holds the GIL all the while, so one tenant officer's
rule test froze every acknowledgement, the console and ``/api/health``, and SIGTERM waited for
it. RE2 runs every pattern it accepts in time linear in the value, and lets go of the GIL while
it matches. What it does not accept - backreferences, lookahead and lookbehind, atomic groups,
possessive quantifiers, conditionals, ``\\Z``, repetition counts above 1000 - is refused when the
rule is loaded, with the reason (:class:`RegexError`); nothing falls back to a backtracking
engine.

The meaning is PCRE's (the flavour Sigma rules are written in), as far as RE2 has it:

- flags ``i`` ``m`` ``s`` are RE2's ``(?i)`` ``(?m)`` ``(?s)`` (``i`` folds case in Unicode);
- ``$`` without ``m`` also matches before a line break that ends the value, as in PCRE and
  Python (RE2 alone would match only at the very end);
- ``\\w`` ``\\d`` ``\\s`` ``\\b`` are ASCII classes, as in PCRE without UCP (``re`` made them
  Unicode: ``å`` is no ``\\w`` here, but ``(?i)å`` matches ``Å``).

Linear is not instant: forty patterns that keep RE2's DFA from settling (``a[ab]{20}c`` over
random a/b text) take ~3 ms each per 4 KB value. A rule test therefore matches inside
:func:`interruptible`: every RE2 call first asks whether the test must stop, and raises
:class:`MatchInterrupted` if so, so a stop waits for one call on one value at most.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import re2  # google-re2

# Program and DFA memory per pattern. RE2 takes memory only as the DFA grows; when a value
# exhausts it RE2 finishes the match with its NFA - slower, still linear.
MAX_MEM = 16 << 20

# Python re's flag values: the compiled form stores them (norrvakt.detect.ir, op "re").
IGNORECASE = re.IGNORECASE.value
MULTILINE = re.MULTILINE.value
DOTALL = re.DOTALL.value
_INLINE = ((IGNORECASE, "i"), (MULTILINE, "m"), (DOTALL, "s"))


class RegexError(ValueError):
    """A pattern RE2 cannot run; the message says what in it and why."""


class MatchInterrupted(Exception):
    """Matching in this thread was told to stop (:func:`interruptible`); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_local = threading.local()
# How many interruptible blocks are open, in all threads: while none is (a hunt, live
# detection), a match skips the thread-local look-up (~0.3 µs, several matches per event).
_open_blocks = 0
_blocks_lock = threading.Lock()


@contextmanager
def interruptible(stop: Callable[[], str]) -> Iterator[None]:
    """Within the block, every RE2 match in this thread first calls ``stop()``; a non-empty
    answer (the reason) raises :class:`MatchInterrupted`. Other threads are not affected."""
    global _open_blocks
    outer = getattr(_local, "stop", None)
    _local.stop = stop
    with _blocks_lock:
        _open_blocks += 1
    try:
        yield
    finally:
        with _blocks_lock:
            _open_blocks -= 1
        _local.stop = outer


def _poll() -> None:
    stop = getattr(_local, "stop", None)
    if stop is not None:
        why = stop()
        if why:
            raise MatchInterrupted(why)


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_MEM
    options.log_errors = False  # the reason goes into the load report, not to stderr
    options.never_capture = True  # a yes/no answer needs no groups, and the DFA alone gives it
    return options


_OPTIONS = _options()
_CHECK_OPTIONS = _options()
_CHECK_OPTIONS.never_capture = False


def utf8(text: str) -> bytes:
    """What RE2 reads: UTF-8. Lone surrogates (JSON ``"\\ud800"``) are kept, not an error."""
    return text.encode("utf-8", "surrogatepass")


# re2's search() wraps each call in a generator and a match object with its spans decoded
# (~1.5 µs); a yes/no answer needs only the compiled pattern's own Match (~0.7 µs), which answers
# the spans of the leftmost match, ``(-1, -1)`` first for none. The public search() is the
# fallback should a google-re2 release not have it (tests/detect/test_regex.py compares both).
_Anchor = getattr(re2, "_Anchor", None)
_NO_MATCH = (-1, -1)


def _finder(rx: re2._Regexp, whole: bool) -> Callable[[bytes], bool]:
    """Whether ``rx`` matches a UTF-8 value: anywhere in it, or (``whole``) all of it."""
    low = getattr(getattr(rx, "_regexp", None), "Match", None)
    if low is None or _Anchor is None:
        public = rx.fullmatch if whole else rx.search
        return lambda data: public(data) is not None
    anchor = _Anchor.ANCHOR_BOTH if whole else _Anchor.UNANCHORED
    return lambda data: bool(low(anchor, data, 0, len(data))[0] != _NO_MATCH)


class SigmaRegex:
    """A compiled ``|re`` value: :meth:`search` says whether it matches anywhere in a value."""

    __slots__ = ("_found", "_rx", "_tail", "pattern", "source")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.source = _with_flags(pattern, flags)  # what RE2 compiles
        self._rx = _compile(self.source, pattern)
        self._found = _finder(self._rx, whole=False)
        # PCRE's `$` also matches before a final "\n": search the value without it as well.
        # Exact for every pattern without \z (which would then match before that "\n" too).
        self._tail = "$" in pattern and "\\z" not in pattern

    def search(self, text: str) -> bool:
        if _open_blocks:
            _poll()
        data = text.encode("utf-8", "surrogatepass")  # utf8(), inline: called per value
        if self._found(data):
            return True
        return self._tail and data.endswith(b"\n") and self._found(data[:-1])


# DFA memory of a group's set (taken only as states are built, as for the bulk atom sets).
GROUP_MAX_MEM = 64 << 20
# Longer values, and every value inside an interruptible block, are searched regex by regex: on
# a long value made to keep the DFA from settling, one set pass can take longer than all of its
# regexes one by one (6 s against 2.6 s for 20 patterns ``a[ab]{20+}c`` over 1 MB of random a/b
# text), and a stop must wait for one regex on one value at most, not for all of them at once.
GROUP_MAX_CHARS = 4096


class RegexGroup:
    """The ``|re`` values of many rules on one field as one RE2 set: :meth:`matching` says
    which of them match a value (indexes into ``regexes``), in one pass instead of one search
    each (the SigmaHQ Windows rules test ~50 regexes on every ``CommandLine`` of a process
    creation: ~25 µs one by one, ~3 µs as a set).

    The same answer as :meth:`SigmaRegex.search` of each: a regex the set cannot take is searched
    on its own, and PCRE's ``$`` before a final line break gets its second search. For a value
    over :data:`GROUP_MAX_CHARS`, inside :func:`interruptible`, or when the pass failed (the
    set's DFA out of memory: RE2 then reports no match, not even the sentinel that matches
    everything), :meth:`matching` answers None: each regex a rule needs is searched on its own.
    """

    __slots__ = ("_alone", "_ids", "_set", "_tails", "regexes")

    def __init__(self, regexes: list[SigmaRegex]) -> None:
        self.regexes = regexes
        self._alone: list[int] = []  # what the set cannot take
        self._ids = [-1]  # set index -> regex index; 0: the sentinel
        options = re2.Options()
        options.max_mem = GROUP_MAX_MEM
        options.log_errors = False
        self._set: Any = re2.Set.SearchSet(options)
        self._set.Add("$")
        for number, rx in enumerate(regexes):
            try:
                self._set.Add(rx.source)
            except re2.error:
                self._alone.append(number)
                continue
            self._ids.append(number)
        try:
            self._set.Compile()
        except re2.error:
            self._set = None
        self._tails = [i for i, rx in enumerate(regexes) if rx._tail]

    def matching(self, text: str) -> set[int] | None:
        """None: search each regex on its own (a long value, a stop to obey, a failed pass)."""
        if _open_blocks or len(text) > GROUP_MAX_CHARS or self._set is None:
            return None
        data = text.encode("utf-8", "surrogatepass")
        hits = self._set.Match(data)
        if not hits:  # a failed pass
            return None
        out = set(map(self._ids.__getitem__, hits))
        out.discard(-1)
        for i in self._alone:
            if self.regexes[i].search(text):
                out.add(i)
        if self._tails and data.endswith(b"\n"):  # as SigmaRegex.search: the value without it
            head = data[:-1]
            for i in self._tails:
                if i not in out and self.regexes[i]._found(head):
                    out.add(i)
        return out


def sigma_regex(pattern: str, flags: int = 0) -> SigmaRegex:
    """``pattern`` with Python ``re`` flags (i, m, s) compiled for RE2; :class:`RegexError`."""
    return SigmaRegex(pattern, flags)


def fullmatch_test(pattern: str) -> Callable[[str], bool]:
    """Whether a whole value matches ``pattern`` (a wildcard value made into a regex by
    :func:`norrvakt.detect.sigma.glob_regex`). ``re`` would take O(n^k) on ``*a*a*…*b``."""
    found = _finder(_compile(pattern, pattern), whole=True)

    def test(value: str) -> bool:
        if _open_blocks:
            _poll()
        return found(value.encode("utf-8", "surrogatepass"))

    return test


def checked(pattern: str, flags: int = 0) -> re2._Regexp:
    """``pattern`` compiled as :class:`SigmaRegex` would compile it, but with groups: what
    pySigma's own checks get (:data:`norrvakt.detect.sigma.POLICY`), so that it refuses exactly
    the patterns the matcher refuses, with the same reason, and RE2 writes nothing to stderr."""
    return _compile(_with_flags(pattern, flags), pattern, _CHECK_OPTIONS)


def _with_flags(pattern: str, flags: int) -> str:
    """``pattern`` with Python ``re`` flags (i, m, s) as RE2's inline ``(?ims)``."""
    prefix = "".join(letter for bit, letter in _INLINE if flags & bit)
    return f"(?{prefix}){pattern}" if prefix else pattern


def _compile(source: str, shown: str, options: re2.Options = _OPTIONS) -> re2._Regexp:
    try:
        return re2.compile(source, options)
    except re2.error as exc:
        raise RegexError(explain(shown, exc)) from None


# What RE2 refuses, as a reader of the rule would name it.
_WHY = (
    (re.compile(r"\(\?<?[=!]"), "lookahead and lookbehind ((?=, (?!, (?<=, (?<!) are not supported"),
    (re.compile(r"\\[1-9]|\\k[<{']|\(\?P="), "backreferences (\\1, \\k<name>, (?P=name)) are not supported"),
    (re.compile(r"\(\?>"), "atomic groups ((?>…)) are not supported"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers (*+, ++, ?+) are not supported"),
    (re.compile(r"\(\?\("), "conditionals ((?(…)…)) are not supported"),
    (re.compile(r"\\Z"), "\\Z is not supported: write $ (or \\z for the very end)"),
    (
        re.compile(r"\\u[0-9a-fA-F]{4}"),
        "\\u followed by four hex digits is not supported: write \\x{…} with the same digits",
    ),
    (re.compile(r"\(\?[a-zA-Z-]*x"), "the x (verbose) flag is not supported"),
    (re.compile(r"\{\d{4,}"), "repetition counts above 1000 are not supported"),
)


def explain(pattern: str, exc: Exception) -> str:
    """Why RE2 refuses ``pattern``: RE2's own message, and what in the pattern causes it."""
    raw = exc.args[0] if exc.args else type(exc).__name__
    message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if "pattern too large" in message:
        message += f" (it needs more than {MAX_MEM >> 20} MiB: nested or large repetition counts)"
    hints = [why for rx, why in _WHY if rx.search(pattern)]
    text = f"RE2 (linear-time matching) cannot run it: {message}"
    return f"{text}; {'; '.join(hints)}" if hints else text
