"""Country and AS of public addresses (the installed offline databases) and the tenant's named
ranges, added at ingest under ECS names; private addresses get only their range's name."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from norrvakt.config import ConfigError, load_settings
from norrvakt.enrich import ingest
from norrvakt.enrich.ip import database_versions, lookup
from norrvakt.enrich.networks import NetworkSettingError, TenantNetworks
from norrvakt.event import RawRecord
from norrvakt.parsers.records import parse_one

NETWORKS = {
    "lulea": {
        "Luleå kommunnät": ["10.20.0.0/16"],
        "VPN-pool": ["10.20.200.0/22"],
        "Skolnät": ["2001:db8:20::/48"],
    },
    "*": {"Kommunalförbundets nät": ["10.0.0.0/8"]},
}


@pytest.fixture(autouse=True)
def _networks() -> Any:
    yield ingest.use(ingest.EnrichConfig(networks=NETWORKS))
    ingest.use(ingest.EnrichConfig())


def _logon(tenant: str, ip: str, dst: str | None = None) -> Any:
    data = {"TargetUserName": "anna.l", "LogonType": 3, "IpAddress": ip}
    if dst:
        data["DestAddress"] = dst
    doc = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "EventID": 4624,
                "Channel": "Security",
                "Computer": "WS17",
            },
            "EventData": data,
        }
    }
    return parse_one(RawRecord(tenant, "t", 1, "p", orjson.dumps(doc), format="windows"))


def test_public_address_gets_country_and_as() -> None:
    e = _logon("lulea", "192.36.125.1")
    assert e.fields["source.geo.country_iso_code"] == "SE"
    assert e.fields["source.as.number"] == "1653"
    assert "SUNET" in e.fields["source.as.organization.name"]
    assert e.ecs["source.ip"] == "192.36.125.1"  # the ECS column as parsed
    assert "source.network.name" not in e.fields


def test_ipv6_and_ipv4_mapped_addresses() -> None:
    info = lookup("2001:4860:4860::8888")
    assert info is not None and info.country == "US" and info.asn == 15169
    mapped = lookup("::ffff:8.8.8.8")
    assert mapped is not None and mapped.asn == 15169


def test_private_reserved_and_garbage_get_no_geo() -> None:
    for ip in ("10.1.2.3", "127.0.0.1", "169.254.1.1", "192.0.2.7", "fe80::1", "not-an-ip", ""):
        assert lookup(ip) is None, ip


def test_narrowest_named_range_of_the_tenant_wins() -> None:
    assert _logon("lulea", "10.20.201.7").fields["source.network.name"] == "VPN-pool"
    assert _logon("lulea", "10.20.3.4").fields["source.network.name"] == "Luleå kommunnät"
    assert _logon("lulea", "2001:db8:20::5").fields["source.network.name"] == "Skolnät"
    assert "source.geo.country_iso_code" not in _logon("lulea", "10.20.3.4").fields


def test_another_tenant_does_not_see_lulea_names_only_the_shared_ones() -> None:
    assert _logon("boden", "10.20.3.4").fields["source.network.name"] == "Kommunalförbundets nät"
    assert "source.network.name" not in _logon("boden", "172.16.0.1").fields


def test_destination_is_enriched_too() -> None:
    e = _logon("lulea", "10.20.3.4", dst="8.8.8.8")
    assert e.fields["destination.as.number"] == "15169"
    assert e.fields["destination.geo.country_iso_code"] == "US"


def test_ip_off_keeps_named_ranges() -> None:
    ingest.use(ingest.EnrichConfig(ip=False, networks=NETWORKS))
    e = _logon("lulea", "8.8.8.8")
    assert "source.as.number" not in e.fields
    assert _logon("lulea", "10.20.201.7").fields["source.network.name"] == "VPN-pool"


def test_everything_off_adds_nothing() -> None:
    ingest.use(ingest.EnrichConfig(enabled=False, networks=NETWORKS))
    e = _logon("lulea", "10.20.201.7", dst="8.8.8.8")
    assert not [k for k in e.fields if "." in k]


def test_a_bad_range_is_a_setting_error_naming_it() -> None:
    with pytest.raises(NetworkSettingError, match=r"enrich.networks.lulea.'VPN': '10.20.300.0/22'"):
        TenantNetworks.from_setting({"lulea": {"VPN": ["10.20.300.0/22"]}})
    with pytest.raises(ConfigError, match=r"10\.20\.300\.0/22"):
        load_settings(None, {"enrich": {"networks": {"lulea": {"VPN": ["10.20.300.0/22"]}}}})


def test_the_config_reaches_a_worker_as_json() -> None:
    config = ingest.EnrichConfig(ip=False, networks=NETWORKS)
    assert ingest.EnrichConfig.from_json(config.to_json()) == config
    assert ingest.EnrichConfig.from_json("") == ingest.EnrichConfig()


def test_database_versions_are_named() -> None:
    versions = database_versions()
    assert versions["iptocc"] != "not installed" and versions["plevin-db-network"] != "not installed"
    assert versions["plevin-db-network built"][:4].isdigit()
