"""Chunks indexed by time (core, no ROS)."""

from hilresrl_policy.chunking import Chunk, ChunkBuffer
import numpy as np
import pytest

MS = 1_000_000


def _chunk(stamp_ms, rows=4, period_s=0.1):
    actions = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    return Chunk(stamp_ms * MS, period_s, actions, chunk_id=stamp_ms)


def test_rows_are_read_by_time():
    buffer = ChunkBuffer()
    buffer.add(_chunk(1000))
    assert buffer.action_at(999 * MS) is None
    assert buffer.action_at(1000 * MS).row == 0
    base = buffer.action_at(1210 * MS)  # nearest row: 2
    assert base.row == 2 and base.action.tolist() == [4.0, 5.0]
    assert buffer.action_at(1400 * MS) is None  # past the last row


def test_receding_horizon_replans_after_execute_steps():
    buffer = ChunkBuffer(execute_steps=2)
    assert buffer.needs_replan(0)
    buffer.add(_chunk(0))
    assert not buffer.needs_replan(100 * MS)
    assert buffer.needs_replan(200 * MS)
    assert buffer.action_at(200 * MS).row == 2
    assert buffer.action_at(200 * MS, fresh_only=True) is None


def test_the_last_row_holds_for_a_late_next_chunk():
    buffer = ChunkBuffer(hold_steps=2)
    buffer.add(_chunk(0, rows=1))
    assert buffer.action_at(100 * MS).action.tolist() == [0.0, 1.0]  # held one period
    assert buffer.action_at(200 * MS).row == 2
    assert buffer.action_at(300 * MS) is None  # too old to hold
    assert buffer.needs_replan(100 * MS)
    with pytest.raises(ValueError, match='must not be negative'):
        ChunkBuffer(hold_steps=-1)


def test_older_chunks_never_replace_newer_ones():
    buffer = ChunkBuffer()
    buffer.add(_chunk(500))
    buffer.add(_chunk(100))
    assert buffer.chunk.chunk_id == 500
    buffer.clear()
    assert buffer.chunk is None and buffer.action_at(500 * MS) is None


def test_malformed_chunks_are_refused():
    buffer = ChunkBuffer()
    with pytest.raises(ValueError, match='horizon x action_dim'):
        buffer.add(Chunk(0, 0.1, np.zeros(3, dtype=np.float32)))
    with pytest.raises(ValueError, match='positive step period'):
        buffer.add(Chunk(0, 0.0, np.zeros((1, 3), dtype=np.float32)))
