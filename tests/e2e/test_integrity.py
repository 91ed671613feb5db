"""verify / prove / verify-proof / keys through a running server, the audit trail, and the
background verification raising a critical alert."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.e2e.harness import REPO, run_cli, running_server

_cli = run_cli


def _send(port: int, marker: str, n: int) -> None:
    lines = "".join(f"message {i} {marker}\n" for i in range(n))
    subprocess.run(
        [
            "logger",
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-n",
            "127.0.0.1",
            "-P",
            str(port),
            "-t",
            "app",
            "-f",
            "/dev/stdin",
        ],
        input=lines,
        text=True,
        check=True,
    )


def test_verify_prove_and_offline_proof_check(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        m = "i" + uuid.uuid4().hex[:10]
        _send(server.ports["tcp"], m, 20)
        assert server.wait_count(m, 20) == 20
        out = _cli(server.data_dir, "verify")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "no problems" in out.stderr
        seq = server.search(m)["rows"][0]["seq"]
        proof = tmp_path / "proof.json"
        out = _cli(server.data_dir, "prove", "--tenant", "lulea", "--seq", str(seq), "--out", str(proof))
        assert out.returncode == 0, out.stderr
        pub = tmp_path / "norrvakt.pub"
        pub.write_text(_cli(server.data_dir, "keys", "export").stdout)
        audit = server.search("event.action:prove", tenant="_norrvakt")
        assert audit["total"] >= 1 and audit["rows"][0]["ecs"]["user.name"] == "admin"
    # Offline: no server, no data directory needed.
    out = subprocess.run(
        [sys.executable, "-m", "norrvakt.cli", "verify-proof", str(proof), "--pubkey", str(pub)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    assert "VALID" in out.stderr
    doc = json.loads(proof.read_text())
    doc["event"] = doc["event"].replace(m, m.upper())
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    out = subprocess.run(
        [sys.executable, "-m", "norrvakt.cli", "verify-proof", str(forged), "--pubkey", str(pub)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 1 and "INVALID" in out.stderr


def test_background_verification_raises_a_critical_alert(tmp_path: Path) -> None:
    extra = "[integrity]\nverify_every_minutes = 0.05\ncheckpoint_every_seconds = 1\n"
    with running_server(tmp_path, extra_toml=extra) as server:
        m = "j" + uuid.uuid4().hex[:10]
        _send(server.ports["tcp"], m, 5)
        assert server.wait_count(m, 5) == 5
        time.sleep(1.5)  # a checkpoint covers them
        seg = sorted((server.data_dir / "journal" / "lulea").glob("*.seg"))[0]
        data = bytearray(seg.read_bytes())
        data[20] ^= 0x01  # tamper with the first record while the server runs
        seg.write_bytes(bytes(data))
        deadline = time.monotonic() + 30
        alerts = {"total": 0, "rows": []}
        while time.monotonic() < deadline and not alerts["rows"]:
            time.sleep(1)
            alerts = server.search("event.kind:alert", tenant="_norrvakt")
        assert alerts["total"] >= 1
        alert = alerts["rows"][0]
        assert alert["ecs"]["log.level"] == "critical"
        assert "record.crc" in alert["fields"]["first.code"]
        assert "seq 1" in alert["message"]
