"""The account page in a real browser: the generated admin password is asked to be changed at
the first login, then the console opens; one's sessions are listed and can be ended elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import browser, login, shot  # noqa: F401 - fixture
from tests.e2e.harness import Server, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("account"))) as srv:
        yield srv


def test_the_first_login_asks_for_a_new_password(browser: Any, server: Server) -> None:  # noqa: F811
    generated = (server.data_dir / "initial-admin.txt").read_text().split("password: ")[1].split()[0]
    page = browser.new_page(viewport={"width": 1366, "height": 850}, locale="sv-SE")
    login(page, server.url, "admin", generated, next_path="/account")
    assert "tillfälligt" in page.inner_text("main")  # Swedish: the password is temporary
    page.goto(f"{server.url}/alerts")  # nothing else opens before the change
    assert "/account" in page.url
    shot(page, "account-first-login")
    page.fill("#current_password", generated)
    page.fill("#new_password", "korta")
    page.fill("#new_password_again", "korta")
    page.evaluate(
        "document.querySelectorAll('input[minlength]').forEach(i => i.removeAttribute('minlength'))"
    )
    page.click("form[action='/account/password'] button[type=submit]")
    assert "12" in page.inner_text("p.error")  # the server says why, too
    own = "ett-eget-lösenord-" + "x" * 4
    page.fill("#current_password", generated)
    page.fill("#new_password", own)
    page.fill("#new_password_again", own)
    page.click("form[action='/account/password'] button[type=submit]")
    page.wait_for_url(f"{server.url}/alerts*")
    assert not (server.data_dir / "initial-admin.txt").exists()
    assert httpx.get(f"{server.url}/api/account", auth=("admin", own)).json()["must_change_password"] is False
    page.close()


def test_log_out_everywhere_else(browser: Any, server: Server) -> None:  # noqa: F811
    own = server.admin_password()
    elsewhere = server.login("admin", own)
    page = browser.new_page(viewport={"width": 1366, "height": 850})
    login(page, server.url, "admin", own, next_path="/account")
    assert page.locator("section[aria-labelledby=ses-h] tbody tr").count() >= 2
    with page.expect_navigation():  # the page reloads when done
        page.click("button[data-api='/api/account/sessions/revoke']")
    assert page.locator("section[aria-labelledby=ses-h] tbody tr").count() == 1
    assert elsewhere.get("/api/search?q=x").status_code == 401  # the other session ended
    assert page.request.get(f"{server.url}/api/search?q=x").status == 200  # this one goes on
    elsewhere.close()
    page.close()
