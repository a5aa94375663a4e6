"""Per-robot check that transition sequence numbers arrive without gaps (no ROS)."""

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class SequenceCheck:
    """What one received sequence number says about the stream of its robot."""

    lost: int = 0           # transitions skipped between the previous one and this one
    duplicate: bool = False  # at or below the last one seen: repeated or reordered
    restarted: bool = False  # the robot started counting again from 1


class SequenceTracker:
    """Counts received, lost and duplicate transitions for each robot by sequence number."""

    def __init__(self):
        self._last: Dict[str, int] = {}
        self.received: Dict[str, int] = {}
        self.lost: Dict[str, int] = {}
        self.duplicates: Dict[str, int] = {}

    def observe(self, robot_id: str, sequence: int) -> SequenceCheck:
        """Record one received sequence number of a robot and return what it reveals."""
        self.received[robot_id] = self.received.get(robot_id, 0) + 1
        last = self._last.get(robot_id)
        if last is None:
            # What a robot sent before this learner subscribed was never meant for it.
            self._last[robot_id] = sequence
            return SequenceCheck()
        if sequence == 1 and last > 1:
            self._last[robot_id] = sequence
            return SequenceCheck(restarted=True)
        if sequence <= last:
            self.duplicates[robot_id] = self.duplicates.get(robot_id, 0) + 1
            return SequenceCheck(duplicate=True)
        lost = sequence - last - 1
        self._last[robot_id] = sequence
        if lost:
            self.lost[robot_id] = self.lost.get(robot_id, 0) + lost
        return SequenceCheck(lost=lost)

    @property
    def total_received(self) -> int:
        """Transitions received from all robots."""
        return sum(self.received.values())

    @property
    def total_lost(self) -> int:
        """Transitions missing from all robots' streams."""
        return sum(self.lost.values())
