"""parse_record on random and random-ish input: always an Event, never an exception, never a
parser bug (``parser.internal_error``), raw kept, ECS names only, strings only."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from norrvakt.event import RawRecord
from norrvakt.parsers import parse_record, registry
from tests.parsers.golden import check_invariants

FORMATS = ("syslog", "text", "json", "hec", "windows", "otlp", "journal", "auditd", "m365", "gelf", "fluent")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(
    payload: bytes, fmt: str, timezone: str = "Europe/Stockholm", received_at: int = 1_795_729_500_000_000
) -> None:
    record = RawRecord("lulea", "fuzz", received_at, "192.0.2.1:514", payload, fmt, timezone, {"host": "h"})
    event = parse_record(record)
    check_invariants(record, event)
    assert event.ecs.get("error.type") != "parser.internal_error", event.ecs.get("error.message")


@FUZZ
@given(payload=st.binary(max_size=400), fmt=st.sampled_from(FORMATS))
def test_random_bytes(payload: bytes, fmt: str) -> None:
    _check(payload, fmt)


# Pieces real messages are made of, recombined at random.
_TOKEN = st.text(alphabet='abcAZ019-_.:@[]="\\ |<>{}\u00e5\u00f6\ufeff\r\n\x00', max_size=12)
_PRI = st.sampled_from(["<13>", "<36>", "<191>", "<0>", "<192>", "<1", "<>", "<a>", "", "<134>", "<00013>"])
_STAMP = st.sampled_from(
    [
        "2026-11-26T21:43:23.306142+00:00",
        "2026-11-26T21:43:23Z",
        "2026-02-30T10:00:00Z",
        "2026-11-26T25:00:00Z",
        "2026-11-26T21:43:23.+01:00",
        "2026-11-26T21:43:23+1:00",
        "Nov 26 21:43:38",
        "Feb 29 00:00:00",
        "Xyz 26 21:43:38",
        "Nov  6 08:01:02.123",
        "Nov 26 2026 21:43:38",
        "-",
        "",
    ]
)
_SD = st.one_of(
    st.just("-"),
    st.builds(lambda i, k, v: f'[{i} {k}="{v}"]', _TOKEN, _TOKEN, _TOKEN),
    st.builds(lambda a, b: f"[{a}{b}", _TOKEN, _TOKEN),
)
_MSG = st.one_of(
    _TOKEN,
    st.sampled_from(
        [
            "Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2",
            "Accepted publickey for anna from 10.1.2.3 port 1 ssh2: ED25519 SHA256:x",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 rhost=x  user=root",
            "    anna : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id",
            "FAILED SU (to root) anna on pts/0",
            "CEF:0|V|P|1|2|N|High|src=10.0.0.1 rt=Nov 26 2026 99:00:00 msg=a\\=b",
            "CEF:0|V\\|x|P|1|2|N|3|",
            '{"EventID":4625,"Channel":"Security","IpAddress":"1.2.3.4"}',
            '{"Event":{"System":{"EventID":"x"}}}',
            '{"Event":{"System":{}},"winlog":1}',
        ]
    ),
)


@st.composite
def _syslog_lines(draw: st.DrawFn) -> str:
    parts = [draw(_PRI), draw(st.sampled_from(["1 ", "2 ", "", "1"])), draw(_STAMP)]
    for _ in range(draw(st.integers(0, 4))):
        parts.append(" " + draw(st.one_of(_TOKEN, st.just("-"))))
    parts.append(" " + draw(_SD))
    parts.append(draw(st.sampled_from([" ", "  ", "", " \ufeff"])) + draw(_MSG))
    return "".join(parts)


@FUZZ
@given(
    line=_syslog_lines(),
    fmt=st.sampled_from(("syslog", "text")),
    tz=st.sampled_from(("UTC", "Europe/Stockholm", "No/Such_Zone")),
)
def test_syslog_shaped_text(line: str, fmt: str, tz: str) -> None:
    _check(line.encode("utf-8"), fmt, tz)


# The Linux programs' messages (norrvakt/parsers/linux*.py), cut and spliced at random.
_LINUX_PROGRAMS = st.sampled_from(
    ["sshd", "sshd-session", "sudo", "su", "login", "unix_chkpwd", "CRON", "CROND", "crontab",
     "anacron", "useradd", "usermod", "userdel", "groupadd", "groupdel", "passwd", "gpasswd", "chage"]
)  # fmt: skip
_LINUX_MESSAGES = st.sampled_from(
    [
        "Received disconnect from 2001:db8::17: 11: Bye Bye [preauth]",
        "Connection closed by authenticating user root 203.0.113.50 port 60124 [preauth]",
        "error: PAM: Authentication failure for illegal user x from h.example",
        "reverse mapping checking getaddrinfo for h [1.2.3.4] failed - POSSIBLE BREAK-IN ATTEMPT!",
        "Starting session: shell on pts/0 for anna from 10.1.2.3 port 51234 id 0",
        "BAD SU anna to root on /dev/pts/0",
        "FAILED LOGIN (1) on '/dev/tty1' from 'h' FOR 'root', Authentication failure",
        "TOO MANY LOGIN TRIES (3) FROM tty1 FOR root, Authentication failure",
        "(root) CMD (run-parts /etc/cron.hourly)",
        "Job `cron.daily' started",
        "new user: name=x, UID=0, GID=0, home=/root, shell=/bin/bash, from=/dev/pts/0",
        "change user 'a' UID from '1' to '0'",
        "change user name 'a' to 'b'",
        "new account added - account=a, uid=1, gid=2, by=0",
        "pam_unix(passwd:chauthtok): password changed for a",
        "password check failed for user (root)",
    ]
)


@st.composite
def _linux_lines(draw: st.DrawFn) -> str:
    msg = draw(_LINUX_MESSAGES)
    cut = draw(st.integers(0, len(msg)))
    msg = msg[:cut] + draw(_TOKEN) + msg[cut + draw(st.integers(0, 8)) :]
    repeat = draw(st.sampled_from(["", "message repeated 2 times: [ ", "message repeated x times: "]))
    return f"<38>Nov 26 21:43:38 h {draw(_LINUX_PROGRAMS)}[1]: {repeat}{msg}"


@FUZZ
@given(line=_linux_lines())
def test_linux_program_messages(line: str) -> None:
    _check(line.encode("utf-8", "surrogatepass"), "syslog")


_JSON_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False), _TOKEN, _STAMP
)
_JSON = st.recursive(
    _JSON_SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                _TOKEN,
                st.sampled_from(
                    _KEYS := [
                        "message",
                        "host",
                        "time",
                        "@timestamp",
                        "event",
                        "Event",
                        "System",
                        "EventData",
                        "UserData",
                        "EventID",
                        "Channel",
                        "winlog",
                        "event_data",
                        "#text",
                        "#attributes",
                        "Data",
                        "fields",
                        "PRIORITY",
                        "FACILITY",
                        "host.name",
                        "event.kind",
                        "level",
                    ]
                ),
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@FUZZ
@given(doc=_JSON, fmt=st.sampled_from(("json", "hec", "windows")))
def test_random_json(doc: Any, fmt: str) -> None:
    _check(orjson.dumps(doc), fmt)


@st.composite
def _windows_docs(draw: st.DrawFn) -> dict[str, Any]:
    system = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "Provider",
                    "EventID",
                    "TimeCreated",
                    "Channel",
                    "Computer",
                    "Execution",
                    "Security",
                    "Keywords",
                ]
            ),
            _JSON,
            max_size=6,
        )
    )
    event: dict[str, Any] = {"System": system}
    for key in ("EventData", "UserData", "ProcessingErrorData"):
        if draw(st.booleans()):
            event[key] = draw(_JSON)
    return {"Event": event}


@FUZZ
@given(doc=_windows_docs(), wrap=st.sampled_from(("windows", "json", "hec", "syslog")))
def test_random_windows_shapes(doc: dict[str, Any], wrap: str) -> None:
    body = orjson.dumps(doc)
    if wrap == "hec":
        _check(orjson.dumps({"event": doc, "time": "x"}), "hec")
    elif wrap == "syslog":
        _check(b"<14>1 2026-11-26T21:43:38Z h app - - - " + body, "syslog")
    else:
        _check(body, wrap)


# Microsoft 365 / Entra ID records (norrvakt/parsers/m365.py): each known shape's keys with
# random values, with and without the connector's feed hint, as m365 and as plain JSON.
_M365_SHAPES = (
    ("CreationTime", "Workload", "Operation", "RecordType", "ResultStatus", "ClientIP", "ExtendedProperties",
     "Parameters", "PolicyDetails", "Name", "ErrorNumber"),
    ("createdDateTime", "userPrincipalName", "appId", "status", "deviceDetail", "location", "ipAddress",
     "networkLocationDetails", "authenticationProtocol"),
    ("activityDateTime", "activityDisplayName", "loggedByService", "initiatedBy", "targetResources",
     "additionalDetails", "result", "resultReason"),
    ("createdDateTime", "serviceSource", "title", "evidence", "severity"),
    ("activityDateTime", "componentName", "activityType", "actor", "resources", "activityResult"),
    ("riskEventType", "detectedDateTime", "activityDateTime", "location", "userPrincipalName"),
    ("time", "category", "properties", "operationName", "resourceId", "resultType", "identity"),
)  # fmt: skip
_M365_VALUE = st.one_of(
    _JSON,
    _STAMP,
    st.sampled_from(["SignInLogs", "AuditLogs", "UserRiskEvents", "Administrative", "AlertTriggered"]),
    st.lists(st.dictionaries(st.sampled_from(["Name", "Value", "displayName", "newValue", "key", "value",
                                              "type", "@odata.type", "modifiedProperties", "Rules"]), _JSON,
                             max_size=4), max_size=3),
)  # fmt: skip


@FUZZ
@given(
    shape=st.sampled_from(_M365_SHAPES),
    data=st.data(),
    feed=st.sampled_from([None, "", "Audit.Exchange", "DLP.All", "graph.signIns", "graph.directoryAudits",
                          "graph.alerts_v2", "graph.intune.auditEvents", "Audit.Bogus"]),
    fmt=st.sampled_from(("m365", "json")),
)  # fmt: skip
def test_random_m365_shapes(shape: tuple[str, ...], data: st.DataObject, feed: str | None, fmt: str) -> None:
    doc = {key: data.draw(_M365_VALUE) for key in shape if data.draw(st.booleans()) or key == shape[0]}
    if shape[0] == "time" and data.draw(st.booleans()):
        doc["properties"] = {k: data.draw(_M365_VALUE) for k in data.draw(st.sampled_from(_M365_SHAPES[1:3]))}
    record = RawRecord("lulea", "m365-lulea", 1_795_729_500_000_000, "m365:x", orjson.dumps(doc), fmt,
                       hints={"m365.feed": feed} if feed is not None else None)  # fmt: skip
    event = parse_record(record)
    check_invariants(record, event)
    assert event.ecs.get("error.type") != "parser.internal_error", event.ecs.get("error.message")


@FUZZ
@given(event=st.one_of(_JSON, _syslog_lines()), time=_JSON_SCALAR, host=_JSON_SCALAR)
def test_random_hec_envelopes(event: Any, time: Any, host: Any) -> None:
    _check(orjson.dumps({"event": event, "time": time, "host": host, "sourcetype": "syslog"}), "hec")


@st.composite
def _otlp_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A record as the OTLP/HTTP receiver keeps it, with a windowseventlog body now and then."""
    keys = ["resource", "scope", "attributes", "body", "timeUnixNano", "observedTimeUnixNano",
            "severityNumber", "severityText", "traceId", "spanId", "eventName", "flags"]  # fmt: skip
    doc: dict[str, Any] = {k: draw(_JSON) for k in draw(st.lists(st.sampled_from(keys), max_size=8))}
    if draw(st.booleans()):
        body = {"channel": draw(_JSON), "event_id": draw(_JSON), "provider": draw(_JSON)}
        for key in ("computer", "event_data", "keywords", "execution", "security", "details", "record_id"):
            if draw(st.booleans()):
                body[key] = draw(
                    st.one_of(_JSON, st.builds(lambda d: {"data": d}, st.lists(_JSON, max_size=4)))
                )
        doc["body"] = body
    return doc


@FUZZ
@given(doc=_otlp_docs())
def test_random_otlp_records(doc: dict[str, Any]) -> None:
    _check(orjson.dumps(doc), "otlp")


_AUDIT_TYPES = st.sampled_from(["SYSCALL", "EXECVE", "PATH", "CWD", "PROCTITLE", "EOE", "USER_LOGIN", "X"])
_AUDIT_KEYS = st.sampled_from(
    ["a0", "a1", "a1_len", "a1[0]", "a1[1]", "argc", "name", "exe", "cwd", "proctitle", "key", "auid", "uid",
     "success", "res", "msg", "arch", "syscall", "nametype", "node", "AUID", "SYSCALL", "addr", "comm"]
)  # fmt: skip
_AUDIT_VALUES = st.one_of(
    _TOKEN,
    st.sampled_from(['"/usr/bin/id"', "2F746D70", "ABC", "00", "c000003e", "59", "-1", "'op=x res=success'"]),
    st.binary(max_size=8).map(lambda b: b.hex().upper()),
)


@st.composite
def _audit_events(draw: st.DrawFn) -> bytes:
    """The records of one audit event as the audisp listener hands them on, mangled now and then."""
    serial = draw(st.sampled_from(["1764680000.123:42", "1764680000:7", "1.5:1", "x:y", "17646.123456789:0"]))
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        pairs = draw(st.lists(st.tuples(_AUDIT_KEYS, _AUDIT_VALUES), max_size=6))
        body = " ".join(f"{k}={v}" for k, v in pairs)
        node = draw(st.sampled_from(["", "node=web1 "]))
        sep = draw(st.sampled_from(["", '\x1dAUID="anna" SYSCALL=execve']))
        lines.append(f"{node}type={draw(_AUDIT_TYPES)} msg=audit({serial}): {body}{sep}")
    if draw(st.booleans()):
        lines.append(draw(_TOKEN))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@FUZZ
@given(payload=_audit_events())
def test_random_audit_events(payload: bytes) -> None:
    _check(payload, "auditd")


@st.composite
def _journal_entries(draw: st.DrawFn) -> bytes:
    """Journal Export Format pieces: text fields, binary fields with right and wrong lengths."""
    names = st.sampled_from(
        [b"MESSAGE", b"PRIORITY", b"_HOSTNAME", b"__REALTIME_TIMESTAMP", b"_PID", b"x", b"", b"A=B"]
    )
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        name, value = draw(names), draw(st.binary(max_size=24))
        if draw(st.booleans()):
            out += name + b"=" + value.replace(b"\n", b"") + b"\n"
        else:
            size = len(value) + draw(st.sampled_from([0, 0, 0, 1, -1, 2**40]))
            out += (
                name
                + b"\n"
                + max(size, 0).to_bytes(8, "little")
                + value
                + draw(st.sampled_from([b"\n", b"", b"x"]))
            )
    return out + draw(st.sampled_from([b"", b"\n", b"MESSAGE"]))


@FUZZ
@given(payload=_journal_entries())
def test_random_journal_entries(payload: bytes) -> None:
    _check(payload, "journal")


_FLUENT_PROVIDERS = st.sampled_from(
    ["Microsoft-Windows-Security-Auditing", "Microsoft-Windows-Sysmon", "Service Control Manager", "X", ""]
)
_FLUENT_KEYS = st.sampled_from(["log", "message", "host", "time", "EventID", "Channel", "MESSAGE", "_PID"])


@st.composite
def _fluent_entries(draw: st.DrawFn) -> dict[str, Any]:
    """An entry as the forward source writes it; its record is Fluent Bit winevtlog/winlog-shaped
    now and then (StringInserts of any length for the event ids that have templates)."""
    record = draw(st.dictionaries(st.one_of(_TOKEN, _FLUENT_KEYS), _JSON, max_size=5))
    if draw(st.booleans()):
        record["ProviderName" if draw(st.booleans()) else "SourceName"] = draw(_FLUENT_PROVIDERS)
        record["EventID" if draw(st.booleans()) else "EventId"] = draw(
            st.one_of(st.sampled_from([1, 3, 4624, 4688, 7045, 1102, 1073748869, -1]), _JSON_SCALAR)
        )
        record["Channel"] = draw(_JSON_SCALAR)
        record["StringInserts"] = draw(st.one_of(st.lists(_JSON, max_size=30), _JSON))
        for key in ("TimeCreated", "TimeGenerated", "Computer", "ComputerName"):
            if draw(st.booleans()):
                record[key] = draw(st.one_of(_JSON_SCALAR, st.just("2026-11-26 21:43:38 +0100")))
    doc: dict[str, Any] = {"tag": draw(st.one_of(_TOKEN, _JSON_SCALAR)), "record": record}
    for key in ("time", "nanos", "metadata"):
        if draw(st.booleans()):
            doc[key] = draw(_JSON)
    return doc


@FUZZ
@given(doc=_fluent_entries())
def test_random_fluent_entries(doc: dict[str, Any]) -> None:
    _check(orjson.dumps(doc), "fluent")


def test_every_builtin_format_is_fuzzed() -> None:
    assert set(FORMATS) == set(registry.formats)


def test_deeply_nested_json_is_an_event_not_a_crash() -> None:
    deep = '{"a":' * 1000 + "1" + "}" * 1000
    for fmt, payload in (
        ("json", deep),
        ("windows", '{"Event":{"System":{"EventID":1},"UserData":' + deep + ',"EventData":' + deep + "}}"),
        ("hec", '{"event":' + deep + "}"),
    ):
        record = RawRecord("lulea", "fuzz", 1, "p", payload.encode(), fmt)
        event = parse_record(record)
        check_invariants(record, event)
        assert event.kind == "event", event.ecs.get("error.message")


@st.composite
def _gelf_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A GELF message: standard keys, _additional ones, now and then an NXLog Windows event."""
    keys = ["version", "host", "short_message", "full_message", "timestamp", "level", "facility",
            "_id", "_", "__x", "_host", "_user", "_EventID", "_Channel", "_SourceName", "_Hostname",
            "_EventTime", "_Keywords", "_Message", "_ts_missing", "host.name"]  # fmt: skip
    return {k: draw(_JSON) for k in draw(st.lists(st.sampled_from(keys), max_size=10))}


@FUZZ
@given(doc=_gelf_docs())
def test_random_gelf_messages(doc: dict[str, Any]) -> None:
    _check(orjson.dumps(doc), "gelf")


@FUZZ
@given(doc=_JSON, module=_JSON_SCALAR, prefix=st.sampled_from(["", "<14>Nov 26 21:43:38 h nxlog: "]))
def test_random_nxlog_json_lines(doc: Any, module: Any, prefix: str) -> None:
    line = {"SourceModuleType": "im_file", **doc} if isinstance(doc, dict) else {"SourceModuleType": module}
    _check(prefix.encode() + orjson.dumps(line), "syslog")
