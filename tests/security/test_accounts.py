"""Nobody can take over an account: not an identity provider's user who calls themselves
``admin``, not a password guesser on HTTP Basic, not someone holding an old session cookie, a
disabled user's token, a revoked token or the generated first password, not another site's
login form, not a client forging X-Forwarded-For — and a lost state database is not silently
replaced by a fresh one with a new admin.

Everything runs against real `norrvakt serve` processes, a real OpenID Connect provider
(panva's oidc-provider, with Node) and real HTTP clients; the tests use only what an attacker
or operator has: HTTP, the CLI and files in the data directory.
"""

from __future__ import annotations

import base64
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from tests.e2e.harness import Server, free_ports, oidc_server, run_cli, running_server

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
WHO = re.compile(r">\s*([^<>]+?) · (admin|soc_analyst|tenant_officer|auditor)\s*<")


# -- helpers: what a browser (or a script) does -----------------------------------------------


def _login_form(
    server: Server, username: str, password: str, **kw: Any
) -> tuple[httpx.Client, httpx.Response]:
    """Log in through the console's form as a browser would (its hidden fields kept, unless
    ``drop`` names some); the client keeps the cookies."""
    drop = kw.pop("drop", ())
    client = httpx.Client(base_url=server.url, timeout=30)
    hidden = dict(HIDDEN.findall(client.get("/login").text))
    for name in drop:
        hidden.pop(name, None)
    data = {**hidden, "username": username, "password": password, "next": "/search"}
    return client, client.post("/login", data=data, **kw)


def _session_csrf(client: httpx.Client) -> str:
    """The session's CSRF token, as every console page carries it (the logout form)."""
    page = client.get("/search")
    return page.text.split('name="csrf_token" value="')[1].split('"')[0]


def _basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _new_user(server: Server, role: str = "tenant_officer", tenant: str = "lulea") -> tuple[str, str]:
    """A user whose password works at once (chosen by the admin, not generated)."""
    name = f"u{uuid.uuid4().hex[:8]}"
    password = "pw-" + uuid.uuid4().hex
    body = {"username": name, "role": role, "tenants": [tenant], "password": password}
    made = server.api("POST", "/api/admin/users", json=body)
    assert made.status_code == 200, made.text
    return name, made.json().get("password", password)  # (a server that ignores the choice generates one)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("accounts"))) as srv:
        yield srv


# -- single sign-on: an IdP user named like a local account --------------------------------------

# A real OpenID Connect provider (panva's oidc-provider, the e2e SSO test's) with users who call
# themselves like Norrvakt's local admin and a named follow-up reviewer.
IDP_USERS = {name: {"groups": ["norrvakt-soc"], "municipality": []} for name in ("admin", "lulea.granskare")}


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = Path(tmp_path_factory.mktemp("sso"))
    with oidc_server(tmp, {"norrvakt-soc": "soc_analyst"}, IDP_USERS) as server:
        yield server


def _sso_login(server: Server, name: str) -> tuple[str, str]:
    """Log in through the provider as ``name``: (user name, role) the console then shows."""
    with httpx.Client(timeout=30, follow_redirects=True) as browser:
        form = browser.get(f"{server.url}/login/oidc?next=/search")  # on to the provider's login
        action = re.search(r'action="([^"]*/interaction/[^"]+)"', form.text)
        assert action is not None, form.text[:500]
        page = browser.post(
            urljoin(str(form.url), action.group(1)),
            data={**dict(HIDDEN.findall(form.text)), "login": name, "password": "any"},
        )
        assert page.status_code == 200 and str(page.url).startswith(server.url), (page.url, page.text[:300])
        who = WHO.search(page.text)
        assert who is not None, page.text[:500]
        return who.group(1), who.group(2)


def test_an_idp_user_named_admin_neither_becomes_nor_demotes_the_local_admin(sso: Server) -> None:
    username, role = _sso_login(sso, "admin")
    assert username != "admin" and username.startswith("admin@"), username  # an account of its own
    assert role == "soc_analyst"
    # The local admin is still an admin: its own API token may still manage users.
    made = sso.api("POST", "/api/admin/users", json={"username": "after.sso", "role": "auditor"})
    assert made.status_code == 200, made.text
    assert _sso_login(sso, "admin")[0] == username  # the same identity, the same account


def test_an_idp_user_named_like_a_reviewer_does_not_take_the_reviewers_account(sso: Server) -> None:
    password = sso.add_user("lulea.granskare", "tenant_officer", "lulea")
    username, _role = _sso_login(sso, "lulea.granskare")
    assert username != "lulea.granskare", "the IdP user got the local reviewer's account"
    # The reviewer is still Luleå's officer only (the claims did not make them a SOC analyst).
    wide = httpx.get(
        f"{sso.url}/api/search",
        params={"q": "x", "tenant": "boden"},
        headers=_basic("lulea.granskare", password),
    )
    assert wide.status_code == 403, wide.text


# -- HTTP Basic is a login: throttled, locked, audited --------------------------------------------


@pytest.fixture
def guessed(tmp_path: Path) -> Iterator[Server]:
    """A server of its own: guessing throttles the test's address for a minute."""
    with running_server(tmp_path) as srv:
        yield srv


def test_basic_auth_guessing_is_locked_throttled_and_audited(guessed: Server) -> None:
    victim, password = _new_user(guessed)
    other, other_password = _new_user(guessed)
    url = f"{guessed.url}/api/search?q=x"
    answers = [httpx.get(url, headers=_basic(victim, f"guess-{i}"), timeout=30).status_code for i in range(5)]
    assert answers == [401] * 5
    locked = httpx.get(url, headers=_basic(victim, password), timeout=30)
    assert locked.status_code == 429 and "locked" in locked.text, locked.text  # the right one, too late

    sprayed = [
        httpx.get(url, headers=_basic(f"spray{i}", "Sommar2026!"), timeout=30).status_code for i in range(20)
    ]
    assert sprayed[:15] == [401] * 15 and set(sprayed[15:]) == {429}, sprayed  # 20 failures a minute
    throttled = httpx.get(url, headers=_basic(other, other_password), timeout=30)
    assert throttled.status_code == 429 and "this address" in throttled.text, throttled.text

    audited = guessed.wait_count(
        "event.action:login event.outcome:failure method:basic", 20, tenant="_norrvakt"
    )
    assert audited >= 20
    assert guessed.count('method:basic "account locked"', tenant="_norrvakt") >= 1


# -- sessions end on the server ------------------------------------------------------------------


def test_logout_ends_the_session_on_the_server(server: Server) -> None:
    name, password = _new_user(server)
    client, resp = _login_form(server, name, password)
    assert resp.status_code == 303, resp.text
    stolen = dict(client.cookies)  # e.g. copied from the browser before logging out
    csrf = _session_csrf(client)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    replay = httpx.get(f"{server.url}/api/search", params={"q": "x"}, cookies=stolen, timeout=30)
    assert replay.status_code == 401, "the cookie still works after logging out"
    client.close()


def test_a_disabled_or_deleted_users_sessions_and_api_tokens_stop_working(server: Server) -> None:
    name, password = _new_user(server)
    client, resp = _login_form(server, name, password)
    assert resp.status_code == 303, resp.text
    made = client.post(
        "/api/account/tokens", json={"name": "script"}, headers={"X-CSRF-Token": _session_csrf(client)}
    )
    assert made.status_code == 200, made.text
    token = {"Authorization": f"Bearer {made.json()['token']}"}
    api = f"{server.url}/api/search?q=x"
    assert (
        client.get("/api/search?q=x").status_code == 200 and httpx.get(api, headers=token).status_code == 200
    )

    assert server.api("POST", f"/api/admin/users/{name}/disable").status_code == 200
    assert client.get("/api/search?q=x").status_code == 401
    assert httpx.get(api, headers=token).status_code == 401
    assert httpx.get(api, headers=_basic(name, password)).status_code == 401
    assert server.api("POST", f"/api/admin/users/{name}/enable").status_code == 200
    assert client.get("/api/search?q=x").status_code == 401  # disabling ended the session for good

    assert server.api("DELETE", f"/api/admin/users/{name}").status_code == 200
    assert httpx.get(api, headers=token).status_code == 401
    again = server.api("POST", "/api/admin/users", json={"username": name, "role": "soc_analyst"})
    assert again.status_code == 409, again.text  # the name stays the deleted person's
    client.close()


# -- the first password, and passwords an admin generates ----------------------------------------


def test_the_generated_admin_password_must_be_changed_at_first_login(server: Server) -> None:
    secret = (server.data_dir / "initial-admin.txt").read_text().split("password: ")[1].split()[0]
    client, resp = _login_form(server, "admin", secret)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/account"), resp.headers
    assert client.get("/search").headers.get("location", "").startswith("/account")
    refused = httpx.get(f"{server.url}/api/search?q=x", headers=_basic("admin", secret))
    assert refused.status_code == 403 and "temporary" in refused.text, refused.text
    new = "a-new-admin-passphrase-" + uuid.uuid4().hex[:6]
    changed = httpx.post(
        f"{server.url}/api/account/password",
        json={"current_password": secret, "new_password": new},
        headers=_basic("admin", secret),
    )
    assert changed.status_code == 200, changed.text
    assert httpx.get(f"{server.url}/api/search?q=x", headers=_basic("admin", new)).status_code == 200
    assert not (server.data_dir / "initial-admin.txt").exists()
    client.close()


def test_a_password_an_admin_generates_is_temporary(server: Server) -> None:
    made = server.api(
        "POST", "/api/admin/users", json={"username": f"t{uuid.uuid4().hex[:6]}", "role": "auditor"}
    )
    assert made.status_code == 200, made.text
    name, generated = made.json()["username"], made.json()["password"]
    refused = httpx.get(f"{server.url}/api/search?q=x", headers=_basic(name, generated))
    assert refused.status_code == 403 and "temporary" in refused.text


# -- the login form and forwarded headers ---------------------------------------------------------


def test_a_login_without_the_forms_csrf_token_is_refused(server: Server) -> None:
    name, password = _new_user(server)
    client, resp = _login_form(server, name, password, drop=("csrf_token",))
    assert resp.status_code == 403, "another site's form could log the browser into an account"
    assert "nv_session" not in client.cookies
    client.close()


def _audited_peer(server: Server, username: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        rows = server.search(f"event.action:login user.name:{username}", tenant="_norrvakt")["rows"]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    (row,) = rows
    return str(row["peer"])


FORGED = {"X-Forwarded-For": "203.0.113.77", "X-Forwarded-Proto": "https"}


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(server: Server) -> None:
    name = f"xff{uuid.uuid4().hex[:8]}"
    client, resp = _login_form(server, name, "wrong-password", headers=FORGED)
    assert resp.status_code == 401
    # The audit trail (and the login throttle) see the real peer, not the forged one.
    assert _audited_peer(server, name).startswith("127.0.0.1:"), "a forged X-Forwarded-For was believed"
    form = client.get("/login", headers=FORGED)
    assert "nv_login" in form.headers.get("set-cookie", "")
    assert "secure" not in form.headers["set-cookie"].lower()  # plain http stays plain http
    client.close()


class ProxiedServer(Server):
    """A server behind a (pretend) reverse proxy on 127.0.0.1."""

    def write_config(self) -> Path:
        cfg = super().write_config()
        text = cfg.read_text().replace("[server]\n", '[server]\ntrusted_proxies = ["127.0.0.1/32"]\n', 1)
        cfg.write_text(text)
        return cfg


def test_the_headers_of_a_configured_proxy_are_believed(tmp_path: Path) -> None:
    u, t, s, r, h = free_ports(5)
    proxied = ProxiedServer(tmp_path / "data", h, {"udp": u, "tcp": t, "tls": s, "relp": r})
    proxied.data_dir.mkdir()
    proxied.start()
    try:
        name = f"xff{uuid.uuid4().hex[:8]}"
        client, resp = _login_form(proxied, name, "wrong-password", headers=FORGED)
        assert resp.status_code == 401
        assert _audited_peer(proxied, name).startswith("203.0.113.77")
        form = client.get("/login", headers=FORGED)
        assert "secure" in form.headers["set-cookie"].lower()  # https at the proxy: Secure cookies
        client.close()
    finally:
        proxied.stop()


# -- exact tenant ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", ["boden,", " boden", "_norrvakt", "Boden"])
def test_an_ingest_token_for_a_tenant_that_is_not_exactly_one_is_refused(server: Server, tenant: str) -> None:
    resp = server.api("POST", "/api/admin/tokens", json={"tenant": tenant, "source": "x"})
    assert resp.status_code == 400, resp.text
    assert repr(tenant) in resp.json()["detail"]
    with pytest.raises(subprocess.CalledProcessError) as refused:
        server.cli("tokens", "create", "--tenant", tenant, "--source", "x")
    assert refused.value.returncode == 2


@pytest.mark.parametrize("tenant", ["_norrvakt", "boden,", "Boden"])
def test_module_subscriptions_take_exactly_one_configured_tenant(server: Server, tenant: str) -> None:
    """The system tenant is no municipality: it subscribes to nothing (and nothing switches its
    audit trail's handling off)."""
    resp = server.api("PUT", f"/api/admin/modules/{tenant}", json={"detection": False})
    assert resp.status_code in {400, 404}, resp.text
    table = server.api("GET", "/api/admin/modules").json()["tenants"]
    assert tenant not in table


@pytest.mark.parametrize("tenant", ["boden,", " boden", "Boden"])
def test_a_legal_hold_or_disposal_takes_exactly_one_tenant(server: Server, tenant: str) -> None:
    """A hold stored for "boden," would hold nothing of Boden's — silently. It is a 400."""
    hold = server.api("POST", "/api/retention/holds", json={"tenant": tenant, "reason": "case 7"})
    assert hold.status_code == 400, hold.text
    holds = server.api("GET", "/api/retention/holds").json()["holds"]
    assert all(h["tenant"] != tenant for h in holds), holds
    dispose = server.api(
        "POST", "/api/retention/dispose", json={"tenant": tenant, "up_to_seq": 1, "reason": "expired"}
    )
    assert dispose.status_code == 400, dispose.text


@pytest.mark.parametrize("tenant", ["boden,", "_norrvakt"])
def test_a_user_for_a_tenant_that_is_not_exactly_one_is_refused(server: Server, tenant: str) -> None:
    name = f"t{uuid.uuid4().hex[:6]}"
    resp = server.api(
        "POST", "/api/admin/users", json={"username": name, "role": "tenant_officer", "tenants": [tenant]}
    )
    assert resp.status_code == 400, resp.text
    cli = run_cli(server.data_dir, "users", "add", name, "--role", "tenant_officer", "--tenant", tenant)
    assert cli.returncode == 2, cli.stderr


# -- a lost state database ---------------------------------------------------------------------


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_a_journal_without_its_state_database_is_refused_at_start(tmp_path: Path) -> None:
    u, t, s, r, h = free_ports(5)
    server = Server(tmp_path / "data", h, {"udp": u, "tcp": t, "tls": s, "relp": r})
    server.data_dir.mkdir()
    try:
        server.start()
        secret = (server.data_dir / "initial-admin.txt").read_text().split("password: ")[1].split()[0]
        assert secret in server.log()  # shown at the first start, and only then
        token = server.ingest_token("lulea", "lulea-state")
        sent = httpx.post(
            f"{server.url}/services/collector/event",
            headers={"Authorization": f"Splunk {token}"},
            content='{"event": "before the state database was lost"}',
        )
        assert (
            sent.status_code == 200 and server.wait_count('"state database was lost"', 1, tenant="lulea") == 1
        )
        server.stop()
        assert server.log_path is not None
        seen = server.log_path.stat().st_size
        server.start()
        shown_again = secret in server.log_path.read_text()[seen:]  # (checked at the end)
        server.stop()

        for suffix in ("", "-wal", "-shm"):
            (server.data_dir / f"state.db{suffix}").unlink(missing_ok=True)
        with pytest.raises(RuntimeError) as missing:
            server.start()
        assert "state database" in _flat(str(missing.value)) and "missing" in _flat(str(missing.value))
        assert not (server.data_dir / "state.db").exists()  # and none was made

        (server.data_dir / "state.db").write_bytes(b"")
        with pytest.raises(RuntimeError) as empty:
            server.start()
        assert "state database" in _flat(str(empty.value)) and "empty" in _flat(str(empty.value))

        # The CLI's commands that open the directory themselves say the same, without a traceback.
        for args in (["alerts", "list"], ["cases", "list"], ["retention", "plan"]):
            out = run_cli(server.data_dir, *args)
            said = _flat(out.stderr)
            assert out.returncode != 0 and "state database" in said, (args, said[-500:])
            assert "Traceback" not in said, (args, said[-2000:])
        assert not shown_again, "the generated admin password was shown again at a later start"
    finally:
        server.stop()


# -- revoking a token (last: it revokes the token the other tests use) ----------------------------


def test_a_revoked_api_token_stops_working(server: Server) -> None:
    assert server.api("GET", "/api/search", params={"q": "x"}).status_code == 200
    revoked = server.api("POST", "/api/admin/tokens/1/revoke")  # token 1: the local CLI's API token
    assert revoked.status_code == 200, revoked.text
    assert server.api("GET", "/api/search", params={"q": "x"}).status_code == 401
