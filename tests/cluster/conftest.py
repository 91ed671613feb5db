"""A 3-node JetStream cluster of real nats-server processes per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from norrvakt.cluster.nats_servers import NatsCluster, NatsClusterConfig


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    c = NatsClusterConfig(Path(tmp_path_factory.mktemp("nats"))).build()
    c.start()
    try:
        yield c
    finally:
        c.stop()
