"""The subject-access extract: a person's record accesses as CSV and as a PDF whose first page
is rendered and looked at."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import running_server


def test_subject_access_extract_csv_and_pdf(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        subject = "s-" + uuid.uuid4().hex[:6]
        token = server.ingest_token("lulea", "lulea-socialsystem")
        lines = [
            f"2026-11-2{d} 0{d}:14:02;u-10{d}1;Karin Holmgren;handlaggare;IFO;read;{subject};"
            f"skyddad_folkbokforing;IFO-2026-0412;u-1007,u-1033;;10.20.4.1{d}"
            for d in range(1, 4)
        ]
        body = "\n".join(
            json.dumps(
                {
                    "event": f"<134>1 2026-11-26T20:14:02Z app01 socialsystem - - - {line}",
                    "sourcetype": "syslog",
                }
            )
            for line in lines
        )
        health = json.dumps(
            {
                "event": {
                    "timestamp": "2026-11-25T10:02:11+01:00",
                    "system": "elevhalsa",
                    "user": "u-3301",
                    "role": "skolskoterska",
                    "unit": "Hertsöskolan",
                    "action": "read",
                    "patient_id": subject,
                    "protection": "none",
                    "journal_id": "J-1",
                    "client_ip": "10.20.7.31",
                }
            }
        )
        for payload in (body, health):
            r = httpx.post(
                f"{server.url}/services/collector/event",
                content=payload,
                headers={"Authorization": f"Splunk {token}"},
            )
            assert r.status_code == 200
        assert server.wait_count(f'subject_id:"{subject}"', 4, tenant="lulea") == 4
        params = {"tenant": "lulea", "subject": subject, "since": "2026-11-01", "until": "2026-12-01"}
        csv_text = server.api("GET", "/api/reports/subject-access", params={**params, "format": "csv"}).text
        assert csv_text.count("\n") == 5  # header + 4 accesses
        assert "Hertsöskolan" in csv_text and "skolskoterska" in csv_text
        pdf = server.api("GET", "/api/reports/subject-access", params={**params, "format": "pdf"})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        (tmp_path / "extract.pdf").write_bytes(pdf.content)
        assert server.wait_count("event.action:export", 2, tenant="_norrvakt") >= 2  # both extracts audited
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils missing (make test installs it)")
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "60",
            "-f",
            "1",
            "-l",
            "1",
            str(tmp_path / "extract.pdf"),
            str(tmp_path / "page"),
        ],
        check=True,
    )
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp_path / "extract.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Logguttag" in text and subject in text and "4 åtkomster" in text
    page = next(tmp_path.glob("page*.png"))
    _check_page_image(page)


def _check_page_image(path: Path) -> None:
    """The first page is a landscape A4 with dark text and the navy table header on white."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    width, height = img.size
    assert width > height  # landscape
    pixels = list(img.get_flattened_data())
    dark = sum(1 for r, g, b in pixels if r + g + b < 200)
    navy = sum(1 for r, g, b in pixels if b > 50 and r < 40 and g < 60)
    assert dark > 500, "no text on the page"
    assert navy > 200, "the table header is not rendered"
