"""
Assemble one observation from several stamped sources (joint states, poses, state, images).

A lockstep simulator stamps every message of a step alike, so ``exact`` matching yields each
step's observation exactly once and never mixes two steps; a real cell's drivers stamp on their
own clocks, so ``latest`` takes the newest message of every source.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

SYNC_MODES = ('exact', 'latest')


@dataclass(frozen=True)
class Observation:
    """One observation: named arrays, stamped with the time of the newest source (ns)."""

    stamp_ns: int
    arrays: Mapping[str, np.ndarray]
    # Every source sent this stamp again (a lockstep cell re-publishes a step nobody answered):
    # a node that already answered it answers again, one that missed it answers now.
    repeat: bool = False
    # ``latest``: each source's own stamp (a camera's image is not as new as the joint states);
    # ``exact``: empty, every source has ``stamp_ns``.
    source_stamps: Mapping[str, int] = field(default_factory=dict)

    def stamp_of(self, source: str) -> int:
        """Return the stamp of one source's message in this observation (ns)."""
        return self.source_stamps.get(source, self.stamp_ns)

    def vector(self, names: Sequence[str]) -> np.ndarray:
        """Return the named arrays concatenated in the given order, as float32."""
        missing = [name for name in names if name not in self.arrays]
        if missing:
            raise KeyError(f'observation has no {", ".join(missing)}; it has '
                           f'{", ".join(sorted(self.arrays))}')
        return np.concatenate([np.asarray(self.arrays[name], dtype=np.float32).ravel()
                               for name in names])


class ObservationAssembler:
    """Collect the messages of every source and hand out complete observations."""

    def __init__(self, sources: Sequence[str], sync: str = 'exact', pending_stamps: int = 8):
        if not sources:
            raise ValueError('an observation needs at least one source')
        if sync not in SYNC_MODES:
            raise ValueError(f'sync must be one of {", ".join(SYNC_MODES)}, not {sync!r}')
        self._sources = tuple(sources)
        self._sync = sync
        self._pending_stamps = pending_stamps
        # exact: stamp -> source -> arrays, for the few most recent stamps
        self._partial: Dict[int, Dict[str, Mapping[str, np.ndarray]]] = {}
        # latest: source -> (stamp, arrays)
        self._latest: Dict[str, tuple] = {}
        self._last_complete_ns = -1
        self._repeated: Dict[str, Mapping[str, np.ndarray]] = {}

    @property
    def sources(self) -> tuple:
        """Return the source names, in order."""
        return self._sources

    def add(self, source: str, stamp_ns: int,
            arrays: Mapping[str, np.ndarray]) -> Optional[Observation]:
        """Add one message; return the observation it completes, if any."""
        if source not in self._sources:
            raise KeyError(f'{source!r} is not an observation source')
        self._latest[source] = (stamp_ns, arrays)
        if self._sync == 'latest':
            return self.latest()
        if stamp_ns == self._last_complete_ns:
            self._repeated[source] = arrays
            if len(self._repeated) < len(self._sources):
                return None
            parts, self._repeated = self._repeated, {}
            return Observation(stamp_ns, _merge(parts[name] for name in self._sources),
                               repeat=True)
        if stamp_ns < self._last_complete_ns:
            return None  # a straggler of a step already handed out
        parts = self._partial.setdefault(stamp_ns, {})
        parts[source] = arrays
        if len(parts) < len(self._sources):
            while len(self._partial) > self._pending_stamps:  # a source skipped a stamp
                del self._partial[min(self._partial)]
            return None
        for stamp in [s for s in self._partial if s <= stamp_ns]:
            del self._partial[stamp]
        self._last_complete_ns = stamp_ns
        self._repeated = {}
        return Observation(stamp_ns, _merge(parts[name] for name in self._sources))

    def latest(self) -> Optional[Observation]:
        """Return the newest message of every source combined; None until all have one."""
        if len(self._latest) < len(self._sources):
            return None
        stamp_ns = max(stamp for stamp, _ in self._latest.values())
        return Observation(stamp_ns, _merge(self._latest[name][1] for name in self._sources),
                           source_stamps={name: self._latest[name][0] for name in self._sources})

    def reset(self) -> None:
        """Forget partial observations (a new episode starts)."""
        self._partial.clear()
        self._repeated = {}


def _merge(parts) -> Dict[str, np.ndarray]:
    merged: Dict[str, np.ndarray] = {}
    for arrays in parts:
        merged.update(arrays)
    return merged


class SilentSources:
    """
    Which sources have sent nothing for ``timeout_s`` while others still send.

    By arrival time, not stamp: a camera that stops leaves the observation incomplete and the
    node that waits for it acting on nothing; naming it is the quickest way to the cause. When
    every source is quiet the cell is paused (or gone, which the arbiter's watchdog reports).
    """

    def __init__(self, sources: Sequence[str], timeout_s: float, now_s: float):
        self.timeout_s = timeout_s
        self._arrival = dict.fromkeys(sources, now_s)  # never heard: silent from the start

    def heard(self, source: str, now_s: float) -> None:
        """Note a message from ``source``."""
        self._arrival[source] = now_s

    def silent(self, now_s: float) -> List[str]:
        """Return the sources silent for timeout_s while another one sent within it."""
        quiet = [source for source, arrival in self._arrival.items()
                 if now_s - arrival > self.timeout_s]
        return quiet if len(quiet) < len(self._arrival) else []
