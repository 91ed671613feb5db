"""A whole log follow-up round through the running server: the social-services system's
access log arrives over syslog (util-linux ``logger``), a plan is made, the month's sample is
drawn, the named reviewer reviews it in a real browser — one access not justified, which
opens a case — and signs off; the sign-off is journaled and verified, the decisions are
frozen, and the round's report is rendered as a PDF whose first page is looked at."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import browser, login, shot  # noqa: F401 - fixture
from tests.e2e.harness import REPO, Server, running_server
from tests.e2e.test_reports import _check_page_image

PLAIN = "Karin Holmgren"


def _previous_month() -> tuple[str, dt.date]:
    first = dt.date.today().replace(day=1) - dt.timedelta(days=1)
    return f"{first.year}-{first.month:02d}", first.replace(day=1)


def _lines(month_start: dt.date, marker: str) -> list[str]:
    """Ordinary work on own cases, one protected-identity read off the case, one at night."""
    weekdays = [d for d in (month_start + dt.timedelta(days=n) for n in range(28)) if d.weekday() < 5]
    out = []
    for i in range(24):
        day = weekdays[i // 4]
        out.append(
            f"{day} {9 + i % 4:02d}:15:00;u-1;{PLAIN};handlaggare;IFO;read;s-{i % 5};none;"
            f"IFO-{i % 5};u-1,u-2;;10.20.4.17"
        )
    day = weekdays[8]
    out.append(
        f"{day} 11:05:00;u-3;Olof {marker};handlaggare;IFO;read;s-prot-{marker};"
        f"skyddad_folkbokforing;IFO-P;u-9;;10.20.4.18"
    )
    out.append(f"{day} 23:40:00;u-2;Sara Öberg;handlaggare;IFO;print;s-1;none;IFO-1;u-1,u-2;;10.20.4.19")
    return out


def _send(server: Server, lines: list[str], tmp: Path) -> None:
    source = tmp / "socialsystem.log"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    subprocess.run(
        [
            "logger",
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-n",
            "127.0.0.1",
            "-P",
            str(server.ports["tcp"]),
            "-t",
            "socialsystem",
            "-p",
            "local0.info",
            "-f",
            str(source),
        ],
        check=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def round_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = Path(tmp_path_factory.mktemp("followup"))
    with running_server(tmp / "srv") as server:
        marker = "fu" + uuid.uuid4().hex[:8]
        label, start = _previous_month()
        lines = _lines(start, marker)
        _send(server, lines, tmp)
        assert server.wait_count(
            "event.dataset:socialtjanst.record_access", len(lines), tenant="lulea"
        ) == len(lines)
        made = server.api(
            "POST",
            "/api/admin/users",
            json={
                "username": "lulea.granskare",
                "role": "tenant_officer",
                "tenants": ["lulea"],
                "must_change_password": False,  # the test logs in with it right away
            },
        )
        assert made.status_code == 200, made.text
        yield {
            "server": server,
            "marker": marker,
            "label": label,
            "lines": lines,
            "tmp": tmp,
            "reviewer_pw": made.json()["password"],
        }


def test_plan_sample_review_case_sign_off_report(browser: Any, round_world: dict[str, Any]) -> None:  # noqa: F811
    server: Server = round_world["server"]
    marker, label, tmp = round_world["marker"], round_world["label"], round_world["tmp"]
    reviewer = httpx.BasicAuth("lulea.granskare", round_world["reviewer_pw"])

    # Plan and draw (the SOC's admin sets it up; the reviewer is a named Luleå officer).
    bad = server.api(
        "POST",
        "/api/followup/plans",
        json={"tenant": "lulea", "dataset": "socialtjanst.record_access", "reviewer": "nobody"},
    )
    assert bad.status_code == 400 and "reviewer 'nobody'" in bad.text
    plan = server.api(
        "POST",
        "/api/followup/plans",
        json={
            "tenant": "lulea",
            "dataset": "socialtjanst.record_access",
            "reviewer": "lulea.granskare",
            "random_sample": 4,
            "targeted_per_reason": 3,
        },
    ).json()
    drawn = server.api("POST", f"/api/followup/plans/{plan['id']}/rounds", json={"period": label})
    assert drawn.status_code == 200, drawn.text
    round_ = drawn.json()
    round_world["round"] = round_["id"]
    assert round_["population"] == len(round_world["lines"])
    reasons = {r: [i for i in round_["items"] if r in i["reasons"]] for r in round_["reason_totals"]}
    (prot,) = reasons["protected_not_assigned"]
    assert prot["subject"] == f"s-prot-{marker}"
    (late,) = reasons["after_hours"]
    assert late["action"] == "print"
    assert len(reasons["random"]) == 4
    again = server.api("POST", f"/api/followup/plans/{plan['id']}/rounds", json={"period": label})
    assert again.status_code == 409

    # The admin may look, but only the named reviewer decides.
    refused = server.api("POST", f"/api/followup/items/{prot['id']}/decision", json={"decision": "justified"})
    assert refused.status_code == 403 and "lulea.granskare" in refused.text

    # The reviewer works in the browser.
    page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="sv-SE")
    login(page, server.url, "lulea.granskare", round_world["reviewer_pw"], next_path="/followup")
    page.click(f"a[href='/followup/rounds/{round_['id']}']")
    page.wait_for_selector("table.followup tbody tr")
    assert page.locator("table.followup tbody tr").count() == len(round_["items"])
    row = page.locator(f"#item-{prot['id']}")
    row.locator("select[name=decision]").select_option("not_justified")
    row.locator("input[name=comment]").fill("Ingen koppling till ärendet — anmäls")
    with page.expect_navigation():
        row.locator("button[type=submit]").first.click()
    for item in round_["items"]:
        if item["id"] == prot["id"]:
            continue
        r = page.locator(f"#item-{item['id']}")
        with page.expect_navigation():
            r.locator("button[type=submit]").first.click()  # "justified" is preselected
    assert "Ärende #" in page.inner_text(f"#item-{prot['id']}")
    shot(page, "followup")
    with page.expect_navigation():
        page.click("#sign-off")
    assert page.inner_text("#round-status") == "Signerad"
    page.close()

    # The unjustified access opened a case for the SOC, with the reviewer's comment.
    detail = server.api("GET", f"/api/followup/rounds/{round_['id']}").json()
    (decided,) = [i for i in detail["items"] if i["id"] == prot["id"]]
    assert decided["decision"] == "not_justified" and decided["decided_by"] == "lulea.granskare"
    case = server.api("GET", f"/api/cases/{decided['case_id']}").json()
    assert case["tenant"] == "lulea" and any("anmäls" in c["text"] for c in case["comments"])
    assert any(a["rule"]["id"] == "norrvakt-followup" for a in case["alerts"])

    # Signed off: journaled, verifiable, frozen; annotations still possible.
    assert detail["status"] == "signed_off" and detail["signoff_seq"]
    signed = f"event.action:followup-signoff round:{round_['id']}"
    assert server.wait_count(signed, 1, tenant="_norrvakt") == 1
    audit = server.search(signed, tenant="_norrvakt")
    assert audit["total"] == 1 and audit["rows"][0]["fields"]["digest"] == detail["digest"]
    verified = httpx.get(f"{server.url}/api/followup/rounds/{round_['id']}/verify", auth=reviewer).json()
    assert verified["ok"], verified
    frozen = httpx.post(
        f"{server.url}/api/followup/items/{prot['id']}/decision",
        auth=reviewer,
        json={"decision": "justified"},
    )
    assert frozen.status_code == 409 and "signed off" in frozen.text
    note = httpx.post(
        f"{server.url}/api/followup/items/{prot['id']}/annotations",
        auth=reviewer,
        json={"text": "Överlämnat till HR"},
    )
    assert note.status_code == 200

    # The report: HTML and a PDF whose first page is rendered and looked at.
    html = httpx.get(
        f"{server.url}/api/followup/rounds/{round_['id']}/report", params={"format": "html"}, auth=reviewer
    ).text
    assert "Signerad" in html and "Kontrollsumman stämmer" in html and "Överlämnat till HR" in html
    pdf = httpx.get(
        f"{server.url}/api/followup/rounds/{round_['id']}/report",
        params={"format": "pdf"},
        auth=reviewer,
        timeout=60,
    )
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    (tmp / "report.pdf").write_bytes(pdf.content)
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils missing (make test installs it)")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(tmp / "report.pdf"), str(tmp / "page")],
        check=True,
    )
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp / "report.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Loggkontroll" in text and "Ej befogad" in text and f"s-prot-{marker}" in text
    _check_page_image(next(tmp.glob("page*.png")))


def test_cli_reads_rounds_and_uploads_a_hashed_lookup(round_world: dict[str, Any]) -> None:
    server: Server = round_world["server"]
    tmp: Path = round_world["tmp"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "norrvakt.cli", "--data-dir", str(server.data_dir), "followup", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )

    listed = cli("plans", "--json")
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert [p["reviewer"] for p in doc["plans"]] == ["lulea.granskare"]
    assert [r["status"] for r in doc["rounds"]] == ["signed_off"]
    assert "round" in round_world, "runs after the round test"
    verified = cli("verify", str(round_world["round"]))
    assert verified.returncode == 0 and "OK" in verified.stdout, verified.stderr
    plain = tmp / "hr.csv"
    plain.write_text("id;surname;address\nu-1;Holmgren;Storgatan 1\nu-2;Öberg;\n", encoding="utf-8")
    hashed = cli("hash-lookup", "--tenant", "lulea", str(plain))
    assert hashed.returncode == 0 and "Holmgren" not in hashed.stdout and hashed.stdout.count("\n") == 3
    (tmp / "hr.hashed.csv").write_text(hashed.stdout)
    uploaded = cli("upload-lookup", "--tenant", "lulea", "--kind", "staff", str(tmp / "hr.hashed.csv"))
    assert uploaded.returncode == 0 and "2 staff rows for lulea" in uploaded.stdout, uploaded.stderr
    bad = tmp / "bad.csv"
    bad.write_text("id_hash,surname_hash,address_hash\nnot-a-hash,,\n")
    refused = cli("upload-lookup", "--tenant", "lulea", "--kind", "staff", str(bad))
    assert refused.returncode == 2 and "line 2" in refused.stderr and "not-a-hash" in refused.stderr
