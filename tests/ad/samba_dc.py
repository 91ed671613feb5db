"""A real Samba Active Directory domain controller on loopback, for the tests.

Provisioning a domain (``samba-tool domain provision``) takes ~15 s and the first start another
few seconds (Samba generates its self-signed TLS key then), so it is done once into a template
under ``.tools/`` (keyed by the recipe below and Samba's version) and every test session copies the
template into its own directory and starts ``samba`` from there (~1 s).

Samba's LDAP server has no port setting (389/636 are fixed), so each session gets its own loopback
address instead of its own port: ``127.x.y.z`` with nothing listening on 636, added to ``lo`` as a
/32 for the session (Samba only binds addresses an interface carries) and removed afterwards.
That, and binding ports below 1024, needs root (or CAP_NET_ADMIN + CAP_NET_BIND_SERVICE); without
it the fixture fails with that reason — it never skips.

The directory (realm NORRVAKT.TEST, base ``DC=norrvakt,DC=test``), all in ``CN=Users``:

- ``Administrator`` — the domain's built-in administrator (``ADMIN_PASSWORD``).
- ``svc.norrvakt`` — a service account in *Account Operators*: what a municipality delegates to
  Norrvakt for response actions (it may disable users and reset passwords, not touch admins).
- ``anna.admin`` — member of *Domain Admins*.
- ``per.itadmin`` — member of the municipality's own admin group *IT-Administratörer*.
- ``olle.user`` — an ordinary user in group *Socialtjänst*.
- ``dis.abled`` — a disabled account.
- ``kim.target`` and ``lo.target`` — ordinary users that the response-action tests disable,
  re-enable and force to change password: their state changes during a session; read others.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REALM = "NORRVAKT.TEST"
DOMAIN = "NORRVAKT"
DNS_DOMAIN = "norrvakt.test"
BASE_DN = "DC=norrvakt,DC=test"
HOSTNAME = "DC1"
# the name in Samba's self-signed certificate (it takes the host's FQDN at the first start)
TLS_NAME = f"{HOSTNAME}.{DNS_DOMAIN}"
ADMIN_PASSWORD = "Adm1n-Norrvakt!"

# (name, password, groups, disabled, given name, surname, department)
USERS: tuple[tuple[str, str, tuple[str, ...], bool, str, str, str], ...] = (
    ("svc.norrvakt", "Svc-Norrvakt-1!", ("Account Operators",), False, "Norrvakt", "Service", "IT"),
    ("anna.admin", "Anna-Passw0rd!", ("Domain Admins",), False, "Anna", "Andersson", "IT"),
    ("per.itadmin", "Per-Passw0rd!", ("IT-Administratörer",), False, "Per", "Persson", "IT"),
    ("olle.user", "Olle-Passw0rd!", ("Socialtjänst",), False, "Olle", "Olsson", "Socialtjänst"),
    ("dis.abled", "Dis-Passw0rd!", (), True, "Dis", "Abled", "Skola"),
    ("kim.target", "Kim-Passw0rd!", (), False, "Kim", "Karlsson", "Skola"),
    ("lo.target", "Lo-Passw0rd!", (), False, "Lo", "Lind", "Skola"),
)
GROUPS = ("IT-Administratörer", "Socialtjänst")
RECIPE_VERSION = "2"

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools"


def user_dn(name: str) -> str:
    return f"CN={name},CN=Users,{BASE_DN}"


@dataclass
class SambaDC:
    """A running DC: where it listens and who can bind."""

    host: str
    workdir: Path
    pid: int
    started_ms: float
    ldaps_port: int = 636
    ldap_port: int = 389
    base_dn: str = BASE_DN
    realm: str = REALM
    tls_name: str = TLS_NAME
    admin_dn: str = f"CN=Administrator,CN=Users,{BASE_DN}"
    admin_password: str = ADMIN_PASSWORD
    service_dn: str = user_dn("svc.norrvakt")
    service_password: str = "Svc-Norrvakt-1!"
    passwords: dict[str, str] = field(default_factory=lambda: {u[0]: u[1] for u in USERS})

    @property
    def ca_file(self) -> Path:
        """Samba's self-signed CA (private/tls/ca.pem): what a client verifies LDAPS against."""
        return self.workdir / "private" / "tls" / "ca.pem"

    @property
    def url(self) -> str:
        return f"ldaps://{self.host}:{self.ldaps_port}"

    def dn(self, name: str) -> str:
        return user_dn(name)


def _run(args: list[str], what: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"samba fixture: {what} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def _samba_version() -> str:
    if shutil.which("samba") is None or shutil.which("samba-tool") is None:
        raise RuntimeError(
            "samba fixture: Debian package 'samba' is not installed (make system-deps installs it)"
        )
    return subprocess.run(["samba", "-V"], capture_output=True, text=True, check=True).stdout.strip()


def _smb_conf(base: Path, host: str) -> str:
    # Only the LDAP server: no SMB, RPC, KDC, DNS or NetBIOS (faster start, fewer ports).
    d = str(base)
    return f"""[global]
\tnetbios name = {HOSTNAME}
\trealm = {REALM}
\tworkgroup = {DOMAIN}
\tserver role = active directory domain controller
\tserver services = ldap
\tinterfaces = {host}
\tbind interfaces only = yes
\tprivate dir = {d}/private
\tlock directory = {d}/lock
\tstate directory = {d}/state
\tcache directory = {d}/cache
\tbinddns dir = {d}/bind-dns
\tpid directory = {d}/run
\tncalrpc dir = {d}/run/ncalrpc
\twinbindd socket directory = {d}/run/winbindd
\tntp signd socket directory = {d}/run/ntp_signd
\tlog file = {d}/log.samba
\tlogging = file
\tlog level = 1
\ttls enabled = yes
\tidmap_ldb:use rfc2307 = yes
"""


def _port_free(host: str, port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
    except OSError:
        return False
    finally:
        s.close()
    return True


def _claim_address() -> str:
    """A loopback address nobody's DC uses, added to lo (``ip addr add`` is atomic: a second
    session racing for the same address gets 'File exists' and tries another)."""
    rng = random.Random(os.getpid() ^ time.time_ns())
    last = ""
    for _ in range(50):
        host = f"127.{rng.randint(100, 250)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
        if not (_port_free(host, 636) and _port_free(host, 389)):
            continue
        proc = subprocess.run(
            ["ip", "addr", "add", f"{host}/32", "dev", "lo"], capture_output=True, text=True
        )
        if proc.returncode == 0:
            return host
        last = proc.stderr.strip()
        if "File exists" not in last:
            raise RuntimeError(
                f"samba fixture: cannot add loopback address {host} ({last}); Samba's LDAP ports are "
                "fixed, so each DC needs its own address: this needs root or CAP_NET_ADMIN"
            )
    raise RuntimeError(f"samba fixture: no free loopback address found (last error: {last})")


def _release_address(host: str) -> None:
    subprocess.run(["ip", "addr", "del", f"{host}/32", "dev", "lo"], capture_output=True, check=False)


def _start(workdir: Path, host: str, timeout: float = 30.0) -> tuple[subprocess.Popen[bytes], float]:
    conf = workdir / "etc" / "smb.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(_smb_conf(workdir, host), encoding="utf-8")
    for sub in ("lock", "cache", "run", "state"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    out = open(workdir / "samba.out", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        ["samba", "-i", "-M", "single", "-s", str(conf)], stdout=out, stderr=subprocess.STDOUT
    )
    out.close()
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"samba fixture: samba exited with {proc.returncode}: "
                + (workdir / "samba.out").read_text(errors="replace")[-2000:]
            )
        with contextlib.suppress(OSError), socket.create_connection((host, 636), timeout=0.2):
            return proc, (time.perf_counter() - t0) * 1000
        time.sleep(0.02)
    _stop(proc)
    raise RuntimeError(f"samba fixture: LDAPS on {host}:636 did not answer within {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _provision(dest: Path) -> None:
    """Provision the domain into ``dest`` and add the users and groups (offline, on sam.ldb)."""
    _run(
        [
            "samba-tool", "domain", "provision",
            f"--realm={REALM}", f"--domain={DOMAIN}", f"--adminpass={ADMIN_PASSWORD}",
            "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307",
            f"--targetdir={dest}", f"--host-name={HOSTNAME.lower()}",
        ],
        "provision",
    )  # fmt: skip
    h = ["-H", str(dest / "private" / "sam.ldb"), "-s", str(dest / "etc" / "smb.conf")]
    for group in GROUPS:
        _run(["samba-tool", "group", "add", group, *h], f"group add {group}")
    for name, password, groups, disabled, given, surname, dept in USERS:
        _run(
            [
                "samba-tool", "user", "create", name, password, "--use-username-as-cn",
                f"--given-name={given}", f"--surname={surname}", f"--department={dept}",
                f"--mail-address={name}@{DNS_DOMAIN}", *h,
            ],
            f"user create {name}",
        )  # fmt: skip
        for group in groups:
            _run(["samba-tool", "group", "addmembers", group, name, *h], f"addmembers {group} {name}")
        if disabled:
            _run(["samba-tool", "user", "disable", name, *h], f"disable {name}")


def _sockets(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if Path(folder, n).is_socket()]


def template_dir() -> Path:
    """The cached, provisioned template (made on first use; later sessions only copy it)."""
    key = hashlib.sha256(f"{RECIPE_VERSION}|{USERS}|{GROUPS}|{_samba_version()}".encode()).hexdigest()[:12]
    template = TOOLS / f"samba-dc-{key}"
    if (template / "READY").exists():
        return template
    TOOLS.mkdir(parents=True, exist_ok=True)
    with open(TOOLS / "samba-dc.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest-xdist workers: one provisions, one waits
        if (template / "READY").exists():
            return template
        work = Path(tempfile.mkdtemp(prefix="samba-dc-build-", dir=TOOLS))
        try:
            _provision(work)
            # Start once, so Samba makes its TLS key and certificate in the template.
            host = _claim_address()
            try:
                proc, _ = _start(work, host, timeout=120)
                _stop(proc)
            finally:
                _release_address(host)
            for sub in ("run", "lock", "cache"):
                shutil.rmtree(work / sub, ignore_errors=True)
            for path in work.rglob("*"):
                if path.is_socket():  # private/ldapi: the running samba's, cannot be copied
                    path.unlink()
            (work / "READY").write_text("ok\n")
            shutil.rmtree(template, ignore_errors=True)
            work.rename(template)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return template


@contextlib.contextmanager
def running_dc(base: Path) -> Iterator[SambaDC]:
    """Copy the template into ``base`` and run a DC from it until the block ends."""
    template = template_dir()
    workdir = base / "samba-dc"
    shutil.copytree(template, workdir, symlinks=True, ignore=_sockets)
    host = _claim_address()
    try:
        proc, ms = _start(workdir, host)
        try:
            yield SambaDC(host=host, workdir=workdir, pid=proc.pid, started_ms=ms)
        finally:
            _stop(proc)
    finally:
        _release_address(host)


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    """One real Samba AD DC per test session (pytest-xdist: per worker), from the cached template."""
    with running_dc(tmp_path_factory.mktemp("ad")) as dc:
        yield dc
