"""
Index base-policy action chunks by time, so every control step has a base action to correct.

Row i of a chunk is the action for ``stamp + i * step_period``; a slow base policy (a VLA at
3-10 Hz) hands over chunks that the fast control loop reads row by row.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """An action chunk: actions (horizon x action_dim) from the observation at stamp_ns."""

    stamp_ns: int
    step_period_s: float
    actions: np.ndarray
    chunk_id: int = 0
    source_model: str = ''

    @property
    def horizon(self) -> int:
        """Return the number of rows."""
        return int(self.actions.shape[0])


@dataclass(frozen=True)
class BaseAction:
    """The base action for one control step and where it came from."""

    action: np.ndarray
    chunk: Chunk
    row: int


class ChunkBuffer:
    """
    The newest chunk, read by time; receding horizon: replan after ``execute_steps`` rows.

    ``hold_steps`` lets the last row stand for that many periods past the chunk's end, so a
    base policy that answers a little late (one period, on a busy machine) still leaves the
    control loop an action, as a zero-order hold would.
    """

    def __init__(self, execute_steps: Optional[int] = None, hold_steps: int = 0):
        if execute_steps is not None and execute_steps < 1:
            raise ValueError('execute_steps must be at least 1')
        if hold_steps < 0:
            raise ValueError('hold_steps must not be negative')
        self._execute_steps = execute_steps
        self._hold_steps = hold_steps
        self._chunk: Optional[Chunk] = None

    @property
    def chunk(self) -> Optional[Chunk]:
        """Return the newest chunk, if any."""
        return self._chunk

    def add(self, chunk: Chunk) -> None:
        """Keep a chunk unless an equally new or newer one is already here."""
        if chunk.actions.ndim != 2 or chunk.horizon < 1:
            raise ValueError(f'a chunk is horizon x action_dim, got shape {chunk.actions.shape}')
        if chunk.step_period_s <= 0:
            raise ValueError('a chunk needs a positive step period')
        if self._chunk is None or chunk.stamp_ns > self._chunk.stamp_ns:
            self._chunk = chunk

    def row_at(self, stamp_ns: int) -> Optional[int]:
        """Return the chunk row for a time (None before the chunk or after its last row)."""
        if self._chunk is None or stamp_ns < self._chunk.stamp_ns:
            return None
        row = int(round((stamp_ns - self._chunk.stamp_ns) * 1e-9 / self._chunk.step_period_s))
        return row if row < self._chunk.horizon + self._hold_steps else None

    def action_at(self, stamp_ns: int, fresh_only: bool = False) -> Optional[BaseAction]:
        """
        Return the base action for a time, or None when there is none.

        With ``fresh_only``, rows past ``execute_steps`` count as none: the caller waits for
        the next chunk (lockstep) instead of playing out an old plan.
        """
        row = self.row_at(stamp_ns)
        if row is None:
            return None
        if fresh_only and self._execute_steps is not None and row >= self._execute_steps:
            return None
        return BaseAction(self._chunk.actions[min(row, self._chunk.horizon - 1)], self._chunk,
                          row)

    def needs_replan(self, stamp_ns: int) -> bool:
        """Return whether a new chunk should be computed at this time."""
        row = self.row_at(stamp_ns)
        limit = self._execute_steps or (self._chunk.horizon if self._chunk else 1)
        return row is None or row >= min(limit, self._chunk.horizon)

    def clear(self) -> None:
        """Drop the chunk (a new episode, or a person took over and the plan is stale)."""
        self._chunk = None
