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
    person's command on every axis on a step the person commands (on a gripper axis they have
    not taken, the sign of the last executed gripper command), None on the policy's steps:
    outside a segment and on its quiet steps. ``intervened_axes`` says which axes execute it
    (none on the policy's steps); ``intervened`` whether the step is the person's. ``active``
    is true while a segment runs, its quiet period included. ``started`` and ``ended`` are
    true only on the step where that happened; on the ending step the policy already commands
    and ``active_duration_s`` is the length of the segment that ended (0 on other steps outside
    a segment).
    """

    executed: np.ndarray
    human_action: Optional[np.ndarray]
    intervened_axes: np.ndarray
    active: bool
    segment_id: int
    started: bool
    ended: bool
    active_duration_s: float

    @property
    def intervened(self) -> bool:
        """Whether the person commands this step (False on every step of the policy's)."""
        return self.human_action is not None


class InterventionArbiter:
    """
    Hand the action axes to the person while they use the device, and back when they let go.

    A step is the person's while an axis is deflected past its deadband or a button is held,
    or the gripper button toggled on it: only such a step executes the person's action and
    carries it as ``human_action``. A segment starts on the first such step and ends once the
    device has rested for ``quiet_period_s``. Within the quiet period every step executes the
    policy's proposal and is the policy's (no human action, no intervened axes), while the
    segment itself persists: its id, ``active``, one start and one end however often a reading
    passes through zero, and the axes the person has taken, which a step within the quiet
    period takes again. With ``per_axis`` the person takes only the axes active since the
    segment began; holding the takeover button takes every axis. Whenever the person takes the
    gripper axis, or takes it again after a step of the policy's, their gripper state starts
    from the sign of the last executed gripper command, so taking over never opens or closes
    the gripper by surprise. reset() ends the segment and forgets it all, at an episode start.
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
        self._controlled_axes = np.zeros(action_dim, dtype=bool)
        self.reset()

    @property
    def active(self) -> bool:
        """Whether a segment is running (the person in control, or its quiet period)."""
        return self._active

    @property
    def segment_id(self) -> int:
        """Id of the running or last segment; 0 before the first."""
        return self._segment_id

    def reset(self) -> bool:
        """
        Start afresh (an episode starts): end any segment, forget its axes and the gripper.

        Return whether a segment was running: it ends here, and the caller reports its end.
        Segment ids go on counting from the last.
        """
        was_active, self._active = self._active, False
        self._start_s = self._last_input_s = 0.0
        self._controlled_axes[:] = False
        self._gripper_state = 0.0
        self._last_executed_gripper: Optional[float] = None
        self._gripper_from_person = False  # the last executed gripper command was the person's
        return was_active

    def arbitrate(self, now_s: float, proposal: np.ndarray, device: DeviceReading,
                  allowed: bool = True) -> ArbitrationResult:
        """Decide the executed action of this step from the policy proposal and the device."""
        proposal = np.asarray(proposal, dtype=float)
        if proposal.shape != (self.action_dim,):
            raise ValueError(f'expected a proposal of {self.action_dim} values, got shape '
                             f'{proposal.shape}')
        has_input = device.any_active or device.takeover_held or device.gripper_toggled
        persons_step = has_input or device.button_held  # if a segment runs
        started = ended = False
        duration_s = 0.0
        if self._active:
            quiet_s = now_s - self._last_input_s
            if quiet_s < 0.0:  # the clock went back (a simulated cell reset): start over
                self._last_input_s, quiet_s = now_s, 0.0
            if not allowed or (not persons_step and quiet_s >= self.quiet_period_s):
                self._active = False
                ended = True
                duration_s = now_s - self._start_s
        elif allowed and has_input:
            self._active = started = True
            self._segment_id += 1
            self._start_s = now_s
            self._controlled_axes[:] = False
        if not (self._active and persons_step):  # the policy's step
            if self._active:  # the quiet period: the segment goes on
                duration_s = now_s - self._start_s
            self._remember(proposal, False)
            return ArbitrationResult(proposal.copy(), None, np.zeros(self.action_dim, dtype=bool),
                                     self._active, self._segment_id, False, ended, duration_s)

        self._last_input_s = now_s
        self._take_axes(device, proposal)
        human_action = np.asarray(device.action, dtype=float).copy()
        if self.gripper_axis is not None:
            if device.gripper_toggled:
                self._gripper_state = toggle_gripper_state(self._gripper_state)
            human_action[self.gripper_axis] = self._gripper_state
        executed = np.where(self._controlled_axes, human_action, proposal)
        self._remember(executed, True)
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
        if self.gripper_axis is not None and not self._gripper_from_person:
            # Until the person commands the gripper (again: a quiet step executed the
            # policy's), their state follows the last executed command (before any, the
            # proposal), so taking it neither opens nor closes it.
            last = (proposal[self.gripper_axis] if self._last_executed_gripper is None
                    else self._last_executed_gripper)
            self._gripper_state = float(np.sign(last))
        self._controlled_axes |= taking

    def _remember(self, executed: np.ndarray, persons_step: bool) -> None:
        if self.gripper_axis is not None:
            self._last_executed_gripper = float(executed[self.gripper_axis])
            self._gripper_from_person = persons_step and bool(
                self._controlled_axes[self.gripper_axis])
