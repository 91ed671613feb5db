"""Users and groups synced from a real Samba AD DC over LDAPS (the session's ``samba_dc``):
privileged through Domain Admins and the tenant's own admin group, disabled marked, a user gone
from a later sync marked departed, and the accounts raising an alert at intake."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from norrvakt.alerts.model import AlertInput
from norrvakt.enrich.directory import DirectoryConfig, DirectoryError, accounts_of
from norrvakt.enrich.severity import LEVEL_REASON, AlertContext
from norrvakt.state import directory as rows
from norrvakt.state.db import make_engine, open_state
from tests.ad.samba_dc import SambaDC


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state") / "state.db"
    open_state(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture
def engine(migrated: Path, tmp_path: Path) -> Any:
    shutil.copy(migrated, tmp_path / "state.db")
    e = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    yield e
    e.dispose()


def _config(dc: SambaDC, **more: Any) -> DirectoryConfig:
    return DirectoryConfig(
        url=dc.url,
        base_dn=dc.base_dn,
        bind_dn=dc.service_dn,
        ca_file=str(dc.ca_file),
        tls_name=dc.tls_name,
        privileged_groups=("Domain Admins", "IT-Administratörer"),
        **more,
    )


def test_sync_reads_users_groups_and_marks(samba_dc: SambaDC, engine: Any) -> None:
    counts = _config(samba_dc).build().sync(engine, "lulea", samba_dc.service_password)
    with engine.connect() as conn:
        found = {a.username: a for a in rows.listed(conn, ["lulea"])}
    assert found["anna.admin"].privileged and "Domain Admins" in found["anna.admin"].groups
    assert found["per.itadmin"].privileged  # the municipality's own admin group
    assert not found["olle.user"].privileged and found["olle.user"].groups == ("Socialtjänst",)
    assert found["dis.abled"].disabled and not found["olle.user"].disabled
    assert found["administrator"].privileged  # Domain Admins, and Administrators through nesting
    assert counts["accounts"] == len(found) and counts["privileged"] >= 3 and counts["disabled"] >= 1
    ctx = AlertContext(engine)
    inp = AlertInput("lulea", "r", "R", "medium", [], 1, 1, {"user.name": "NORRVAKT\\anna.admin"})
    raised = ctx.adjust(inp)
    assert raised.level == "high" and raised.entities[LEVEL_REASON] == "user anna.admin: privileged"
    shown = ctx.describe("lulea", {"user.name": "dis.abled"})
    assert shown["account"]["marks"] == ["disabled"]


def test_a_wrong_password_is_an_error_naming_the_server(samba_dc: SambaDC) -> None:
    with pytest.raises(DirectoryError, match=r"bind as .* refused"):
        _config(samba_dc).build().fetch("lulea", "not-the-password")


def test_plain_ldap_is_refused_before_any_bind() -> None:
    with pytest.raises(DirectoryError, match="only ldaps://"):
        DirectoryConfig(url="ldap://dc1", base_dn="DC=x", bind_dn="CN=y").build()


def test_nesting_cycles_and_expiry_from_entries() -> None:
    groups = [
        {"dn": "CN=Inner,DC=x", "cn": "Inner", "memberOf": ["CN=Outer,DC=x"]},
        {"dn": "CN=Outer,DC=x", "cn": "Outer", "memberOf": ["CN=Inner,DC=x", "CN=Domain Admins,DC=x"]},
        {"dn": "CN=Domain Admins,DC=x", "cn": "Domain Admins", "memberOf": []},
    ]
    users = [
        {"dn": "CN=a,DC=x", "sAMAccountName": "A", "memberOf": ["CN=Inner,DC=x"], "userAccountControl": 512,
         "accountExpires": 0},
        # expired on 2020-01-01 (100-ns ticks since 1601)
        {"dn": "CN=b,DC=x", "sAMAccountName": "b", "memberOf": [], "userAccountControl": 514,
         "accountExpires": 132223104000000000},
    ]  # fmt: skip
    a, b = accounts_of("lulea", users, groups, ["domain admins"], now=1_800_000_000_000_000)
    assert a.username == "a" and a.privileged and a.groups == ("Domain Admins", "Inner", "Outer")
    assert b.disabled and b.departed and not b.privileged


def test_the_command_syncs_with_the_password_from_a_file(samba_dc: SambaDC, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from norrvakt.cli.main import main

    data = tmp_path / "var"
    data.mkdir()
    (tmp_path / "pw").write_text(samba_dc.service_password + "\n")
    config = tmp_path / "norrvakt.toml"
    config.write_text(
        f'data_dir = "{data}"\n[enrich.privileged_groups]\n'
        '"*" = ["Domain Admins"]\nlulea = ["IT-Administratörer"]\n'
    )
    args = ["--config", str(config), "directory", "sync", "--tenant", "lulea", "--url", samba_dc.url]
    args += ["--base-dn", samba_dc.base_dn, "--bind-dn", samba_dc.service_dn]
    args += ["--password-file", str(tmp_path / "pw"), "--ca-file", str(samba_dc.ca_file)]
    args += ["--tls-name", samba_dc.tls_name]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("lulea: ") and " privileged" in result.output
    assert samba_dc.service_password not in result.output
    engine = make_engine(f"sqlite:///{data / 'state.db'}")
    with engine.connect() as conn:
        found = {a.username: a for a in rows.listed(conn, ["lulea"])}
    engine.dispose()
    assert found["per.itadmin"].privileged and found["anna.admin"].privileged
