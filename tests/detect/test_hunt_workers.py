"""`norrvakt hunt --workers N`: the same output, byte for byte, as `--workers 1`, on many files
and on one big file cut into pieces; problems named as in one process; Ctrl-C and a dead
worker stop the hunt and its workers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from norrvakt.detect.cli import hunt as hunt_command
from norrvakt.detect.detection import DetectionEngine
from norrvakt.detect.hunt import Detection, HuntSummary, hunt
from norrvakt.detect.hunt_split import EVTX_CHUNK
from tests.conftest import shared_data

from .hunt_corpus import chunks, evtx_json_lines, write_evtx
from .test_hunt import WHOAMI, sysmon_1

REPO = Path(__file__).resolve().parents[2]
SPRAY_IP = "185.220.101.45"


@dataclass(frozen=True)
class Corpus:
    rules: Path  # SigmaHQ's Windows rules
    cache: Path
    intel: Path
    many: Path  # a directory of EVTX and JSONL files
    big_jsonl: Path
    big_evtx: Path


def spray_lines(count: int, first_record: int = 500) -> list[str]:
    """Failed logons from one address to many accounts: the built-in password spraying rule."""
    return [
        json.dumps(
            {
                "EventTime": f"2026-11-26 21:{i // 60:02d}:{i % 60:02d}",
                "Hostname": "lulea-dc01",
                "EventID": 4625,
                "SourceName": "Microsoft-Windows-Security-Auditing",
                "Channel": "Security",
                "RecordNumber": first_record + i,
                "TargetUserName": f"user{i}",
                "IpAddress": SPRAY_IP,
            }
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, rule_cache: Path) -> Corpus:
    rules = shared_data("sigma", "rules", "windows")
    samples = sorted(shared_data("evtx-attack-samples").rglob("*.evtx"))
    root = tmp_path_factory.mktemp("hunt-workers")
    cache = rule_cache
    DetectionEngine.load([rules], builtin=True, cache_dir=cache)  # compiled once for the module
    intel = root / "intel"
    intel.mkdir()
    (intel / "cert-se.csv").write_text(f"type,value\nip,{SPRAY_IP}\n", encoding="utf-8")
    many = root / "many"
    many.mkdir()
    for path in samples[:: len(samples) // 40]:  # ~40 EVTX files from every folder
        (many / f"{path.parent.name}-{path.name}").symlink_to(path)
    (many / "whoami.yml").write_text(WHOAMI, encoding="utf-8")  # not a log file: not hunted
    lines = [sysmon_1(10, "C:\\Windows\\System32\\whoami.exe"), sysmon_1(11, "C:\\Windows\\notepad.exe")]
    (many / "ws01.jsonl").write_text("\n".join(lines) + "\n{broken\n", encoding="utf-8")
    spray = spray_lines(12)  # one correlation over two files
    (many / "zz-dc01-a.jsonl").write_text("\n".join(spray[:5]) + "\n", encoding="utf-8")
    (many / "zz-dc01-b.jsonl").write_text("\n".join(spray[5:]) + "\n", encoding="utf-8")
    big_jsonl = root / "big.jsonl"
    with open(big_jsonl, "wb") as fh:
        for i, line in enumerate(evtx_json_lines(samples)):
            fh.write(line)
            if i == 4000:  # a correlation in the middle, over a piece boundary at small pieces
                fh.write("\n".join(spray_lines(15, 9000)).encode() + b"\n")
    big_evtx = root / "big.evtx"
    write_evtx(big_evtx, samples[0], chunks(samples))
    return Corpus(rules, cache, intel, many, big_jsonl, big_evtx)


def run_cli(corpus: Corpus, *args: str) -> tuple[str, str]:
    common = ["--rules", str(corpus.rules), "--builtin", "--cache", str(corpus.cache), "--no-progress"]
    result = CliRunner().invoke(hunt_command, [*common, *args])
    assert result.exit_code == 0, result.stderr + repr(result.exception)
    return result.stdout, result.stderr


def without_timing(stderr: str) -> str:
    return re.sub(r"[\d.]+ s\b(?: \([\d,]+ events/s\))?", "- s", stderr)


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_many_files_same_output_as_one_process(corpus: Corpus, fmt: str) -> None:
    args = [str(corpus.many), "--intel", str(corpus.intel), "--format", fmt]
    one, one_err = run_cli(corpus, *args, "--workers", "1")
    two, two_err = run_cli(corpus, *args, "--workers", "2")
    if fmt == "table":  # the table, then the summary with its timing
        one, two = without_timing(one), without_timing(two)
    assert two == one
    assert without_timing(two_err) == without_timing(one_err)
    if fmt == "json":
        docs = [json.loads(line) for line in one.splitlines()]
        assert len(docs) > 100 and len({d["file"] for d in docs}) > 10
        [spray] = [d for d in docs if d.get("kind") == "correlation"]
        assert spray["file"] == "zz-dc01-a.jsonl"  # its first event; completed in zz-dc01-b.jsonl
        assert {Path(e["path"]).name for e in spray["events"]} == {"zz-dc01-a.jsonl", "zz-dc01-b.jsonl"}
        assert sum(d.get("kind") == "intel" for d in docs) == 12
        assert "ws01.jsonl:3" in one_err  # the broken line, named in both


@pytest.mark.parametrize("big", ["big_jsonl", "big_evtx"])
def test_one_big_file_cut_in_pieces_same_output(corpus: Corpus, big: str) -> None:
    path: Path = getattr(corpus, big)
    assert path.stat().st_size > 8 << 20  # cut into pieces by default with two workers
    one, one_err = run_cli(corpus, str(path), "--format", "json", "--workers", "1")
    two, two_err = run_cli(corpus, str(path), "--format", "json", "--workers", "2")
    assert two == one and len(one.splitlines()) > 1000
    assert without_timing(two_err) == without_timing(one_err)


def library_hunt(corpus: Corpus, paths: list[Path], **options: int) -> tuple[list[bytes], HuntSummary]:
    engine, _ = DetectionEngine.load([corpus.rules], builtin=True, cache_dir=corpus.cache)
    found: list[bytes] = []

    def keep(d: Detection) -> None:
        found.append(orjson.dumps(d.to_dict()) + d.event.peer.encode())

    return found, hunt(engine, paths, keep, **options)


def same_summary(a: HuntSummary, b: HuntSummary) -> None:
    counts = (a.files, a.events, a.detections, a.parse_errors)
    assert counts == (b.files, b.events, b.detections, b.parse_errors)
    assert a.problems == b.problems and a.by_rule == b.by_rule and a.by_level == b.by_level


def test_small_pieces_same_detections_and_correlation(corpus: Corpus) -> None:
    paths = [corpus.big_jsonl]
    one, one_summary = library_hunt(corpus, paths)
    two, two_summary = library_hunt(corpus, paths, workers=2, piece_bytes=64 << 10)  # ~150 pieces
    assert two == one
    same_summary(two_summary, one_summary)
    spray = [json.loads(d.split(b"}file:")[0] + b"}") for d in one if b'"kind":"correlation"' in d]
    assert [e["line"] for e in spray[0]["events"]] == list(range(4002, 4012))


def damaged_evtx(tmp_path: Path, corpus: Corpus) -> Path:
    """A multi-chunk file with a damaged record in chunk 0 and in chunk 2, a chunk with a bad
    header (chunk 4) and an end cut inside a chunk."""
    data = bytearray(corpus.big_evtx.read_bytes()[: 4096 + 8 * EVTX_CHUNK + 5000])
    for chunk in (0, 2):
        at = 4096 + chunk * EVTX_CHUNK + 512 + 3000
        data[at : at + 64] = b"\xff" * 64
    data[4096 + 4 * EVTX_CHUNK : 4096 + 4 * EVTX_CHUNK + 8] = b"XXXXXXXX"
    path = tmp_path / "damaged.evtx"
    path.write_bytes(bytes(data))
    return path


def test_problems_named_as_in_one_process(corpus: Corpus, tmp_path: Path) -> None:
    evtx = damaged_evtx(tmp_path, corpus)
    lines = tmp_path / "lines.jsonl"
    body = [sysmon_1(i, "C:\\Windows\\System32\\whoami.exe") for i in range(300)]
    for bad in (3, 150, 151, 299):
        body[bad] = '{"Event": broken'
    body[200] = '{"x": "' + "y" * (1024 * 1024 + 5) + '"}'
    lines.write_text("\n".join(body) + "\n", encoding="utf-8")
    paths = [evtx, lines]
    one, one_summary = library_hunt(corpus, paths)
    two, two_summary = library_hunt(corpus, paths, workers=2, piece_bytes=EVTX_CHUNK)
    assert two == one
    same_summary(two_summary, one_summary)
    problems = "\n".join(one_summary.problems)
    assert re.search(r"damaged.evtx: record #\d+ \(after EventRecordID \d+\) is damaged", problems)
    assert "Failed to parse chunk number 4" in problems and "file ends inside chunk 8" in problems
    assert f"{lines}:4" in problems and f"{lines}:201 (byte offset" in problems
    assert one_summary.parse_errors == 4


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]) != "Z"
    except OSError:
        return False


def start_long_hunt(corpus: Corpus, tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    many = tmp_path / "long"
    many.mkdir()
    for i in range(20):  # ~165k events: far longer than the test waits
        os.link(corpus.big_evtx, many / f"copy-{i:02d}.evtx")
    cmd = [sys.executable, "-m", "norrvakt.cli", "hunt", "--rules", str(corpus.rules), "--cache"]
    cmd += [str(corpus.cache), "--no-progress", "--workers", "2", "--format", "json", str(many)]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while len(workers := children(proc.pid)) < 2:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the hunt started no workers"
        time.sleep(0.1)
    time.sleep(1.0)  # mid-stream
    assert proc.poll() is None
    return proc, workers


def test_ctrl_c_stops_the_workers(corpus: Corpus, tmp_path: Path) -> None:
    proc, workers = start_long_hunt(corpus, tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends: the whole group
    proc.wait(timeout=20)
    assert proc.returncode != 0
    assert not [w for w in workers if alive(w)]


def test_a_killed_worker_fails_the_hunt(corpus: Corpus, tmp_path: Path) -> None:
    proc, workers = start_long_hunt(corpus, tmp_path)
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert re.search(r"hunt worker \d \(pid \d+\) died \(signal 9\)", err), err[-2000:]
    assert not [w for w in workers if alive(w)]


def test_workers_stop_when_the_hunt_is_killed(corpus: Corpus, tmp_path: Path) -> None:
    proc, workers = start_long_hunt(corpus, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to stop them: they find out by themselves
    proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while [w for w in workers if alive(w)]:
        assert time.monotonic() < deadline, "workers outlived the hunt"
        time.sleep(0.1)
    if proc.stderr is not None:
        proc.stderr.close()
