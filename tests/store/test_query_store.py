"""The search language end to end: real chDB, a few dozen events, the seqs each query finds."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from norrvakt.event import Event
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.query import SearchResult, compile_query, run_query
from norrvakt.store.schema import ECS_COLUMNS

_ECS_BY_COLUMN = {column: name for name, column in ECS_COLUMNS.items()}
T0 = 1_741_593_600_000_000  # 2025-03-10T08:00:00Z
MIN = 60_000_000


def _ev(
    seq: int,
    message: str,
    tenant: str = "lulea",
    fields: dict[str, str] | None = None,
    raw: bytes | None = None,
    **ecs: str,
) -> Event:
    """An event at T0 + seq minutes; ``ecs`` keys are column names (user_name → user.name)."""
    return Event(
        tenant=tenant,
        seq=seq,
        ts=T0 + seq * MIN,
        ingested=T0 + seq * MIN + 1_000_000,
        source="syslog-tcp",
        peer="10.9.9.9:514",
        ecs={_ECS_BY_COLUMN[k]: v for k, v in ecs.items()},
        fields=fields or {},
        message=message,
        raw=message.encode() if raw is None else raw,
    )


def _win(seq: int, code: str, user: str, host: str, ip: str, message: str) -> Event:
    fields = {"EventID": code, "TargetUserName": user, "IpAddress": ip}
    return _ev(seq, message, fields=fields, event_code=code, user_name=user, host_name=host, source_ip=ip)


EVENTS = [
    _ev(1, "Failed password for Anna from 10.1.2.3 port 52144 ssh2", user_name="Anna", source_ip="10.1.2.3",
        source_port="52144", host_name="srv-web1", event_outcome="failure"),
    _ev(2, "Accepted password for anna from 10.1.2.3 port 52150 ssh2", user_name="anna", source_ip="10.1.2.3",
        source_port="52150", host_name="srv-web1", event_outcome="success"),
    _win(3, "4625", "ADMINISTRATOR", "lul-dc1", "192.168.5.20", "An account failed to log on."),
    _win(4, "4625", "admin", "lul-dc2", "192.168.5.21", "An account failed to log on."),
    _win(5, "4624", "svc_backup", "lul-dc1", "2001:db8::5", "An account was successfully logged on."),
    _ev(6, "A new process has been created: mimikatz.exe privilege::debug", host_name="lul-ws17",
        process_command_line="mimikatz.exe privilege::debug", fields={"EventID": "4688", "IpAddress": "-"}),
    _ev(7, "Dörr 3 öppnad av Åsa", user_name="åsa", fields={"Dörr": "3", "Åtkomst": "beviljad"}),
    _ev(8, "DÖRR 4 LÅST", user_name="ÅSA", fields={"Dörr": "4", "Åtkomst": "nekad"}),
    _ev(9, "firewall drop from not-an-ip", source_ip="not-an-ip", source_port="http"),
    _ev(10, "GET /login?next=/admin 404", url_full="https://intra.lulea.se/login?next=/admin",
        http_response_status_code="404", source_ip="10.200.0.7", source_port="443"),
    _ev(11, "unparsed: <13>garbage", raw=b"\xff\xfe<13>garbage", event_kind="pipeline_error"),
    _ev(12, "user set password123 for bob", user_name="bob"),
    _ev(13, "Failed password for root from 10.1.2.3 port 52200 ssh2", user_name="root", source_ip="10.1.2.3",
        source_port="52200", host_name="srv-web2", event_outcome="failure"),
    _ev(14, "Failed password for invalid user oracle from 172.16.0.9 port 41000 ssh2", user_name="oracle",
        source_ip="172.16.0.9", source_port="41000", host_name="srv-web2", event_outcome="failure"),
    *(
        _ev(seq, f"Failed password for invalid user test{seq} from 10.1.2.4 port {40000 + seq} ssh2",
            user_name=f"test{seq}", source_ip="10.1.2.4", source_port=str(40000 + seq),
            host_name="srv-web2", event_outcome="failure")
        for seq in range(15, 35)
    ),
    _ev(1, "Failed password for anna from 10.50.0.1 port 1000 ssh2", tenant="pitea", user_name="anna",
        source_ip="10.50.0.1", host_name="pit-web"),
    _ev(2, "Accepted password for anna from 10.50.0.1 port 1001 ssh2", tenant="pitea", user_name="anna",
        source_ip="10.50.0.1", host_name="pit-web"),
]  # fmt: skip
FILLER = list(range(15, 35))
FAILED_SSH = [1, 13, 14, *FILLER]


@pytest.fixture
def events(store: ClickHouseStore) -> ClickHouseStore:
    store.insert_events(EVENTS)
    return store


def search(
    store: ClickHouseStore,
    text: str,
    tenants: Sequence[str] = ("lulea",),
    since_us: int | None = None,
    until_us: int | None = None,
) -> SearchResult:
    compiled = compile_query(text, tenants=tenants, since_us=since_us, until_us=until_us, limit=1000)
    return run_query(store, compiled)


def seqs(
    store: ClickHouseStore,
    text: str,
    tenants: Sequence[str] = ("lulea",),
    since_us: int | None = None,
    until_us: int | None = None,
) -> list[int]:
    """Sorted seqs (of any tenant in scope) that ``text`` finds."""
    return sorted(row["seq"] for row in search(store, text, tenants, since_us, until_us).rows)


# -- field terms -----------------------------------------------------------------------------------


def test_equality_is_case_insensitive(events: ClickHouseStore) -> None:
    assert seqs(events, "user.name:Anna") == [1, 2]
    assert seqs(events, "user.name:ANNA") == [1, 2]


def test_numbers_match_exactly(events: ClickHouseStore) -> None:
    assert seqs(events, "event.code:4625") == [3, 4]
    assert seqs(events, "event.code:462") == []


def test_original_fields_by_name_and_with_prefix(events: ClickHouseStore) -> None:
    assert seqs(events, "EventID:4625") == [3, 4]
    assert seqs(events, "fields.EventID:4688") == [6]
    assert seqs(events, "TargetUserName:administrator") == [3]


def test_non_ascii_field_value(events: ClickHouseStore) -> None:
    assert seqs(events, "user.name:åsa") == [7, 8]
    assert seqs(events, "Åtkomst:NEKAD") == [8]


def test_quoted_field_value(events: ClickHouseStore) -> None:
    assert seqs(events, 'process.command_line:"mimikatz.exe privilege::debug"') == [6]
    assert seqs(events, 'process.command_line:"mimikatz.exe"') == []  # whole value, not a part


def test_wildcards(events: ClickHouseStore) -> None:
    assert seqs(events, "user.name:adm*") == [3, 4]
    assert seqs(events, "host.name:*-dc?") == [3, 4, 5]
    assert seqs(events, "user.name:?sa") == [7, 8]  # ? is one character, also a two-byte one
    assert seqs(events, "process.command_line:*MIMIKATZ*") == [6]


def test_wildcard_metacharacters_of_like_are_literal(events: ClickHouseStore) -> None:
    assert seqs(events, "user.name:svc_backup") == [5]
    assert seqs(events, "user.name:svc_*") == [5]
    assert seqs(events, "user.name:%") == []


def test_field_present(events: ClickHouseStore) -> None:
    assert seqs(events, "url.full:*") == [10]
    assert seqs(events, "Dörr:*") == [7, 8]


def test_message_field_is_text_search(events: ClickHouseStore) -> None:
    assert seqs(events, 'message:"dörr 3"') == [7]


# -- free text -------------------------------------------------------------------------------------


def test_free_text_token_is_case_insensitive(events: ClickHouseStore) -> None:
    assert seqs(events, "MIMIKATZ") == [6]
    assert seqs(events, "accepted") == [2]


def test_free_text_matches_whole_tokens(events: ClickHouseStore) -> None:
    assert 12 not in seqs(events, "password")
    assert seqs(events, "password123") == [12]


def test_free_text_phrase_needs_adjacent_words(events: ClickHouseStore) -> None:
    assert seqs(events, '"failed password"') == FAILED_SSH
    assert seqs(events, '"password failed"') == []
    assert seqs(events, '"failed password for invalid"') == [14, *FILLER]


def test_free_text_with_punctuation(events: ClickHouseStore) -> None:
    assert seqs(events, "10.1.2.3") == [1, 2, 13]
    assert seqs(events, '"privilege::debug"') == [6]  # unquoted, a word with ':' is field:value


def test_free_text_non_ascii_any_case(events: ClickHouseStore) -> None:
    assert seqs(events, "dörr") == [7, 8]
    assert seqs(events, "DÖRR") == [7, 8]
    assert seqs(events, "låst") == [8]


def test_free_text_wildcards(events: ClickHouseStore) -> None:
    assert seqs(events, "pass*") == sorted([*FAILED_SSH, 2, 12])
    assert seqs(events, "mimi*.exe") == [6]
    assert seqs(events, '"failed password for invalid user test1?"') == []  # quoted: ? is literal
    assert seqs(events, "test1?") == list(range(15, 20))


def test_bare_star_finds_everything_in_scope(events: ClickHouseStore) -> None:
    assert seqs(events, "*") == list(range(1, 35))


# -- boolean logic ---------------------------------------------------------------------------------


def test_and_or_precedence(events: ClickHouseStore) -> None:
    assert seqs(events, "user.name:anna OR user.name:admin event.code:4625") == [1, 2, 4]
    assert seqs(events, "user.name:anna OR user.name:admin AND event.code:4624") == [1, 2]


def test_parentheses(events: ClickHouseStore) -> None:
    assert seqs(events, "(user.name:anna OR user.name:admin) event.code:4625") == [4]


def test_not_and_minus(events: ClickHouseStore) -> None:
    assert seqs(events, "event.code:4625 NOT user.name:admin") == [3]
    assert seqs(events, "event.code:4625 -user.name:admin") == [3]
    assert seqs(events, "host.name:srv* -host.name:srv-web2") == [1, 2]


def test_field_group(events: ClickHouseStore) -> None:
    assert seqs(events, "event.code:(4624 OR 4625)") == [3, 4, 5]
    assert seqs(events, "user.name:(anna -Anna)") == []


# -- comparisons, ranges, networks ----------------------------------------------------------------


def test_numeric_comparisons_skip_non_numbers(events: ClickHouseStore) -> None:
    assert seqs(events, "source.port:<=443") == [10]  # "http" (seq 9) is not a number
    assert seqs(events, "source.port:>52144") == [2, 13]
    assert seqs(events, "source.port:>=52144") == [1, 2, 13]
    assert seqs(events, "http.response.status_code:>=400") == [10]


def test_numeric_comparison_is_not_text_order(events: ClickHouseStore) -> None:
    # As text "443" > "41000"; as numbers it is not.
    assert 10 not in seqs(events, "source.port:>1024")


def test_ranges(events: ClickHouseStore) -> None:
    assert seqs(events, "source.port:[400 TO 500]") == [10]
    assert seqs(events, "source.port:[40015 TO 40017}") == [15, 16]
    assert seqs(events, "source.port:[52150 TO *]") == [2, 13]
    assert seqs(events, "seq:[3 TO 5]") == [3, 4, 5]


def test_time_terms(events: ClickHouseStore) -> None:
    assert seqs(events, "@timestamp:>=2025-03-10T08:33:00Z") == [33, 34]
    assert seqs(events, "@timestamp:[2025-03-10T08:01:00 TO 2025-03-10T08:02:00]") == [1, 2]
    assert seqs(events, "seq:7") == [7]


def test_cidr_ipv4_with_non_ip_values_present(events: ClickHouseStore) -> None:
    # seq 9 holds "not-an-ip": isIPAddressInRange would throw on it without the guard.
    assert seqs(events, "source.ip:10.0.0.0/8") == [1, 2, 10, 13, *FILLER]
    assert seqs(events, "source.ip:10.1.2.0/24") == [1, 2, 13, *FILLER]
    assert seqs(events, "source.ip:192.168.0.0/16") == [3, 4]


def test_cidr_ipv6(events: ClickHouseStore) -> None:
    assert seqs(events, "source.ip:2001:db8::/32") == [5]
    assert seqs(events, "source.ip:::/0") == [5]


def test_cidr_on_an_original_field(events: ClickHouseStore) -> None:
    assert seqs(events, "IpAddress:192.168.5.0/24") == [3, 4]  # seq 6 has IpAddress "-"


def test_cidr_under_not_still_guarded(events: ClickHouseStore) -> None:
    assert seqs(events, "source.ip:* -source.ip:10.0.0.0/8") == [3, 4, 5, 9, 14]


# -- safety: injection and tenant scope -----------------------------------------------------------


def test_sql_injection_finds_nothing_and_does_not_fail(events: ClickHouseStore) -> None:
    assert seqs(events, 'user.name:"x\' OR 1=1 --"') == []
    assert seqs(events, '"\'); DROP TABLE events; --"') == []
    assert seqs(events, "fields.EventID:\"4625') OR 1=1 OR ('\"") == []
    assert seqs(events, 'source.port:"0 OR 1=1"') == []
    assert len(seqs(events, "*")) == 34  # the table is still there


def test_tenant_term_cannot_widen_scope(events: ClickHouseStore) -> None:
    assert seqs(events, "tenant:pitea") == []
    assert seqs(events, "tenant:pitea OR user.name:anna") == [1, 2]
    rows = search(events, "tenant:pitea OR NOT tenant:pitea").rows
    assert {r["tenant"] for r in rows} == {"lulea"}


def test_tenant_term_narrows_a_wider_scope(events: ClickHouseStore) -> None:
    both = ("lulea", "pitea")
    rows = search(events, "user.name:anna", both).rows
    assert sorted((r["tenant"], r["seq"]) for r in rows) == [
        ("lulea", 1),
        ("lulea", 2),
        ("pitea", 1),
        ("pitea", 2),
    ]
    assert seqs(events, "user.name:anna tenant:PITEA", both) == [1, 2]
    assert {r["tenant"] for r in search(events, "tenant:pitea", both).rows} == {"pitea"}


def test_time_range_arguments(events: ClickHouseStore) -> None:
    assert seqs(events, "", since_us=T0 + 30 * MIN) == [30, 31, 32, 33, 34]
    assert seqs(events, "", since_us=T0 + 3 * MIN, until_us=T0 + 5 * MIN) == [3, 4]


# -- events results: order, paging, rows -----------------------------------------------------------


def test_events_newest_first_with_paging_and_total(events: ClickHouseStore) -> None:
    compiled = compile_query('"failed password"', tenants=["lulea"], limit=5, offset=2)
    result = run_query(events, compiled)
    assert [r["seq"] for r in result.rows] == [32, 31, 30, 29, 28]
    assert result.total == len(FAILED_SSH)
    assert result.kind == "events"


def test_events_oldest_first(events: ClickHouseStore) -> None:
    compiled = compile_query("", tenants=["lulea"], limit=3, order="asc")
    assert [r["seq"] for r in run_query(events, compiled).rows] == [1, 2, 3]


def test_event_rows_are_event_dicts(events: ClickHouseStore) -> None:
    (row,) = search(events, "seq:11").rows
    assert row["@timestamp"] == "2025-03-10T08:11:00.000000Z"
    assert row["ecs"] == {"event.kind": "pipeline_error"}
    assert row["raw"] == "\ufffd\ufffd<13>garbage"  # invalid UTF-8 shown replaced
    assert row["ts"] == T0 + 11 * MIN
    assert set(row) == set(search(events, "seq:11").columns)


def test_sort_events_by_field_numerically(events: ClickHouseStore) -> None:
    rows = search(events, "host.name:srv* | sort source.port").rows
    ports = [int(r["ecs"]["source.port"]) for r in rows]
    assert ports == sorted(ports)
    rows = search(events, "source.port:* | sort -source.port | head 3").rows
    assert [r["ecs"]["source.port"] for r in rows] == ["52200", "52150", "52144"]


def test_sort_desc_keyword_and_secondary_order(events: ClickHouseStore) -> None:
    rows = search(events, "event.code:* | sort host.name desc").rows
    assert [(r["ecs"]["host.name"], r["seq"]) for r in rows] == [
        ("lul-dc2", 4),
        ("lul-dc1", 5),
        ("lul-dc1", 3),
    ]


def test_head_caps_rows_and_total(events: ClickHouseStore) -> None:
    result = search(events, '"failed password" | head 3')
    assert [r["seq"] for r in result.rows] == [34, 33, 32]
    assert result.total == 3
    page = run_query(events, compile_query("* | head 5", tenants=["lulea"], limit=2, offset=4))
    assert [r["seq"] for r in page.rows] == [30]


def test_fields_projection(events: ClickHouseStore) -> None:
    result = search(events, "event.code:4625 | fields user.name, EventID, @timestamp, ingested")
    assert result.columns == ["@timestamp", "tenant", "seq", "user.name", "EventID", "ingested"]
    assert result.rows[0] == {
        "@timestamp": "2025-03-10T08:04:00.000000Z",
        "tenant": "lulea",
        "seq": 4,
        "user.name": "admin",
        "EventID": "4625",
        "ingested": "2025-03-10T08:04:01.000000Z",
    }


# -- stats -----------------------------------------------------------------------------------------


def test_stats_count_by_field_largest_first(events: ClickHouseStore) -> None:
    result = search(events, '"failed password" | stats count by source.ip')
    assert result.kind == "stats"
    assert result.columns == ["source.ip", "count"]
    assert result.rows == [
        {"source.ip": "10.1.2.4", "count": 20},
        {"source.ip": "10.1.2.3", "count": 2},
        {"source.ip": "172.16.0.9", "count": 1},
    ]


def test_stats_skips_events_without_the_field(events: ClickHouseStore) -> None:
    rows = search(events, "| stats count() by url.full").rows
    assert rows == [{"url.full": "https://intra.lulea.se/login?next=/admin", "count": 1}]


def test_stats_count_without_by(events: ClickHouseStore) -> None:
    assert search(events, "event.code:4625 | stats count").rows == [{"count": 2}]
    assert search(events, "nosuchword | stats count").rows == [{"count": 0}]


def test_stats_by_two_fields_with_sort_and_head(events: ClickHouseStore) -> None:
    rows = search(events, "| stats count by host.name, event.outcome | sort host.name | head 2").rows
    assert rows == [
        {"host.name": "srv-web1", "event.outcome": "failure", "count": 1},
        {"host.name": "srv-web1", "event.outcome": "success", "count": 1},
    ]


def test_stats_by_original_field_sorted_by_count_ascending(events: ClickHouseStore) -> None:
    rows = search(events, "| stats count by EventID | sort count").rows
    assert rows == [
        {"EventID": "4624", "count": 1},
        {"EventID": "4688", "count": 1},
        {"EventID": "4625", "count": 2},
    ]


def test_stats_respects_scope(events: ClickHouseStore) -> None:
    rows = search(events, "tenant:* | stats count by tenant", ("lulea", "pitea")).rows
    assert rows == [{"tenant": "lulea", "count": 34}, {"tenant": "pitea", "count": 2}]
    assert search(events, "| stats count by tenant", ("pitea",)).rows == [{"tenant": "pitea", "count": 2}]


# -- the indexes are used --------------------------------------------------------------------------


def explain(
    store: ClickHouseStore, text: str, since_us: int | None = None, until_us: int | None = None
) -> str:
    compiled = compile_query(text, tenants=["lulea"], since_us=since_us, until_us=until_us)
    plan = store.query("EXPLAIN indexes = 1 " + compiled.sql, compiled.parameters)
    return "\n".join(str(row[0]) for row in plan)


def test_free_text_reads_the_text_index(events: ClickHouseStore) -> None:
    # The text index answers hasToken itself: ClickHouse reads a virtual column from the index
    # instead of scanning message_lower.
    plan = explain(events, "mimikatz")
    assert "__text_index_message_text_hasToken" in plan
    assert 'tokens: ["mimikatz"]' in plan


def test_phrase_narrows_with_the_text_index(events: ClickHouseStore) -> None:
    plan = explain(events, '"failed password"')
    assert plan.count("__text_index_message_text_hasToken") >= 2


def test_scope_and_time_range_use_the_primary_key(events: ClickHouseStore) -> None:
    plan = explain(events, "user.name:anna", since_us=T0, until_us=T0 + 86_400_000_000)
    key_section = plan.split("PrimaryKey", 1)[1].split("Ranges", 1)[0]
    assert "tenant in" in key_section and "ts in" in key_section
    # (partitions are by ingest day, so the time range is narrowed by the key, not partitions)


def test_an_insert_of_events_from_many_days_makes_one_part(store: ClickHouseStore) -> None:
    """One part per INSERT, however many days the events' own times span (a backfill, an EVTX
    replay): a part per day made such batches 25× as costly."""
    spread = [
        Event(
            tenant="lulea",
            seq=i + 1,
            ts=T0 - i * 86_400_000_000,
            ingested=T0,
            source="t",
            peer="p",
            message=f"m{i}",
        )
        for i in range(300)
    ]
    store.insert_events(spread)
    parts = store.query(
        "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active"
    )
    assert parts == [(1,)]


def test_exact_ip_uses_the_bloom_filter(events: ClickHouseStore) -> None:
    assert "Name: srcip_idx" in explain(events, "source.ip:10.1.2.3")
