"""
Index base-policy action chunks by time, so every control step has a base action to correct.

Row i of a chunk is the action for ``stamp + i * step_period``; a slow base policy (a VLA at
3-10 Hz) hands over chunks that the fast control loop reads row by row: the newest chunk's row
(receding horizon), or a weighted mean of the rows every recent chunk has for that time
(temporal ensembling, as ACT executes its chunks).
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """An action chunk: actions (horizon x action_dim) from the observation at stamp_ns."""

    stamp_ns: int
    step_period_s: float
    actions: np.ndarray
    chunk_id: int = 0
    source_model: str = ''
    # A steered generative policy: the latent it generated from, what chose it, which version.
    latent: Tuple[float, ...] = ()
    latent_condition: Tuple[float, ...] = ()
    latent_weights_version: int = 0

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

    def __init__(self, execute_steps: Optional[int] = None, hold_steps: int = 0,
                 ensemble_decay: Optional[float] = None):
        if execute_steps is not None and execute_steps < 1:
            raise ValueError('execute_steps must be at least 1')
        if hold_steps < 0:
            raise ValueError('hold_steps must not be negative')
        if ensemble_decay is not None and ensemble_decay < 0:
            raise ValueError('ensemble_decay must not be negative')
        self._execute_steps = execute_steps
        self._hold_steps = hold_steps
        # Temporal ensembling: the row of chunk i (0 the oldest) weighs exp(-decay * i).
        self._ensemble_decay = ensemble_decay
        self._chunk: Optional[Chunk] = None
        self._recent: List[Chunk] = []  # oldest first, only kept when ensembling

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
            if self._ensemble_decay is not None:
                # Chunks that end before the newest one begins can no longer take part.
                self._recent = [kept for kept in self._recent
                                if _row(kept, chunk.stamp_ns) < kept.horizon] + [chunk]

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
        action = self._chunk.actions[min(row, self._chunk.horizon - 1)]
        if self._ensemble_decay is not None:
            rows = [(chunk, _row(chunk, stamp_ns)) for chunk in self._recent]
            rows = [chunk.actions[index] for chunk, index in rows if 0 <= index < chunk.horizon]
            if len(rows) > 1:
                weights = np.exp(-self._ensemble_decay * np.arange(len(rows)))
                action = (np.average(np.stack(rows), axis=0, weights=weights)
                          .astype(np.float32))
        return BaseAction(action, self._chunk, row)

    def needs_replan(self, stamp_ns: int) -> bool:
        """Return whether a new chunk should be computed at this time."""
        row = self.row_at(stamp_ns)
        limit = self._execute_steps or (self._chunk.horizon if self._chunk else 1)
        return row is None or row >= min(limit, self._chunk.horizon)

    def forget_before(self, stamp_ns: int) -> None:
        """Drop the chunks planned from observations older than ``stamp_ns`` (a new episode)."""
        if self._chunk is not None and self._chunk.stamp_ns < stamp_ns:
            self._chunk = None
        self._recent = [kept for kept in self._recent if kept.stamp_ns >= stamp_ns]

    def keep_newest(self) -> None:
        """Forget the chunks before the newest (their plans predate a person's correction)."""
        self._recent = self._recent[-1:]

    def clear(self) -> None:
        """Drop the chunks (a new episode, or a person took over and the plan is stale)."""
        self._chunk = None
        self._recent = []


def _row(chunk: Chunk, stamp_ns: int) -> int:
    """Return the (possibly negative or too large) row of a chunk for a time."""
    return int(round((stamp_ns - chunk.stamp_ns) * 1e-9 / chunk.step_period_s))
