"""AD response actions against the real Samba DC (tests/ad/samba_dc.py): after a disable the
account really cannot bind, after the re-enable (undo) it can, a forced change leaves
pwdLastSet = 0; a dry run changes nothing; Domain Admins are refused; a DC that is down leaves
the action failed on the case, never done."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

from norrvakt.respond.credentials import save_ad_password
from tests.ad.samba_dc import SambaDC
from tests.respond.conftest import ANA, BO, World, make_world


def _ad(dc: SambaDC, host: str | None = None) -> dict[str, object]:
    return {
        "response.ad": [
            {
                "tenant": "lulea",
                "url": f"ldaps://{host or dc.host}:{dc.ldaps_port}",
                "base_dn": dc.base_dn,
                "bind_dn": dc.service_dn,
                "ca_file": str(dc.ca_file),
                "tls_name": dc.tls_name,
            }
        ],
        "response.timeout_s": 3.0,
    }


@pytest.fixture
def ad_world(tmp_path: Path, samba_dc: SambaDC) -> Iterator[World]:
    w = make_world(tmp_path, _ad(samba_dc))
    save_ad_password(w.engine, tmp_path, "lulea", samba_dc.service_password, "admin")
    yield w
    w.engine.dispose()


def _server(dc: SambaDC) -> ldap3.Server:
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(dc.ca_file), valid_names=[dc.tls_name])
    return ldap3.Server(
        dc.host, port=dc.ldaps_port, use_ssl=True, tls=tls, connect_timeout=5, get_info=ldap3.NONE
    )


def _binds(dc: SambaDC, name: str) -> bool:
    conn = ldap3.Connection(_server(dc), dc.dn(name), dc.passwords[name])
    ok = bool(conn.bind())
    conn.unbind()
    return ok


def _attr(dc: SambaDC, name: str, attr: str) -> list[bytes]:
    conn = ldap3.Connection(_server(dc), dc.admin_dn, dc.admin_password, auto_bind=True)
    conn.search(dc.dn(name), "(objectClass=user)", ldap3.BASE, attributes=[attr])
    raw = list(conn.entries[0][attr].raw_values)
    conn.unbind()
    return raw


def test_disable_needs_a_second_person_then_the_account_cannot_bind_and_undo_enables(
    ad_world: World, samba_dc: SambaDC
) -> None:
    w = ad_world
    assert _binds(samba_dc, "kim.target")
    row = asyncio.run(
        w.svc.request(
            ANA, w.scope(ANA), action="ad.disable", target="kim.target", case_id=w.case_id, reason="phished"
        )
    )
    assert row["status"] == "pending_approval" and _binds(samba_dc, "kim.target")  # nothing done yet
    t0 = time.perf_counter()
    done = asyncio.run(w.svc.approve(BO, w.scope(BO), row["id"]))
    ms = (time.perf_counter() - t0) * 1000
    print(f"\nAD disable round-trip (approve → LDAPS modify → read back): {ms:.0f} ms")
    assert done["status"] == "done", done["result"]
    assert done["requested_by"] == "ana" and done["approved_by"] == "bo" and done["executed_at"]
    assert "userAccountControl 512 → 514 (disabled), read back" in done["result"]
    assert not _binds(samba_dc, "kim.target")  # the directory really refuses the account
    undone = asyncio.run(w.svc.undo(ANA, w.scope(ANA), row["id"]))
    assert undone["status"] == "undone" and "514 → 512" in undone["undo_result"]
    assert _binds(samba_dc, "kim.target")
    actions = [c.action for c in w.history()]
    assert actions[-4:] == ["response-request", "response-approve", "response-done", "response-undone"]
    assert [c.action for c in w.journaled] == actions[-4:]  # each step journaled too
    assert ms < 5000


def test_force_password_change_sets_pwdlastset_zero(ad_world: World, samba_dc: SambaDC) -> None:
    w = ad_world
    assert _attr(samba_dc, "lo.target", "pwdLastSet") != [b"0"]
    row = asyncio.run(
        w.svc.request(
            ANA, w.scope(ANA), action="ad.force_password_change", target="lo.target", case_id=w.case_id
        )
    )
    done = asyncio.run(w.svc.approve(BO, w.scope(BO), row["id"]))
    assert done["status"] == "done", done["result"]
    assert _attr(samba_dc, "lo.target", "pwdLastSet") == [b"0"]
    with pytest.raises(Exception, match="cannot be undone"):
        asyncio.run(w.svc.undo(ANA, w.scope(ANA), row["id"]))


def test_dry_run_changes_nothing_and_needs_no_approval(ad_world: World, samba_dc: SambaDC) -> None:
    w = ad_world
    before = _attr(samba_dc, "olle.user", "userAccountControl")
    row = asyncio.run(
        w.svc.request(
            ANA, w.scope(ANA), action="ad.disable", target="olle.user", case_id=w.case_id, dry_run=True
        )
    )
    assert row["status"] == "dry_run" and "would set userAccountControl 512 → 514" in row["result"]
    assert _attr(samba_dc, "olle.user", "userAccountControl") == before and _binds(samba_dc, "olle.user")


def test_domain_admins_are_refused(ad_world: World, samba_dc: SambaDC) -> None:
    w = ad_world
    row = asyncio.run(
        w.svc.request(ANA, w.scope(ANA), action="ad.disable", target="anna.admin", case_id=w.case_id)
    )
    done = asyncio.run(w.svc.approve(BO, w.scope(BO), row["id"]))
    assert done["status"] == "failed" and "Domain Admins" in done["result"]
    assert _binds(samba_dc, "anna.admin")


def test_dc_down_is_failed_on_the_case_and_retry_works_once_it_answers(
    tmp_path: Path, samba_dc: SambaDC
) -> None:
    # 127.0.0.1:636 has no DC: the connection is refused, as for a DC that is down
    w = make_world(tmp_path, _ad(samba_dc, host="127.0.0.1"))
    save_ad_password(w.engine, tmp_path, "lulea", samba_dc.service_password, "admin")
    w.svc.settings.response.require_approval.clear()  # no second person for this one
    row = asyncio.run(
        w.svc.request(ANA, w.scope(ANA), action="ad.enable", target="kim.target", case_id=w.case_id)
    )
    assert row["status"] == "failed" and row["retryable"], row
    assert "not reachable" in row["result"]
    last = w.history()[-1]
    assert last.action == "response-failed" and "worth a retry" in last.new
    w.engine.dispose()
