"""Grouping: alerts on the same entity within the window are one case."""

from __future__ import annotations

from norrvakt.alerts.service import AlertService
from tests.alerts.conftest import MIN, T0, spray_input


def test_a_new_alert_opens_a_case_named_after_rule_and_entity(service: AlertService) -> None:
    (alert,) = service.ingest([spray_input()])
    assert alert.case_id is not None


def test_alerts_of_other_rules_on_the_same_source_ip_join_that_case(service: AlertService) -> None:
    (spray,) = service.ingest([spray_input()])
    (brute,) = service.ingest(
        [
            spray_input(
                rule_id="ssh-brute-force",
                rule_title="SSH brute force",
                entities={"source.ip": "185.220.101.7"},
            )
        ]
    )
    assert brute.id != spray.id and brute.case_id == spray.case_id


def test_same_entity_outside_the_window_or_in_another_tenant_is_another_case(service: AlertService) -> None:
    (spray,) = service.ingest([spray_input(event_ts=T0)])
    (late,) = service.ingest(
        [spray_input(rule_id="other", event_ts=T0 + 2 * 60 * MIN, entities={"source.ip": "185.220.101.7"})]
    )
    (boden,) = service.ingest([spray_input(tenant="boden")])
    assert late.case_id != spray.case_id
    assert boden.case_id not in {spray.case_id, late.case_id}


def test_unrelated_alerts_are_separate_cases(service: AlertService) -> None:
    out = service.ingest(
        [
            spray_input(ip="185.220.101.7", entities={"source.ip": "185.220.101.7"}),
            spray_input(ip="45.155.205.1", entities={"source.ip": "45.155.205.1"}),
        ]
    )
    assert len({a.case_id for a in out}) == 2
