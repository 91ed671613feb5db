"""`serve --demo`: a new user sees traffic for all 14 municipalities within seconds."""

from __future__ import annotations

import time
from pathlib import Path

from norrvakt.config import MUNICIPALITIES
from tests.e2e.harness import running_server


def test_demo_traffic_reaches_every_tenant_with_attack_stories(tmp_path: Path) -> None:
    with running_server(tmp_path, "--demo") as server:
        deadline = time.monotonic() + 60
        tenants: set[str] = set()
        while time.monotonic() < deadline:
            rows = server.search("| stats count by tenant")["rows"]
            tenants = {r["tenant"] for r in rows}
            if (
                tenants >= set(MUNICIPALITIES)
                and server.count("event.code:1102") >= 1
                and server.count("event.code:4625") >= 20
            ):
                break
            time.sleep(1)
        assert tenants >= set(MUNICIPALITIES)
        assert server.count("event.code:1102") >= 1  # audit log cleared
        assert server.count("event.code:4625") >= 20  # password spraying
        assert server.count('"Failed password"') >= 10  # ssh brute force
        sources = {r["source"] for r in server.search("| stats count by source")["rows"]}
        assert {"syslog-udp", "syslog-tcp", "syslog-tls", "relp"} <= sources
        assert server.count("event.kind:pipeline_error") == 0, server.search("event.kind:pipeline_error")[
            "rows"
        ][:3]
