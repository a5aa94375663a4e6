"""
Intervention arbitration: who commands each action axis, the policy or the person at the device.

Plain Python and numpy (no ROS); time comes in as now_s from the observation stamps.
"""

from dataclasses import dataclass
from typing import Optional

from hilresrl_teleop.spacemouse import DeviceReading, toggle_gripper_state
import numpy as np


@dataclass(frozen=True)
class ArbitrationResult:
    """
    Outcome of one control step.

    ``executed`` (action_dim,) is the command before the safety filter. ``human_action`` is the
    person's command on every axis (None outside a segment; on a gripper axis they have not
    taken, the sign of the last executed gripper command); ``intervened_axes`` says which axes
    execute it. ``started`` and ``ended`` are true only on the step where that happened; on the
    ending step the policy already commands and ``active_duration_s`` is the length of the
    segment that ended (0 on other steps outside a segment).
    """

    executed: np.ndarray
    human_action: Optional[np.ndarray]
    intervened_axes: np.ndarray
    active: bool
    segment_id: int
    started: bool
    ended: bool
    active_duration_s: float


class InterventionArbiter:
    """
    Hand the action axes to the person while they use the device, and back after a quiet period.

    A segment starts when an axis is active, the takeover button is held or the gripper button
    toggles. With ``per_axis`` the person takes only the axes active since the segment began;
    holding the takeover button takes every axis. The gripper state starts from the sign of the
    last executed gripper command when the person takes the gripper axis, so taking over never
    opens or closes the gripper by surprise.
    """

    def __init__(self, action_dim: int, per_axis: bool = False, quiet_period_s: float = 0.5,
                 gripper_axis: Optional[int] = 3):
        if gripper_axis is not None and not 0 <= gripper_axis < action_dim:
            raise ValueError(f'gripper axis {gripper_axis} is outside the action')
        if quiet_period_s < 0.0:
            raise ValueError(f'quiet_period_s must not be negative, got {quiet_period_s}')
        self.action_dim = action_dim
        self.per_axis = per_axis
        self.quiet_period_s = quiet_period_s
        self.gripper_axis = gripper_axis
        self._active = False
        self._segment_id = 0
        self._start_s = 0.0
        self._last_input_s = 0.0
        self._controlled_axes = np.zeros(action_dim, dtype=bool)
        self._gripper_state = 0.0
        self._last_executed_gripper: Optional[float] = None

    @property
    def active(self) -> bool:
        """Whether a person is in control (a segment is running)."""
        return self._active

    @property
    def segment_id(self) -> int:
        """Id of the running or last segment; 0 before the first."""
        return self._segment_id

    def arbitrate(self, now_s: float, proposal: np.ndarray, device: DeviceReading,
                  allowed: bool = True) -> ArbitrationResult:
        """Decide the executed action of this step from the policy proposal and the device."""
        proposal = np.asarray(proposal, dtype=float)
        if proposal.shape != (self.action_dim,):
            raise ValueError(f'expected a proposal of {self.action_dim} values, got shape '
                             f'{proposal.shape}')
        has_input = device.any_active or device.takeover_held or device.gripper_toggled
        started = ended = False
        duration_s = 0.0
        if self._active:
            quiet_s = now_s - self._last_input_s
            if quiet_s < 0.0:  # the clock went back (a simulated cell reset): start over
                self._last_input_s, quiet_s = now_s, 0.0
            if not allowed or (not has_input and not device.button_held
                               and quiet_s >= self.quiet_period_s):
                self._active = False
                ended = True
                duration_s = now_s - self._start_s
        elif allowed and has_input:
            self._active = started = True
            self._segment_id += 1
            self._start_s = now_s
            self._controlled_axes[:] = False
        if not self._active:
            self._remember(proposal)
            return ArbitrationResult(proposal.copy(), None, np.zeros(self.action_dim, dtype=bool),
                                     False, self._segment_id, False, ended, duration_s)

        if has_input or device.button_held:
            self._last_input_s = now_s
        self._take_axes(device, proposal)
        human_action = np.asarray(device.action, dtype=float).copy()
        if self.gripper_axis is not None:
            if device.gripper_toggled:
                self._gripper_state = toggle_gripper_state(self._gripper_state)
            human_action[self.gripper_axis] = self._gripper_state
        executed = np.where(self._controlled_axes, human_action, proposal)
        self._remember(executed)
        return ArbitrationResult(executed, human_action, self._controlled_axes.copy(), True,
                                 self._segment_id, started, False, now_s - self._start_s)

    def _take_axes(self, device: DeviceReading, proposal: np.ndarray) -> None:
        # Within a segment the set of controlled axes only grows.
        if self.per_axis and not device.takeover_held:
            taking = np.asarray(device.active_axes, dtype=bool).copy()
            if self.gripper_axis is not None:
                taking[self.gripper_axis] = device.gripper_toggled
        else:
            taking = np.ones(self.action_dim, dtype=bool)
        gripper = self.gripper_axis
        if gripper is not None and not self._controlled_axes[gripper]:
            # Until the person takes the gripper, their state follows the last executed command
            # (before any, the proposal), so taking it neither opens nor closes it.
            last = (proposal[gripper] if self._last_executed_gripper is None
                    else self._last_executed_gripper)
            self._gripper_state = float(np.sign(last))
        self._controlled_axes |= taking

    def _remember(self, executed: np.ndarray) -> None:
        if self.gripper_axis is not None:
            self._last_executed_gripper = float(executed[self.gripper_axis])
