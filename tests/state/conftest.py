"""State tests run twice: on SQLite (the embedded default) and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from norrvakt.state.db import open_state
from tests.state.postgres import cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database on each backend (not migrated yet)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return cluster().new_database(migrated=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated state database on each backend."""
    url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else cluster().new_database()
    e = open_state(url)
    yield e
    e.dispose()
