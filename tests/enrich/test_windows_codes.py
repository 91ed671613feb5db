"""Windows codes in words at ingest: the event as parsed plus the decoded fields, originals untouched."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from norrvakt.enrich import ingest
from norrvakt.enrich.windows_codes import CODES_FILE, CodesError, codes, flag_names, load_codes
from norrvakt.event import RawRecord
from norrvakt.parsers.records import parse_one


def _evtx(eid: int, data: dict[str, Any]) -> bytes:
    doc = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "EventID": eid,
                "Channel": "Security",
                "Computer": "DC01.lulea.kommun.local",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-12-01T07:12:44.120000Z"}},
            },
            "EventData": data,
        }
    }
    return orjson.dumps(doc)


def _event(eid: int, data: dict[str, Any], tenant: str = "lulea") -> Any:
    return parse_one(RawRecord(tenant, "evtx-test", 1, "file:x#1", _evtx(eid, data), format="windows"))


@pytest.fixture(autouse=True)
def _defaults() -> Any:
    yield ingest.use(ingest.EnrichConfig())
    ingest.use(ingest.EnrichConfig())


def test_4625_bad_password_decoded_beside_the_codes() -> None:
    e = _event(
        4625,
        {
            "TargetUserName": "anna.l",
            "LogonType": 3,
            "Status": "0xc000006d",
            "SubStatus": "0xC000006A",
            "FailureReason": "%%2313",
            "IpAddress": "10.20.3.4",
        },
    )
    f = e.fields
    assert f["winlog.logon.type_name"] == "Network"
    assert f["winlog.logon.failure.status"] == "Bad user name or authentication information"
    assert f["winlog.logon.failure.sub_status"] == "Bad password (the user name is correct)"
    assert f["winlog.logon.failure.reason"] == "Unknown user name or bad password"
    assert f["event.reason"] == "Bad password (the user name is correct)"
    # the originals as written
    assert (f["LogonType"], f["Status"], f["SubStatus"], f["FailureReason"]) == (
        "3",
        "0xc000006d",
        "0xC000006A",
        "%%2313",
    )


def test_4625_unknown_user_and_locked_out() -> None:
    e = _event(4625, {"LogonType": 10, "Status": "0xC000006D", "SubStatus": "0xC0000064"})
    assert e.fields["event.reason"].startswith("User name does not exist")
    assert e.fields["winlog.logon.type_name"] == "RemoteInteractive"
    locked = _event(4625, {"LogonType": 2, "Status": "0xC0000234", "SubStatus": "0x0"})
    assert locked.fields["event.reason"] == "Account is locked out"
    assert "winlog.logon.failure.sub_status" not in locked.fields


def test_kerberos_preauth_failed_and_unknown_principal() -> None:
    e = _event(4771, {"TargetUserName": "erik", "Status": "0x18", "PreAuthType": "2"})
    assert e.fields["winlog.kerberos.result"] == "KDC_ERR_PREAUTH_FAILED"
    assert e.fields["event.reason"] == "Pre-authentication failed (bad password)"
    assert e.fields["winlog.kerberos.preauth_type"].startswith("PA-ENC-TIMESTAMP")
    tgt = _event(4768, {"Status": "0x6", "TicketEncryptionType": "0xffffffff", "PreAuthType": "-"})
    assert tgt.fields["winlog.kerberos.result"] == "KDC_ERR_C_PRINCIPAL_UNKNOWN"
    assert tgt.fields["winlog.kerberos.encryption_type"] == "Failure (no ticket issued)"
    assert "winlog.kerberos.preauth_type" not in tgt.fields


def test_kerberos_success_has_no_reason_and_rc4_is_named() -> None:
    e = _event(4769, {"Status": "0x0", "TicketEncryptionType": "0x17", "ServiceName": "MSSQLSvc"})
    assert e.fields["winlog.kerberos.result"] == "KDC_ERR_NONE"
    assert e.fields["winlog.kerberos.encryption_type"] == "RC4-HMAC"
    assert "event.reason" not in e.fields


def test_4738_preauth_switched_off_is_named_as_added_flag() -> None:
    e = _event(
        4738,
        {
            "TargetUserName": "svc-backup",
            "OldUacValue": "0x210",
            "NewUacValue": "0x10210",
            "UserAccountControl": "\n\t\t%%2096",
        },
    )
    f = e.fields
    assert f["winlog.uac.added"] == "DONT_REQUIRE_PREAUTH"
    assert f["winlog.uac.new_flags"] == "NORMAL_ACCOUNT, DONT_EXPIRE_PASSWORD, DONT_REQUIRE_PREAUTH"
    assert f["winlog.uac.old_flags"] == "NORMAL_ACCOUNT, DONT_EXPIRE_PASSWORD"
    assert f["winlog.uac.changes"] == "'Don't Require Preauth' - Enabled"
    assert "winlog.uac.removed" not in f


def test_4720_new_account_as_microsoft_documents_it() -> None:
    # 0x15 with %%2080 %%2082 %%2084 is the example of Microsoft's 4720 page
    e = _event(
        4720, {"OldUacValue": "0x0", "NewUacValue": "0x15", "UserAccountControl": "%%2080 %%2082 %%2084"}
    )
    assert e.fields["winlog.uac.new_flags"] == "ACCOUNT_DISABLED, PASSWORD_NOT_REQUIRED, NORMAL_ACCOUNT"
    assert e.fields["winlog.uac.changes"] == (
        "Account Disabled; 'Password Not Required' - Enabled; 'Normal Account' - Enabled"
    )


def test_unknown_codes_are_left_alone_and_unknown_bits_shown_in_hex() -> None:
    e = _event(4625, {"LogonType": 99, "Status": "0xC0FFEE00", "SubStatus": "banana"})
    assert not any(k.startswith("winlog.logon") or k == "event.reason" for k in e.fields)
    assert flag_names(0x10 | 0x40000000, codes().sam_account_flags) == ["NORMAL_ACCOUNT", "0x40000000"]


def test_a_value_the_event_already_has_is_kept() -> None:
    doc = {
        "@timestamp": "2026-12-01T07:12:44Z",
        "winlog": {
            "channel": "Security",
            "event_id": 4624,
            "provider_name": "Microsoft-Windows-Security-Auditing",
            "event_data": {"LogonType": "3"},
            "logon": {"type_name": "as the shipper said"},
        },
    }
    e = parse_one(RawRecord("lulea", "wlb", 1, "peer", orjson.dumps(doc), format="json"))
    assert e.fields["winlog.logon.type_name"] == "as the shipper said"


def test_switched_off_adds_nothing() -> None:
    ingest.use(ingest.EnrichConfig(windows_codes=False))
    e = _event(4625, {"LogonType": 3, "Status": "0xC000006D", "SubStatus": "0xC000006A"})
    assert "winlog.logon.type_name" not in e.fields and "event.reason" not in e.fields


def test_a_broken_codes_file_names_table_and_entry(tmp_path: Any) -> None:
    bad = tmp_path / "codes.yml"
    bad.write_text(CODES_FILE.read_text(encoding="utf-8").replace("  3: Network", "  three: Network"))
    with pytest.raises(CodesError, match="logon_types: key 'three' is not a number"):
        load_codes(bad)
