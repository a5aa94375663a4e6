"""Per-robot check that transition sequence numbers arrive without gaps (no ROS)."""

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class SequenceCheck:
    """What one received sequence number says about the stream of its robot."""

    lost: int = 0           # transitions skipped between the previous one and this one
    duplicate: bool = False  # at or below the last one seen: repeated or reordered
    restarted: bool = False  # the robot's cell started again (counting from 1)


class SequenceTracker:
    """
    Counts received, lost and duplicate transitions for each robot by sequence number.

    A cell draws a fresh ``cell_start_id`` at every start and counts its sequence from 1: a new
    id is a restart whatever the sequence (so a lost first transition after a restart does not
    turn the rest into duplicates), the same id with a sequence at or below the last one is a
    duplicate. Streams without an id (old bags) take a sequence of 1 after a higher one as a
    restart.
    """

    def __init__(self):
        self._last: Dict[str, Tuple[str, int]] = {}
        self.received: Dict[str, int] = {}
        self.lost: Dict[str, int] = {}
        self.duplicates: Dict[str, int] = {}
        self.restarts: Dict[str, int] = {}

    def observe(self, robot_id: str, sequence: int, start_id: str = '') -> SequenceCheck:
        """Record one received sequence number of a robot and return what it reveals."""
        self.received[robot_id] = self.received.get(robot_id, 0) + 1
        previous = self._last.get(robot_id)
        if previous is None:
            # What a robot sent before this learner subscribed was never meant for it.
            self._last[robot_id] = (start_id, sequence)
            return SequenceCheck()
        last_start, last = previous
        if start_id and start_id != last_start:
            # A new start of the cell counts from 1: what came before this one was lost.
            self._last[robot_id] = (start_id, sequence)
            self.restarts[robot_id] = self.restarts.get(robot_id, 0) + 1
            lost = max(0, sequence - 1)
            if lost:
                self.lost[robot_id] = self.lost.get(robot_id, 0) + lost
            return SequenceCheck(lost=lost, restarted=True)
        if not start_id and sequence == 1 and last > 1:
            self._last[robot_id] = (start_id, sequence)
            self.restarts[robot_id] = self.restarts.get(robot_id, 0) + 1
            return SequenceCheck(restarted=True)
        if sequence <= last:
            self.duplicates[robot_id] = self.duplicates.get(robot_id, 0) + 1
            return SequenceCheck(duplicate=True)
        lost = sequence - last - 1
        self._last[robot_id] = (start_id, sequence)
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
