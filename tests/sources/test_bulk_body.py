"""The ``_bulk`` body reader (sources/bulk_body.py), which runs in a parse worker or the node."""

from __future__ import annotations

import orjson

from norrvakt.event import RawRecord
from norrvakt.node import wire
from norrvakt.sources.bulk_body import parse_bulk_body, plan_of, plan_row

TEMPLATE = RawRecord("lulea", "beats", 1_700_000_000_000_000, "10.0.0.9:5044", b"", "json", "UTC")


def _body(*lines: object) -> bytes:
    return b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines) + b"\n"


def test_every_kind_of_action_gets_its_item_in_body_order() -> None:
    doc = {"@timestamp": "2026-12-02T03:00:00Z", "message": "hello", "winlog": {"event_id": "4624"}}
    body = _body(
        {"create": {"_index": "winlogbeat-8"}},
        doc,
        b"{not json",
        {"index": {}},
        b"[1, 2]",
        {"update": {"_id": "1"}},
        {"doc": {"a": 1}},
        {"delete": {"_id": "2"}},
        {"create": {}},
    )
    plan, events = parse_bulk_body(body, 65536, "fallback-index", TEMPLATE)
    ops = [next(iter(item)) for item in plan.items]
    assert ops == ["create", "index", "index", "update", "delete", "create"]
    assert plan.items[0]["create"] == {"_index": "winlogbeat-8", "record": 0}
    assert plan.items[2]["index"]["_index"] == "fallback-index"  # the URL's index
    assert [p.error_type for p in plan.problems] == [
        "bulk.bad_action",
        "bulk.bad_document",
        "bulk.unsupported_action",
        "bulk.unsupported_action",
        "bulk.missing_document",
    ]
    assert plan.problems[0].reason.startswith("_bulk line 3: ")  # names the line
    assert plan.problems[1].reason == "_bulk line 5: document is not a JSON object"
    assert len(events) == 1 and events[0].tenant == "lulea" and events[0].source == "beats"
    assert events[0].ingested == TEMPLATE.received_at


def test_the_worker_hand_off_gives_the_same_plan_and_events() -> None:
    body = _body({"create": {"_index": "a"}}, {"message": "one"}, {"index": {}}, {"message": "two"}, b"oops")
    plan, events = parse_bulk_body(body, 65536, None, TEMPLATE)
    # what a worker sends and the node reads back
    framed = wire.frame(wire.BULK_PARSED, 7, [[wire.event_row(e) for e in events], plan_row(plan), 0.0])
    _kind, _job, (rows, plan_back, _cpu) = wire.unframe(framed[wire.HEADER.size :])
    back = plan_of(plan_back)
    assert back.items == plan.items and back.problems == plan.problems and back.lines == plan.lines
    assert [wire.event_of(r) for r in rows] == events
