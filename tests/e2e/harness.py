"""Run a real `norrvakt serve` in a subprocess, and real syslog senders next to it."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
SYSLOG_NG = REPO / ".tools" / "syslog-ng"
# Compiled rule sets of the test servers, shared by all of them: the cache is keyed by the
# content of every rule file, the pipeline and the compiler's code, so a server never meets a
# stale entry, and the ~40 servers of a run do not each compile the same rules again.
SERVER_RULE_CACHE = REPO / ".tools" / "test-rule-cache" / "serve"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    """Until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout:.0f} s")


def free_ports(n: int) -> list[int]:
    """n distinct ports free for both TCP and UDP."""
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", p))
        except OSError:
            continue
        if p not in ports:
            ports.append(p)
    return ports


@dataclass
class Server:
    data_dir: Path
    http_port: int
    ports: dict[str, int]
    tenant: str = "lulea"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_toml: str = ""
    server_toml: str = ""  # more keys of [server] (the harness writes that table itself)
    _token: str = field(default="", repr=False)
    _admin_password: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def write_config(self) -> Path:
        cfg = self.data_dir.parent / f"{self.data_dir.name}.toml"
        p = self.ports
        cfg.write_text(
            f"""
data_dir = "{self.data_dir}"
timezone = "UTC"
log_level = "info"
{self.extra_toml}
[server]
host = "127.0.0.1"
port = {self.http_port}
{self.server_toml}

[[sources]]
id = "syslog-udp"
type = "syslog"
protocol = "udp"
host = "127.0.0.1"
port = {p["udp"]}
tenant = "{self.tenant}"

[[sources]]
id = "syslog-tcp"
type = "syslog"
protocol = "tcp"
host = "127.0.0.1"
port = {p["tcp"]}
tenant = "{self.tenant}"
max_message_bytes = 8192

[[sources]]
id = "syslog-tls"
type = "syslog"
protocol = "tls"
host = "127.0.0.1"
port = {p["tls"]}
tenant = "{self.tenant}"

[[sources]]
id = "relp"
type = "relp"
protocol = "tcp"
host = "127.0.0.1"
port = {p["relp"]}
tenant = "{self.tenant}"
"""
        )
        return cfg

    def start(self, *args: str, timeout: float = 60, launcher: tuple[str, ...] = ()) -> Server:
        """Start `norrvakt serve`; ``launcher`` goes before it (e.g. ``prlimit --nofile=…  --``)."""
        cfg = self.write_config()
        cache = self.data_dir / "cache"
        if self.data_dir.is_dir() and not cache.exists() and not cache.is_symlink():
            SERVER_RULE_CACHE.mkdir(parents=True, exist_ok=True, mode=0o700)
            cache.symlink_to(SERVER_RULE_CACHE, target_is_directory=True)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [*launcher, sys.executable, "-m", "norrvakt.cli", "--config", str(cfg), "serve", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"norrvakt serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    self._token = (self.data_dir / "cli.token").read_text().strip()
                    return self
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"norrvakt serve did not come up:\n{self.log()}")

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace")[-5000:]
            if self.log_path and self.log_path.exists()
            else ""
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def search(self, q: str, **params: Any) -> dict[str, Any]:
        resp = self.api("GET", "/api/search", params={"q": q, "limit": 1000, **params})
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def count(self, q: str, **params: Any) -> int:
        return int(self.search(q, limit=1, **params)["total"])

    def wait_count(self, q: str, expected: int, timeout: float = 30, **params: Any) -> int:
        deadline = time.monotonic() + timeout
        n = -1
        while time.monotonic() < deadline:
            n = self.count(q, **params)
            if n >= expected:
                return n
            time.sleep(0.25)
        return n

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """``norrvakt --data-dir DATA ARGS…`` as an operator would run it; its output."""
        out = subprocess.run(
            [sys.executable, "-m", "norrvakt.cli", "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            check=True,
            cwd=str(REPO),
            input=stdin.encode() if stdin is not None else None,
        )
        return out.stdout.decode().strip()

    def login_cookies(self, username: str, password: str) -> dict[str, str]:
        """The session cookies of a login through the console's form (see :meth:`login`)."""
        client = self.login(username, password)
        try:
            return dict(client.cookies)
        finally:
            client.close()

    def ingest_token(self, tenant: str, source: str) -> str:
        return self.cli("tokens", "create", "--tenant", tenant, "--source", source)

    def add_user(self, username: str, role: str, tenant: str) -> str:
        """A user made with ``norrvakt users add`` and a password the operator chose (so it is
        not temporary and works at once); that password."""
        password = "pw-" + secrets.token_urlsafe(15)
        self.cli(
            "users", "add", username, "--role", role, "--tenant", tenant, "--password-stdin", stdin=password
        )
        return password

    def admin_password(self) -> str:
        """The admin's password for tests that log in as admin. The generated one is temporary
        (the first login asks for a new one), so the harness sets one with the CLI, as an
        operator would — the same once per server."""
        if not self._admin_password:
            password = "pw-" + secrets.token_urlsafe(15)
            self.cli("users", "set-password", "admin", "--password-stdin", stdin=password)
            self._admin_password = password
        return self._admin_password

    def login(self, username: str, password: str) -> httpx.Client:
        """An httpx client logged in through the console's form (its CSRF token included); it
        sends the session's CSRF token with every request, as the console's pages do."""
        client = httpx.Client(base_url=self.url, timeout=30)
        form = client.get("/login")
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.text))
        resp = client.post("/login", data={**hidden, "username": username, "password": password, "next": "/"})
        if resp.status_code != 303:
            client.close()
            raise RuntimeError(f"login of {username} failed: {resp.status_code} {resp.text[:300]}")
        page = client.get("/account")
        client.headers["X-CSRF-Token"] = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        return client


def run_cli(data_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``norrvakt --data-dir DATA ARGS…`` whatever its exit status (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "norrvakt.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


@contextmanager
def running_server(tmp: Path, *args: str, extra_toml: str = "") -> Iterator[Server]:
    u, t, s, r, h = free_ports(5)
    server = Server(tmp / "data", h, {"udp": u, "tcp": t, "tls": s, "relp": r}, extra_toml=extra_toml)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    server.start(*args)
    try:
        yield server
    finally:
        server.stop()


OIDC_PROVIDER = REPO / "tests" / "e2e" / "oidc_provider.mjs"


@contextmanager
def oidc_server(
    tmp: Path, role_map: dict[str, str], accounts: dict[str, Any] | None = None
) -> Iterator[Server]:
    """A server with single sign-on against a real OpenID Connect provider (panva's
    oidc-provider run with Node, tests/e2e/oidc_provider.mjs); ``accounts`` adds provider users
    (name → claims) to the file's own. Skips when node or the npm package is missing."""
    if shutil.which("node") is None or not (REPO / "node_modules" / "oidc-provider").exists():
        import pytest

        pytest.skip("node and the npm package oidc-provider are needed (make installs them)")
    u, t, s, r, h, op = free_ports(6)
    redirect = f"http://127.0.0.1:{h}/login/oidc/callback"
    provider = subprocess.Popen(
        ["node", str(OIDC_PROVIDER), str(op), redirect, json.dumps(accounts or {})],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        discovery, deadline = f"http://127.0.0.1:{op}/.well-known/openid-configuration", time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(discovery, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        roles = ", ".join(f'"{claim}" = "{role}"' for claim, role in role_map.items())
        extra = f"""
[oidc]
issuer = "http://127.0.0.1:{op}"
client_id = "norrvakt"
client_secret = "norrvakt-test-secret"
scopes = "openid profile norrvakt"
role_map = {{ {roles} }}
"""
        server = Server(tmp / "data", h, {"udp": u, "tcp": t, "tls": s, "relp": r}, extra_toml=extra)
        server.data_dir.mkdir(parents=True, exist_ok=True)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        provider.terminate()
        provider.wait(10)


# -- rsyslog -----------------------------------------------------------------------------------


@dataclass
class Rsyslog:
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / "in.sock"

    def start(self, actions: str, modules: str = "") -> Rsyslog:
        if shutil.which("rsyslogd") is None:
            import pytest

            pytest.skip("rsyslogd is not installed (make test installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "rsyslog.conf"
        conf.write_text(
            f"""
global(workDirectory="{self.workdir}")
module(load="imuxsock" SysSock.Use="off")
{modules}
input(type="imuxsock" Socket="{self.socket}" CreatePath="on")
{actions}
"""
        )
        check = subprocess.run(["rsyslogd", "-N1", "-f", str(conf)], capture_output=True)
        if check.returncode != 0:
            raise RuntimeError(f"rsyslog config invalid: {check.stderr.decode()} {check.stdout.decode()}")
        with open(self.workdir / "rsyslog.out", "wb") as out:
            self.proc = subprocess.Popen(
                ["rsyslogd", "-n", "-iNONE", "-f", str(conf)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "rsyslog.out").read_text())
            time.sleep(0.05)
        return self

    def log(self, *messages: str, tag: str = "sshd", priority: str = "auth.warning") -> None:
        for msg in messages:
            subprocess.run(["logger", "-u", str(self.socket), "-t", tag, "-p", priority, msg], check=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- syslog-ng (unpacked privately by scripts/install-system-deps.sh) --------------------------


@dataclass
class SyslogNg:
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return (SYSLOG_NG / "usr" / "sbin" / "syslog-ng").exists()

    def env(self) -> dict[str, str]:
        return {**os.environ, "LD_LIBRARY_PATH": str(SYSLOG_NG / "usr" / "lib" / "syslog-ng")}

    def start(self, config_body: str) -> SyslogNg:
        if not self.available():
            import pytest

            pytest.skip("private syslog-ng missing (make test unpacks it into .tools/)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "syslog-ng.conf"
        conf.write_text("@version: 3.38\n" + config_body)
        args = [
            str(SYSLOG_NG / "usr" / "sbin" / "syslog-ng"),
            "-F",
            "-e",
            "--no-caps",
            f"--module-path={SYSLOG_NG / 'usr' / 'lib' / 'syslog-ng' / '3.38'}",
            "-f",
            str(conf),
            "-R",
            str(self.workdir / "persist"),
            "-p",
            str(self.workdir / "pid"),
            "-c",
            str(self.workdir / "ctl"),
        ]
        self.proc = subprocess.Popen(
            args,
            env=self.env(),
            stdout=open(self.workdir / "out", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        time.sleep(1.0)
        if self.proc.poll() is not None:
            raise RuntimeError((self.workdir / "out").read_text())
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def output(self) -> str:
        path = self.workdir / "out"
        return path.read_text(errors="replace") if path.exists() else ""
