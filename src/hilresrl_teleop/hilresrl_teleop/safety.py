"""
Safety of the executed command: limits and workspace box, a watchdog of inputs, a latched e-stop.

Plain Python and numpy (no ROS); time comes in as now_s from the observation stamps.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

AxisLimit = Union[float, Sequence[float]]
_XYZ = 'xyz'


@dataclass(frozen=True)
class SafetyLimits:
    """
    Limits on the normalized command; a scalar limit applies to every axis.

    ``max_action_change`` bounds the change per step (None: no rate limit). The workspace box
    (metres, either bound may be None) is checked on ``translation_axes`` (the x, y, z indices in
    the action), where action 1 moves the end effector ``translation_step_m`` metres in one step.
    ``gripper_axis`` is the axis whose last command hold_command() keeps.
    """

    action_dim: int
    max_abs_action: AxisLimit = 1.0
    max_action_change: Optional[AxisLimit] = None
    workspace_min: Optional[Sequence[float]] = None
    workspace_max: Optional[Sequence[float]] = None
    translation_axes: Optional[Tuple[int, int, int]] = (0, 1, 2)  # None: joint-space actions
    translation_step_m: Optional[float] = None
    gripper_axis: Optional[int] = 3


@dataclass(frozen=True)
class SafetyResult:
    """
    Verdict on one command.

    ``command`` is what may be sent (None when rejected: send hold_command() instead);
    ``reason`` says why it was rejected ('' otherwise); ``limits_applied`` names each limit that
    changed it, e.g. 'max_abs_action axis 1', 'max_action_change axis 0', 'workspace z max'.
    """

    command: Optional[np.ndarray]
    rejected: bool = False
    reason: str = ''
    limits_applied: List[str] = field(default_factory=list)

    @property
    def limited(self) -> bool:
        """Whether a limit changed the command."""
        return bool(self.limits_applied)


def _per_axis(limit: AxisLimit, action_dim: int, name: str) -> np.ndarray:
    values = np.broadcast_to(np.asarray(limit, dtype=float), (action_dim,)).copy()
    if np.any(np.isnan(values)) or np.any(values <= 0.0):
        raise ValueError(f'{name} must be positive, got {limit}')
    return values


def _workspace_bound(bound: Optional[Sequence[float]], name: str) -> Optional[np.ndarray]:
    if bound is None:
        return None
    values = np.asarray(bound, dtype=float)
    if values.shape != (3,) or np.any(np.isnan(values)):
        raise ValueError(f'{name} takes x, y, z in metres, got {bound}')
    return values


class SafetyFilter:
    """
    Check and limit each command before it reaches the robot.

    In order: reject a command of the wrong length or with a non-finite value; clip each axis to
    ±max_abs_action; limit the change from the previous accepted command (before the first, from
    rest); keep the predicted end-effector position inside the workspace box. The workspace comes
    last because it outranks smoothness: moving out is cut so the prediction lands on the boundary
    (to 0 when already outside), and moving back in is always allowed.
    """

    def __init__(self, limits: SafetyLimits):
        dim = limits.action_dim
        self.limits = limits
        self._max_abs = _per_axis(limits.max_abs_action, dim, 'max_abs_action')
        self._max_change = (None if limits.max_action_change is None
                            else _per_axis(limits.max_action_change, dim, 'max_action_change'))
        self._workspace_min = _workspace_bound(limits.workspace_min, 'workspace_min')
        self._workspace_max = _workspace_bound(limits.workspace_max, 'workspace_max')
        if (self._workspace_min is not None and self._workspace_max is not None
                and np.any(self._workspace_min > self._workspace_max)):
            raise ValueError('workspace_min must not exceed workspace_max')
        self._has_workspace = self._workspace_min is not None or self._workspace_max is not None
        axes = tuple(limits.translation_axes or ())
        if limits.translation_axes is None and self._has_workspace:
            raise ValueError('a workspace box needs translation_axes (x, y, z in the action)')
        if limits.translation_axes is not None and (
                len(axes) != 3 or len(set(axes)) != 3 or not all(0 <= a < dim for a in axes)):
            raise ValueError(f'translation_axes must be 3 distinct action axes, got {axes}')
        if self._has_workspace and not (limits.translation_step_m or 0.0) > 0.0:
            raise ValueError('a workspace needs translation_step_m, the metres moved per step at '
                             'action 1')
        if limits.gripper_axis is not None and not 0 <= limits.gripper_axis < dim:
            raise ValueError(f'gripper axis {limits.gripper_axis} is outside the action')
        self._previous: Optional[np.ndarray] = None

    def reset(self) -> None:
        """Forget the previous accepted command (after a cell reset or an e-stop)."""
        self._previous = None

    def hold(self) -> np.ndarray:
        """
        Return the hold command and make rest the reference of the rate limit.

        Every hold (a rejected command, the watchdog, a pause, the e-stop) stops the arm, so the
        next command is limited from rest, in its own direction, not from the last accepted
        one; the gripper is kept as last commanded.
        """
        command = self.hold_command()
        if self._previous is not None:
            self._previous = command.copy()
        return command

    def hold_command(self) -> np.ndarray:
        """Return the command that holds the robot still and the gripper as last commanded."""
        command = np.zeros(self.limits.action_dim)
        gripper = self.limits.gripper_axis
        if gripper is not None and self._previous is not None:
            command[gripper] = self._previous[gripper]
        return command

    def filter(self, action: np.ndarray,  # noqa: A003 (a method, never the builtin)
               ee_position: Optional[np.ndarray],
               tool_orientation: Optional[np.ndarray] = None) -> SafetyResult:
        """
        Return the command to send for ``action``, given the measured end-effector xyz (m).

        With ``tool_orientation`` (the end effector's quaternion x y z w), the translation axes
        are in the tool frame: the workspace check turns them into the base frame first.
        """
        dim = self.limits.action_dim
        command = np.array(action, dtype=float)
        if command.ndim != 1 or command.shape[0] != dim:
            got = command.shape[0] if command.ndim == 1 else f'shape {command.shape}'
            return SafetyResult(None, True, f'expected {dim} values, got {got}')
        bad_axes = np.flatnonzero(~np.isfinite(command))
        if bad_axes.size == 1:
            return SafetyResult(None, True, f'non-finite value in axis {bad_axes[0]}')
        if bad_axes.size > 1:
            return SafetyResult(None, True, 'non-finite values in axes '
                                + ', '.join(str(axis) for axis in bad_axes))
        if self._has_workspace:
            if ee_position is None:
                return SafetyResult(None, True, 'no end-effector position to check the workspace')
            ee_position = np.asarray(ee_position, dtype=float)
            if ee_position.shape != (3,) or not np.all(np.isfinite(ee_position)):
                return SafetyResult(None, True, f'invalid end-effector position {ee_position}')

        applied: List[str] = []
        clipped = np.clip(command, -self._max_abs, self._max_abs)
        applied += [f'max_abs_action axis {axis}' for axis in np.flatnonzero(clipped != command)]
        command = clipped
        if self._max_change is not None:
            previous = self.hold_command() if self._previous is None else self._previous
            limited = np.clip(command, previous - self._max_change, previous + self._max_change)
            gripper = self.limits.gripper_axis
            if self._previous is None and gripper is not None:
                # At rest the arm commands 0, but the gripper's state is unknown: nothing to
                # ramp it from.
                limited[gripper] = command[gripper]
            applied += [f'max_action_change axis {axis}'
                        for axis in np.flatnonzero(limited != command)]
            command = limited
        if self._has_workspace and tool_orientation is not None:
            applied += self._limit_tool_motion(command, ee_position, tool_orientation)
        elif self._has_workspace:
            applied += self._limit_to_workspace(command, ee_position)

        self._previous = command.copy()
        return SafetyResult(command, limits_applied=applied)

    def _limit_tool_motion(self, command: np.ndarray, ee_position: np.ndarray,
                           orientation: np.ndarray) -> List[str]:
        # In the tool frame one action axis moves several base coordinates: shorten the whole
        # translation until the predicted position stays in the box (or stop at its wall).
        from scipy.spatial.transform import Rotation
        axes = list(self.limits.translation_axes)
        step_m = self.limits.translation_step_m
        offset = Rotation.from_quat(orientation).apply(command[axes] * step_m)
        position = np.asarray(ee_position, dtype=float)
        fraction = 1.0
        for low_or_high, outward in ((self._workspace_min, offset < 0),
                                     (self._workspace_max, offset > 0)):
            if low_or_high is None:
                continue
            for coordinate in np.flatnonzero(outward):
                room = low_or_high[coordinate] - position[coordinate]
                fraction = min(fraction, max(room / offset[coordinate], 0.0))
        if fraction >= 1.0:
            return []
        command[axes] *= fraction
        return ['workspace (tool frame)']

    def _limit_to_workspace(self, command: np.ndarray, ee_position: np.ndarray) -> List[str]:
        step_m = self.limits.translation_step_m
        low, high = self._workspace_min, self._workspace_max
        applied = []
        for coordinate, axis in enumerate(self.limits.translation_axes):
            position = ee_position[coordinate]
            predicted = position + command[axis] * step_m
            # Land on the boundary; from beyond it, stop rather than push further out.
            if command[axis] > 0.0 and high is not None and predicted > high[coordinate]:
                command[axis] = max((high[coordinate] - position) / step_m, 0.0)
                applied.append(f'workspace {_XYZ[coordinate]} max')
            elif command[axis] < 0.0 and low is not None and predicted < low[coordinate]:
                command[axis] = min((low[coordinate] - position) / step_m, 0.0)
                applied.append(f'workspace {_XYZ[coordinate]} min')
        return applied


def check_proposal(base_action: Sequence[float], composed_action: Sequence[float],
                   residual: Sequence[float], action_dim: int, action_bound: float = 1.0) -> str:
    """
    Return why a proposal must be rejected ('' when it may be filtered and sent).

    The base and composed actions must be finite and within +-action_bound (normalized actions:
    a policy that proposes beyond it is broken, and clipping would turn it into full speed); an
    empty base action (a policy without one) is allowed. The residual must be finite.
    """
    for name, values, may_be_empty in (('composed action', composed_action, False),
                                       ('base action', base_action, True),
                                       ('residual', residual, True)):
        values = np.asarray(values, dtype=float).reshape(-1)
        if values.size == 0 and may_be_empty:
            continue
        if values.shape != (action_dim,):
            return f'{name}: expected {action_dim} values, got {values.size}'
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            return f'{name}: non-finite value in axis ' + ', '.join(str(a) for a in bad)
        if name == 'residual':
            continue
        beyond = np.flatnonzero(np.abs(values) > action_bound)
        if beyond.size:
            return (f'{name}: axis {beyond[0]} is {values[beyond[0]]:g}, beyond the action '
                    f'bound {action_bound:g}')
    return ''


@dataclass(frozen=True)
class WatchdogStatus:
    """
    Which input sources are stale now; the changes since the last check.

    ``became_stale`` and ``recovered`` are non-empty only on the check where that changed, so a
    node logs each event once.
    """

    stale: List[str]
    became_stale: List[str]
    recovered: List[str]

    @property
    def ok(self) -> bool:
        """Whether every source is fresh."""
        return not self.stale


class Watchdog:
    """
    Notice input sources (topics, devices) that stop arriving for longer than timeout_s.

    A source is stale when more than timeout_s passed since it was last fed. The expected
    ``sources`` that were never fed count from the first check, so a node gets timeout_s to
    connect; any other source is watched from its first feed.
    """

    def __init__(self, timeout_s: float, sources: Sequence[str] = ()):
        if timeout_s <= 0.0:
            raise ValueError(f'timeout_s must be positive, got {timeout_s}')
        self.timeout_s = timeout_s
        self._last_fed_s: Dict[str, Optional[float]] = dict.fromkeys(sources)
        self._stale: Set[str] = set()
        self._first_check_s: Optional[float] = None

    def feed(self, source: str, now_s: float) -> None:
        """Record that ``source`` delivered at now_s."""
        last = self._last_fed_s.get(source)
        self._last_fed_s[source] = now_s if last is None else max(last, now_s)

    def check(self, now_s: float) -> WatchdogStatus:
        """Return the stale sources at now_s and which changed since the last check."""
        if self._first_check_s is None:
            self._first_check_s = now_s
        stale = set()
        for source, last in self._last_fed_s.items():
            since_s = self._first_check_s if last is None else last
            if now_s - since_s > self.timeout_s:
                stale.add(source)
        became_stale = sorted(stale - self._stale)
        recovered = sorted(self._stale - stale)
        self._stale = stale
        return WatchdogStatus(sorted(stale), became_stale, recovered)


class EStop:
    """A latched emergency stop: once triggered it stays active until released."""

    def __init__(self):
        self._reason = ''
        self._active = False

    @property
    def active(self) -> bool:
        """Whether the stop is latched."""
        return self._active

    @property
    def reason(self) -> str:
        """Why the stop was first triggered ('' when not active)."""
        return self._reason

    def trigger(self, reason: str) -> bool:
        """Latch the stop; return whether it was newly triggered (a repeat keeps the reason)."""
        if self._active:
            return False
        self._active, self._reason = True, reason
        return True

    def release(self) -> bool:
        """Release the stop; return whether it was active."""
        was_active, self._active, self._reason = self._active, False, ''
        return was_active
