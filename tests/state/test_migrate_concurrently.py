"""Several nodes starting at once on one empty PostgreSQL: one migrates, the others wait for it
and find the newest schema (without the upgrade's advisory lock the second CREATE TABLE fails)."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from norrvakt.state.db import open_state
from norrvakt.state.migrate import current_revision, head_revision
from tests.state.postgres import cluster


def test_nodes_starting_together_on_an_empty_postgresql_all_come_up() -> None:
    url = cluster().new_database(migrated=False)
    start = threading.Barrier(3)
    errors: list[BaseException] = []
    engines: list[sa.Engine] = []

    def node() -> None:
        try:
            start.wait()
            engines.append(open_state(url))
        except BaseException as exc:  # reported below, with every node's outcome
            errors.append(exc)

    threads = [threading.Thread(target=node, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a node still waits after 30 s (a deadlock)"
    assert errors == []
    assert [current_revision(e) for e in engines] == [head_revision()] * 3
    for e in engines:
        e.dispose()
