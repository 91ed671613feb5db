"""Prints the SigmaHQ regression result (N/N and every case that cannot pass, with why)."""

from __future__ import annotations

from typing import Any

from .sigma_suite import OUTCOMES, rule_folders


def pytest_terminal_summary(terminalreporter: Any) -> None:
    o = OUTCOMES
    ran = len(o.passed) + len(o.failed)
    if not ran and not o.cannot_run:
        return
    write = terminalreporter.write_line
    terminalreporter.section("SigmaHQ regression suite")
    write(f"{len(o.passed)}/{ran} cases fire the rule named in their info.yml on their own EVTX file")
    for name, reason in o.failed:
        write(f"  FAILED {name}: {reason}")
    if o.cannot_run:
        write(f"{len(o.cannot_run)} cases cannot run (rule folders present: {', '.join(rule_folders())}):")
        for name, reason in o.cannot_run:
            write(f"  {name}: {reason}")
    if o.count_differs:
        write(f"{len(o.count_differs)} cases pass with another number of matching events than match_count:")
        for name, expected, got in o.count_differs:
            write(f"  {name}: match_count {expected}, {got} events of the file match the rule")
