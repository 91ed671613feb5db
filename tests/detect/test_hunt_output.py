"""`norrvakt hunt --format json` writes, for every detection, the bytes of
``orjson.dumps(d.to_dict())`` and a newline, as before its writer serialized rules and fields
once (orjson fragments) and wrote bytes under the text stream: on the SigmaHQ Windows rules over
evtx-attack-samples files (events that meet several rules, correlations), to a UTF-8 file and to
a text stream in another encoding."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from norrvakt.detect.cli import _JsonWriter
from norrvakt.detect.detection import DetectionEngine
from norrvakt.detect.hunt import Detection, hunt
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def detections(rule_cache: Path) -> list[Detection]:
    rules = shared_data("sigma", "rules", "windows")
    samples = sorted(shared_data("evtx-attack-samples").rglob("*.evtx"))
    engine, _ = DetectionEngine.load([rules], cache_dir=rule_cache)
    found: list[Detection] = []
    hunt(engine, samples[::3], found.append)
    return found


def _plain(found: list[Detection]) -> bytes:
    return b"".join(orjson.dumps(d.to_dict()) + b"\n" for d in found)


def test_the_writer_writes_what_to_dict_says(detections: list[Detection], tmp_path: Path) -> None:
    events = [d.event for d in detections]
    assert len(events) - len({id(e) for e in events}) > 50  # events that met several rules
    assert len({d.rule.id for d in detections}) > 30
    path = tmp_path / "out.jsonl"
    with open(path, "w", encoding="utf-8", newline="") as sink:
        writer = _JsonWriter(sink)
        assert writer.out is not None  # the bytes path
        for d in detections:
            writer(d)
        writer.close()
    assert path.read_bytes() == _plain(detections)


def test_a_stream_in_another_encoding_gets_text(detections: list[Detection]) -> None:
    raw = io.BytesIO()
    sink = io.TextIOWrapper(raw, encoding="utf-16", newline="")
    writer = _JsonWriter(sink)
    assert writer.out is None
    for d in detections[:300]:
        writer(d)
    writer.close()
    assert raw.getvalue().decode("utf-16") == _plain(detections[:300]).decode("utf-8")
