"""The indexed mapping recognizer claims exactly what trying every mapping in turn claimed.

The reference below is the recognizer as it was before the index (issue #12): every mapping's
``matches()`` then ``apply()``, in load order. Each corpus record is parsed twice by the real
``parse_record`` — once with the index, once with the reference in its place — and the two
events (or pipeline errors) must be equal, field for field. The corpus: every golden case of
every parser (tests/samples), the seed systems' own lines, Windows events shaped like the
evtx-attack-samples records (built here) over HEC, syslog and JSON, and lines aimed at
operator mappings with every condition kind ``_condition`` reads, overlapping so that order
decides. Three sets of mappings: the built-ins, built-ins plus operator mappings, and plus
mappings the index cannot read (a regex that does not compile, a field name that is a list),
which fail on the same events with the same message.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record
from norrvakt.parsers.mapped import BUILTIN_DIR, Mapping, load_mappings, sources
from norrvakt.parsers.mapped_index import MappingIndex, required_literals
from tests.parsers.golden import load_cases, record_for

RECEIVED = 1_795_729_500_000_000


def linear_recognize(mappings: list[Mapping], event: Event, record: RawRecord) -> bool:
    """The reference: MappedSources.recognize before the index."""
    return any(m.matches(event) and m.apply(event, record) for m in mappings)


CLAIMS: Counter[str] = Counter()  # which mapping the reference let claim, for the coverage checks


def counting_linear_recognize(event: Event, record: RawRecord) -> bool:
    for m in sources.mappings:
        if m.matches(event) and m.apply(event, record):
            CLAIMS[m.id] += 1
            return True
    return False


# -- operator mappings: every condition kind, overlapping ------------------------------------------

OPERATOR = {
    # equals, scalar, case-insensitive; a syslog app name (ECS)
    "a_parking.yml": """
id: op_parking
dataset: parking.event
match: {field: log.syslog.appname, equals: Parkering}
parse: {from: message, format: kv}
""",
    # equals with a list of values that are not strings, on a raw field and an ECS field
    "b_codes.yml": """
id: op_codes
dataset: codes.event
match:
  any:
    - {field: code, equals: [4711, true, null]}
    - {field: event.code, equals: 99001}
    - {field: reader, equals: []}
""",
    # startswith and contains, on message and on an ECS field
    "c_badge.yml": """
id: op_badge
dataset: badge.event
match:
  any:
    - {field: message, startswith: "BADGE "}
    - {field: user.name, contains: "svc_"}
""",
    # a guarded regex whose parse step can fail: then the next, broader mapping claims it
    "d_ticket_closed.yml": """
id: op_ticket_closed
dataset: tickets.closed
match: {field: message, regex: "ticket #\\\\d+ (closed|resolved)"}
parse: {from: message, format: regex, pattern: "by (?P<agent>\\\\w+)"}
""",
    "e_ticket_any.yml": """
id: op_ticket_any
dataset: tickets.any
match: {field: message, regex: "ticket #\\\\d+"}
""",
    # regexes with no literal guard: case-insensitive, and only classes
    "f_alarm.yml": """
id: op_alarm
dataset: alarm.event
match:
  any:
    - {field: message, regex: "(?i)^alarm\\\\b"}
    - {field: message, regex: "\\\\b\\\\d{3}-\\\\d{4}-\\\\d{2}\\\\b"}
""",
    # fields_present (two names), a condition with no operator, an absent field
    "g_reader.yml": """
id: op_reader
dataset: reader.event
match:
  any:
    - {field: message}
    - {field: not_there, equals: x}
    - {fields_present: [badge_no, reader]}
""",
    # shadows a built-in: door_locks comes first and wins unless its kv parse finds nothing
    "h_phoniro_plain.yml": """
id: op_phoniro_plain
dataset: locks.plain
match: {field: log.syslog.appname, equals: phoniro}
""",
    # a regex on a raw field (HEC sourcetype)
    "i_custom_sourcetype.yml": """
id: op_custom_sourcetype
dataset: custom.windows
match: {field: sourcetype, regex: "^XmlWinEventLog:Custom"}
""",
    # an empty fields_present always holds: this mapping is tried on every event, last
    "z_always.yml": """
id: op_always
dataset: always.event
match: {fields_present: []}
parse: {from: message, format: regex, pattern: "ALWAYS (?P<word>\\\\w+)"}
""",
}

# Conditions the index leaves to _condition: they raise, on the events that reach them.
BARRIERS = {
    "x_bad_regex.yml": """
id: op_bad_regex
dataset: bad.regex
match:
  any:
    - {field: log.syslog.appname, equals: earlyexit}
    - {field: message, regex: "unclosed(group"}
""",
    "y_list_field.yml": """
id: op_list_field
dataset: bad.field
match: {field: [a, b], equals: x}
""",
}


@pytest.fixture(scope="module")
def mapping_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    operator = tmp_path_factory.mktemp("operator")
    for name, text in OPERATOR.items():
        (operator / name).write_text(text, encoding="utf-8")
    barriers = tmp_path_factory.mktemp("barriers")
    for name, text in BARRIERS.items():
        (barriers / name).write_text(text, encoding="utf-8")
    return {"builtin": [], "operator": [operator], "barriers": [operator, barriers]}


@pytest.fixture
def restore_mappings() -> Iterator[None]:
    yield
    sources.use([])


# -- the corpus ----------------------------------------------------------------------------------


def _rec(payload: str | bytes, fmt: str, hints: dict[str, str] | None = None) -> RawRecord:
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    return RawRecord("lulea", "equiv", RECEIVED, "192.0.2.7:514", data, fmt, "Europe/Stockholm", hints)


def _syslog(app: str, msg: str) -> str:
    return f"<134>1 2026-11-26T07:01:00Z host01 {app} - - - {msg}"


def evtx_record(provider: str, event_id: int, channel: str, data: dict[str, Any], rid: int) -> dict[str, Any]:
    """A record shaped like the evtx crate's JSON of an EVTX record (evtx-attack-samples)."""
    return {
        "Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {
                    "#attributes": {"Name": provider, "Guid": "5770385F-C22A-43E0-BF4C-06F5698FFBD9"}
                },
                "EventID": event_id,
                "Version": 2,
                "Level": 4,
                "Task": 1,
                "Opcode": 0,
                "Keywords": "0x8020000000000000",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-11-26T07:01:02.123456Z"}},
                "EventRecordID": rid,
                "Correlation": None,
                "Execution": {"#attributes": {"ProcessID": 612, "ThreadID": 3120}},
                "Channel": channel,
                "Computer": "ws042.lulea.local",
                "Security": {"#attributes": {"UserID": "S-1-5-18"}},
            },
            "EventData": data,
        }
    }


SYSMON = "Microsoft-Windows-Sysmon"
SECURITY = "Microsoft-Windows-Security-Auditing"
WINDOWS = [
    evtx_record(
        SYSMON,
        1,
        "Microsoft-Windows-Sysmon/Operational",
        {
            "Image": "C:\\Windows\\System32\\cmd.exe",
            "CommandLine": "cmd.exe /c whoami /all",
            "User": "LULEA\\anna",
            "ParentImage": "C:\\Windows\\explorer.exe",
            "Hashes": "SHA256=0F1E2D3C",
        },
        101,
    ),
    evtx_record(
        SYSMON,
        11,
        "Microsoft-Windows-Sysmon/Operational",
        {"Image": "C:\\Windows\\Explorer.EXE", "TargetFilename": "C:\\Users\\anna\\Downloads\\update.exe"},
        102,
    ),
    evtx_record(
        SECURITY,
        4624,
        "Security",
        {
            "TargetUserName": "svc_backup",
            "TargetDomainName": "LULEA",
            "LogonType": 3,
            "IpAddress": "10.20.1.5",
            "WorkstationName": "WS042",
        },
        103,
    ),
    evtx_record(
        SECURITY,
        4688,
        "Security",
        {
            "NewProcessName": "C:\\Windows\\System32\\reg.exe",
            # the built-ins' literals inside a Windows event: guards pass, the regex decides
            "CommandLine": "reg add HKLM\\x /d key_id=K-1 %ASA-6-113015 Originator@6876 Cannot login",
            "SubjectUserName": "anna",
        },
        104,
    ),
    evtx_record(SECURITY, 4625, "Security", {"TargetUserName": "admin", "IpAddress": "81.2.69.160"}, 105),
    evtx_record(
        "Service Control Manager",
        7045,
        "System",
        {"ServiceName": "PSEXESVC", "ImagePath": "%SystemRoot%\\PSEXESVC.exe", "code": "4711"},
        106,
    ),
    evtx_record(
        "Microsoft-Windows-PowerShell",
        4104,
        "Microsoft-Windows-PowerShell/Operational",
        {"ScriptBlockText": "Write-Host 'ticket #55 closed by eve'"},
        107,
    ),
    evtx_record("Door Service", 1000, "Application", {"badge_no": "B1", "reader": "R2"}, 108),
]


def windows_records() -> list[RawRecord]:
    out: list[RawRecord] = []
    for i, doc in enumerate(WINDOWS):
        sourcetype = "XmlWinEventLog:Custom" if i == 4 else "XmlWinEventLog"
        envelope = {"event": doc, "host": "dc01", "sourcetype": sourcetype}
        out.append(_rec(orjson.dumps(envelope), "hec"))
        out.append(_rec(orjson.dumps({"event": orjson.dumps(doc).decode(), "host": "dc01"}), "hec"))
        out.append(_rec(orjson.dumps(doc), "json"))
        out.append(_rec(orjson.dumps(doc), "windows"))
        out.append(_rec(_syslog("nxlog", orjson.dumps(doc).decode()), "syslog"))
    return out


SEED_LINES = [
    _syslog(
        "phoniro",
        "event=unlock result=granted key_id=K-1234 user=anna.l door_id=D-778 client_id=C-4412 "
        "visit_start=2026-11-26T08:00:00+01:00 visit_end=2026-11-26T08:30:00+01:00 "
        "time=2026-11-26T08:05:00+01:00",
    ),
    _syslog("lockd", "Åtkomst nekad kort=12345 dörr=Stadshuset-B2"),
    "<134>Nov 26 08:00:00 gw lockserver: event=door_forced door_id=Stadshuset-B2 site=stadshuset",
    _syslog("phoniro", "no pairs at all here"),  # door_locks' kv finds nothing: op_phoniro_plain
    _syslog("d", "event=lock key_id=K-9"),
    _syslog(
        "socialsystem",
        "2026-11-26 21:14:02;u-1021;Karin Holmgren;handlaggare;IFO;read;s-9f31c2;skyddad_folkbokforing;"
        "IFO-2026-0412;u-1007,u-1033;;10.20.4.17",
    ),
    _syslog("socialsystem", "not;enough;columns"),
    "<166>2026-11-26T21:00:01.123Z esxi01 Hostd: info hostd[2099] [Originator@6876 sub=Vimsvc] Event 4711 : "
    "User root@10.20.1.5 logged in as VMware-client/6.5.0",
    "<166>2026-11-26T21:00:01.123Z esxi01 Hostd: info hostd[2099] [Originator@6876 sub=Vimsvc] Event 4712 : "
    "Cannot login root@10.9.9.9",
    "<166>2026-11-26T21:00:01.123Z vc01 vpxd: User VSPHERE.LOCAL\\Administrator@10.20.1.9 logged out",
    "<166>Nov 26 21:00:01 asa01 : %ASA-6-113015: AAA user authentication Rejected : "
    "reason = Invalid password : server = 10.20.1.5 : user = anna.lindqvist : user IP = 81.2.69.160",
    "<166>Nov 26 21:00:01 asa01 : %ASA-6-113039: Group <GroupPolicy_Kommun> User <anna.lindqvist> "
    "IP <81.2.69.160> AnyConnect parent session started.",
    "<166>Nov 26 21:00:01 asa01 : %ASA-4-722051: Group <G> User <u> IP <1.2.3.4> address assigned",
    "<166>Nov 26 21:00:01 asa01 : %ASA-6-302013: Built outbound TCP connection",
]
SEED_JSON = [
    {
        "timestamp": "2026-11-26T13:40:00+01:00",
        "system": "E-Arkiv",
        "action": "retrieve",
        "user": "u-2203",
        "package_id": "SIP-1",
        "result": "ok",
    },
    {"ts": "2026-11-26T21:03:11+01:00", "platform": "etjanst", "event": "login", "user_id": "u-4f2a"},
    {"time": "2026-11-26T07:55:02Z", "source": "intune", "event": "checkin", "device_id": "D-1"},
    {"time": "2026-11-26T07:55:02Z", "event": "compliance_changed", "device_id": "D-2", "compliance": "ok"},
    {"timestamp": "2026-11-26T10:02:11+01:00", "system": "pmo", "user": "u-3301", "action": "read"},
    {"system": "something-else", "platform": "other", "source": "nope", "device_id": "D-3"},
]
OPERATOR_LINES = [
    _syslog("parkering", "plate=ABC123 zone=P3 action=enter"),
    _syslog("PARKERING", "nothing to read"),  # equals is case-insensitive; kv finds nothing
    _syslog("app", "code=4711"),
    _syslog("app", "BADGE 1234 at door 7"),
    _syslog("app", "a BADGE that does not start the message"),
    _syslog("app", "ticket #42 closed by bob"),
    _syslog("app", "ticket #43 resolved"),  # op_ticket_closed's parse fails: op_ticket_any claims
    _syslog("app", "ticket # nothing"),
    _syslog("app", "ALARM: smoke in B2"),
    _syslog("app", "alarmist"),
    _syslog("app", "ref 123-4567-89 logged"),
    _syslog("app", "ALWAYS here"),
    _syslog("earlyexit", "the barrier's first condition holds, its bad regex is never read"),
    "plain text line with no structure",
    "badge_no=7 reader=R1 just text",
]


def corpus() -> list[RawRecord]:
    records = [record_for(case.case) for case in load_cases()]
    records += windows_records()
    records += [_rec(line, "syslog") for line in SEED_LINES + OPERATOR_LINES]
    records += [_rec(line, "text") for line in OPERATOR_LINES]
    for doc in SEED_JSON:
        records.append(_rec(orjson.dumps(doc), "json"))
        records.append(_rec(orjson.dumps({"event": doc, "sourcetype": "_json", "host": "app01"}), "hec"))
        records.append(_rec(_syslog("app", orjson.dumps(doc).decode()), "syslog"))
    records.append(
        _rec(
            orjson.dumps({"event": {"user": {"name": "svc_sql"}, "message": "x"}, "sourcetype": "_json"}),
            "hec",
        )
    )
    records.append(_rec(orjson.dumps({"event": {"event": {"code": "99001"}}}), "hec"))
    return records


@contextmanager
def linear_recognizer() -> Iterator[None]:
    """parse_record with the reference in the index's place (an attribute of the instance
    shadows the method that recognize_mapped calls)."""
    vars(sources)["recognize"] = counting_linear_recognize
    try:
        yield
    finally:
        del vars(sources)["recognize"]


def _parse_both(record: RawRecord) -> tuple[Event, Event]:
    indexed = parse_record(record)
    with linear_recognizer():
        linear = parse_record(record)
    return indexed, linear


# -- the equivalence ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["builtin", "operator", "barriers"])
def test_the_indexed_recognizer_claims_what_the_linear_one_did(
    which: str,
    mapping_sets: dict[str, list[Path]],
    restore_mappings: None,
) -> None:
    assert not sources.use(mapping_sets[which])
    CLAIMS.clear()
    errors = 0
    for record in corpus():
        indexed, linear = _parse_both(record)
        assert indexed == linear, record.payload[:200]
        errors += indexed.ecs.get("error.type") == "parser.internal_error"
    claimed = dict(CLAIMS)

    # Not vacuous: every mapping in use claims something (the barriers raise instead).
    ids = {m.id for m in sources.mappings} - {"op_bad_regex", "op_list_field"}
    assert ids <= set(claimed), ids - set(claimed)
    if which == "barriers":
        assert errors > 50  # every event no earlier mapping claims fails at the bad regex
        assert claimed["op_bad_regex"] == 2  # the lines whose appname short-circuits it
    else:
        assert errors == 0


def test_order_decides_between_overlapping_mappings(
    mapping_sets: dict[str, list[Path]], restore_mappings: None
) -> None:
    sources.use(mapping_sets["operator"])

    def module(line: str) -> str | None:
        return parse_record(_rec(line, "syslog")).ecs.get("event.module")

    assert module(_syslog("app", "ticket #42 closed by bob")) == "op_ticket_closed"
    assert module(_syslog("app", "ticket #43 resolved")) == "op_ticket_any"
    assert module(_syslog("phoniro", "event=unlock key_id=K-1")) == "door_locks"
    assert module(_syslog("phoniro", "no pairs")) == "op_phoniro_plain"
    assert module(_syslog("Hostd", "[Originator@6876] Cannot login root@10.9.9.9")) == "vmware_login_failed"


def test_a_bad_regex_fails_where_it_failed(
    mapping_sets: dict[str, list[Path]], restore_mappings: None
) -> None:
    sources.use(mapping_sets["barriers"])
    event = parse_record(_rec(_syslog("app", "nobody claims this"), "syslog"))
    assert event.ecs["error.type"] == "parser.internal_error"
    assert "parser 'mapped' failed" in event.ecs["error.message"]
    assert "missing ), unterminated subpattern" in event.ecs["error.message"]
    # an earlier mapping that claims the event keeps the bad regex from being read
    assert parse_record(_rec(_syslog("phoniro", "key_id=K-1"), "syslog")).ecs["event.module"] == "door_locks"


def test_use_rebuilds_the_index(mapping_sets: dict[str, list[Path]], restore_mappings: None) -> None:
    line = _rec(_syslog("parkering", "plate=ABC123"), "syslog")
    assert parse_record(line).ecs.get("event.module") is None
    sources.use(mapping_sets["operator"])
    assert parse_record(line).ecs.get("event.module") == "op_parking"
    sources.use([])
    assert parse_record(line).ecs.get("event.module") is None
    # replacing the list directly rebuilds it too
    mappings, _ = load_mappings([BUILTIN_DIR, *mapping_sets["operator"]])
    sources.mappings = mappings
    assert parse_record(line).ecs.get("event.module") == "op_parking"


def test_a_windows_event_tries_no_builtin_mapping() -> None:
    """The point of the index: a Windows event none of the built-ins claims reaches none of
    their apply() steps and none of their regexes (their literals are not in it)."""
    index = MappingIndex(load_mappings([BUILTIN_DIR])[0])
    for doc in WINDOWS:
        if "key_id=" in orjson.dumps(doc).decode():
            continue  # the one built with the built-ins' literals in it
        event = parse_record(_rec(orjson.dumps({"event": doc, "sourcetype": "XmlWinEventLog"}), "hec"))
        assert event.ecs.get("event.provider")  # a Windows event, not a pipeline error
        assert index.candidates(event) == []


# -- the regex guards --------------------------------------------------------------------------

GUARDED = [
    r"(^|\s)(key_id|badge|kort|door_id|dörr)=",
    r"Originator@6876",
    r"Cannot login \S+@",
    r"%ASA-\d-113015",
    r"%ASA-\d-(113039|716002|722051)",
    r"ticket #\d+ (closed|resolved)",
    r"a(?i:bc)de+f",
    r"(?:ab|cd)+x?y{2,}",
    r"(?>abc|abd)q",
    r"[0-9]+ (Login|Logout) by (\w+)",
]


@pytest.mark.parametrize(
    "pattern,needles",
    [
        (r"(^|\s)(key_id|badge|kort|door_id|dörr)=", ("badge", "door_id", "dörr", "key_id", "kort")),
        (r"%ASA-\d-113015", ("-113015",)),
        (r"Cannot login \S+@", ("Cannot login ",)),
        (r"(?i)cannot login", None),  # case-insensitive: no guard
        (r"a|b", None),
        (r"x?", None),
        (r"(foo|)", None),  # a branch without a literal
        (r"(?=abc)", None),  # lookarounds are not relied on
        (r"\d{3}-\d{4}", ("-",)),
    ],
)
def test_required_literals(pattern: str, needles: tuple[str, ...] | None) -> None:
    assert required_literals(pattern) == needles


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), pattern=st.sampled_from(GUARDED))
def test_every_match_contains_a_guard(data: st.DataObject, pattern: str) -> None:
    needles = required_literals(pattern)
    assert needles, pattern
    text = data.draw(st.from_regex(pattern))
    assert re.search(pattern, text)
    assert any(n in text for n in needles), (pattern, text, needles)


FRAGMENTS = [
    "key_id=K1",
    " dörr=A",
    "badge=",
    "%ASA-6-113015",
    "%ASA-4-722051",
    "Group <g> User <u> IP <1.2.3.4>",
    "reason = r : server = s : user = u : user IP = i",
    "Originator@6876",
    "Cannot login ",
    "root@10.0.0.1",
    "User a@1.2.3.4 logged in",
    "ticket #7 closed",
    " by bob",
    "ALWAYS x",
    "BADGE ",
    "alarm",
    "123-4567-89",
    "=",
    " ",
    "plate=P1",
]
APPS = ["phoniro", "Hostd", "vpxd", "socialsystem", "parkering", "earlyexit", "d", "app", "-"]


LOADED: dict[str, list[Mapping]] = {}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    app=st.sampled_from(APPS),
    parts=st.lists(st.sampled_from(FRAGMENTS), max_size=6),
    which=st.sampled_from(["builtin", "operator", "barriers"]),
)
def test_random_lines_are_claimed_alike(
    mapping_sets: dict[str, list[Path]], app: str, parts: list[str], which: str
) -> None:
    # the files are read once per set, not once per example (setting .mappings rebuilds the index)
    if which not in LOADED:
        LOADED[which] = load_mappings([BUILTIN_DIR, *mapping_sets[which]])[0]
    sources.mappings = LOADED[which]
    try:
        indexed, linear = _parse_both(_rec(_syslog(app, "".join(parts)), "syslog"))
    finally:
        sources.use([])
    assert indexed == linear
