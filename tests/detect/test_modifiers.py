"""Every value modifier of the Sigma specification, one positive and one negative case each."""

from __future__ import annotations

import base64

import pytest

from norrvakt.detect.engine import RuleSet
from norrvakt.detect.logsource import parse_pipeline

from .helpers import event, fires, not_loaded_reason, rule_yaml


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- plain values, case and wildcards -----------------------------------------------------


def test_plain_value_is_a_case_insensitive_exact_match() -> None:
    assert fires(
        "sel: {Image: 'C:\\Windows\\System32\\CMD.exe'}\ncondition: sel",
        Image="c:\\windows\\system32\\cmd.exe",
    )
    assert not fires("sel: {Image: 'C:\\Windows\\cmd.exe'}\ncondition: sel", Image="C:\\Windows\\cmd.exe2")


@pytest.mark.parametrize(
    ("rule_value", "value"),
    [("ÅSA Öberg", "åsa öberg"), ("Straße", "STRASSE"), ("ΣΊΣΥΦΟΣ", "σίσυφος"), ("Ärende", "äRENDE")],
)
def test_case_insensitive_also_for_non_ascii(rule_value: str, value: str) -> None:
    assert fires(f"sel: {{User: '{rule_value}'}}\ncondition: sel", User=value)


def test_non_ascii_difference_is_not_ignored() -> None:
    assert not fires("sel: {User: 'Åsa'}\ncondition: sel", User="Asa")


def test_contains() -> None:
    assert fires(
        "sel: {CommandLine|contains: 'sekurlsa::'}\ncondition: sel",
        CommandLine="m.exe SEKURLSA::logonpasswords",
    )
    assert not fires(
        "sel: {CommandLine|contains: 'sekurlsa::'}\ncondition: sel", CommandLine="m.exe sekurlsa:"
    )


def test_startswith() -> None:
    assert fires("sel: {Image|startswith: 'C:\\Users\\'}\ncondition: sel", Image="c:\\users\\anna\\x.exe")
    assert not fires("sel: {Image|startswith: 'C:\\Users\\'}\ncondition: sel", Image="D:\\C:\\Users\\x.exe")


def test_endswith() -> None:
    assert fires("sel: {Image|endswith: '\\rundll32.exe'}\ncondition: sel", Image="C:\\Windows\\RUNDLL32.EXE")
    assert not fires("sel: {Image|endswith: '\\rundll32.exe'}\ncondition: sel", Image="C:\\rundll32.exe.bak")


def test_inner_wildcards_and_single_character() -> None:
    # In Sigma a backslash before * escapes it: "\\\\*" is a backslash and then the wildcard.
    detection = "sel: {Image: 'C:\\Windows\\\\*\\cmd?.exe'}\ncondition: sel"
    assert fires(detection, Image="C:\\Windows\\System32\\cmd2.exe")
    assert not fires(detection, Image="C:\\Windows\\System32\\cmd.exe")  # ? needs one character


def test_escaped_wildcard_is_literal() -> None:
    detection = "sel: {CommandLine: 'a\\*b'}\ncondition: sel"
    assert fires(detection, CommandLine="a*b")
    assert not fires(detection, CommandLine="axxb")


def test_all_links_values_with_and() -> None:
    detection = "sel: {CommandLine|contains|all: [' -nop', ' -w hidden']}\ncondition: sel"
    assert fires(detection, CommandLine="powershell -nop -w hidden -c x")
    assert not fires(detection, CommandLine="powershell -nop -c x")


def test_value_list_without_all_is_or() -> None:
    detection = "sel: {Image|endswith: ['\\a.exe', '\\b.exe']}\ncondition: sel"
    assert fires(detection, Image="C:\\b.exe")
    assert not fires(detection, Image="C:\\c.exe")


def test_cased() -> None:
    assert fires("sel: {CommandLine|cased: 'Invoke-Mimikatz'}\ncondition: sel", CommandLine="Invoke-Mimikatz")
    assert not fires(
        "sel: {CommandLine|cased: 'Invoke-Mimikatz'}\ncondition: sel", CommandLine="invoke-mimikatz"
    )
    assert fires("sel: {CommandLine|contains|cased: 'IEX'}\ncondition: sel", CommandLine="x IEX y")
    assert not fires("sel: {CommandLine|contains|cased: 'IEX'}\ncondition: sel", CommandLine="x iex y")


# --- regular expressions --------------------------------------------------------------------


def test_re_is_case_sensitive_and_unanchored() -> None:
    assert fires("sel: {CommandLine|re: 'net\\s+user'}\ncondition: sel", CommandLine="cmd /c net  user x")
    assert not fires("sel: {CommandLine|re: 'net\\s+user'}\ncondition: sel", CommandLine="cmd /c NET USER x")


def test_re_i_flag() -> None:
    assert fires("sel: {CommandLine|re|i: 'net\\s+user'}\ncondition: sel", CommandLine="NET USER")
    assert not fires("sel: {CommandLine|re|i: 'net\\s+user'}\ncondition: sel", CommandLine="NETUSER")


def test_re_m_flag() -> None:
    assert fires("sel: {Data|re|m: '^second$'}\ncondition: sel", Data="first\nsecond\nthird")
    assert not fires("sel: {Data|re: '^second$'}\ncondition: sel", Data="first\nsecond\nthird")


def test_re_s_flag() -> None:
    assert fires("sel: {Data|re|s: 'first.second'}\ncondition: sel", Data="first\nsecond")
    assert not fires("sel: {Data|re: 'first.second'}\ncondition: sel", Data="first\nsecond")


def test_bad_regex_is_not_loaded_with_the_reason() -> None:
    assert "invalid" in not_loaded_reason("sel: {CommandLine|re: 'a(b'}\ncondition: sel").lower()


# --- encodings ------------------------------------------------------------------------------


def test_base64() -> None:
    detection = "sel: {Payload|base64: 'http://'}\ncondition: sel"
    assert fires(detection, Payload=b64(b"http://"))
    assert not fires(detection, Payload=b64(b"https://"))


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b"x = "])
def test_base64offset_finds_the_value_at_any_offset(prefix: bytes) -> None:
    detection = "sel: {CommandLine|base64offset|contains: 'Invoke-Mimikatz'}\ncondition: sel"
    assert fires(detection, CommandLine="powershell -enc " + b64(prefix + b"Invoke-Mimikatz -dump"))


def test_base64offset_negative() -> None:
    detection = "sel: {CommandLine|base64offset|contains: 'Invoke-Mimikatz'}\ncondition: sel"
    assert not fires(detection, CommandLine="powershell -enc " + b64(b"Invoke-Something -dump"))


@pytest.mark.parametrize("modifier", ["wide", "utf16le"])
@pytest.mark.parametrize("prefix", ["", "a", "ab"])
def test_utf16le_base64offset(modifier: str, prefix: str) -> None:
    detection = f"sel: {{CommandLine|{modifier}|base64offset|contains: 'IEX'}}\ncondition: sel"
    assert fires(detection, CommandLine="-enc " + b64((prefix + "IEX (New-Object)").encode("utf-16le")))
    assert not fires(detection, CommandLine="-enc " + b64((prefix + "IEX (New-Object)").encode("utf-8")))


def test_utf16be_base64() -> None:
    detection = "sel: {Blob|utf16be|base64offset|contains: 'cmd'}\ncondition: sel"
    assert fires(detection, Blob=b64("cmd /c".encode("utf-16-be")))
    assert not fires(detection, Blob=b64("cmd /c".encode("utf-16-le")))


def test_utf16_with_byte_order_mark() -> None:
    detection = "sel: {Blob|utf16|base64: 'cmd'}\ncondition: sel"
    assert fires(detection, Blob=b64(b"\xff\xfe" + "cmd".encode("utf-16-le")))
    assert not fires(detection, Blob=b64("cmd".encode("utf-16-le")))


@pytest.mark.parametrize("dash", ["-", "/", "\u2013", "\u2014", "\u2015"])
def test_windash_matches_every_dash(dash: str) -> None:
    detection = "sel: {CommandLine|windash|contains: ' -decode '}\ncondition: sel"
    assert fires(detection, CommandLine=f"certutil {dash}decode a b")


def test_windash_negative() -> None:
    detection = "sel: {CommandLine|windash|contains: ' -decode '}\ncondition: sel"
    assert not fires(detection, CommandLine="certutil +decode a b")


# --- networks, numbers, existence, references -------------------------------------------------


@pytest.mark.parametrize(
    ("network", "ip", "expected"),
    [
        ("10.0.0.0/8", "10.200.1.2", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("192.168.1.0/24", "::ffff:192.168.1.7", True),  # IPv4-mapped, as dual-stack sockets log it
        ("fe80::/10", "fe80::1c2:3", True),
        ("fe80::/10", "2001:db8::1", False),
        ("10.0.0.0/8", "-", False),
    ],
)
def test_cidr(network: str, ip: str, expected: bool) -> None:
    assert fires(f"sel: {{IpAddress|cidr: '{network}'}}\ncondition: sel", IpAddress=ip) is expected


@pytest.mark.parametrize(
    ("modifier", "value", "expected"),
    [("gt", "11", True), ("gt", "10", False), ("gte", "10", True), ("lt", "9", True), ("lt", "10", False),
     ("lte", "10", True), ("gt", "0x20", True), ("gt", "many", False)],
)  # fmt: skip
def test_numeric_comparisons(modifier: str, value: str, expected: bool) -> None:
    assert fires(f"sel: {{Count|{modifier}: 10}}\ncondition: sel", Count=value) is expected


def test_exists() -> None:
    assert fires("sel: {Hashes|exists: true}\ncondition: sel", Hashes="")
    assert not fires("sel: {Hashes|exists: true}\ncondition: sel", Image="x")
    assert fires("sel: {Hashes|exists: false}\ncondition: sel", Image="x")
    assert not fires("sel: {Hashes|exists: false}\ncondition: sel", Hashes="SHA1=00")


def test_fieldref() -> None:
    detection = "sel: {TargetUserName|fieldref: SubjectUserName}\ncondition: sel"
    assert fires(detection, TargetUserName="Anna", SubjectUserName="anna")
    assert not fires(detection, TargetUserName="anna", SubjectUserName="bertil")
    assert not fires(detection, TargetUserName="anna")


def test_fieldref_with_contains() -> None:
    detection = "sel: {CommandLine|fieldref|contains: TargetFilename}\ncondition: sel"
    assert fires(detection, CommandLine="copy x C:\\tmp\\a.dll", TargetFilename="C:\\TMP\\a.dll")
    assert not fires(detection, CommandLine="copy x", TargetFilename="C:\\tmp\\a.dll")


def test_timestamp_part() -> None:
    assert fires("sel: {UtcTime|hour: 3}\ncondition: sel", UtcTime="2024-05-01 03:12:44.120")
    assert not fires("sel: {UtcTime|hour: 3}\ncondition: sel", UtcTime="2024-05-01 13:12:44.120")


def test_neq() -> None:
    assert fires("sel: {LogonType|neq: 3}\ncondition: sel", LogonType="10")
    assert not fires("sel: {LogonType|neq: 3}\ncondition: sel", LogonType="3")


# --- null, empty, numbers and booleans -------------------------------------------------------


def test_null_matches_absent_or_empty() -> None:
    assert fires("sel: {OriginalFileName: null}\ncondition: sel", Image="x")
    assert fires("sel: {OriginalFileName: null}\ncondition: sel", OriginalFileName="")
    assert not fires("sel: {OriginalFileName: null}\ncondition: sel", OriginalFileName="cmd.exe")


def test_empty_string_matches_present_and_empty_only() -> None:
    assert fires("sel: {StartModule: ''}\ncondition: sel", StartModule="")
    assert not fires("sel: {StartModule: ''}\ncondition: sel", Image="x")
    assert not fires("sel: {StartModule: ''}\ncondition: sel", StartModule="kernel32.dll")


def test_numbers_and_booleans_match_their_text() -> None:
    assert fires("sel: {EventID: 4624, Initiated: true}\ncondition: sel", EventID="4624", Initiated="true")
    assert not fires(
        "sel: {EventID: 4624, Initiated: true}\ncondition: sel", EventID="4624", Initiated="false"
    )


# --- keywords -----------------------------------------------------------------------------------


def test_keyword_matches_anywhere_in_fields_or_message() -> None:
    detection = "keywords: ['mimikatz', 'sekurlsa']\ncondition: keywords"
    assert fires(detection, message="user ran MimiKatz.exe")
    assert fires(detection, CommandLine="x sekurlsa::logonpasswords")
    assert not fires(detection, message="nothing to see", CommandLine="notepad")


def test_keyword_does_not_span_two_values() -> None:
    assert not fires("keywords: ['ab']\ncondition: keywords", A="xa", B="bx")


def test_keyword_with_modifier() -> None:
    detection = "keywords:\n  '|re': 'Invoke-[A-Z]'\ncondition: keywords"
    assert fires(detection, message="x Invoke-Mimikatz")
    assert not fires(detection, message="x invoke-mimikatz")


def test_keyword_with_all() -> None:
    detection = "keywords:\n  '|all': ['lsass', 'dump']\ncondition: keywords"
    assert fires(detection, message="procdump lsass.exe")
    assert not fires(detection, message="lsass running")


# --- expand -----------------------------------------------------------------------------------


def _pipeline_with_placeholders() -> str:
    return (
        "name: test\nindex_fields: [Channel]\nproducts: {}\nplaceholders:\n  admins: ['adm-anna', 'adm-*']\n"
    )


def test_expand_with_configured_placeholder() -> None:
    pipeline = parse_pipeline(_pipeline_with_placeholders(), "test.yml")
    text = rule_yaml("sel: {SubjectUserName|expand: '%admins%'}\ncondition: sel")
    rules, report = RuleSet.from_yaml(text, pipeline=pipeline)
    assert len(rules) == 1, report.not_loaded
    assert rules.match(event(SubjectUserName="adm-bertil"))
    assert not rules.match(event(SubjectUserName="bertil"))


def test_expand_without_configured_placeholder_is_not_loaded() -> None:
    reason = not_loaded_reason("sel: {SubjectUserName|expand: '%domain_admins%'}\ncondition: sel")
    assert "%domain_admins%" in reason


def test_unknown_modifier_is_not_loaded_with_the_line() -> None:
    reason = not_loaded_reason("sel: {Image|endswitch: 'x'}\ncondition: sel")
    assert "endswitch" in reason and "line" in reason
