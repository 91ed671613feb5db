"""The figures of a municipality's report and of the region report, read from a real journal,
chDB store and state database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from norrvakt.reports.monthly import ReportSources, tenant_figures
from norrvakt.reports.periods import BadPeriod, parse_period
from norrvakt.reports.region import region_figures
from norrvakt.reports.service import UnknownReport, make_report
from norrvakt.reports.wiring import sources_for
from tests.reports.conftest import World, at


def _figures(world: World, tenant: str = "lulea", period: str = "2026-11") -> dict[str, Any]:
    key = (tenant, period)
    if key not in _made:  # one verification per tenant and module, not one per test
        src = sources_for(world.rt)
        _made[key] = tenant_figures(src, tenant, parse_period(period, "Europe/Stockholm"), produced_by="test")
    return _made[key]


_made: dict[tuple[str, str], dict[str, Any]] = {}


def test_events_per_source_with_their_trend(world: World) -> None:
    f = _figures(world)
    ev = f["events"]
    by = {(s["source"], s["dataset"]): s for s in ev["sources"]}
    dc = by[("syslog-tls", "windows.security")]
    assert dc["previous"] == 31 and dc["count"] == sum(4 + d % 3 for d in range(1, 31))
    assert dc["change_pct"] == round(100 * (dc["count"] - 31) / 31, 1)
    assert by[("hec-lulea", "eservice.audit")]["change_pct"] is None  # new: no trend to state
    assert ev["total"] == sum(s["count"] for s in ev["sources"]) and ev["previous_total"] == 31
    assert len(ev["daily"]) == 30 and ev["daily"][0]["day"] == "2026-11-01"
    assert not f["no_data"] and not f["quiet"]


def test_silence_alerts_and_cases(world: World) -> None:
    f = _figures(world)
    (silence,) = f["silences"]
    assert silence["name"] == "lulea-door01" and not silence["ongoing"]
    assert silence["until"] == at(23, 9) + 1000  # the door lock's next record after the alert
    assert silence["duration_s"] == (at(23, 9) + 1000 - (at(21) - 180 * 60_000_000)) // 1_000_000
    assert f["alerts"]["total"] == 4 and f["alerts"]["by_severity"]["critical"] == 1
    assert f["alerts"]["by_tactic"]["credential_access"] == 1 and f["alerts"]["by_tactic"]["impact"] == 1
    assert f["cases"]["total"] == 4 and f["cases"]["false_positive"] == 1
    assert f["cases"]["open_at_end"] == 2  # the ransomware case (acknowledged) and the silence (new)
    sla = {r["severity"]: r for r in f["sla"]}
    assert sla["high"]["mtta_s"] == 600 and sla["high"]["mtta_met"] is True
    assert sla["critical"]["mtta_s"] == 1800 and sla["critical"]["mtta_met"] is False
    rules = {r["rule_id"]: r for r in f["top_rules"]}
    assert rules["win-new-service"]["fp_ratio"] == 1.0 and rules["win-password-spray"]["fp_ratio"] == 0.0
    assert rules["win-shadow-delete"]["fp_ratio"] is None  # not judged yet


def test_nis2_deadlines_met_or_not(world: World) -> None:
    (incident,) = _figures(world)["nis2"]
    verdicts = {r["report"]: r["verdict"] for r in incident["reports"]}
    # early warning after 20 h (met), notification after 80 h (late), final report: due Dec 17
    # early warning after 20 h: met; notification after 80 h: late; final report due a month after it
    assert verdicts == {"early_warning": "met", "notification": "late", "final_report": "pending"}
    assert incident["case_id"] == world.case_ids["ransom"] and not incident["all_met"]


def test_followup_and_integrity(world: World) -> None:
    f = _figures(world)
    assert f["followup"] == {"drawn": 1, "reviewed": 3, "signed_off": 1, "open": 0, "plans": 1}
    ig = f["integrity"]
    v = ig["verification"]
    assert v["ok"] and v["records"] >= 200 and v["findings"] == []
    assert ig["checkpoints"] == 0 and ig["alerts"] == [] and ig["ok"]  # checkpoints were signed in December


def test_checkpoints_of_a_period_and_their_witness(world: World) -> None:
    """The checkpoints signed (today) counted for the month they fall in, and the witness holds them."""
    base = sources_for(world.rt)
    later = int(dt.datetime(2027, 2, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000
    src = ReportSources(
        base.store, base.state, base.settings, base.journal_dir, base.witnesses, None, lambda: later
    )
    label = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    ig = tenant_figures(src, "lulea", parse_period(label, "Europe/Stockholm"), produced_by="t")["integrity"]
    assert ig["checkpoints"] >= 1 and ig["witnesses"][0]["witnessed"] == ig["checkpoints"]
    assert ig["verification"] is None and ig["last_checkpoint"]["size"] >= 200


def test_a_tenant_with_nothing_is_a_report_of_no_data_and_no_incidents(world: World) -> None:
    f = _figures(world, "boden")
    assert f["no_data"] and f["quiet"] and f["events"]["sources"] == [] and f["alerts"]["total"] == 0
    assert f["integrity"]["verification"]["ok"]


def test_region_side_by_side_and_shared_indicators(world: World) -> None:
    src = sources_for(world.rt)
    r = region_figures(src, ["lulea", "boden"], parse_period("2026-11", "Europe/Stockholm"), produced_by="t")
    rows = {x["tenant"]: x for x in r["rows"]}
    assert rows["lulea"]["alerts"] == 4 and rows["boden"]["events"] == 0 and rows["lulea"]["significant"] == 1
    assert rows["lulea"]["sla_severity"] == "critical" and rows["lulea"]["mtta_met"] is False
    assert r["trend"]["events_previous"] == 31 and not r["quiet"]
    assert r["indicators"] == []  # 185.220.101.7 was seen by Luleå only


def test_bad_periods_are_refused_before_anything_is_read(world: World) -> None:
    src = sources_for(world.rt)
    for label, why in (
        ("2026-13", "a month like 2026-11"),
        ("november", "a month like 2026-11"),
        ("2026-W54", "has no ISO week 54"),
        ("2099-01", "has not ended yet"),
    ):
        with pytest.raises(BadPeriod, match=why):
            make_report(src, "lulea", label, None, produced_by="t", pdf=False)
    with pytest.raises(UnknownReport, match="'stockholm': not a configured tenant"):
        make_report(src, "stockholm", "2026-11", None, produced_by="t", pdf=False)
    with pytest.raises(BadPeriod, match="language 'de'"):
        make_report(src, "lulea", "2026-11", "de", produced_by="t", pdf=False)
