"""
A simulated person at the SpaceMouse: lets the policy work, and takes over when it is failing.

The person watches what remains to do (SimTask.progress: shaped reward, hand to object, object
to goal) and the hand, and steps in only when the policy is about to fail: nothing got nearer
and the hand stood still for ``stuck_steps`` (or wandered for ``wander_steps``: moving without
getting anywhere), the object got knocked or dropped away from its goal, the gripper
contradicts the task's expert at the grasp for ``gripper_patience_steps``, or the policy is too
far behind the expert's own pace to finish in time (expert_pace.ExpertPace, ``late_factor``).
A policy that succeeds on a path of its own is left alone. The person reacts
``reaction_delay_steps`` after noticing and corrects with the expert's action plus hand noise
for at least ``correction_steps``, then hands back once the correction has got somewhere and
the policy would carry on sensibly (up to ``max_correction_steps``).
"""

from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Optional

import numpy as np

from .expert_pace import ExpertPace


@dataclass(frozen=True)
class OperatorConfig:
    """How the simulated person behaves."""

    stuck_steps: int = 20
    stuck_distance_m: float = 0.01
    wander_steps: int = 40
    progress_epsilon: float = 0.005
    setback_m: float = 0.05
    gripper_patience_steps: int = 2
    reaction_delay_steps: int = 1
    correction_steps: int = 10
    max_correction_steps: int = 60
    agree_steps: int = 2
    noise_std: float = 0.05
    # Late: more progress left than the slowest expert episode had this many times earlier.
    late_factor: float = 1.25
    pace_episodes: int = 8  # expert episodes the person has watched, to know the pace
    translation_axes: tuple = (0, 1, 2)
    gripper_axis: Optional[int] = 3


@dataclass(frozen=True)
class OperatorAction:
    """The person's hand this step: an action to apply, or None when hands off."""

    action: Optional[np.ndarray]
    triggered: str = ''


# Gripper commands closer than this (an eighth of the action range) are one state to a person:
# an expert that only varies its effort this little has no open and closed to tell apart.
MIN_GRIPPER_SPAN = 0.25
# Indices of SimTask.progress() (PROGRESS_NAMES): what remains, each lower as the task advances.
_HAND_TO_OBJECT, _OBJECT_TO_GOAL = 1, 2


class GripperRange:
    """
    What open and closed mean for this task, learnt from the expert's own gripper commands.

    The midpoint of the commands seen splits open from closed; a command within a quarter of
    the span of it says neither, so a policy's exploration noise around the expert's value never
    reads as the other state. Until the expert has used two states (commands at least
    MIN_GRIPPER_SPAN apart), nothing is judged.
    """

    def __init__(self):
        self.low = self.high = None

    def see(self, expert_command: float) -> None:
        """Widen the range with one of the expert's commands."""
        command = float(expert_command)
        self.low = command if self.low is None else min(self.low, command)
        self.high = command if self.high is None else max(self.high, command)

    @property
    def known(self) -> bool:
        """Whether the expert has shown an open and a closed state."""
        return self.low is not None and self.high - self.low >= MIN_GRIPPER_SPAN

    def closed(self, command: float) -> bool:
        """Return whether a command means closed: past the midpoint (before it is known, > 0)."""
        if not self.known:
            return float(command) > 0.0
        return float(command) > (self.low + self.high) / 2

    def state(self, command: float) -> int:
        """Return +1 for closed, -1 for open, 0 for neither (or not known yet)."""
        if not self.known:
            return 0
        middle, band = (self.low + self.high) / 2, (self.high - self.low) / 4
        return 1 if command > middle + band else -1 if command < middle - band else 0


class SimulatedOperator:
    """Decides, step by step, whether and how the simulated person intervenes."""

    def __init__(self, config: OperatorConfig, expert: Callable[[np.ndarray], np.ndarray],
                 seed: int = 0, pace: Optional[ExpertPace] = None):
        self.config = config
        self._expert = expert
        self.pace = pace  # None: the person does not judge by time
        self._rng = np.random.default_rng(seed)
        self.gripper_range = GripperRange()  # what the person knows of the task: kept
        self.reset()

    def reset(self) -> None:
        """Start of an episode: hands off, nothing noticed yet."""
        self._delay = -1
        self._correcting = 0
        self._corrected = 0
        self._agreeing = 0
        self._gripper_wrong = 0
        self._watch()
        self.interventions = 0
        self._step = -1  # the episode's step being watched

    @property
    def correcting(self) -> bool:
        """Return whether the person's hand is on the device."""
        return self._correcting > 0

    def step(self, task_state: np.ndarray, policy_action: Optional[np.ndarray],
             ee_position: np.ndarray, progress: np.ndarray) -> OperatorAction:
        """
        Watch one step and return what the hand does.

        ``policy_action`` is the policy's latest proposal (None before its first),
        ``ee_position`` the hand (m) and ``progress`` the task's SimTask.progress().
        """
        config = self.config
        self._step += 1
        expert = np.asarray(self._expert(task_state), dtype=np.float64)
        if config.gripper_axis is not None:
            self.gripper_range.see(expert[config.gripper_axis])
        progressed = self._observe(np.asarray(progress, np.float64),
                                   np.asarray(ee_position, np.float64))
        if self._correcting > 0:
            self._corrected += 1
            self._made_progress = self._made_progress or progressed
            sensible = policy_action is not None and self._carries_on(expert, policy_action)
            self._agreeing = self._agreeing + 1 if sensible else 0
            self._correcting -= 1
            if self._correcting == 0 and self._corrected < config.max_correction_steps and not (
                    self._made_progress and self._agreeing >= config.agree_steps):
                self._correcting = 1  # not back on track yet: keep the hand on
            if self._correcting == 0:
                self._watch()  # a fresh chance for the policy before judging it again
            return OperatorAction(self._with_noise(expert))
        if self._delay > 0:
            self._delay -= 1
            if self._delay == 0:
                self._start_correction()
                return OperatorAction(self._with_noise(expert), 'reacted')
            return OperatorAction(None)
        trigger = self._notice(expert, policy_action)
        if trigger:
            self._delay = config.reaction_delay_steps
            if self._delay == 0:
                self._start_correction()
                return OperatorAction(self._with_noise(expert), trigger)
        return OperatorAction(None, trigger)

    def _watch(self) -> None:
        # Judge the policy from here on: no history of progress or of the hand.
        self._best: Optional[np.ndarray] = None
        self._since_progress = 0
        self._hand: Deque[np.ndarray] = deque(maxlen=self.config.stuck_steps + 1)
        self._gripper_wrong = 0

    def _observe(self, progress: np.ndarray, ee_position: np.ndarray) -> bool:
        # Return whether anything got nearer (by more than progress_epsilon) this step.
        self._hand.append(ee_position)
        self._progress = progress
        if self._best is None:
            self._best = progress.copy()
            return False
        improved = progress < self._best - self.config.progress_epsilon
        self._best = np.where(improved, progress, self._best)
        self._since_progress = 0 if improved.any() else self._since_progress + 1
        return bool(improved.any())

    def _start_correction(self) -> None:
        self._delay = -1
        self._correcting = self.config.correction_steps - 1  # this step is the first
        self._corrected, self._agreeing, self._made_progress = 1, 0, False
        self.interventions += 1

    def _gripper_contradicts(self, expert: np.ndarray, policy_action: np.ndarray) -> bool:
        gripper = self.config.gripper_axis
        if gripper is None:
            return False
        wanted = self.gripper_range.state(expert[gripper])
        proposed = self.gripper_range.state(policy_action[gripper])
        return wanted != 0 and proposed == -wanted

    def _carries_on(self, expert: np.ndarray, policy_action: np.ndarray) -> bool:
        # Would the policy go on sensibly from here: the gripper as the expert has it, and
        # heading somewhere the expert's way (which path it takes is its own business).
        axes = list(self.config.translation_axes)
        heading = float(np.dot(np.asarray(policy_action, np.float64)[axes], expert[axes]))
        return not self._gripper_contradicts(expert, policy_action) and heading > 0.0

    def _notice(self, expert: np.ndarray, policy_action: Optional[np.ndarray]) -> str:
        config = self.config
        if policy_action is not None:
            contradicts = self._gripper_contradicts(expert, policy_action)
            self._gripper_wrong = self._gripper_wrong + 1 if contradicts else 0
            if self._gripper_wrong >= max(config.gripper_patience_steps, 1):
                self._watch()
                return 'gripper'  # about to miss or drop the object
        if (self._best[_HAND_TO_OBJECT] < config.setback_m
                and self._progress[_HAND_TO_OBJECT] > config.setback_m
                and self._progress[_OBJECT_TO_GOAL]
                > self._best[_OBJECT_TO_GOAL] + config.setback_m):
            self._watch()
            # The hand had been at the object, which is now out of it and further from its
            # goal than it ever was by setback_m: knocked or dropped away.
            return 'object lost'
        if self.pace is not None and self.pace.late(self._step, self._best[0]):
            # Still creeping forward, perhaps, but too slowly to be done in time.
            self._watch()
            return 'late'
        if (len(self._hand) == self._hand.maxlen and self._since_progress >= config.stuck_steps
                and np.linalg.norm(self._hand[-1] - self._hand[0]) < config.stuck_distance_m):
            self._watch()
            return 'no progress'
        if self._since_progress >= config.wander_steps:
            # Moving, but nothing got nearer for longer than an expert pauses: a person would
            # not watch the arm wander about any longer.
            self._watch()
            return 'no progress'
        return ''

    def _with_noise(self, expert: np.ndarray) -> np.ndarray:
        noisy = expert.copy()
        axes = list(self.config.translation_axes)
        noisy[axes] += self._rng.normal(0.0, self.config.noise_std, len(axes))
        return np.clip(noisy, -1.0, 1.0)


def expert_pace(task, config: OperatorConfig, seed: int = 0) -> Optional[ExpertPace]:
    """Return the pace the person judges by, learnt on ``task`` (a SimTask); None: no pace."""
    if config.late_factor <= 0:
        return None
    return ExpertPace.of_expert(task, config.pace_episodes, config.noise_std,
                                config.late_factor, seed)


class GripperButton:
    """Press the gripper toggle (one step down, then up) when the gripper is not as wanted."""

    def __init__(self, cooldown_steps: int = 3):
        # The arbiter's state shows a toggle a step or two later: do not press twice for it.
        self.cooldown_steps = cooldown_steps
        self._down = False
        self._cooldown = 0

    def press(self, wanted_closed: bool, believed: Optional[float]) -> bool:
        """
        Return whether the button is down this step, for the wanted state and a believed one.

        ``believed`` is the gripper command the person thinks is held (+ closed, - open), None
        when unknown (taken as open).
        """
        if self._down:
            self._down = False
            return False
        if self._cooldown > 0:
            self._cooldown -= 1
            return False
        if wanted_closed != (believed is not None and believed > 0):
            self._down, self._cooldown = True, self.cooldown_steps
            return True
        return False

    def release(self) -> None:
        """Hands off the device."""
        self._down = False
