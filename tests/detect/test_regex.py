"""Sigma regexes and wildcard values run in RE2 (norrvakt.detect.regex): linear in the value,
PCRE's meaning where RE2 has it, and a clear reason at load where it has not."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sigma.types import SpecialChars

from norrvakt.detect.atoms import string_predicate
from norrvakt.detect.engine import RuleSet
from norrvakt.detect.regex import MatchInterrupted, interruptible, sigma_regex
from norrvakt.detect.runtime import FieldMatcher
from norrvakt.detect.sigma import glob_regex
from tests.conftest import SHARED_DATA

from .helpers import event, fires, not_loaded_reason, rule_yaml


def _seconds(fn: object, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start


# --- linear time ----------------------------------------------------------------------------


def test_nested_quantifiers_take_linear_time() -> None:
    rules, _ = RuleSet.from_yaml(rule_yaml("sel: {CommandLine|re: '(a+)+$'}\ncondition: sel"))
    almost = event(CommandLine="a" * 100_000 + "!")  # Python's re: 2^100000 steps
    assert _seconds(rules.match, almost) < 0.5
    assert not rules.match(almost)
    assert rules.match(event(CommandLine="a" * 100_000))


def test_a_wildcard_value_with_many_stars_is_linear() -> None:
    stars: list[str | SpecialChars] = [SpecialChars.WILDCARD_MULTI]
    for _ in range(8):
        stars += ["a", SpecialChars.WILDCARD_MULTI]
    pred = string_predicate("glob", glob_regex([*stars, "b"]))  # *a*a*a*a*a*a*a*a*b
    value = "a" * 20_000  # re.fullmatch: O(n^8)
    assert _seconds(pred, value) < 0.5
    assert not pred(value) and pred(value + "b")


class _FailingSet:
    """What RE2 returns when its DFA runs out of memory: no matches at all."""

    def Match(self, text: bytes) -> None:  # RE2's method name
        return None


def test_the_fallback_of_a_failed_set_pass_is_linear_too() -> None:
    hostile = glob_regex([SpecialChars.WILDCARD_MULTI, *["a", SpecialChars.WILDCARD_MULTI] * 8, "b"])
    matcher = FieldMatcher([(1, "glob", hostile), (2, "contains", "aaa")])
    assert matcher._ci is not None
    matcher._ci._set = _FailingSet()
    out: set[int] = set()
    assert _seconds(matcher.match, "a" * 20_000, out) < 0.5
    assert out == {2}


# --- meaning --------------------------------------------------------------------------------


def test_dollar_also_matches_before_a_final_line_break() -> None:
    assert fires("sel: {Data|re: 'end$'}\ncondition: sel", Data="the end\n")  # as PCRE and re do
    assert not fires("sel: {Data|re: 'end$'}\ncondition: sel", Data="the end\nmore")
    assert not fires("sel: {Data|re: 'end\\z'}\ncondition: sel", Data="the end\n")  # \z: the very end


def test_word_classes_are_ascii_but_case_folding_is_unicode() -> None:
    assert not fires("sel: {User|re: '^\\w+$'}\ncondition: sel", User="Åsa")  # PCRE without UCP
    assert fires("sel: {User|re|i: '^åsa$'}\ncondition: sel", User="ÅSA")
    assert fires("sel: {User|re: '^\\p{L}+$'}\ncondition: sel", User="Åsa")  # what to write instead


def test_a_lone_surrogate_in_a_value_is_matched_not_an_error() -> None:
    assert fires("sel: {Data|re: 'abc'}\ncondition: sel", Data="\ud800abc")
    assert fires("sel: {Data: 'x*abc'}\ncondition: sel", Data="x\udc80abc")


@pytest.mark.parametrize(
    ("pattern", "named"),
    [
        ("(?=a)b", "lookahead"),
        ("(?<!a)b", "lookbehind"),
        ("(a)\\1", "backreferences"),
        ("(?P<x>a)(?P=x)", "backreferences"),
        ("(?>a+)b", "atomic groups"),
        ("a++b", "possessive"),
        ("a{2000}", "above 1000"),
    ],
)
def test_what_re2_cannot_run_is_not_loaded_with_the_reason(pattern: str, named: str) -> None:
    reason = not_loaded_reason(f"sel: {{CommandLine|re: '{pattern}'}}\ncondition: sel")
    assert "RE2" in reason and named in reason and pattern in reason, reason


def test_every_regex_of_the_sigmahq_snapshot_runs_in_re2() -> None:
    """The snapshot's rules with ``|re`` all load (none uses lookaround or backreferences)."""
    folder = SHARED_DATA / "sigma" / "rules"
    if not folder.exists():
        pytest.skip("no SigmaHQ snapshot in the shared data")
    files = [p for p in sorted(folder.rglob("*.yml")) if "|re" in p.read_text(encoding="utf-8")]
    assert len(files) > 50
    rules, report = RuleSet.load(files, use_cache=False)
    refused = [e for e in report.not_loaded if "RE2" in e.reason]
    assert refused == [], [(Path(e.path).name, e.reason) for e in refused]
    assert sum(1 for a in rules.plan.atoms if a[1] == "re") > 100


# --- interrupting ---------------------------------------------------------------------------


def test_a_match_in_an_interruptible_block_stops_when_told() -> None:
    rx = sigma_regex("a[ab]{20}c")
    with interruptible(lambda: "time"), pytest.raises(MatchInterrupted) as err:
        rx.search("ab" * 10)
    assert err.value.reason == "time"
    assert rx.search("a" + "b" * 20 + "c")  # outside the block: no check


def test_interrupting_one_thread_leaves_the_others_alone() -> None:
    rx = sigma_regex("x")
    results: list[bool] = []
    with interruptible(lambda: "time"):
        other = threading.Thread(target=lambda: results.append(rx.search("x")))
        other.start()
        other.join()
    assert results == [True]
