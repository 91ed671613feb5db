"""The bulk matcher (RE2 sets) agrees with plain Python, also when RE2 gives up."""

from __future__ import annotations

import random

from norrvakt.detect.atoms import string_predicate
from norrvakt.detect.runtime import FieldMatcher


def _atoms(n: int, seed: int) -> list[tuple[int, str, str]]:
    rnd = random.Random(seed)
    ops = ["eq", "prefix", "suffix", "contains", "contains", "contains"]
    out = []
    for i in range(n):
        lit = "".join(rnd.choice("abcÅä\\.-* ") for _ in range(rnd.randint(1, 6))).casefold()
        out.append((i, rnd.choice(ops), lit))
    out.append((n, "glob", "(?s)a.*b"))
    return out


def _expected(atoms: list[tuple[int, str, str]], value: str) -> set[int]:
    folded = value.casefold()
    return {aid for aid, op, arg in atoms if string_predicate(op, arg)(folded)}


def test_set_results_equal_python_results() -> None:
    atoms = _atoms(800, 1)
    matcher = FieldMatcher(atoms)
    rnd = random.Random(2)
    for _ in range(300):
        value = "".join(rnd.choice("abcÅÄä\\.-* \n") for _ in range(rnd.randint(0, 40)))
        out: set[int] = set()
        matcher.match(value, out)
        assert out - {-1} == _expected(atoms, value), value


class _FailingSet:
    """What RE2 returns when its DFA runs out of memory: no matches at all."""

    def Match(self, text: bytes) -> None:  # RE2's method name
        return None


def test_failed_pass_falls_back_to_python() -> None:
    atoms = _atoms(50, 3)
    matcher = FieldMatcher(atoms)
    assert matcher._ci is not None
    matcher._ci._set = _FailingSet()
    value = "abc ä.b\\ab"
    out: set[int] = set()
    matcher.match(value, out)
    assert out == _expected(atoms, value)
    assert out  # the sample value does hit some atoms


def test_cased_atoms_compare_the_raw_value() -> None:
    matcher = FieldMatcher([(1, "contains_cs", "IEX"), (2, "contains", "iex")])
    out: set[int] = set()
    matcher.match("x iex y", out)
    assert out - {-1} == {2}
    out.clear()
    matcher.match("x IEX y", out)
    assert out - {-1} == {1, 2}
