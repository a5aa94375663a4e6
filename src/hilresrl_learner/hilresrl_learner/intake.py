"""
The learner's intake: which transitions are recorded and which are learned from.

A transition that arrives again (or out of order) is ignored; one that cannot be learned from
is refused before it reaches the replay bag, where every resume would meet it again; a held
step, and a step of an evaluation episode, is recorded but never trained on nor counted as a
training step; the rest become the learners' steps. Sequence gaps are
counted per robot. ``logger`` is any logger with info, warning and error methods that take a
``throttle_duration_sec`` (the node's). No ROS here.
"""

from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

from .actor_learners import ActorLearners
from .camera_frames import attach_frames
from .run_progress import RunProgress
from .sequence_tracker import SequenceTracker

Records = Tuple[Any, Any]  # the residual and the refinement actor's steps of a transition


class Intake:
    """Sequence checks, refusals and held steps in front of the learners."""

    def __init__(self, learners: ActorLearners, progress: RunProgress, logger,
                 cameras: Sequence[str] = ()):
        self.learners, self.progress, self.logger = learners, progress, logger
        self.cameras = tuple(cameras)  # the camera inputs whose frames each step carries
        self.sequences = SequenceTracker()
        self.held_steps = 0
        self.evaluation_steps = 0
        self.malformed = 0

    def check(self, transition) -> Tuple[bool, Optional[Records]]:
        """Return whether to record a transition, and its steps (None: not learned from)."""
        if not self._in_sequence(transition):
            return False, None
        try:
            return True, self.admit(transition)
        except ValueError as error:
            self.malformed += 1
            self.logger.error(f'transition {transition.sequence} from {transition.robot_id} '
                              f'refused: {error} ({self.malformed} refused so far)',
                              throttle_duration_sec=5.0)
            return False, None

    def _in_sequence(self, transition) -> bool:
        robot, sequence = transition.robot_id, transition.sequence
        check = self.sequences.observe(robot, sequence, transition.cell_start_id)
        if check.duplicate:
            self.logger.warning(f'transition {sequence} from {robot} arrived again or out of '
                                'order: ignored', throttle_duration_sec=5.0)
            return False
        if check.restarted:
            self.logger.info(f'cell {robot} restarted (sequence {sequence})')
        if check.lost:
            self.logger.warning(f'{check.lost} transition(s) from {robot} lost before sequence '
                                f'{sequence} ({self.sequences.lost[robot]} in all)')
        return True

    def admit(self, transition) -> Optional[Records]:
        """Return a transition's learner steps (None: held or evaluation). ValueError: unfit."""
        if transition.held:
            self.held_steps += 1
            self.logger.info(f'held steps are recorded but not trained on: {self.held_steps} '
                             f'so far (latest: {transition.hold_reason or "no reason given"})',
                             throttle_duration_sec=10.0)
            return None
        if transition.evaluation:
            # Judging the policy must not change it, nor the steps it is judged after.
            self.evaluation_steps += 1
            if self.evaluation_steps == 1:
                self.logger.info('evaluation steps are recorded but neither trained on nor '
                                 'counted as training steps')
            return None
        return self.learners.records(transition, (transition.robot_id, transition.episode_id))

    def store(self, transition, records: Records) -> None:
        """Give a recorded transition's steps to the learners, and count it."""
        self.learners.add(*records)
        self.progress.count_step(transition.intervened)

    def take_again(self, transition,
                   frames: Optional[Callable[[], Sequence[np.ndarray]]] = None) -> None:
        """
        Take a transition of the replay bag back on resume (ValueError: unfit).

        ``frames``: returns the frames it names, of o_t then o_t+1 (camera_frames.frame_refs'
        order; ValueError: not there), asked for only when it is learned from.
        """
        self.sequences.observe(transition.robot_id, transition.sequence,
                               transition.cell_start_id)
        records = self.admit(transition)
        if records is not None:
            if self.cameras:
                if frames is None:
                    raise ValueError('no camera frames for it')
                attach_frames(records[0], self.cameras, frames())
            self.store(transition, records)
