"""The m365 parser beyond its golden cases (tests/samples/m365): records exactly as the pull
connector hands them over, every original field kept, aliases that never overwrite, the
tenant from the record only, and plain JSON that is not Microsoft's left alone."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import yaml

from norrvakt.event import RawRecord
from norrvakt.parsers import parse_record
from norrvakt.parsers.base import flatten_json
from norrvakt.parsers.m365 import FEEDS
from tests.parsers.golden import SAMPLES, check_invariants

CASES: list[dict[str, Any]] = [
    case
    for path in sorted((SAMPLES / "m365").glob("*.yml"))
    for case in yaml.safe_load(path.read_text(encoding="utf-8"))
    if case.get("expect", {}).get("kind", "event") == "event"
]


def connector_record(feed: str, doc: dict[str, Any], tenant: str = "kiruna") -> RawRecord:
    """What norrvakt/sources/m365 yields for one record of ``feed``."""
    return RawRecord(
        tenant=tenant,
        source_id=f"m365-{tenant}",
        received_at=1_795_729_500_000_000,
        peer=f"m365:{feed}",
        payload=orjson.dumps(doc),
        format="m365",
        hints={"m365.feed": feed},
    )


def test_every_feed_has_a_golden_case() -> None:
    fed = {c["hints"]["m365.feed"] for c in CASES if c.get("hints")}
    assert fed == set(FEEDS)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_original_field_is_kept_by_its_own_name(case: dict[str, Any]) -> None:
    payload = str(case["payload"]).encode("utf-8")
    doc = orjson.loads(payload)
    inner = doc.get("event", doc) if case["format"] == "hec" else doc
    original: dict[str, str] = {}
    flatten_json(inner, "", original)
    record = RawRecord("lulea", "s", 1, "p", payload, case["format"], hints=case.get("hints"))
    event = parse_record(record)
    check_invariants(record, event)
    assert {k: event.fields.get(k) for k in original} == original


def test_connector_record_keeps_tenant_source_and_peer() -> None:
    doc = {
        "createdDateTime": "2026-11-26T21:00:00Z",
        "userPrincipalName": "anna@kiruna.se",
        "appId": "a",
        "status": {"errorCode": 0},
        "tenantId": "9d8c7b6a-0000-4e5f-8a9b-0c1d2e3f4a5b",  # Microsoft's tenant: a field, never ours
    }
    event = parse_record(connector_record("graph.signIns", doc))
    assert (event.tenant, event.source, event.peer) == ("kiruna", "m365-kiruna", "m365:graph.signIns")
    assert event.fields["tenantId"] == "9d8c7b6a-0000-4e5f-8a9b-0c1d2e3f4a5b"
    assert event.ecs["event.dataset"] == "azure.signinlogs"


def test_an_alias_never_overwrites_a_field_the_record_has() -> None:
    doc = {
        "createdDateTime": "2026-11-26T21:00:00Z",
        "userPrincipalName": "anna@kiruna.se",
        "appId": "a",
        "status": {"errorCode": 50126},
        "ResultType": "as the record says",
    }
    event = parse_record(connector_record("graph.signIns", doc))
    assert event.fields["ResultType"] == "as the record says"
    assert event.ecs["event.outcome"] == "failure"


def test_the_hint_decides_over_the_shape() -> None:
    # a Management API record delivered on a Graph feed is parsed as that feed says: its
    # missing createdDateTime is the error, naming the feed
    doc = {"CreationTime": "2026-11-26T21:00:00", "Workload": "Exchange", "Operation": "Set-Mailbox"}
    event = parse_record(connector_record("graph.signIns", doc))
    assert event.kind == "pipeline_error"
    assert event.ecs["error.type"] == "m365.missing_time"
    assert "feed graph.signIns" in event.ecs["error.message"]
    assert event.ecs["error.message"].startswith("m365-kiruna: ")


@pytest.mark.parametrize(
    "doc",
    [
        {"time": "2026-11-26T21:00:00Z", "message": "hello", "category": "x"},
        {"createdDateTime": "2026-11-26T21:00:00Z", "title": "a blog post"},
        {"activityDateTime": "2026-11-26T21:00:00Z", "activityType": "run"},
        {"CreationTime": "2026-11-26T21:00:00", "Operation": "x"},
    ],
)
def test_json_that_only_looks_a_little_like_microsofts_stays_plain_json(doc: dict[str, Any]) -> None:
    event = parse_record(RawRecord("lulea", "s", 1, "p", orjson.dumps(doc), "json"))
    assert event.kind == "event"
    assert "event.dataset" not in event.ecs


@pytest.mark.parametrize(
    ("value", "ip"),
    [
        ("81.2.69.160", "81.2.69.160"),
        ("81.2.69.160:50123", "81.2.69.160"),
        ("[2001:db8::5]:443", "2001:db8::5"),
        ("2001:db8::5", "2001:db8::5"),
        ("<null>", None),
        ("", None),
    ],
)
def test_client_ip_with_or_without_a_port(value: str, ip: str | None) -> None:
    doc = {"CreationTime": "2026-11-26T21:00:00", "Workload": "Exchange", "Operation": "x", "ClientIP": value}
    event = parse_record(connector_record("Audit.Exchange", doc))
    assert event.ecs.get("source.ip") == ip
    assert event.fields["ClientIP"] == value
