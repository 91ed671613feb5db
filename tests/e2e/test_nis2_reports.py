"""NIS2 incident reports and the case report (issue 16), against one real `norrvakt serve`:
a real Luleå event and alert, a case marked significant, drafts prefilled from it, edited,
approved by a second person (the drafter refused), exported as JSON (checked against its JSON
Schema) and as a real PDF (text extracted, first page rendered and looked at), marked sent —
the case's deadlines then say met or missed — and the case report whose embedded inclusion
proofs verify with the existing verifier."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from norrvakt.journal.keys import load_public
from norrvakt.journal.proof import verify_proof
from norrvakt.reports.nis2_render import export_schema
from tests.e2e.harness import Server, running_server

HOUR_US = 3600 * 1_000_000
ATTACKER = "185.220.101.7"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_server(Path(tmp_path_factory.mktemp("nis2"))) as server:
        marker = "nis2" + uuid.uuid4().hex[:8]
        made_token = server.api("POST", "/api/admin/tokens", json={"tenant": "lulea", "source": "lulea-nis2"})
        token = made_token.json()["token"]
        for i in range(2):
            resp = httpx.post(
                f"{server.url}/services/collector/event",
                headers={"Authorization": f"Splunk {token}"},
                content=json.dumps(
                    {
                        "event": {
                            "message": f"failed logon {marker} {i}",
                            "source.ip": ATTACKER,
                            "user.name": f"anna{i}",
                        },
                        "host": f"lulea-dc-{marker}",
                        "sourcetype": "windows:security",
                    }
                ),
            )
            assert resp.status_code == 200, resp.text
        assert server.wait_count(marker, 2, tenant="lulea") == 2
        rows = server.search(marker, tenant="lulea")["rows"]
        seqs = sorted(r["seq"] for r in rows)
        alert = None
        for seq in seqs:
            made = server.api(
                "POST",
                "/api/alerts",
                json={
                    "tenant": "lulea",
                    "rule_id": "win-password-spray",
                    "rule_title": f"Password spraying {marker}",
                    "level": "high",
                    "tags": ["attack.credential_access", "attack.t1110.003"],
                    "event_seq": seq,
                    "entities": {"source.ip": ATTACKER, "host.name": f"lulea-dc-{marker}"},
                },
            )
            assert made.status_code == 200, made.text
            alert = made.json()["alerts"][0]
        assert alert is not None
        case_id = alert["case_id"]
        passwords: dict[str, str] = {}
        people = {
            who: _person(server, name, role, passwords)
            for who, name, role in (
                ("officer", "lulea.officer", "tenant_officer"),
                ("chief", "lulea.chief", "tenant_officer"),
                ("analyst", "soc.anna", "soc_analyst"),
            )
        }
        aware = int(time.time() * 1_000_000) - 30 * HOUR_US  # 30 h ago: the early warning is late
        iso_aware = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(aware / 1_000_000))
        resp = server.api(
            "PUT", f"/api/cases/{case_id}/nis2", json={"significant": True, "aware_at": iso_aware}
        )
        assert resp.status_code == 200, resp.text
        comment = server.api(
            "POST",
            f"/api/cases/{case_id}/comments",
            json={"text": f"Blocked {ATTACKER} at the firewall {marker}"},
        )
        assert comment.status_code == 201, comment.text
        yield {
            "server": server,
            "marker": marker,
            "case": case_id,
            "seqs": seqs,
            "people": people,
            "passwords": {"chief": passwords["lulea.chief"]},
        }


def _person(server: Server, name: str, role: str, passwords: dict[str, str]) -> str:
    """A user made through the admin API, and an API token of theirs (Bearer: no argon2 per call)."""
    password = "pw-" + uuid.uuid4().hex
    made = server.api(
        "POST",
        "/api/admin/users",
        json={"username": name, "role": role, "tenants": ["lulea"], "password": password},
    )
    assert made.status_code == 200, made.text
    passwords[name] = password
    token = httpx.post(
        f"{server.url}/api/account/tokens", auth=(name, password), json={"name": "nis2 test"}, timeout=60
    )
    assert token.status_code == 200, token.text
    return str(token.json()["token"])


def call(world: dict[str, Any], who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    server: Server = world["server"]
    headers = {"Authorization": f"Bearer {world['people'][who]}"}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=60, **kwargs)


def test_a_draft_is_prefilled_from_the_case(world: dict[str, Any]) -> None:
    case, marker = world["case"], world["marker"]
    not_yet = call(world, "officer", "GET", f"/api/cases/{case}/nis2/reports/early_warning")
    assert not_yet.status_code == 404
    made = call(world, "officer", "POST", f"/api/cases/{case}/nis2/reports/early_warning")
    assert made.status_code == 201, made.text
    draft = made.json()
    f = draft["fields"]
    assert draft["status"] == "draft" and draft["created_by"] == "lulea.officer"
    assert f["organisation"] == "Luleå kommun" and f["municipality"].startswith("Luleå")
    assert f["suspected_malicious"] == "yes" and f["categories"] == ["angrepp"]
    assert f["cross_border"] == "unknown"  # Norrvakt cannot know; a person decides
    assert f"lulea-dc-{marker}" in f["affected_systems"]
    assert f"Password spraying {marker}" in f["description"]
    assert f["aware_at"] is not None and f["occurred_at"] is not None
    assert "indicators" not in f  # the early warning asks for none (art. 23.4 a)
    assert draft["deadline"]["status"] == "overdue"  # aware 30 h ago, nothing sent
    again = call(world, "officer", "POST", f"/api/cases/{case}/nis2/reports/early_warning")
    assert again.status_code == 409
    notification = call(world, "analyst", "POST", f"/api/cases/{case}/nis2/reports/notification")
    assert notification.status_code == 201, notification.text
    nf = notification.json()["fields"]
    ip = [i for i in nf["indicators"] if i["value"] == ATTACKER]
    assert ip and ip[0]["type"] == "ipv4" and ip[0]["first_seen"] <= ip[0]["last_seen"]
    assert f"Blocked {ATTACKER}" in nf["measures"]  # from the case's comments, for the editor
    assert nf["severity"] == "high"


def test_edits_are_checked_and_only_a_second_person_approves(world: dict[str, Any]) -> None:
    case = world["case"]
    path = f"/api/cases/{case}/nis2/reports/early_warning"
    bad = call(world, "officer", "PUT", path, json={"cross_border": "maybe"})
    assert bad.status_code == 400 and "cross_border" in bad.text and "maybe" in bad.text
    unknown = call(world, "officer", "PUT", path, json={"colour": "red"})
    assert unknown.status_code == 400 and "colour" in unknown.text
    ok = call(world, "officer", "PUT", path, json={"cross_border": "no", "contact_email": "soc@lulea.se"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["fields"]["cross_border"] == "no"
    own = call(world, "officer", "POST", f"{path}/approve")
    assert own.status_code == 403 and "second person" in own.text
    analyst = call(world, "analyst", "POST", f"{path}/approve")
    assert analyst.status_code == 403 and "tenant_officer" in analyst.text
    approved = call(world, "chief", "POST", f"{path}/approve")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved" and body["approved_by"] == "lulea.chief"
    assert len(body["approved_digest"]) == 64
    history = world["server"].api("GET", f"/api/cases/{case}/history").json()["history"]
    assert any(
        h["action"] == "nis2-report" and h["new"] == "approved" and h["actor"] == "lulea.chief"
        for h in history
    )


def test_the_json_export_follows_its_schema(world: dict[str, Any]) -> None:
    case = world["case"]
    resp = call(world, "chief", "GET", f"/api/cases/{case}/nis2/reports/early_warning/export?format=json")
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    jsonschema.validate(doc, export_schema("early_warning"), format_checker=jsonschema.FormatChecker())
    assert doc["approval"]["approved_by"] == "lulea.chief" and doc["approval"]["content_unchanged"] is True
    assert doc["fields"]["cross_border"] == "no" and doc["fields"]["aware_at"].endswith("Z")
    assert doc["basis"]["suspected_malicious"].startswith("NIS2 art. 23.4 a")
    notification = call(
        world, "chief", "GET", f"/api/cases/{case}/nis2/reports/notification/export?format=json"
    )
    jsonschema.validate(
        notification.json(), export_schema("notification"), format_checker=jsonschema.FormatChecker()
    )


def test_the_pdf_is_rendered(world: dict[str, Any], tmp_path: Path) -> None:
    case, marker = world["case"], world["marker"]
    pdf = call(
        world, "chief", "GET", f"/api/cases/{case}/nis2/reports/early_warning/export?format=pdf&lang=sv"
    )
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    (tmp_path / "ew.pdf").write_bytes(pdf.content)
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils missing (make test installs it)")
    text = _pdf_text(tmp_path / "ew.pdf")
    assert "Tidig varning (24 timmar)" in text and "Godkänd" in text and "lulea.chief" in text
    assert f"lulea-dc-{marker}" in text and "NIS2 art. 23.4 a" in text
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(tmp_path / "ew.pdf"), str(tmp_path / "p")],
        check=True,
    )
    _check_portrait_page(next(tmp_path.glob("p*.png")))
    english = call(
        world, "chief", "GET", f"/api/cases/{case}/nis2/reports/early_warning/export?format=html&lang=en"
    )
    assert "Early warning (24 hours)" in english.text and "Could have a cross-border impact" in english.text


def test_mark_sent_updates_the_deadline_status(world: dict[str, Any]) -> None:
    case = world["case"]
    path = f"/api/cases/{case}/nis2/reports"
    draft_only = call(world, "analyst", "POST", f"{path}/notification/mark-sent", json={})
    assert draft_only.status_code == 409 and "approved" in draft_only.text
    sent = call(
        world, "analyst", "POST", f"{path}/early_warning/mark-sent", json={"reference": "MCF-2026-0042"}
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "sent" and sent.json()["deadline"]["status"] == "missed"  # 30 h > 24 h
    assert call(world, "officer", "PUT", f"{path}/early_warning", json={"title": "x"}).status_code == 409
    assert call(world, "chief", "POST", f"{path}/notification/approve").status_code == 200
    on_time = call(world, "analyst", "POST", f"{path}/notification/mark-sent", json={"sent_at": "now"})
    assert on_time.status_code == 200, on_time.text
    nis2 = world["server"].api("GET", f"/api/cases/{case}").json()["nis2"]
    assert nis2["status"]["early_warning"] == "missed" and nis2["status"]["notification"] == "met"
    assert nis2["early_warning_sent_at"] is not None and nis2["overdue"] == []
    final = call(world, "officer", "POST", f"{path}/final_report")
    assert final.json()["fields"]["csirt_reference"] == "MCF-2026-0042"  # carried from the sent report


def test_the_case_report_carries_proofs_that_verify(world: dict[str, Any], tmp_path: Path) -> None:
    case, marker = world["case"], world["marker"]
    base = f"/api/cases/{case}/report"
    full = call(world, "officer", "GET", f"{base}?format=html")
    assert full.status_code == 200 and f"firewall {marker}" in full.text
    police = call(world, "officer", "GET", f"{base}?format=html&variant=police")
    assert f"firewall {marker}" not in police.text  # internal comments left out, history lines too
    assert f"Password spraying {marker}" in police.text
    keys = world["server"].api("GET", "/api/integrity/keys").json()
    proofs = [
        json.loads(html.unescape(p))
        for p in re.findall(r'<pre class="proof-json"[^>]*>(.*?)</pre>', police.text, re.S)
    ]
    assert sorted(p["seq"] for p in proofs) == world["seqs"]
    for proof in proofs:
        key = load_public(keys["keys"][proof["checkpoint"]["key"]])
        assert verify_proof(proof, key).ok
    pdf = call(world, "officer", "GET", f"{base}?format=pdf&variant=police")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    (tmp_path / "case.pdf").write_bytes(pdf.content)
    if shutil.which("pdfdetach") is None:
        pytest.skip("poppler-utils missing (make test installs it)")
    text = _pdf_text(tmp_path / "case.pdf")
    assert f"Ärenderapport #{case}" in text and f"firewall {marker}" not in text
    out = tmp_path / "files"
    out.mkdir()
    subprocess.run(["pdfdetach", "-saveall", "-o", str(out), str(tmp_path / "case.pdf")], check=True)
    attached = sorted(p.name for p in out.iterdir())
    assert [f"proof-lulea-{s}.json" for s in world["seqs"]] == [n for n in attached if n.startswith("proof-")]
    (pem,) = [p for p in out.iterdir() if p.name.startswith("signing-key-")]
    for s in world["seqs"]:
        doc = json.loads((out / f"proof-lulea-{s}.json").read_text())
        result = verify_proof(doc, load_public(pem.read_text()))
        assert result.ok, result.checks
        assert f"failed logon {marker}" in doc["event"]
    tampered = json.loads((out / f"proof-lulea-{world['seqs'][0]}.json").read_text())
    tampered["event"] = tampered["event"].replace("failed", "passed")
    assert not verify_proof(tampered, load_public(pem.read_text())).ok


def test_the_case_page_shows_the_reports(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    case = world["case"]
    client = server.login("lulea.chief", world["passwords"]["chief"])
    try:
        page = client.get(f"/cases/{case}", headers={"Accept-Language": "sv"}).text
    finally:
        client.close()
    assert "NIS2-incidentrapporter" in page and "Tidig varning (24 timmar)" in page
    assert "skickad för sent" in page and "skickad i tid" in page  # early warning late, notification in time
    assert f"/api/cases/{case}/report?format=pdf&amp;variant=police" in page
    assert f"/api/cases/{case}/nis2/reports/final_report/approve" in page  # drafted by the officer, not him
    assert "Vidtagna och pågående åtgärder" in page  # the final report's form, labelled in Swedish


def _pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def _check_portrait_page(path: Path) -> None:
    """An A4 portrait page with dark text and the navy table header on white."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    width, height = img.size
    assert height > width
    pixels = list(img.get_flattened_data())
    assert sum(1 for r, g, b in pixels if r + g + b < 200) > 500, "no text on the page"
    assert sum(1 for r, g, b in pixels if b > 50 and r < 40 and g < 60) > 200, "no table header"
