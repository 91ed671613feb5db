"""The matcher's fast paths give the answers of the plain ones (issue #12, `norrvakt hunt` on
every core): the memo of field values (norrvakt.detect.runtime.Memo), the direct RE2 call of
regexes and wildcard values and the regexes of a field as one set (norrvakt.detect.regex), on
random values and on the SigmaHQ Windows rules over every evtx-attack-samples record."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from norrvakt.detect import runtime
from norrvakt.detect.atoms import lazy_test, string_predicate
from norrvakt.detect.engine import RuleSet
from norrvakt.detect.plan import KEYWORDS
from norrvakt.detect.regex import (
    GROUP_MAX_CHARS,
    RegexGroup,
    SigmaRegex,
    _compile,
    _finder,
    fullmatch_test,
    interruptible,
)
from norrvakt.detect.runtime import MEMO_VALUE_CHARS, FieldMatcher, Memo
from norrvakt.event import Event
from norrvakt.parsers import parse_record
from norrvakt.sources.files import read_file
from tests.conftest import shared_data

ALPHABET = "abcÅÄä\\.-* \n"


def _atoms(n: int, seed: int) -> list[tuple[int, str, str]]:
    rnd = random.Random(seed)
    ops = ["eq", "prefix", "suffix", "contains", "contains", "contains_cs", "eq_cs"]
    out = []
    for i in range(n):
        lit = "".join(rnd.choice("abcÅä\\.-* ") for _ in range(rnd.randint(1, 6)))
        op = rnd.choice(ops)
        out.append((i, op, lit if op.endswith("_cs") else lit.casefold()))
    out.append((n, "glob", "(?s)a.*b"))
    return out


def _expected(atoms: list[tuple[int, str, str]], value: str) -> set[int]:
    folded = value.casefold()
    return {
        aid for aid, op, arg in atoms if string_predicate(op, arg)(value if op.endswith("_cs") else folded)
    }


def test_a_remembered_value_hits_what_a_pass_over_it_hits() -> None:
    atoms = _atoms(400, 1)
    matcher = FieldMatcher(atoms)
    rnd = random.Random(2)
    values = ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 30))) for _ in range(60)]
    values += ["ab" * (MEMO_VALUE_CHARS // 2 + 1), "a" + "c" * MEMO_VALUE_CHARS + "b"]  # not remembered
    for _ in range(3):  # the first round fills the memo, the others answer from it
        for value in rnd.sample(values, len(values)):
            out: set[int] = {-7}  # hits are added to what is there
            matcher.match(value, out)
            assert out - {-1} == _expected(atoms, value) | {-7}, value  # -1: RE2's sentinel


def test_the_memo_of_all_matchers_stays_within_its_bound() -> None:
    memo = Memo(limit=50)
    atoms = _atoms(100, 3)
    first, second = FieldMatcher(atoms[:50], memo), FieldMatcher(atoms[50:], memo)
    rnd = random.Random(4)
    for i in range(500):
        value = f"{i} " + "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 12)))
        for matcher, part in ((first, atoms[:50]), (second, atoms[50:])):
            out: set[int] = set()
            matcher.match(value, out)
            assert out - {-1} == _expected(part, value)
            assert memo.entries <= 50
            assert len(first._seen) + len(second._seen) == memo.entries


# --- the SigmaHQ Windows rules over the samples -------------------------------------------------


@pytest.fixture(scope="module")
def cache(rule_cache: Path) -> Path:
    return rule_cache


@pytest.fixture(scope="module")
def sigmahq(cache: Path) -> tuple[RuleSet, list[Event]]:
    rules_dir = shared_data("sigma", "rules", "windows")
    samples = sorted(shared_data("evtx-attack-samples").rglob("*.evtx"))
    rules, _ = RuleSet.load([rules_dir], cache_dir=cache)
    events = [
        parse_record(item.record)
        for path in samples
        for item in read_file(path, "hunt", "hunt")
        if item.error_type is None
    ]
    return rules, events


def test_the_samples_meet_the_same_rules_with_the_memo_full_and_empty(
    sigmahq: tuple[RuleSet, list[Event]],
) -> None:
    rules, events = sigmahq
    memo = rules._memo
    plain = []
    for event in events:  # as without a memo: every value passes through RE2
        memo.clear()
        plain.append(rules.matching_rules(event))
    assert memo.entries  # it was in use
    remembered = [rules.matching_rules(event) for event in events]  # most values from the memo
    assert remembered == plain
    assert not rules._matchers[KEYWORDS]._seen  # an event's whole text: not worth remembering
    assert sum(map(bool, plain)) > 500  # the samples do hit


def _values(events: list[Event]) -> list[str]:
    """Distinct field values of the samples, with the shapes regexes treat specially."""
    seen = sorted({v for e in events for v in e.fields.values()})
    rnd = random.Random(5)
    picked = rnd.sample(seen, min(1500, len(seen)))
    return picked + [v + "\n" for v in picked[:200]] + ["", "\n", "\ud800abc", "x\udc80y"]


def test_regexes_answer_as_re2s_public_search(sigmahq: tuple[RuleSet, list[Event]]) -> None:
    rules, events = sigmahq
    patterns = sorted({a[2] for a in rules.plan.atoms if a[1] == "re" and isinstance(a[2], tuple)})
    assert len(patterns) > 100
    values = _values(events)
    hits = 0
    for pattern, flags in patterns:
        rx = SigmaRegex(str(pattern), int(flags))
        public = rx._rx
        for value in values:
            data = value.encode("utf-8", "surrogatepass")
            want = public.search(data) is not None or (
                rx._tail and data.endswith(b"\n") and public.search(data[:-1]) is not None
            )
            assert rx.search(value) is want, (pattern, value)
            hits += want
    assert hits > 100


def test_wildcard_values_answer_as_re2s_public_fullmatch(sigmahq: tuple[RuleSet, list[Event]]) -> None:
    rules, events = sigmahq
    globs = sorted({str(a[2]) for a in rules.plan.atoms if a[1] in ("glob", "glob_cs")})
    assert len(globs) > 50
    values = _values(events)
    hits = 0
    for pattern in globs[:300]:
        test, public = fullmatch_test(pattern), _compile(pattern, pattern)
        for value in values:
            want = public.fullmatch(value.encode("utf-8", "surrogatepass")) is not None
            assert test(value) is want, (pattern, value)
            hits += want
    assert hits > 0


def test_without_the_low_level_call_the_public_one_answers() -> None:
    """What a google-re2 release without the compiled pattern's Match would run."""

    class Public:  # the public API only
        def __init__(self, rx: Any) -> None:
            self.search, self.fullmatch = rx.search, rx.fullmatch

    public: Any = Public(_compile("a.c", "a.c"))
    anywhere, whole = _finder(public, whole=False), _finder(public, whole=True)
    assert anywhere(b"xabcx") and not anywhere(b"ab")
    assert whole(b"abc") and not whole(b"xabc")


# --- the regexes of a field as one set ------------------------------------------------------


class _FailingSet:
    """What RE2 returns when its DFA runs out of memory: no matches at all."""

    def Match(self, text: bytes) -> None:  # RE2's method name
        return None


def _groups(rules: RuleSet) -> dict[str, list[SigmaRegex]]:
    out: dict[str, list[SigmaRegex]] = {}
    for name, op, arg in rules.plan.atoms:
        if name is not None and op == "re" and isinstance(arg, tuple):
            out.setdefault(name, []).append(SigmaRegex(str(arg[0]), int(arg[1])))
    return out


def test_a_group_of_regexes_matches_as_each_one_alone(sigmahq: tuple[RuleSet, list[Event]]) -> None:
    rules, events = sigmahq
    groups = _groups(rules)
    assert len(groups["CommandLine"]) > 40
    hits = 0
    for name, regexes in groups.items():
        group, failing = RegexGroup(regexes), RegexGroup(regexes)
        failing._set = _FailingSet()  # every pass fails: regex by regex
        seen = sorted({e.fields[name] for e in events if name in e.fields})[:400]
        values = seen + [v + "\n" for v in seen[:100]] + ["", "\n", "\ud800abc", "x\udc80y\n"]
        for value in values:
            want = {i for i, rx in enumerate(regexes) if rx.search(value)}
            assert group.matching(value) == want, (name, value)
            assert failing.matching(value) is None  # each regex on its own then
            hits += bool(want)
    assert hits > 50


def test_pcre_dollar_before_a_final_line_break_in_a_group() -> None:
    regexes = [SigmaRegex("end$"), SigmaRegex("end\\z"), SigmaRegex("^the")]
    group = RegexGroup(regexes)
    assert group.matching("the end\n") == {0, 2}
    assert group.matching("the end") == {0, 1, 2}
    assert group.matching("the end\nmore") == {2}


def test_the_samples_meet_the_same_rules_with_regexes_one_by_one(
    sigmahq: tuple[RuleSet, list[Event]], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, events = sigmahq
    grouped = [rules.matching_rules(event) for event in events]
    monkeypatch.setattr(
        runtime.TestBuilder, "_regex_test", lambda self, name, number: lazy_test(self._atoms[number])
    )
    alone, _ = RuleSet.load([shared_data("sigma", "rules", "windows")], cache_dir=cache)
    assert [alone.matching_rules(event) for event in events] == grouped
    assert not alone._builder._groups and rules._builder._groups  # each ran its own way


def test_a_long_value_or_a_stop_to_obey_leaves_each_regex_on_its_own() -> None:
    group = RegexGroup([SigmaRegex("a[ab]{20}c"), SigmaRegex("x")])
    assert group.matching("a" + "b" * 20 + "c x") == {0, 1}
    assert group.matching("x" * (GROUP_MAX_CHARS + 1)) is None
    with interruptible(lambda: ""):
        assert group.matching("x") is None
