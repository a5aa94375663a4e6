"""
Pair each executed action with the observations before and after it: (o_t, a_t, o_t+1).

Observations and executed actions come from different nodes and may arrive in either order; a
step is complete once the action for o_t and the first observation after it are both here.
"""

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, List, Optional

from hilresrl_common.observation import Observation


@dataclass(frozen=True)
class Step:
    """One completed control step."""

    observation: Observation
    action: Any
    next_observation: Observation


class StepAssembler:
    """Match actions (by the stamp of the observation they answer) with observations."""

    def __init__(self, capacity: int = 64):
        self._capacity = capacity
        self._observations: 'OrderedDict[int, Observation]' = OrderedDict()
        self._actions: 'OrderedDict[int, Any]' = OrderedDict()
        self._start_ns: Optional[int] = None
        self.unmatched_actions = 0

    def start(self, first_stamp_ns: int = 0) -> None:
        """Start an episode: forget everything, ignore anything stamped before first_stamp_ns."""
        self._observations.clear()
        self._actions.clear()
        self._start_ns = first_stamp_ns

    def stop(self) -> None:
        """End the episode: nothing is assembled until the next start."""
        self._start_ns = None
        self._observations.clear()
        self._actions.clear()

    def add_observation(self, observation: Observation) -> List[Step]:
        """Add an observation; return the steps it completes."""
        if self._start_ns is None or observation.stamp_ns < self._start_ns:
            return []
        self._observations[observation.stamp_ns] = observation
        self._trim(self._observations)
        return self._complete()

    def add_action(self, stamp_ns: int, action: Any) -> List[Step]:
        """Add the action that answered the observation at stamp_ns; return completed steps."""
        if self._start_ns is None or stamp_ns < self._start_ns:
            return []
        # The first command answering an observation is the one a lockstep cell executes; a
        # later one (a watchdog hold racing the proposal) found the cell already moved on.
        self._actions.setdefault(stamp_ns, action)
        self._trim(self._actions)
        return self._complete()

    def _complete(self) -> List[Step]:
        steps = []
        for stamp_ns in list(self._actions):
            later = [s for s in self._observations if s > stamp_ns]
            if not later:
                break  # actions are in time order: nothing after this one is complete either
            action = self._actions.pop(stamp_ns)
            observation = self._observations.get(stamp_ns)
            if observation is None:
                self.unmatched_actions += 1  # its observation never arrived
                continue
            steps.append(Step(observation, action, self._observations[min(later)]))
            for old in [s for s in self._observations if s < stamp_ns]:
                del self._observations[old]
        return steps

    def _trim(self, table: OrderedDict) -> None:
        while len(table) > self._capacity:
            table.popitem(last=False)
