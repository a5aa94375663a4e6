"""
A simulated person at the SpaceMouse: watches the robot and takes over when the policy drifts.

It compares each policy action with what the task's scripted expert would do, and intervenes
after the policy has deviated for ``patience_steps`` steps in a row (at once when the gripper is
about to do the wrong thing) or made no progress for ``stuck_steps``; it reacts
``reaction_delay_steps`` late and corrects with the expert's action plus hand noise for at least
``correction_steps``, and for as long as the policy would still go wrong (up to
``max_correction_steps``), then lets go, as a person hands back once the robot is on track.
"""

from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Optional

import numpy as np


@dataclass(frozen=True)
class OperatorConfig:
    """How the simulated person behaves."""

    deviation_threshold: float = 0.5
    patience_steps: int = 4
    stuck_steps: int = 25
    stuck_distance_m: float = 0.01
    reaction_delay_steps: int = 1
    correction_steps: int = 10
    max_correction_steps: int = 60
    agree_steps: int = 2
    noise_std: float = 0.05
    translation_axes: tuple = (0, 1, 2)
    gripper_axis: Optional[int] = 3


@dataclass(frozen=True)
class OperatorAction:
    """The person's hand this step: an action to apply, or None when hands off."""

    action: Optional[np.ndarray]
    triggered: str = ''


class SimulatedOperator:
    """Decides, step by step, whether and how the simulated person intervenes."""

    def __init__(self, config: OperatorConfig, expert: Callable[[np.ndarray], np.ndarray],
                 seed: int = 0):
        self.config = config
        self._expert = expert
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Start of an episode: hands off, nothing noticed yet."""
        self._deviating = 0
        self._delay = -1
        self._correcting = 0
        self._corrected = 0
        self._agreeing = 0
        self._positions: Deque[np.ndarray] = deque(maxlen=self.config.stuck_steps + 1)
        self.interventions = 0

    @property
    def correcting(self) -> bool:
        """Return whether the person's hand is on the device."""
        return self._correcting > 0

    def step(self, task_state: np.ndarray, policy_action: Optional[np.ndarray],
             ee_position: np.ndarray) -> OperatorAction:
        """Watch one step and return what the hand does."""
        config = self.config
        expert = np.asarray(self._expert(task_state), dtype=np.float64)
        self._positions.append(np.asarray(ee_position, dtype=np.float64))
        if self._correcting > 0:
            self._corrected += 1
            agrees = policy_action is not None and not self._deviates(expert, policy_action)
            self._agreeing = self._agreeing + 1 if agrees else 0
            self._correcting -= 1
            if self._correcting == 0 and self._agreeing < config.agree_steps and (
                    self._corrected < config.max_correction_steps):
                self._correcting = 1  # the policy would still go wrong: keep the hand on
            if self._correcting == 0:
                self._positions.clear()  # give the policy a fresh chance before judging it
            return OperatorAction(self._with_noise(expert))
        if self._delay >= 0:
            self._delay -= 1
            if self._delay < 0:
                self._start_correction()
                return OperatorAction(self._with_noise(expert), 'reacted')
            return OperatorAction(None)
        trigger = self._notice(expert, policy_action)
        if trigger:
            self._deviating = 0
            self._positions.clear()
            self._delay = config.reaction_delay_steps
            if self._delay == 0:
                self._delay = -1
                self._start_correction()
                return OperatorAction(self._with_noise(expert), trigger)
        return OperatorAction(None, trigger)

    def _start_correction(self) -> None:
        self._correcting = self.config.correction_steps - 1
        self._corrected, self._agreeing = 1, 0
        self.interventions += 1

    def _wrong_gripper(self, expert: np.ndarray, policy_action: np.ndarray) -> bool:
        gripper = self.config.gripper_axis
        return gripper is not None and wants_closed(policy_action[gripper]) != wants_closed(
            expert[gripper])

    def _deviates(self, expert: np.ndarray, policy_action: np.ndarray) -> bool:
        axes = list(self.config.translation_axes)
        deviation = float(np.max(np.abs(np.asarray(policy_action)[axes] - expert[axes])))
        return deviation > self.config.deviation_threshold or self._wrong_gripper(
            expert, policy_action)

    def _notice(self, expert: np.ndarray, policy_action: Optional[np.ndarray]) -> str:
        config = self.config
        if policy_action is not None:
            if self._wrong_gripper(expert, policy_action):
                return 'gripper'  # about to drop or miss the object: no patience for that
            self._deviating = self._deviating + 1 if self._deviates(expert, policy_action) else 0
            if self._deviating >= config.patience_steps:
                return 'deviation'
        if len(self._positions) == self._positions.maxlen and np.linalg.norm(
                self._positions[-1] - self._positions[0]) < config.stuck_distance_m:
            return 'no progress'
        return ''

    def _with_noise(self, expert: np.ndarray) -> np.ndarray:
        noisy = expert.copy()
        axes = list(self.config.translation_axes)
        noisy[axes] += self._rng.normal(0.0, self.config.noise_std, len(axes))
        return np.clip(noisy, -1.0, 1.0)


def wants_closed(gripper_command: float) -> bool:
    """
    Return whether a gripper command means closed, as a person with a toggle button sees it.

    Scripted experts send efforts in [-1, 1], 0 while they approach; a person's button has two
    states, so anything short of a firm close (over 0.5) is open.
    """
    return float(gripper_command) > 0.5


class GripperButton:
    """Press the gripper toggle (one step down, then up) when the gripper is not as wanted."""

    def __init__(self, cooldown_steps: int = 3):
        # The arbiter's state shows a toggle a step or two later: do not press twice for it.
        self.cooldown_steps = cooldown_steps
        self._down = False
        self._cooldown = 0

    def press(self, wanted: float, believed: Optional[float]) -> bool:
        """Return whether the button is down this step, for a wanted and a believed gripper."""
        if self._down:
            self._down = False
            return False
        if self._cooldown > 0:
            self._cooldown -= 1
            return False
        if wants_closed(wanted) != (believed is not None and believed > 0):
            self._down, self._cooldown = True, self.cooldown_steps
            return True
        return False

    def release(self) -> None:
        """Hands off the device."""
        self._down = False
