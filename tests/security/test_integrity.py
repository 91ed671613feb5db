"""Erasure and forgery are noticed, and the integrity watch never dies (issue #11).

Someone with shell access to the data directory deletes a tenant's journal, deletes or
empties the witness, rewrites history and re-signs it; a planted folder tries to stop the
background verification; a burst of ingest tries to make it cry wolf; a user starts
verification jobs without end. Each test reproduces one of these against a real
`norrvakt serve` (or the real journal, checkpointer and witnesses) and checks Norrvakt holds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from norrvakt.event import Event, event_from_canonical
from norrvakt.journal.checkpoint import FILE_NAME
from norrvakt.journal.checkpointer import Checkpointer
from norrvakt.journal.keys import KeyRing
from norrvakt.journal.log import FRAME_HEADER, JournalConfig
from norrvakt.journal.verify import verify_journal
from norrvakt.journal.witness import DirectoryWitness, HttpWitness
from tests.e2e.harness import REPO, Server, free_port, run_cli, running_server

HOUR_US = 3_600_000_000


_cli = run_cli


def _verify_api(server: Server, **params: str) -> dict[str, Any]:
    resp = server.api("POST", "/api/integrity/verify", params=params)
    assert resp.status_code == 200, resp.text
    job = resp.json()["job"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status: dict[str, Any] = server.api("GET", f"/api/integrity/verify/{job}").json()
        if status["state"] != "running":
            assert status["state"] == "done", status
            report: dict[str, Any] = status["report"]
            return report
        time.sleep(0.2)
    raise AssertionError(f"verification job {job} did not finish")


def _findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for t in report["tenants"] for f in t["findings"]]


def _hec(server: Server, token: str, messages: list[str]) -> None:
    body = "".join(json.dumps({"event": {"message": m}}) for m in messages)
    resp = httpx.post(
        f"{server.url}/services/collector/event",
        content=body,
        headers={"Authorization": f"Splunk {token}"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text


def _wait(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _witnessed_size(witness_dir: Path, tenant: str) -> int:
    path = witness_dir / tenant / FILE_NAME
    if not path.exists() or not path.read_bytes().strip():
        return -1
    return int(json.loads(path.read_bytes().splitlines()[-1])["size"])


# -- one server for the checks that leave it intact (the last test deletes a tenant's journal) --


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    extra = "[integrity]\ncheckpoint_every_seconds = 1\nverify_every_minutes = 0\n"
    with running_server(Path(tmp_path_factory.mktemp("integrity")), extra_toml=extra) as srv:
        yield srv


def test_a_witness_beside_the_data_and_a_key_inside_it_are_reported(server: Server) -> None:
    """The default setup does not pretend: `make run` (the banner), the admin page and
    `norrvakt verify` say that the witness shares the data's file system and the key lies in
    the data directory — as warnings, so the verification itself still passes."""
    assert server.log_path is not None
    log = " ".join(server.log_path.read_text(errors="replace").split())  # the banner (wrapped)
    assert "Warning:" in log and "same file system" in log and "signing key" in log
    password = server.add_user("integrity.admin", "admin", "lulea")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        form = client.get("/login").text
        csrf = form.split('name="csrf_token" value="')[1].split('"')[0] if "csrf_token" in form else ""
        resp = client.post(
            "/login", data={"csrf_token": csrf, "username": "integrity.admin", "password": password}
        )
        assert resp.status_code == 303, resp.text[:300]
        page = client.get("/admin").text
    assert 'data-warning="setup.witness_same_fs"' in page and 'data-warning="setup.key_in_data"' in page
    out = _cli(server.data_dir, "verify", "--tenant", "lulea")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning" in out.stderr and "same file system" in out.stderr
    report = json.loads(_cli(server.data_dir, "verify", "--tenant", "lulea", "--format", "json").stdout)
    assert report["ok"] is True
    assert {"setup.witness_same_fs", "setup.key_in_data"} <= {w["code"] for w in report["warnings"]}


def test_verification_jobs_are_limited_per_user_and_not_kept_forever(server: Server) -> None:
    token = server.ingest_token("lulea", "lulea-bulk")
    for _ in range(3):  # enough records that a verification with the store check takes a while
        _hec(server, token, [f"bulk {i} " + "x" * 200 for i in range(10_000)])
    assert server.wait_count("bulk", 30_000, timeout=120) >= 30_000
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _i: server.api("POST", "/api/integrity/verify"), range(4)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) == 2 and codes.count(429) == 2, codes
    refused = next(a for a in answers if a.status_code == 429)
    assert "at most 2 at a time" in refused.json()["detail"]
    started = [a.json()["job"] for a in answers if a.status_code == 200]
    for job in started:

        def finished(job: int = job) -> bool:
            return bool(server.api("GET", f"/api/integrity/verify/{job}").json()["state"] != "running")

        _wait("the big job", finished, 180)
    first = _verify_api(server, tenant="boden", store="false")
    assert first["ok"]
    first_id = max(started) + 1
    assert server.api("GET", f"/api/integrity/verify/{first_id}").status_code == 200
    for _ in range(50):  # finished jobs beyond the newest 50 are dropped, oldest first
        _verify_api(server, tenant="boden", store="false")
    gone = server.api("GET", f"/api/integrity/verify/{first_id}")
    assert gone.status_code == 404 and "kept for an hour" in gone.json()["detail"]


def test_a_deleted_tenant_journal_fails_verification_everywhere(server: Server) -> None:
    """305,650 records of a tenant deleted with `rm -r journal/<tenant>`, the witness intact:
    the API, the CLI through the server and the CLI on the stopped data directory all fail and
    name the tenant."""
    token = server.ingest_token("kiruna", "kiruna-hec")
    marker = "k" + uuid.uuid4().hex[:10]
    _hec(server, token, [f"{marker} {i}" for i in range(300)])
    assert server.wait_count(marker, 300, tenant="kiruna") == 300
    witness = server.data_dir.parent / f"{server.data_dir.name}-witness"
    _wait("a witnessed checkpoint of kiruna", lambda: _witnessed_size(witness, "kiruna") >= 300)
    shutil.rmtree(server.data_dir / "journal" / "kiruna")

    report = _verify_api(server)
    missing = [f for f in _findings(report) if f["tenant"] == "kiruna" and f["code"] == "journal.missing"]
    assert not report["ok"] and missing, _findings(report)[:5]
    assert "300 records witnessed" in " ".join(f["detail"] for f in missing)

    out = _cli(server.data_dir, "verify")  # through the running server's API
    assert out.returncode == 1, out.stdout + out.stderr
    assert "kiruna" in out.stderr and "journal of tenant kiruna is missing" in out.stderr

    server.stop()
    shutil.rmtree(server.data_dir / "journal" / "kiruna", ignore_errors=True)  # the stop checkpointed it
    out = _cli(server.data_dir, "verify", "--no-store")  # no server: on the data directory itself
    assert out.returncode == 1, out.stdout + out.stderr
    assert "journal of tenant kiruna is missing" in out.stderr


# -- witnesses: missing, emptied, gone, behind --------------------------------------------------


def _event(i: int) -> Event:
    return Event(tenant="kiruna", ts=i, ingested=i, source="t", peer="p", message=f"m{i}", raw=b"r")


def _sealed(tmp: Path) -> tuple[JournalConfig, KeyRing, Checkpointer, DirectoryWitness]:
    config = JournalConfig(tmp / "journal")
    journal = config.build()
    keys = KeyRing(tmp / "keys")
    witness = DirectoryWitness(tmp / "witness")
    cp = Checkpointer(journal, keys, [witness], ["kiruna"])
    now = time.time_ns() // 1000
    journal.append_and_commit([_event(i) for i in range(10)])
    cp.checkpoint("kiruna", now=now - 3 * HOUR_US)
    journal.append_and_commit([_event(i) for i in range(10, 20)])
    cp.checkpoint("kiruna", now=now - 2 * HOUR_US)
    journal.close()
    return config, keys, cp, witness


def _witness_codes(tmp: Path, keys: KeyRing, witness: Any) -> list[str]:
    trusted, _problems = keys.trusted_keys()
    report = verify_journal(tmp / "journal", trusted, [witness], tenants=["kiruna"])
    return [f.code for f in report.findings if f.tenant == "kiruna"]


def test_an_intact_witness_is_no_finding(tmp_path: Path) -> None:
    _config, keys, _cp, witness = _sealed(tmp_path)
    assert _witness_codes(tmp_path, keys, witness) == []


@pytest.mark.parametrize("damage", ["deleted", "emptied"])
def test_a_deleted_or_emptied_witness_file_is_a_finding(tmp_path: Path, damage: str) -> None:
    _config, keys, _cp, witness = _sealed(tmp_path)
    path = tmp_path / "witness" / "kiruna" / FILE_NAME
    if damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(b"")
    assert "witness.empty" in _witness_codes(tmp_path, keys, witness)


def test_a_witness_folder_that_is_gone_is_a_finding(tmp_path: Path) -> None:
    """An unmounted share or a deleted witness folder is not "no checkpoints"."""
    _config, keys, _cp, witness = _sealed(tmp_path)
    shutil.rmtree(tmp_path / "witness")
    assert "witness.unreachable" in _witness_codes(tmp_path, keys, witness)


def test_an_unreachable_http_witness_is_a_finding(tmp_path: Path) -> None:
    _config, keys, _cp, _witness = _sealed(tmp_path)
    down = HttpWitness(f"http://127.0.0.1:{free_port()}/witness", timeout=2)
    assert "witness.unreachable" in _witness_codes(tmp_path, keys, down)


def test_a_witness_behind_the_local_log_is_a_finding(tmp_path: Path) -> None:
    """Checkpoints signed an hour ago and now never reached the witness (it was cut off)."""
    config, keys, _cp, witness = _sealed(tmp_path)
    journal = config.build()
    cut_off = Checkpointer(journal, keys, [], ["kiruna"])  # publishes nowhere
    now = time.time_ns() // 1000
    journal.append_and_commit([_event(i) for i in range(20, 30)])
    cut_off.checkpoint("kiruna", now=now - HOUR_US)
    cut_off.checkpoint("kiruna", now=now)
    journal.close()
    assert "witness.behind" in _witness_codes(tmp_path, keys, witness)


# -- the background watch -------------------------------------------------------------------------


def _alerts(server: Server, code_prefix: str) -> list[dict[str, Any]]:
    rows = server.search("event.kind:alert", tenant="_norrvakt")["rows"]
    return [r for r in rows if str(r["fields"].get("first.code", "")).startswith(code_prefix)]


def _syslog(port: int, lines: list[str]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall("".join(f"<13>1 2026-01-01T00:00:00Z host app - - - {m}\n" for m in lines).encode())


def test_a_planted_segment_folder_does_not_stop_the_watch(tmp_path: Path) -> None:
    """`mkdir journal/lulea/00000000000000000900.seg` used to stop the background verification
    for good, silently. It is a finding now, the SOC gets an alert, and the watch goes on — a
    record altered afterwards is caught by a later run."""
    extra = "[integrity]\nverify_every_minutes = 0.02\ncheckpoint_every_seconds = 1\n"
    with running_server(tmp_path, extra_toml=extra) as server:
        marker = "p" + uuid.uuid4().hex[:10]
        _syslog(server.ports["tcp"], [f"message {i} {marker}" for i in range(5)])
        assert server.wait_count(marker, 5) == 5
        time.sleep(1.5)  # a checkpoint covers them
        lulea = server.data_dir / "journal" / "lulea"
        (lulea / "00000000000000000900.seg").mkdir()
        (lulea / "x.seg").mkdir()
        planted = _wait("an alert for the planted folder", lambda: _alerts(server, "segment."))
        assert planted[0]["ecs"]["log.level"] == "critical"
        assert "00000000000000000900.seg" in planted[0]["message"] or "x.seg" in planted[0]["message"]
        (lulea / "00000000000000000900.seg").rmdir()
        (lulea / "x.seg").rmdir()
        seg = sorted(lulea.glob("*.seg"))[0]
        data = bytearray(seg.read_bytes())
        data[20] ^= 0x01  # and now alter the first record: a later run must still see it
        seg.write_bytes(bytes(data))
        altered = _wait("an alert for the altered record", lambda: _alerts(server, "record.crc"))
        assert "seq 1" in altered[0]["message"]
        health = httpx.get(f"{server.url}/api/health", timeout=10).json()
        if "integrity" in health:  # wired into /api/health by the lead
            assert health["integrity"]["running"] is True and health["integrity"]["runs"] >= 2


def test_a_run_that_cannot_complete_raises_an_alert_and_the_watch_goes_on(
    tmp_path: Path, chdb_path: Path
) -> None:
    """Every exception in a run — here the store's table is gone — is logged, raised as an
    alert ("verification could not complete") and the next run comes all the same."""
    from norrvakt.config import load_settings
    from norrvakt.integrity import IntegrityWatch
    from norrvakt.node.runtime import open_runtime

    database = f"watch_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    settings = load_settings(
        overrides={
            "data_dir": str(tmp_path / "data"),
            "store.dsn": f"chdb://{chdb_path}",
            "store.database": database,
            "integrity.witnesses": [f"dir:{tmp_path / 'witness'}"],
        }
    )

    def incomplete(rt: Any) -> list[Event]:
        events = [event_from_canonical(p) for _s, p in rt.journal.read("_norrvakt")]
        return [e for e in events if e.ecs.get("event.action") == "integrity-verification-incomplete"]

    async def main() -> None:
        rt = open_runtime(settings)
        await rt.start(with_sources=False)
        watch = IntegrityWatch(rt, every_minutes=0.005)
        try:
            await rt.pipeline.commit([_event(i) for i in range(5)])
            await rt.indexer.wait_caught_up(30)
            rt.store.command(f"RENAME TABLE `{database}`.events TO `{database}`.events_gone")
            await watch.start()
            deadline = time.monotonic() + 30
            while len(incomplete(rt)) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            alerts = incomplete(rt)
            assert len(alerts) >= 2, "the watch stopped after the first failed run"
            assert alerts[0].ecs["log.level"] == "critical"
            assert "could not complete" in alerts[0].message
            health = watch.health()
            assert health["running"] is True and "events" in (health["last_error"] or "")
            rt.store.command(f"RENAME TABLE `{database}`.events_gone TO `{database}`.events")
            deadline = time.monotonic() + 30
            while watch.health()["last_error"] is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert watch.health()["last_error"] is None and watch.health()["last_success_us"]
        finally:
            await watch.stop()
            await rt.close()

    asyncio.run(main())


# -- a consistent snapshot: ingest does not look like tampering ------------------------------------


def test_verification_under_sustained_ingest_finds_nothing(tmp_path: Path) -> None:
    """Seven verifications while HEC and TCP senders keep writing (checkpoints every 500
    records and every second): not one finding. Before, 7 of 7 runs reported the records
    committed during the run as a mismatch between tree and segments."""
    extra = (
        "[integrity]\ncheckpoint_every_seconds = 1\ncheckpoint_every_events = 500\nverify_every_minutes = 0\n"
    )
    with running_server(tmp_path, extra_toml=extra) as server:
        token = server.ingest_token("boden", "boden-load")
        stop = threading.Event()
        sent = {"hec": 0, "tcp": 0}

        def hec() -> None:
            with httpx.Client(timeout=60) as client:
                while not stop.is_set():
                    body = "".join(json.dumps({"event": {"message": f"load {i}"}}) for i in range(200))
                    client.post(
                        f"{server.url}/services/collector/event",
                        content=body,
                        headers={"Authorization": f"Splunk {token}"},
                    )
                    sent["hec"] += 200
                    time.sleep(0.05)

        def tcp() -> None:
            with socket.create_connection(("127.0.0.1", server.ports["tcp"])) as s:
                while not stop.is_set():
                    s.sendall(
                        b"".join(b"<13>1 2026-01-01T00:00:00Z h app - - - tcp load\n" for _ in range(100))
                    )
                    sent["tcp"] += 100
                    time.sleep(0.05)

        senders = [threading.Thread(target=hec), threading.Thread(target=tcp)]
        for t in senders:
            t.start()
        reports = []
        try:
            time.sleep(1)
            for _ in range(7):
                reports.append(_verify_api(server))
        finally:
            stop.set()
            for t in senders:
                t.join()
        found = [f for r in reports for f in _findings(r)]
        assert found == [], found[:5]
        assert sent["hec"] > 1000 and sent["tcp"] > 1000, sent


# -- forgery with the key: an independent witness keeps the truth ----------------------------------


def _rewrite_frame(segment: Path, index: int, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` (same length) in record ``index`` and fix its CRC."""
    data = bytearray(segment.read_bytes())
    pos = 0
    for _ in range(index):
        length, _crc = FRAME_HEADER.unpack_from(data, pos)
        pos += FRAME_HEADER.size + length
    length, _crc = FRAME_HEADER.unpack_from(data, pos)
    payload = bytes(data[pos + FRAME_HEADER.size : pos + FRAME_HEADER.size + length])
    assert old in payload and len(old) == len(new)
    payload = payload.replace(old, new)
    data[pos : pos + FRAME_HEADER.size + length] = FRAME_HEADER.pack(length, zlib.crc32(payload)) + payload
    segment.write_bytes(bytes(data))


def test_a_rewritten_and_resigned_history_is_caught_by_an_independent_witness(tmp_path: Path) -> None:
    """Shell access to the data directory and the signing key: a record is edited, the tree and
    every checkpoint are made again and re-signed, the sibling witness folder is rewritten.
    `norrvakt witness serve` on "another host" refuses the forged lines (409) and still holds
    the signed ones, so `norrvakt verify` — with the public key pinned — fails."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_file = tmp_path / "signing.key"
    key = Ed25519PrivateKey.generate()
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub = tmp_path / "norrvakt.pub"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    port = free_port()
    remote = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "norrvakt.cli",
            "witness",
            "serve",
            "--dir",
            str(tmp_path / "remote"),
            "--pubkey",
            str(pub),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/witness"
    try:
        _wait("the witness", lambda: _up(url), 30)
        sibling = tmp_path / "sibling-witness"
        extra = (
            f"[integrity]\ncheckpoint_every_seconds = 1\nverify_every_minutes = 0\n"
            f'signing_key_file = "{key_file}"\nwitnesses = ["dir:{sibling}", "{url}"]\n'
        )
        with running_server(tmp_path, extra_toml=extra) as server:
            marker = "f" + uuid.uuid4().hex[:10]
            _syslog(
                server.ports["tcp"],
                [f"transfer {i} to SE45 5000 0000 0583 9825 7466 {marker}" for i in range(20)],
            )
            assert server.wait_count(marker, 20) == 20
            _wait(
                "a checkpoint of 20 at the remote witness",
                lambda: _witnessed_size(tmp_path / "remote", "lulea") >= 20,
            )
            kept = [p.name for p in (server.data_dir / "keys").glob("*.key") if p.stem != "session"]
            assert kept == []  # the signing key stays out of the data directory
        data = server.data_dir
        lulea = data / "journal" / "lulea"
        _rewrite_frame(sorted(lulea.glob("*.seg"))[0], 4, b"7466", b"0000")
        # Make the tree, the checkpoints and the sibling witness agree with the edit, re-signed.
        shutil.rmtree(lulea / "tree")
        (lulea / FILE_NAME).unlink()
        shutil.rmtree(sibling / "lulea")
        journal = JournalConfig(data / "journal").build()  # rebuilds the tree from the segments
        forger = Checkpointer(
            journal, KeyRing(data / "keys", key_file), [DirectoryWitness(sibling)], ["lulea"]
        )
        forged = forger.checkpoint("lulea")
        journal.close()
        refused = httpx.post(url, content=forged.line() + b"\n", timeout=10)
        assert refused.status_code == 409, refused.text

        config = data.parent / f"{data.name}.toml"  # the server's own configuration, witnesses and all
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "norrvakt.cli",
                "--config",
                str(config),
                "verify",
                "--no-store",
                "--pubkey",
                str(pub),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )
        assert out.returncode == 1, out.stdout + out.stderr
        assert url in out.stderr and "does not match the journal" in out.stderr
        # The key comes from its file: verifying without the server does not claim otherwise.
        assert "set integrity.signing_key_file" not in out.stdout + out.stderr
    finally:
        remote.terminate()
        remote.wait(timeout=20)


def _up(url: str) -> bool:
    try:
        return httpx.get(url, params={"list": "1"}, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
