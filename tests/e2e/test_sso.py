"""Single sign-on against a real OpenID Connect provider (panva's oidc-provider, run with Node)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import browser  # noqa: F401 - fixture
from tests.e2e.harness import Server, oidc_server


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    roles = {"norrvakt-soc": "soc_analyst", "norrvakt-officer": "tenant_officer"}
    with oidc_server(Path(tmp_path_factory.mktemp("sso")), roles) as server:
        yield server


def _sso_login(browser: Any, server: Server, name: str) -> Any:  # noqa: F811
    page = browser.new_page()
    page.goto(f"{server.url}/login?next=/search")
    page.click("a[href^='/login/oidc']")
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", name)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    return page


def test_an_officer_logs_in_through_the_provider_with_tenant_from_claims(browser: Any, sso: Server) -> None:  # noqa: F811
    page = _sso_login(browser, sso, "boden.erik")
    page.wait_for_url(f"{sso.url}/search*")
    assert "boden.erik · tenant_officer" in page.inner_text("header")
    options = page.locator("#tenant option").all_inner_texts()
    assert "Boden" in options and "Luleå" not in options
    assert sso.wait_count("event.action:login user.name:boden.erik", 1, tenant="_norrvakt") == 1
    page.close()


def test_a_soc_analyst_gets_all_tenants(browser: Any, sso: Server) -> None:  # noqa: F811
    page = _sso_login(browser, sso, "soc.anna")
    page.wait_for_url(f"{sso.url}/search*")
    assert "soc_analyst" in page.inner_text("header")
    assert len(page.locator("#tenant option").all_inner_texts()) >= 15
    page.close()


def test_no_role_claim_no_entry(browser: Any, sso: Server) -> None:  # noqa: F811
    page = _sso_login(browser, sso, "nobody.karl")
    page.wait_for_selector("p.error")
    assert "no role maps" in page.inner_text("p.error")
    page.close()


def test_an_identity_gets_an_account_of_its_own_and_an_admin_can_link_it(browser: Any, sso: Server) -> None:  # noqa: F811
    issuer = sso.extra_toml.split('issuer = "')[1].split('"')[0]
    password = sso.add_user("boden.it", "tenant_officer", "boden")
    page = _sso_login(browser, sso, "soc.anna")  # the identity's account from the earlier test
    page.wait_for_url(f"{sso.url}/search*")
    assert "soc.anna · soc_analyst" in page.inner_text("header")
    page.close()
    sso.cli("users", "link", "boden.it", "--issuer", issuer, "--subject", "soc.anna")
    page = _sso_login(browser, sso, "soc.anna")
    page.wait_for_url(f"{sso.url}/search*")
    # the local account, with its own role and tenants: the claims (a SOC analyst) change nothing
    assert "boden.it · tenant_officer" in page.inner_text("header")
    assert "Luleå" not in page.locator("#tenant option").all_inner_texts()
    page.close()
    local = httpx.get(f"{sso.url}/api/account", auth=("boden.it", password)).json()
    assert local["role"] == "tenant_officer" and local["tenants"] == ["boden"]
