"""
Turn normalized actions into robot commands: a Cartesian twist plus a gripper value.

Action axes are named (x, y, z, roll, pitch, yaw, gripper); each translation axis at 1.0 means
linear_speed_scale_mps along it, each rotation axis angular_speed_scale_rps about it.
"""

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

LINEAR_AXES = ('x', 'y', 'z')
ANGULAR_AXES = ('roll', 'pitch', 'yaw')
GRIPPER_AXIS = 'gripper'


@dataclass(frozen=True)
class TwistCommand:
    """A twist (m/s, rad/s) and, when the action has a gripper axis, the gripper value."""

    linear: np.ndarray
    angular: np.ndarray
    gripper: Optional[float]


class TwistInterface:
    """Map actions with named axes to twists, and twists back to actions (a simulated cell)."""

    def __init__(self, action_names: Sequence[str], linear_speed_scale_mps: float,
                 angular_speed_scale_rps: float = 0.5):
        unknown = [name for name in action_names
                   if name not in LINEAR_AXES + ANGULAR_AXES + (GRIPPER_AXIS,)]
        if unknown or len(set(action_names)) != len(action_names):
            raise ValueError(f'action_names {list(action_names)}: each must be one of '
                             f'{", ".join(LINEAR_AXES + ANGULAR_AXES + (GRIPPER_AXIS,))}, '
                             'once')
        if linear_speed_scale_mps <= 0 or angular_speed_scale_rps <= 0:
            raise ValueError('speed scales must be positive')
        self.action_names = tuple(action_names)
        self.linear_speed_scale_mps = float(linear_speed_scale_mps)
        self.angular_speed_scale_rps = float(angular_speed_scale_rps)
        self._linear = [self.action_names.index(n) if n in self.action_names else None
                        for n in LINEAR_AXES]
        self._angular = [self.action_names.index(n) if n in self.action_names else None
                         for n in ANGULAR_AXES]
        self.gripper_axis = (self.action_names.index(GRIPPER_AXIS)
                             if GRIPPER_AXIS in self.action_names else None)

    def to_twist(self, action: np.ndarray) -> TwistCommand:
        """Return the twist and gripper value of an action."""
        action = np.asarray(action, dtype=np.float64)
        linear = np.array([action[i] if i is not None else 0.0 for i in self._linear])
        angular = np.array([action[i] if i is not None else 0.0 for i in self._angular])
        gripper = None if self.gripper_axis is None else float(action[self.gripper_axis])
        return TwistCommand(linear * self.linear_speed_scale_mps,
                            angular * self.angular_speed_scale_rps, gripper)

    def to_action(self, linear: Sequence[float], angular: Sequence[float],
                  gripper: float = 0.0) -> np.ndarray:
        """Return the action of a twist and gripper value, clipped to [-1, 1]."""
        action = np.zeros(len(self.action_names), dtype=np.float32)
        for index, value in zip(self._linear, linear):
            if index is not None:
                action[index] = value / self.linear_speed_scale_mps
        for index, value in zip(self._angular, angular):
            if index is not None:
                action[index] = value / self.angular_speed_scale_rps
        if self.gripper_axis is not None:
            action[self.gripper_axis] = gripper
        return np.clip(action, -1.0, 1.0)
