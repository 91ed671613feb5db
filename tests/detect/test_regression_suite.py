"""SigmaHQ's own regression suite: each case's rule fires on that case's own EVTX file.

Every case is one test. A case whose rule is not in the SigmaHQ snapshot cannot run and is
skipped with that reason; the N/N summary is printed at the end of the run.
"""

from __future__ import annotations

import pytest

from norrvakt.detect.engine import RuleSet
from norrvakt.parsers import parse_record
from norrvakt.sources.files import read_file
from tests.conftest import shared_data

from .sigma_suite import OUTCOMES, Case, cases, rule_files

CASES = cases()


def test_regression_data_is_present() -> None:
    shared_data("sigma", "regression_data")
    assert len(CASES) >= 190


@pytest.mark.parametrize("case", CASES, ids=[c.name.rsplit("/", 1)[-1] for c in CASES])
def test_rule_fires_on_its_own_file(case: Case) -> None:
    path = rule_files().get(case.rule_id)
    if path is None:
        reason = f"rule {case.rule_id} ({case.rule_title}) is not in the SigmaHQ rules snapshot"
        OUTCOMES.cannot_run.append((case.name, reason))
        pytest.skip(reason)
    rules, report = RuleSet.load([path], use_cache=False)
    if len(rules) != 1:
        reason = f"rule did not load: {[e.reason for e in report.not_loaded]}"
        OUTCOMES.failed.append((case.name, reason))
        pytest.fail(reason)
    hits = 0
    for item in read_file(case.evtx, "regression", "sigma"):
        assert item.error_type is None, item.error
        if rules.match(parse_record(item.record)):
            hits += 1
    if hits == 0:
        OUTCOMES.failed.append((case.name, f"{rules.rules[0].title} did not fire on {case.evtx.name}"))
        pytest.fail(f"{rules.rules[0].title} ({case.rule_id}) did not fire on {case.evtx}")
    OUTCOMES.passed.append(case.name)
    if case.match_count is not None and hits != case.match_count:
        # Checked by hand: in these files more events than the one counted carry the
        # indicator (three AnyDesk user.conf writes, three procdump files, ...).
        OUTCOMES.count_differs.append((case.name, case.match_count, hits))
