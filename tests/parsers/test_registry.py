"""The parser registry: dispatch by format, plugins, recognizer order, and the never-raise rule."""

from __future__ import annotations

import pytest

from norrvakt.event import Event, RawRecord
from norrvakt.parsers import ParseError, ParserRegistry, parse_record, registry
from norrvakt.parsers.base import new_event


def _record(payload: bytes, fmt: str = "syslog", hints: dict[str, str] | None = None) -> RawRecord:
    return RawRecord("pitea", "src-1", 1_795_729_500_000_000, "10.0.0.9:514", payload, fmt, "UTC", hints)


def test_builtins_are_registered_like_plugins() -> None:
    # the first five, then the formats of newer sources (gelf, ...) in their import order
    assert registry.formats[:5] == ("syslog", "text", "json", "hec", "windows")
    assert "gelf" in registry.formats
    assert registry.recognizers == ("windows-json", "nxlog-json", "mapped", "cef", "linux", "web-access")


def test_plugin_format_and_recognizer_order() -> None:
    reg = ParserRegistry()
    seen: list[str] = []

    def parse_door(record: RawRecord) -> Event:
        return new_event(record, record.received_at, record.payload.decode())

    def first(event: Event, record: RawRecord) -> bool:
        seen.append("first")
        return False

    def second(event: Event, record: RawRecord) -> bool:
        seen.append("second")
        event.fields["door"] = "B2"
        return True

    def never(event: Event, record: RawRecord) -> bool:
        seen.append("never")
        return True

    reg.register_format("door", parse_door)
    reg.register_recognizer("second", second)
    reg.register_recognizer("never", never)
    reg.register_recognizer("first", first, before="second")
    event = reg.parse(_record(b"opened", "door"))
    assert seen == ["first", "second"]
    assert event.fields == {"door": "B2"}
    assert event.message == "opened"


def test_registering_twice_is_refused() -> None:
    reg = ParserRegistry()
    reg.register_format("a", lambda r: new_event(r, 0, ""))
    with pytest.raises(ValueError, match="already registered"):
        reg.register_format("a", lambda r: new_event(r, 0, ""))
    reg.register_format("a", lambda r: new_event(r, 0, "x"), replace=True)
    with pytest.raises(ValueError, match="not registered"):
        reg.register_recognizer("r", lambda e, r: False, before="missing")


def test_parse_error_becomes_pipeline_error_event() -> None:
    reg = ParserRegistry()

    def strict(record: RawRecord) -> Event:
        raise ParseError("door.bad", "bad door record", "door record at byte offset 3: expected '=', got 'x'")

    reg.register_format("door", strict)
    event = reg.parse(_record(b"abcx", "door"))
    assert event.kind == "pipeline_error"
    assert event.ecs["error.type"] == "door.bad"
    assert event.ecs["error.message"] == "src-1: door record at byte offset 3: expected '=', got 'x'"
    assert event.message == "bad door record (src-1)"
    assert event.raw == b"abcx"
    assert event.ts == event.ingested == 1_795_729_500_000_000
    assert (event.tenant, event.source, event.peer) == ("pitea", "src-1", "10.0.0.9:514")


def test_a_parser_bug_is_kept_as_internal_error() -> None:
    reg = ParserRegistry()
    reg.register_format("door", lambda r: new_event(r, 0, ""))

    def buggy(event: Event, record: RawRecord) -> bool:
        raise KeyError("oops")

    reg.register_recognizer("buggy", buggy)
    event = reg.parse(_record(b"x", "door"))
    assert event.kind == "pipeline_error"
    assert event.ecs["error.type"] == "parser.internal_error"
    assert "'buggy'" in event.ecs["error.message"]
    assert "KeyError" in event.ecs["error.message"]


def test_hints_fill_only_what_the_payload_left_empty() -> None:
    hinted = parse_record(
        _record(b"<13>Nov 26 21:43:38 realhost app: x", hints={"host": "hint", "sourcetype": "st"})
    )
    assert hinted.ecs["host.name"] == "realhost"
    assert hinted.ecs["event.dataset"] == "st"
    assert hinted.fields["sourcetype"] == "st"
    bare = parse_record(_record(b"just text", "text", {"host": "hint", "index": "main"}))
    assert bare.ecs["host.name"] == "hint"
    assert bare.fields["index"] == "main"


def test_tenant_never_comes_from_the_payload() -> None:
    event = parse_record(_record(b'{"tenant":"lulea","message":"x","event":{"kind":"alert"}}', "json"))
    assert event.tenant == "pitea"
    assert event.kind == "event"
    assert event.fields["tenant"] == "lulea"
