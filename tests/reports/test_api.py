"""The report routes in-process (FastAPI app on the test runtime): a municipality's report for
a past period as its own officer and as the SOC, refusals for another municipality's and for
the region report, clear answers for a bad period; every render audited as an export. (Boden's
officer against Luleå's report over a real server: tests/e2e/test_isolation.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from norrvakt.cli.main import main
from norrvakt.state.accounts import Principal
from norrvakt.web.app import create_app
from norrvakt.web.auth import current_principal
from tests.reports.conftest import World

BODEN = Principal(username="boden.officer", role="tenant_officer", tenants=frozenset({"boden"}))
SOC = Principal(username="soc.kim", role="soc_analyst", tenants=None)


@pytest.fixture(scope="module")
def app(world: World) -> Any:
    return create_app(world.rt)


def _get(world: World, app: Any, who: Principal, url: str) -> httpx.Response:
    app.dependency_overrides[current_principal] = lambda: who

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(url, timeout=120)

    return world.loop.run(call())


def test_own_report_as_json_and_html_and_the_soc_reads_any(world: World, app: Any) -> None:
    own = _get(world, app, BODEN, "/api/reports/periodic/boden/2026-11?format=json")
    assert own.status_code == 200 and own.json()["tenant"] == "boden" and own.json()["quiet"]
    page = _get(world, app, SOC, "/api/reports/periodic/lulea/2026-11?format=html&language=en")
    assert page.status_code == 200 and "Monthly security log report — Luleå" in page.text
    world.loop.run(world.rt.indexer.wait_caught_up(timeout=30))
    audited = world.rt.store.query(
        "SELECT fields['tenant'], fields['format'], user_name FROM events WHERE tenant = '_norrvakt' "
        "AND event_action = 'export' AND fields['report'] = 'periodic' ORDER BY seq"
    )
    assert [tuple(map(str, r)) for r in audited][-2:] == [
        ("boden", "json", "boden.officer"),
        ("lulea", "html", "soc.kim"),
    ]


def test_another_municipality_and_the_region_are_refused_to_an_officer(world: World, app: Any) -> None:
    for url in (
        "/api/reports/periodic/lulea/2026-11?format=json",
        "/api/reports/periodic/lulea/2026-11?format=pdf",
        "/api/reports/region/2026-11?format=json",
    ):
        answer = _get(world, app, BODEN, url)
        assert answer.status_code == 403 and "Luleå" not in answer.text, url
    runs = _get(world, app, BODEN, "/api/reports/runs").json()["runs"]
    assert {r["tenant"] for r in runs} <= {"boden"}


def test_bad_periods_get_a_clear_answer(world: World, app: Any) -> None:
    cases = {
        "/api/reports/periodic/lulea/2026-13": (400, "a month like 2026-11"),
        "/api/reports/periodic/lulea/2099-01": (400, "has not ended yet"),
        "/api/reports/region/2026-W60?format=json": (400, "has no ISO week 60"),
        "/api/reports/periodic/lulea/2026-11?format=docx": (422, "pdf|html|json"),
        "/api/reports/periodic/lulea/2026-11?language=fi": (400, "language 'fi'"),
    }
    for url, (status, words) in cases.items():
        answer = _get(world, app, SOC, url)
        assert answer.status_code == status and words in answer.text, (url, answer.text)


def test_cli_needs_one_of_tenant_or_region() -> None:
    result = CliRunner().invoke(main, ["reports", "render", "--period", "2026-11"])
    assert result.exit_code == 2 and "give either --tenant TENANT or --region" in result.output
