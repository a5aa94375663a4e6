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


def test_temporal_ensembling_weighs_the_rows_every_recent_chunk_has_for_a_time():
    buffer = ChunkBuffer(ensemble_decay=0.5)
    first = Chunk(0, 0.1, np.array([[0.0], [1.0], [2.0], [3.0]], np.float32))
    second = Chunk(100 * MS, 0.1, np.array([[10.0], [11.0], [12.0], [13.0]], np.float32))
    third = Chunk(500 * MS, 0.1, np.array([[20.0], [21.0]], np.float32))
    buffer.add(first)
    assert buffer.action_at(100 * MS).action.tolist() == [1.0]  # one chunk: its row
    buffer.add(second)
    # at 200 ms: first's row 2 (2.0, weight 1) and second's row 1 (11.0, weight e^-0.5)
    expected = (2.0 + 11.0 * np.exp(-0.5)) / (1 + np.exp(-0.5))
    base = buffer.action_at(200 * MS)
    assert base.action.tolist() == pytest.approx([expected]) and base.chunk is second
    buffer.add(third)  # both earlier chunks end before 500 ms: only the newest is left
    assert buffer.action_at(500 * MS).action.tolist() == [20.0]
    buffer.clear()
    buffer.add(second)
    assert buffer.action_at(200 * MS).action.tolist() == [11.0]  # nothing from before
    with pytest.raises(ValueError, match='must not be negative'):
        ChunkBuffer(ensemble_decay=-1.0)


def test_a_new_episode_forgets_the_plans_of_the_last_one():
    buffer = ChunkBuffer(ensemble_decay=0.5)
    buffer.add(_chunk(1000))
    buffer.add(_chunk(1100))
    buffer.forget_before(1100 * MS)  # a plan from the episode's first observation stays
    assert buffer.chunk.stamp_ns == 1100 * MS
    assert buffer.action_at(1200 * MS).action.tolist() == [2.0, 3.0]  # row 1, no older chunk
    buffer.forget_before(1150 * MS)
    assert buffer.chunk is None and buffer.action_at(1200 * MS) is None
