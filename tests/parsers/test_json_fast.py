"""Issue #12's JSON hot path: the faster Windows parser gives exactly what it gave, and what
orjson decodes differently from Python's json module is written down.

1. The Windows parser (windows_fields, map_ecs) and flatten_json lost their per-event waste.
   tests/parsers/windows_reference.py is a frozen copy of them from before; every record here —
   made-up EVTX/Winlogbeat/NXLog samples (tests/parsers/windows_samples.py), hand-made corner
   cases, random documents and every record of ../shared/data/evtx-attack-samples — gives the
   same fields (in the same order), ECS, message and time with both.
2. Ingest decodes JSON with orjson (the HTTP routes' checks and every parser; it did before
   this issue too, so each case is "as before"). Where orjson and json.loads differ, the test
   says which way Norrvakt goes; the server tests at the end send the cases through real
   HEC, _bulk and /ingest routes: an event or a clear pipeline_error, never a 500.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from norrvakt.enrich.ingest import enrich_event
from norrvakt.event import Event, RawRecord, canonical_bytes
from norrvakt.parsers import parse_record
from norrvakt.parsers.base import ParseError, flatten_json, load_json_object
from norrvakt.parsers.windows import _WINLOGBEAT_MAP, windows_event, windows_fields, windows_shape
from norrvakt.parsers.windows_ecs import map_ecs, winlogbeat_ecs
from norrvakt.sources.http_json import load_event
from tests.conftest import SHARED_DATA
from tests.e2e.harness import Server, running_server
from tests.parsers import windows_reference as before
from tests.parsers.windows_samples import evtx_records, hec_envelopes, nxlog_docs, winlogbeat_docs

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


# -- 2. where orjson and Python's json differ --------------------------------------------------


def _load(data: bytes) -> dict[str, Any]:
    return load_json_object(_record(data, "json"), "json")


def test_integers_within_64_bits_are_exact() -> None:
    doc = _load(b'{"u": 18446744073709551615, "i": -9223372036854775808}')
    assert doc == {"u": 2**64 - 1, "i": -(2**63)}  # as json.loads
    event = parse_record(_record(b'{"u": 18446744073709551615, "message": "m"}', "json"))
    assert event.fields["u"] == "18446744073709551615"


def test_integers_beyond_64_bits_become_floats_and_raw_keeps_the_digits() -> None:
    # As before (orjson since the first HTTP ingest): json.loads would keep 2**64 exact; orjson
    # gives the nearest float. Exactness would need a scan of every event's bytes for long digit
    # runs (measured: ~1 µs per Windows event, a third of decoding it) for a number no Windows,
    # syslog or Beats sender writes; and the digits are not lost: raw has them.
    payload = b'{"n": 18446744073709551616, "m": -9223372036854775809, "message": "big"}'
    assert json.loads(payload) == {"n": 2**64, "m": -(2**63) - 1, "message": "big"}
    assert _load(payload) == {"n": 1.8446744073709552e19, "m": -9.223372036854776e18, "message": "big"}
    event = parse_record(_record(payload, "json"))
    assert event.kind == "event"
    assert event.fields["n"] == "1.8446744073709552e+19"
    assert event.raw == payload


@pytest.mark.parametrize(
    "payload,why",
    [
        (b'{"a": NaN}', "unexpected character"),  # json.loads: nan
        (b'{"a": Infinity}', "unexpected character"),  # json.loads: inf
        (b'{"a": -Infinity}', "no digit after sign"),
        (b'{"a": 1e400}', "infinity"),  # json.loads: inf
        (b'{"a": ' + b"9" * 400 + b"}", "infinity"),  # json.loads: an exact int
        (b'{"a": "\\ud800"}', "surrogate"),  # json.loads: a lone surrogate, no journal could write
        (b'{"a": "x\\udc00y"}', "surrogate"),
        (b'\xef\xbb\xbf{"a": 1}', "BOM"),  # json.loads on bytes skips it
    ],
)
def test_what_orjson_refuses_is_a_parse_error_naming_where(payload: bytes, why: str) -> None:
    with pytest.raises(ParseError) as caught:
        _load(payload)
    assert caught.value.error_type == "json.malformed_json"
    assert why in caught.value.detail and "byte offset" in caught.value.detail
    _value, problem = load_event(payload, LIMIT)  # the HTTP routes' own check says the same
    assert problem is not None and problem.kind == "malformed" and why in problem.reason


def test_invalid_utf8_names_the_byte() -> None:
    with pytest.raises(ParseError) as caught:
        _load(b'{"a": "\xff"}')
    assert caught.value.error_type == "json.invalid_utf8"  # json.loads: UnicodeDecodeError
    assert "byte offset 7" in caught.value.detail and "ff" in caught.value.detail


def test_duplicate_keys_keep_the_last_value_in_the_first_place() -> None:
    payload = b'{"a": 1, "b": 2, "a": 3}'
    assert list(_load(payload).items()) == list(json.loads(payload).items()) == [("a", 3), ("b", 2)]


def test_escaped_pairs_and_nul_decode_as_json_does() -> None:
    payload = b'{"e": "\\ud83d\\ude00", "z": "\\u0000", "s": "\\u00e5\\u00e4\\u00f6", "r": "\\r\\n\\t"}'
    assert _load(payload) == json.loads(payload)


@FUZZ
@given(
    number=st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?", fullmatch=True),
    )
)
def test_numbers_decode_as_json_does(number: float | str) -> None:
    text = repr(number) if isinstance(number, float) else number
    expected = json.loads(text)
    if isinstance(expected, float) and math.isinf(expected):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)  # beyond a double: refused (see above), json.loads gives inf
        return
    if isinstance(expected, int) and not -(2**63) <= expected < 2**64:
        assert orjson.loads(text) == float(expected)  # see test_integers_beyond_64_bits_...
        return
    got = orjson.loads(text)
    assert got == expected and type(got) is type(expected)
    assert math.copysign(1, got) == math.copysign(1, expected)  # -0.0 stays -0.0


# -- the same cases through a real server ------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("json-fast"))) as srv:
        yield srv


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    return server.ingest_token("boden", "boden-json-fast")


def _post(server: Server, path: str, body: bytes, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}", content=body, headers={"Authorization": f"Splunk {token}"}, timeout=60
    )


def test_hec_windows_events_are_stored_as_parsed(server: Server, token: str) -> None:
    m = "j" + uuid.uuid4().hex[:12]
    records = evtx_records(26)
    envelopes = [{**e, "fields": {"marker": m}} for e in hec_envelopes(records)]
    resp = _post(server, "/services/collector/event", b"".join(orjson.dumps(e) for e in envelopes), token)
    assert resp.status_code == 200, resp.text
    assert server.wait_count(f"marker:{m}", 26, tenant="boden") == 26
    rows = server.search(f"marker:{m}", tenant="boden")["rows"]
    by_record = {row["fields"]["EventRecordID"]: row for row in rows}
    for envelope in envelopes:
        # decoded here, from bytes, and enriched as the server enriches (its default settings)
        expected = enrich_event(parse_record(_record(orjson.dumps(envelope), "hec")))
        row = by_record[expected.fields["EventRecordID"]]
        assert row["message"] == expected.message
        assert {k: v for k, v in row["ecs"].items() if v} == {k: v for k, v in expected.ecs.items() if v}
        assert row["fields"] == expected.fields


@pytest.mark.parametrize(
    "bad,why",
    [
        (b'{"event": {"a": NaN}}', "unexpected character"),
        (b'{"event": {"a": "\\ud800"}}', "surrogate"),
        (b'{"event": {"a": 1e400}}', "infinity"),
        (b'{"event": {"a": "\xff"}}', "UTF-8"),
    ],
)
def test_hec_event_orjson_refuses_is_a_400_and_a_pipeline_error(
    server: Server, token: str, bad: bytes, why: str
) -> None:
    m = "j" + uuid.uuid4().hex[:12]
    body = orjson.dumps({"event": f"first {m}"}) + b"\n" + bad + b"\n" + orjson.dumps({"event": f"then {m}"})
    resp = _post(server, "/services/collector/event", body, token)
    assert resp.status_code == 400, resp.text  # never a 500
    assert resp.json()["invalid-event-number"] == 1
    assert server.wait_count(f'"first {m}"', 1, tenant="boden") == 1
    (row,) = server.search(f"event.kind:pipeline_error {m}", tenant="boden")["rows"]
    message = row["ecs"]["error.message"]
    assert row["ecs"]["error.type"] == "hec.invalid_event"
    assert "HEC event 1" in message and "byte offset" in message and why in message


def test_bulk_and_ingest_lines_orjson_refuses_are_item_errors(server: Server, token: str) -> None:
    m = "j" + uuid.uuid4().hex[:12]
    good = json.dumps({"message": f"fine {m}", "big": 2**64}).encode()
    body = b'{"index":{}}\n' + good + b'\n{"index":{}}\n{"message": NaN}\n'
    resp = _post(server, "/_bulk", body, token)
    assert resp.status_code == 200 and resp.json()["errors"] is True
    items = resp.json()["items"]
    assert items[0]["index"]["status"] == 201
    assert items[1]["index"]["status"] == 400 and "_bulk line 4" in items[1]["index"]["error"]["reason"]
    resp = _post(server, "/ingest", good + b'\n{"message": "\\udc00"}\n', token)
    assert resp.status_code == 400
    assert resp.json()["accepted"] == 1 and resp.json()["rejected"][0]["line"] == 2
    assert server.wait_count(f'"fine {m}"', 2, tenant="boden") == 2
    (row, _) = server.search(f'"fine {m}"', tenant="boden")["rows"]
    assert row["fields"]["big"] == "1.8446744073709552e+19"
