"""Issue #12's faster Windows parser gives exactly what it gave.

The Windows parser (windows_fields, map_ecs) and flatten_json lost their per-event waste.
tests/parsers/windows_reference.py is a frozen copy of them from before; every record here —
made-up EVTX/Winlogbeat/NXLog samples (tests/parsers/windows_samples.py), hand-made corner
cases, random documents and every record of ../shared/data/evtx-attack-samples — gives the
same fields (in the same order), ECS, message and time with both.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from norrvakt.event import Event, RawRecord, canonical_bytes
from norrvakt.parsers.base import flatten_json
from norrvakt.parsers.windows import _WINLOGBEAT_MAP, windows_event, windows_fields, windows_shape
from norrvakt.parsers.windows_ecs import map_ecs, winlogbeat_ecs
from tests.conftest import SHARED_DATA
from tests.parsers import windows_reference as before
from tests.parsers.windows_samples import evtx_records, nxlog_docs, winlogbeat_docs

LIMIT = 1024 * 1024
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _record(payload: bytes, fmt: str) -> RawRecord:
    return RawRecord(
        "lulea", "json-fast", 1_795_729_500_000_000, "192.0.2.1:5000", payload, fmt, "Europe/Stockholm"
    )


def _same(a: Event, b: Event) -> None:
    assert canonical_bytes(a) == canonical_bytes(b)
    assert list(a.fields.items()) == list(b.fields.items())  # the order too, not only the bytes
    assert list(a.ecs.items()) == list(b.ecs.items())


# -- 1. the Windows parser and flatten_json, against the copy from before ----------------------


def _windows_same(doc: dict[str, Any]) -> None:
    shape = windows_shape(doc)
    assert shape is not None
    record = _record(json.dumps(doc).encode(), "windows")  # raw only; json.dumps takes any int
    fields, stamp = windows_fields(doc, shape)
    old_fields, old_stamp = before.windows_fields(doc, shape)
    assert list(fields.items()) == list(old_fields.items())
    assert stamp == old_stamp
    ecs: dict[str, str] = {}
    old_ecs: dict[str, str] = {}
    assert map_ecs(fields, ecs) == before.map_ecs(old_fields, old_ecs)
    winlogbeat_ecs(fields, ecs)
    before.winlogbeat_ecs(old_fields, old_ecs)
    assert list(ecs.items()) == list(old_ecs.items())
    _same(windows_event(record, doc, shape), before.windows_event(record, doc, shape))


@pytest.mark.parametrize("kind", ["evtx", "winlogbeat", "nxlog"])
def test_the_windows_samples_give_what_they_gave(kind: str) -> None:
    docs = {"evtx": evtx_records, "winlogbeat": winlogbeat_docs, "nxlog": nxlog_docs}[kind](3 * 13)
    for doc in docs:
        assert windows_shape(doc) == kind
        _windows_same(doc)


def test_every_evtx_attack_sample_gives_what_it_gave() -> None:
    evtx = pytest.importorskip("evtx")
    folder = SHARED_DATA / "evtx-attack-samples"
    if not folder.is_dir():
        pytest.skip(f"test data not available: {folder}")
    n = 0
    for path in sorted(folder.rglob("*.evtx")):
        try:
            records = list(evtx.PyEvtxParser(str(path)).records_json())
        except (OSError, RuntimeError):
            continue  # a few samples are damaged on purpose; the file source reports them
        for rec in records:
            doc = orjson.loads(rec["data"])
            if windows_shape(doc) is not None:
                _windows_same(doc)
                n += 1
    assert n > 8000


def test_winlogbeat_map_names_start_with_winlog() -> None:
    # _winlogbeat_object flattens an object outside "winlog" straight into the rest.
    assert all(name.startswith("winlog.") for name in _WINLOGBEAT_MAP)
    assert not any(name.startswith(("winlog.event_data.", "winlog.user_data.")) for name in _WINLOGBEAT_MAP)


# Hand-made documents for the corners of the Winlogbeat walker and the EventData rule.
_CORNERS: list[dict[str, Any]] = [
    {"winlog": {"event_data": {"": {"x": 1}, "a": 2}}},  # an empty name: ".x", not "x"
    {"winlog": {"event_data": {"": [{"x": 1}], "b": "last"}}},
    {"winlog": {"event_data": {"": ["a", "b"]}}, "winlog.event_data.": {"": {"y": 2}}},
    {"winlog": {"event_data.x": {"y": 1}, "event_data.": {"z": 2}, "user_data.u": {"v": 3}}},
    {
        "winlog.event_data.x": {"y": {"z": 1}},
        "winlog.event_data": {"q": 1},
        "winlog.user_data": {"w": 1},
        "winlog.channel": "Security",
    },
    {"winlog": {"event_data": ["not", "an", "object"], "user_data": ["x"], "channel": "Security"}},
    {
        "winlog": {"channel": "Security", "process": {"pid": 4, "thread": {"id": 8}}},
        "winlog.channel": "System",
    },
    {"winlog": {}, "win": {"log": 1}, "winlogx": {"a": 1}, "": {"winlog": {"event_id": 7}}},
    {"winlog": {"event_data": {"TargetUserName": "anna"}, "user_data": {"Ev": {"TargetUserName": "bo"}}}},
    {"Event": {"System": {"Channel": "Security", "EventID": 1}, "EventData": {"Channel": "Security"}}},
    {
        "Event": {
            "System": {"Channel": "Security", "EventID": 1},
            "EventData": {"Channel": "Other", "EventID": 1},
        }
    },
    {"Event": {"System": {"EventID": {"#text": 7, "#attributes": {"Qualifiers": 16384}}, "Provider": {}}}},
]


@pytest.mark.parametrize("doc", _CORNERS, ids=[str(i) for i in range(len(_CORNERS))])
def test_corner_documents_give_what_they_gave(doc: dict[str, Any]) -> None:
    # The EventData values are other str objects than the System ones (decoded separately).
    _windows_same(orjson.loads(orjson.dumps(doc)))


_KEYS = st.sampled_from(
    [
        "",
        ".",
        "a",
        "a.b",
        "winlog",
        "winlog.",
        "winlog.event_data",
        "winlog.event_data.",
        "winlog.user_data",
        "winlog.user_data.x",
        "winlog.channel",
        "winlog.event_id",
        "winlogx",
        "win",
        "event_data",
        "event_data.",
        "event_data.x",
        "winlog.event_data.x",
        "user_data.y",
        "user_data",
        "process",
        "pid",
        "thread",
        "#text",
        "#attributes",
        "xmlns",
        "Data",
        "EventData",
        "UserData",
        "System",
        "Provider",
        "EventID",
        "Channel",
        "Computer",
        "TimeCreated",
        "SystemTime",
        "Name",
        "Qualifiers",
        "TargetUserName",
        "IpAddress",
        "Image",
        "Hashes",
        "Keywords",
        "event.code",
        "event",
        "code",
        "@timestamp",
    ]
)
_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["-", "", "0x0", "::ffff:10.1.2.3", "0x8020000000000000", "4624"]),
)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=5)),
    max_leaves=25,
)


@st.composite
def _windows_docs(draw: st.DrawFn) -> dict[str, Any]:
    shape = draw(st.sampled_from(["evtx", "winlogbeat", "nxlog"]))
    doc = draw(st.dictionaries(_KEYS, _JSON, max_size=5))
    if shape == "evtx":
        event = draw(st.dictionaries(_KEYS, _JSON, max_size=4))
        event["System"] = draw(st.dictionaries(_KEYS, _JSON, max_size=6))
        return {**doc, "Event": event}
    if shape == "winlogbeat":
        winlog = draw(st.dictionaries(_KEYS, _JSON, max_size=5))
        return {**doc, "winlog": winlog}
    return {**doc, "EventID": draw(_SCALAR), "Channel": draw(_SCALAR)}


@FUZZ
@given(doc=_windows_docs())
def test_random_windows_documents_give_what_they_gave(doc: dict[str, Any]) -> None:
    if windows_shape(doc) is not None:
        _windows_same(doc)


def _deep(depth: int, leaf: Any) -> Any:
    """Objects and lists in turn, ``depth`` levels (winlog.event_data inside each object)."""
    for i in range(depth):
        leaf = {f"k{i}": leaf, "winlog": {"event_data": {"x": i}}} if i % 2 else [leaf, i]
    return leaf


def _chain(depth: int, key: str) -> Any:
    """Objects only, ``depth`` levels: {key: {key: ... "v"}}."""
    leaf: Any = "v"
    for _ in range(depth):
        leaf = {key: leaf, "n": 1}
    return leaf


@pytest.mark.parametrize("depth", [61, 62, 63, 64, 65, 66, 130])
def test_documents_at_the_flattening_depth_limit_give_what_they_gave(depth: int) -> None:
    tops = [
        {"winlog": {"event_data": _deep(depth, "v")}},
        {"winlog": {"deep": _deep(depth, "v"), "event_data": _chain(depth, "a")}, "a": _deep(depth, 1)},
        {"winlog": _chain(depth, "winlog"), "agent": _chain(depth, "x")},
        {"winlog": _chain(depth, "event_data")},
        {"winlog": {"user_data": _chain(depth, "user_data")}},
        _chain(depth, "winlog") | {"winlog": _chain(depth, "winlog")},
    ]
    for top in tops:
        _windows_same(top)
        out: dict[str, str] = {}
        old: dict[str, str] = {}
        flatten_json(top, "", out)
        before.flatten_json(top, "", old)
        assert list(out.items()) == list(old.items())


@FUZZ
@given(value=_JSON, prefix=st.sampled_from(["", "p", "a.b"]))
def test_flatten_json_gives_what_it_gave(value: Any, prefix: str) -> None:
    out: dict[str, str] = {}
    old: dict[str, str] = {}
    flatten_json(value, prefix, out)
    before.flatten_json(value, prefix, old)
    assert list(out.items()) == list(old.items())
