"""The fixture's DC is real: LDAPS with Samba's own certificate, the users bind, the disabled one
cannot, group membership is what the fixture promises."""

from __future__ import annotations

import ssl

import ldap3

from tests.ad.samba_dc import SambaDC


def _server(dc: SambaDC) -> ldap3.Server:
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(dc.ca_file), valid_names=[dc.tls_name])
    return ldap3.Server(
        dc.host, port=dc.ldaps_port, use_ssl=True, tls=tls, connect_timeout=5, get_info=ldap3.NONE
    )


def test_ldaps_binds_and_directory(samba_dc: SambaDC) -> None:
    server = _server(samba_dc)
    admin = ldap3.Connection(server, samba_dc.admin_dn, samba_dc.admin_password, auto_bind=True)
    assert admin.bound
    for name in ("svc.norrvakt", "anna.admin", "olle.user", "kim.target"):
        conn = ldap3.Connection(server, samba_dc.dn(name), samba_dc.passwords[name])
        assert conn.bind(), (name, conn.result)
        conn.unbind()
    disabled = ldap3.Connection(server, samba_dc.dn("dis.abled"), samba_dc.passwords["dis.abled"])
    assert not disabled.bind()
    assert "data 533" in disabled.result["message"]  # ERROR_ACCOUNT_DISABLED
    admin.search(samba_dc.base_dn, "(sAMAccountName=anna.admin)", attributes=["memberOf"])
    assert any(str(g).startswith("CN=Domain Admins,") for g in admin.entries[0].memberOf)
    admin.search(samba_dc.base_dn, "(sAMAccountName=olle.user)", attributes=["memberOf", "department"])
    assert [str(g) for g in admin.entries[0].memberOf] == [f"CN=Socialtjänst,CN=Users,{samba_dc.base_dn}"]
    admin.unbind()


def test_plain_ldap_refuses_simple_bind_without_tls(samba_dc: SambaDC) -> None:
    # Samba's default ("ldap server require strong auth = yes"): why Norrvakt speaks LDAPS only.
    conn = ldap3.Connection(
        ldap3.Server(samba_dc.host, port=samba_dc.ldap_port), samba_dc.service_dn, samba_dc.service_password
    )
    assert not conn.bind()
    assert conn.result["description"] == "strongerAuthRequired"
