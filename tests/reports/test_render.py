"""The reports rendered: the text in English (the Swedish PDFs, rasterised and looked at, are
checked on the mails that carried them, tests/reports/test_schedule.py), labels and charts.

:func:`pdf_text_and_page` and :func:`pixels` are what those checks use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from norrvakt.reports.charts import day_bars, hbars, pair_bars
from norrvakt.reports.labels import LABELS, LANGUAGES, labels
from norrvakt.reports.service import make_report
from norrvakt.reports.wiring import sources_for
from tests.reports.conftest import World

EVENTS_RGB = (0x0B, 0x5F, 0xA5)


def pdf_text_and_page(pdf: bytes, tmp: Path, name: str) -> tuple[str, Path]:
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils missing (make test installs it)")
    path = tmp / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(path), str(tmp / name)], check=True
    )
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return text, next(tmp.glob(f"{name}*.png"))


def pixels(page: Path, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    from PIL import Image

    img = Image.open(page).convert("RGB")
    return sum(
        1
        for p in img.get_flattened_data()
        if all(abs(a - b) <= tolerance for a, b in zip(p, rgb, strict=True))
    )


def test_quiet_municipality_in_english_says_no_incidents(world: World) -> None:
    report = make_report(sources_for(world.rt), "boden", "2026-11", "en", produced_by="anna", pdf=False)
    assert "Monthly security log report — Boden" in report.html
    assert "No incidents: no alerts, no cases and no significant incidents" in report.html
    assert "No events were stored for the period" in report.html
    assert "data:image/svg+xml;base64," in report.html and "Luleå" not in report.html


def test_every_label_is_in_both_languages() -> None:
    assert all(len(v) == len(LANGUAGES) and all(x.strip() for x in v) for v in LABELS.values())
    with pytest.raises(ValueError, match="language 'fi'"):
        labels("fi")


def test_charts_are_svg_with_their_values() -> None:
    svg = day_bars([("01", 5), ("02", 0)], reference=2.5)
    assert svg.startswith("<svg") and svg.count("<rect") == 3 and "stroke-dasharray" in svg
    assert "&lt;b&gt;" in hbars([("<b>", 3, "#000")])  # labels escaped
    assert ">12<" in pair_bars([("Luleå", 12, 10)])
