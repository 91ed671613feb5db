"""The detection position's compare-and-set, on SQLite and on PostgreSQL: a worker moves the
position only from where it read it, and a rolled-back batch leaves it where it was."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from norrvakt.state import detect_positions
from norrvakt.state.detect_positions import PositionMoved


def test_the_position_moves_only_from_where_the_worker_read_it(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        assert detect_positions.load(conn, "boden") == (0, 0)
        detect_positions.advance(conn, "boden", (0, 0), (4, 2000), "a")
    with engine.begin() as conn:
        detect_positions.advance(conn, "boden", (4, 2000), (6, 3000), "a")
    # worker b read (4, 2000) before a moved on: its batch must not commit
    moved = r"boden: detection position is 6 \(seq 3000\), not 4"
    with pytest.raises(PositionMoved, match=moved), engine.begin() as conn:
        detect_positions.advance(conn, "boden", (4, 2000), (5, 2500), "b")
    # nor may a second 'first' worker start the tenant over
    with pytest.raises(PositionMoved), engine.begin() as conn:
        detect_positions.advance(conn, "boden", (0, 0), (1, 500), "b")
    with engine.connect() as conn:
        assert detect_positions.load(conn, "boden") == (6, 3000)
        assert detect_positions.load(conn, "kiruna") == (0, 0)


def test_a_batch_that_fails_after_the_move_leaves_the_position(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        detect_positions.advance(conn, "boden", (0, 0), (1, 500), "a")
    with pytest.raises(RuntimeError, match="alert insert failed"), engine.begin() as conn:
        detect_positions.advance(conn, "boden", (1, 500), (2, 1000), "a")
        raise RuntimeError("alert insert failed")
    with engine.connect() as conn:
        assert detect_positions.load(conn, "boden") == (1, 500)
