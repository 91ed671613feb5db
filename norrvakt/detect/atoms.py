"""Atom tests on one event: what a rule sees of an event, and the tests evaluated one by one.

:class:`EventView` is an event as rules address it (Sigma field names, ECS names, ``message``)
with per-event caches of casefolded values. :func:`string_predicate` is the reference meaning
of the string ops (the RE2 sets of :mod:`norrvakt.detect.runtime` must agree with it, and fall
back to it); :func:`lazy_test` builds the test of any other atom - regex, CIDR, comparisons,
null/exists, field references, timestamp parts, keywords - called only for candidate rules.

Regular expressions and wildcard values are matched by RE2 (:mod:`norrvakt.detect.regex`), in
time linear in the value: a tenant officer's pattern over their own events cannot stall matching.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import datetime
from typing import Any

from norrvakt.detect.derived import DerivedFields
from norrvakt.detect.ir import CI_STRING_OPS, CS_STRING_OPS
from norrvakt.detect.plan import AtomRow
from norrvakt.detect.regex import RegexGroup, fullmatch_test, sigma_regex
from norrvakt.event import ECS_FIELD_SET, Event

LazyTest = Callable[["EventView"], bool]
StrPredicate = Callable[[str], bool]


class EventView:
    """An event as rules see it: field lookup by Sigma name, with per-event caches.

    A name is, in this order: an ECS name (``Event.ecs``), ``message``, a derived field
    (:mod:`norrvakt.detect.derived`, when ``derived`` is given), or a field of the source
    (``Event.fields``).
    """

    __slots__ = ("_derived", "_folded", "_ftext", "_regex", "_text", "derived", "event")

    def __init__(self, event: Event, derived: DerivedFields | None = None) -> None:
        self.event = event
        self.derived = derived
        self._folded: dict[str, str | None] = {}
        self._derived: dict[str, str | None] | None = None
        self._text: str | None = None
        self._ftext: str | None = None
        self._regex: dict[RegexGroup, set[int] | None] | None = None

    def value(self, name: str) -> str | None:
        if name in ECS_FIELD_SET:
            return self.event.ecs.get(name)
        if name == "message":
            return self.event.message
        derived = self.derived
        if derived is not None and name in derived.names:
            cache = self._derived
            if cache is None:
                cache = self._derived = {}
            elif name in cache:
                return cache[name]
            out = cache[name] = derived.value(name, self.event)
            return out
        return self.event.fields.get(name)

    def has(self, name: str) -> bool:
        return self.value(name) is not None

    def folded(self, name: str) -> str | None:
        try:
            return self._folded[name]
        except KeyError:
            value = self.value(name)
            out = self._folded[name] = value.casefold() if value is not None else None
            return out

    def regexes(self, name: str, group: RegexGroup) -> set[int] | None:
        """Which regexes of ``group`` (the ``|re`` values on field ``name``) match its value:
        one pass per event, however many of them its rules test (None: the field is absent, or
        the group answers None - see :meth:`RegexGroup.matching`)."""
        cache = self._regex
        if cache is None:
            cache = self._regex = {}
        elif group in cache:
            return cache[group]
        value = self.value(name)
        out = cache[group] = group.matching(value) if value is not None else None
        return out

    def values(self) -> list[str]:
        """Every value a keyword is searched in: the source's fields and the message."""
        out = list(self.event.fields.values())
        if self.event.message:
            out.append(self.event.message)
        return out

    def text(self) -> str:
        """All values NUL-separated, so that a keyword never spans two values."""
        if self._text is None:
            self._text = "\x00".join(self.values())
        return self._text

    def folded_text(self) -> str:
        if self._ftext is None:
            self._ftext = self.text().casefold()
        return self._ftext


def value_getter(name: str, derived: DerivedFields | None = None) -> Callable[[Event], str | None]:
    """The lookup :meth:`EventView.value` does, resolved once for ``name``."""
    if name in ECS_FIELD_SET:
        return lambda e: e.ecs.get(name)
    if name == "message":
        return lambda e: e.message
    if derived is not None:
        fn = derived.getter(name)
        if fn is not None:
            return fn
    return lambda e: e.fields.get(name)


def is_plain(name: str, derived: DerivedFields | None) -> bool:
    """Whether ``name`` is read from ``Event.fields`` (not ECS, message or a derived field)."""
    return name not in ECS_FIELD_SET and name != "message" and (derived is None or name not in derived.names)


# --- string predicates (reference semantics, also the fallback of the RE2 sets) -------------


def string_predicate(op: str, arg: str) -> StrPredicate:
    """The test of a string op on a value already casefolded (or raw, for ``*_cs``)."""
    base = op.removesuffix("_cs")
    if base == "eq":
        return arg.__eq__
    if base == "prefix":
        return lambda v: v.startswith(arg)
    if base == "suffix":
        return lambda v: v.endswith(arg)
    if base == "contains":
        return lambda v: arg in v
    if base == "glob":
        return fullmatch_test(arg)
    raise ValueError(f"not a string op: {op!r}")


# --- lazy atoms -----------------------------------------------------------------------------


def lazy_test(atom: AtomRow) -> LazyTest:
    """The test of one atom on an event (anything that is not bulk-evaluated)."""
    name, op, arg = atom
    if name is None:
        return _keyword_test(op, arg)
    if op in CI_STRING_OPS:
        pred = string_predicate(op, str(arg))

        def ci(v: EventView) -> bool:
            x = v.folded(name)
            return x is not None and pred(x)

        return ci
    if op in CS_STRING_OPS:
        pred = string_predicate(op, str(arg))

        def cs(v: EventView) -> bool:
            x = v.value(name)
            return x is not None and pred(x)

        return cs
    if op == "re":
        pattern, flags = _pair(arg)
        rx = sigma_regex(str(pattern), int(flags))

        def regex(v: EventView) -> bool:
            x = v.value(name)
            return x is not None and rx.search(x)

        return regex
    if op == "null":
        return lambda v: not v.value(name)
    if op == "exists":
        want = bool(arg)
        return lambda v: v.has(name) is want
    if op == "cidr":
        return _cidr_test(name, str(arg))
    if op == "cmp":
        operator, number = _pair(arg)
        return _compare_test(name, str(operator), float(number))
    if op == "fieldref":
        other, mode = _pair(arg)
        return _fieldref_test(name, str(other), str(mode))
    if op == "time":
        part, number = _pair(arg)
        return _time_test(name, str(part), int(number))
    if op == "tenant":
        members = frozenset(str(t) for t in arg) if isinstance(arg, tuple) else frozenset((str(arg),))
        return lambda v: v.event.tenant in members
    raise ValueError(f"atom {atom!r}: unknown op {op!r}")


def _pair(arg: object) -> tuple[Any, Any]:
    if not isinstance(arg, tuple) or len(arg) != 2:
        raise ValueError(f"expected a pair, got {arg!r}")
    return arg[0], arg[1]


def _keyword_test(op: str, arg: Any) -> LazyTest:
    if op == "contains":
        lit = str(arg)
        return lambda v: lit in v.folded_text()
    if op in CI_STRING_OPS:
        pred = string_predicate(op, str(arg))
        return lambda v: any(pred(x.casefold()) for x in v.values())
    if op in CS_STRING_OPS:
        pred = string_predicate(op, str(arg))
        return lambda v: any(pred(x) for x in v.values())
    if op == "re":
        pattern, flags = _pair(arg)
        rx = sigma_regex(str(pattern), int(flags))
        return lambda v: any(rx.search(x) for x in v.values())
    raise ValueError(f"keyword test with op {op!r} is not supported")


def _cidr_test(name: str, network: str) -> LazyTest:
    net = ipaddress.ip_network(network, strict=False)

    def cidr(v: EventView) -> bool:
        x = v.value(name)
        if not x:
            return False
        try:
            ip = ipaddress.ip_address(x.strip().strip("[]").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None and net.version == 4:
            ip = ip.ipv4_mapped  # ::ffff:10.1.2.3 as Windows logs IPv4 peers on dual-stack sockets
        return ip.version == net.version and ip in net

    return cidr


def parse_number(text: str) -> float | None:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return int(text, 16) if text[:2].lower() == "0x" else float(text)
    except ValueError:
        return None


def _compare_test(name: str, operator: str, number: float) -> LazyTest:
    check: Callable[[float], bool] = {
        "lt": lambda x: x < number,
        "lte": lambda x: x <= number,
        "gt": lambda x: x > number,
        "gte": lambda x: x >= number,
        "neq": lambda x: x != number,
    }[operator]

    def compare(v: EventView) -> bool:
        x = v.value(name)
        n = parse_number(x) if x else None
        return n is not None and check(n)

    return compare


def _fieldref_test(name: str, other: str, mode: str) -> LazyTest:
    def fieldref(v: EventView) -> bool:
        a, b = v.folded(name), v.folded(other)
        if a is None or b is None:
            return False
        if mode == "eq":
            return a == b
        if mode == "prefix":
            return a.startswith(b)
        if mode == "suffix":
            return a.endswith(b)
        return b in a

    return fieldref


def _time_test(name: str, part: str, number: int) -> LazyTest:
    def time_part(v: EventView) -> bool:
        x = v.value(name)
        if not x:
            return False
        try:
            t = datetime.fromisoformat(x.strip().replace(" ", "T", 1))
        except ValueError:
            return False
        got = t.isocalendar().week if part == "week" else getattr(t, part)
        return bool(got == number)

    return time_part
