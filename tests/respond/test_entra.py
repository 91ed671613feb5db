"""Entra ID actions through the Graph stand-in (tests/m365/standin.py, written from Graph's
documentation): disable → accountEnabled false, undo → true; sessions revoked; a 429 with
Retry-After and a 500 are retried and then done; a 500 that persists leaves the action failed
on the case (worth a retry), and the retry does it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from norrvakt.sources.m365.credentials import Credential, CredentialBox
from norrvakt.state.m365 import save_credential
from tests.m365.standin import CLIENT_ID, DIRECTORY, SECRET, StandIn
from tests.respond.conftest import ANA, BO, World, make_world

USER_ID = "5b1f4c3a-1d2e-4f60-8a9b-0c1d2e3f4a5b"
UPN = "kim.karlsson@lulea.example"


@pytest.fixture
def entra(tmp_path: Path) -> Iterator[tuple[World, StandIn]]:
    with StandIn(tmp_path) as ms:
        ms.add_user(UPN, USER_ID)
        source = {
            "id": "m365-lulea",
            "type": "m365",
            "tenant": "lulea",
            "m365": {
                "directory_id": DIRECTORY,
                "client_id": CLIENT_ID,
                "login_url": ms.base,
                "graph_url": ms.base,
                "manage_url": ms.base,
                "ca_file": ms.ca_file,
                "feeds": ["graph.signIns"],
            },
        }
        w = make_world(
            tmp_path,
            {"sources": [source], "response.entra": {"lulea": "m365-lulea"}, "response.timeout_s": 2.0},
        )
        box = CredentialBox.open(tmp_path)
        blob = box.seal("m365-lulea", "lulea", Credential.from_secret(SECRET))
        save_credential(w.engine, "m365-lulea", "lulea", "secret", blob, by="admin")
        yield w, ms
        w.engine.dispose()


def _ask(w: World, action: str, target: str = UPN) -> dict:  # type: ignore[type-arg]
    row = asyncio.run(w.svc.request(ANA, w.scope(ANA), action=action, target=target, case_id=w.case_id))
    return asyncio.run(w.svc.approve(BO, w.scope(BO), row["id"]))


def test_disable_then_undo_and_revoke_sessions(entra: tuple[World, StandIn]) -> None:
    w, ms = entra
    done = _ask(w, "entra.disable")
    assert done["status"] == "done", done["result"]
    assert "accountEnabled True → False, read back" in done["result"]
    assert ms.state.users[USER_ID]["accountEnabled"] is False
    assert any(r.startswith("PATCH /v1.0/users/") for r in ms.requests)
    undone = asyncio.run(w.svc.undo(ANA, w.scope(ANA), done["id"]))
    assert undone["status"] == "undone" and ms.state.users[USER_ID]["accountEnabled"] is True
    revoked = _ask(w, "entra.revoke_sessions", USER_ID)
    assert revoked["status"] == "done" and ms.state.revoked == {USER_ID: 1}


def test_throttled_and_500_are_retried_then_done(entra: tuple[World, StandIn]) -> None:
    w, ms = entra
    ms.fault("429", path="/v1.0/users/", retry_after=0)
    ms.fault("500", path="/v1.0/users/")
    done = _ask(w, "entra.disable")
    assert done["status"] == "done", done["result"]
    assert ms.state.users[USER_ID]["accountEnabled"] is False


def test_a_persisting_500_is_failed_on_the_case_and_retried_by_the_analyst(
    entra: tuple[World, StandIn],
) -> None:
    w, ms = entra
    for _ in range(3):  # every try of the responder's client
        ms.fault("500", path="/revokeSignInSessions")
    failed = _ask(w, "entra.revoke_sessions")
    assert failed["status"] == "failed" and failed["retryable"] and "HTTP 500" in failed["result"]
    assert ms.state.revoked == {}
    assert w.history()[-1].action == "response-failed" and "worth a retry" in w.history()[-1].new
    again = asyncio.run(w.svc.retry(ANA, w.scope(ANA), failed["id"]))
    assert again["status"] == "done" and ms.state.revoked == {USER_ID: 1} and again["attempts"] == 2


def test_an_unknown_user_is_failed_not_retried(entra: tuple[World, StandIn]) -> None:
    w, _ = entra
    failed = _ask(w, "entra.disable", "nobody@lulea.example")
    assert failed["status"] == "failed" and "404" in failed["result"]
