"""A private PostgreSQL cluster for the state tests: initdb into a temporary directory and
``pg_ctl start`` on a free loopback port (as the ``postgres`` OS user when we run as root,
because PostgreSQL refuses to run as root). One cluster per pytest process, started on first
use and stopped at exit; each test gets its own database copied from a migrated template."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

_counter = itertools.count()


def _bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="norrvakt-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.template = ""

    def _run(self, *args: str) -> None:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr or out.stdout}")

    def start(self) -> PgCluster:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
        )
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(self.bin / "pg_ctl", "-D", self.data, "-o", options, "-l", self.dir / "log", "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as c:
            c.execute(sql)

    def new_database(self, migrated: bool = True) -> str:
        """A fresh database; from a template that already holds the newest schema if ``migrated``."""
        name = f"t{os.getpid()}_{next(_counter)}"
        if migrated and not self.template:
            from norrvakt.state.db import open_state

            self.template = f"tpl{os.getpid()}"
            self.execute(f"CREATE DATABASE {self.template}")
            open_state(self.url(self.template)).dispose()
        self.execute(f"CREATE DATABASE {name} TEMPLATE {self.template if migrated else 'template0'}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


_cluster: PgCluster | None = None


def cluster() -> PgCluster:
    """The process's cluster; skips the calling test (saying why) when PostgreSQL is missing."""
    global _cluster
    if _cluster is None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            pytest.skip("PostgreSQL is not installed (make test installs the Debian package postgresql)")
        _cluster = PgCluster(bin_dir).start()
        atexit.register(_cluster.stop)
    return _cluster
