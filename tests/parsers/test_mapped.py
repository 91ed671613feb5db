"""Mapping files: the documented example works, and bad files are reported with file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from norrvakt.event import RawRecord
from norrvakt.parsers import parse_record
from norrvakt.parsers.mapped import BUILTIN_DIR, MappingError, load_mapping, load_mappings, sources

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sources.md"


def _record(payload: str, fmt: str = "syslog") -> RawRecord:
    return RawRecord(
        "lulea", "t", 1_795_729_500_000_000, "10.0.0.1:514", payload.encode(), fmt, "Europe/Stockholm"
    )


def test_the_documented_example_mapping_works(tmp_path: Path) -> None:
    example = re.search(r"```yaml\n(# Parking.*?)```", DOCS.read_text(), re.S)
    assert example, "docs/sources.md lost its example"
    (tmp_path / "parking.yml").write_text(example.group(1))
    sources.use([tmp_path])
    try:
        event = parse_record(
            _record(
                "<134>1 2026-11-26T07:01:00Z gw parkering - - - ts=2026-11-26T08:01:00+01:00 "
                "plate=ABC123 zone=P3 action=enter user=u-204 result=ok"
            )
        )
    finally:
        sources.use([])
    assert event.ecs["event.dataset"] == "parking.enter"
    assert event.ecs["event.outcome"] == "success"
    assert event.fields["vehicle.plate"] == "ABC123"
    assert event.message == "u-204 enter P3 (ABC123)"


@pytest.mark.parametrize(
    "text,why",
    [
        ("id: x\ndataset: y\n", "'match' is required"),
        ("id: x\ndataset: y\nmatch: {field: a, equals: b}\necs: {user.nick: x}\n", "user.nick"),
        ("id: x\ndataset: y\nmatch: {field: a, equals: b}\nparse: {format: xml}\n", "parse.format"),
        ("id: x\ndataset: y\nmatch: {field: a, equals: b}\ncolour: red\n", "unknown key(s) colour"),
        ("id: [x\n", "not valid YAML"),
    ],
)
def test_bad_mapping_files_say_where_and_why(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert str(path) in str(info.value) and why in str(info.value)


def test_problems_are_returned_not_hidden(tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text("id: z\n")
    mappings, problems = load_mappings([BUILTIN_DIR, tmp_path])
    assert len(mappings) >= 10
    assert problems and "broken.yml" in problems[0]
