"""Shared fixtures.

chDB runs one embedded ClickHouse per process on one directory, so every test in this pytest
process shares ``chdb_path``; tests isolate themselves with their own database name.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from norrvakt.store.clickhouse import ClickHouseStore, StoreConfig
from tests.ad.samba_dc import samba_dc  # noqa: F401 - the real Samba AD DC, one per session

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

_db_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--skip-cluster",
        action="store_true",
        help="leave out the tests marked cluster (several real processes each; CI runs them)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--skip-cluster"):
        return
    skip = pytest.mark.skip(reason="cluster tests left out with --skip-cluster (CI runs them)")
    for item in items:
        if item.get_closest_marker("cluster") is not None:
            item.add_marker(skip)


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data; skips the calling test (with the reason) when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data not available: {path} (CI always has ../shared/data)")
    return path


@pytest.fixture(scope="session")
def rule_cache() -> Path:
    """A compiled-rule cache shared by the tests that load the same big rule set (SigmaHQ's
    ~2,400 Windows rules take seconds to compile each time). Entries are keyed by every rule
    file's bytes, the pipeline and the compiler's code, so no test meets a stale one; tests of
    compiling itself load with ``use_cache=False``."""
    path = Path(__file__).resolve().parents[1] / ".tools" / "test-rule-cache" / "direct"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@pytest.fixture(scope="session")
def chdb_path() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="norrvakt-chdb-") as d:
        yield Path(d)


@pytest.fixture
def store(chdb_path: Path) -> Iterator[ClickHouseStore]:
    database = f"test_{os.getpid()}_{next(_db_counter)}"
    s = StoreConfig(dsn=f"chdb://{chdb_path}", database=database, retention_days=0).build()
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{database}`")
    s.close()
