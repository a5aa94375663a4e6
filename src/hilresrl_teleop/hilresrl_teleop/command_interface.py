"""
Turn normalized actions into robot commands: twists, Cartesian target poses, joint targets.

Cartesian action axes are named (x, y, z, roll, pitch, yaw, gripper); each translation axis at
1.0 means linear_speed_scale_mps along it, each rotation axis angular_speed_scale_rps about it.
Joint-space actions name joints instead. Rotations go through scipy; no ROS here.
"""

from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Sequence, Tuple

from hilresrl_common.action_axes import ANGULAR_AXES, GRIPPER_AXIS, LINEAR_AXES
import numpy as np


@dataclass(frozen=True)
class TwistCommand:
    """A twist (m/s, rad/s) and, when the action has a gripper axis, the gripper value."""

    linear: np.ndarray
    angular: np.ndarray
    gripper: Optional[float]


class TwistInterface:
    """Map actions with named axes to twists, and twists back to actions (a simulated cell)."""

    def __init__(self, action_names: Sequence[str], linear_speed_scale_mps: float,
                 angular_speed_scale_rps: float = 0.5, joint_names: Sequence[str] = ()):
        # Axes named after joints (joint-space actions) are no part of a twist.
        unknown = [name for name in action_names
                   if name not in LINEAR_AXES + ANGULAR_AXES + (GRIPPER_AXIS,)
                   and name not in joint_names]
        if unknown or len(set(action_names)) != len(action_names):
            raise ValueError(f'action_names {list(action_names)}: each must be one of '
                             f'{", ".join(LINEAR_AXES + ANGULAR_AXES + (GRIPPER_AXIS,))} '
                             'or a joint name, once')
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


COMMAND_INTERFACES = ('servo_twist', 'cartesian_pose', 'joint_trajectory', 'joint_forward')
COMMAND_FRAMES = ('base', 'tool')
GRIPPER_INTERFACES = ('float64_array', 'joint_trajectory', 'none')


@dataclass
class CommandSettings:
    """What the command interface parameters say."""

    interface: str = 'servo_twist'
    frame: str = 'base'
    base_frame_id: str = 'world'
    tool_frame_id: str = 'tool0'
    period_s: float = 0.1
    joint_names: List[str] = field(default_factory=list)
    joint_speed_scale_rps: float = 0.5
    joint_lower: Optional[Sequence[float]] = None
    joint_upper: Optional[Sequence[float]] = None
    workspace_min: Optional[Sequence[float]] = None
    workspace_max: Optional[Sequence[float]] = None
    gripper_interface: str = 'float64_array'
    gripper_joint_names: List[str] = field(default_factory=list)
    gripper_open_position: float = -1.0
    gripper_closed_position: float = 1.0
    ik_group: str = 'manipulator'
    ik_tip_link: str = ''
    ik_service: str = '/compute_ik'
    ik_wait_s: float = 5.0
    moveit_config_package: str = ''
    moveit_robot_name: str = ''

    def validate(self, action_names: Sequence[str] = ()) -> None:
        """Refuse settings that cannot work (ValueError), naming the parameter."""
        if self.interface not in COMMAND_INTERFACES:
            raise ValueError(f'command_interface must be one of '
                             f'{", ".join(COMMAND_INTERFACES)}, not {self.interface!r}')
        if self.frame not in COMMAND_FRAMES:
            raise ValueError(f'command_frame must be base or tool, not {self.frame!r}')
        if self.gripper_interface not in GRIPPER_INTERFACES:
            raise ValueError(f'gripper.interface must be one of {", ".join(GRIPPER_INTERFACES)}')
        if self.gripper_interface == 'joint_trajectory' and not self.gripper_joint_names:
            raise ValueError('gripper.interface joint_trajectory needs gripper.joint_names')


class CartesianPoseIntegrator:
    """
    Integrate end-effector deltas into Cartesian target poses, against the measured pose.

    An action moves the target by its twist for one control period from where the end effector
    is now (not from the last target, so a controller that lags does not wind up): in the base
    frame (translation and rotation about base axes) or the tool frame (about the tool's own
    axes). The target position stays inside the workspace box.
    """

    def __init__(self, interface: TwistInterface, period_s: float, frame: str = 'base',
                 workspace_min: Optional[Sequence[float]] = None,
                 workspace_max: Optional[Sequence[float]] = None):
        if frame not in COMMAND_FRAMES:
            raise ValueError(f'command frame must be one of {", ".join(COMMAND_FRAMES)}')
        if period_s <= 0:
            raise ValueError('the control period must be positive')
        self.interface, self.period_s, self.frame = interface, float(period_s), frame
        self.low = None if workspace_min is None else np.asarray(workspace_min, dtype=float)
        self.high = None if workspace_max is None else np.asarray(workspace_max, dtype=float)

    def target(self, action: np.ndarray, position: Sequence[float],
               quaternion_xyzw: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        """Return the target position and quaternion (x y z w), one period of the action ahead."""
        from scipy.spatial.transform import Rotation
        twist = self.interface.to_twist(action)
        rotation = Rotation.from_quat(np.asarray(quaternion_xyzw, dtype=float))
        step = Rotation.from_rotvec(twist.angular * self.period_s)
        offset = twist.linear * self.period_s
        if self.frame == 'tool':
            target = np.asarray(position, dtype=float) + rotation.apply(offset)
            orientation = rotation * step
        else:
            target = np.asarray(position, dtype=float) + offset
            orientation = step * rotation
        if self.low is not None:
            target = np.maximum(target, self.low)
        if self.high is not None:
            target = np.minimum(target, self.high)
        return target, orientation.as_quat()


class JointTargetIntegrator:
    """
    Joint-space actions into joint position targets: action 1 moves a joint at full speed.

    The action axes named after joints drive them (the others, e.g. the gripper, are left to
    their own command); each target is the measured position plus one period at the commanded
    speed, clipped to the joint limits.
    """

    def __init__(self, action_names: Sequence[str], joint_names: Sequence[str],
                 joint_speed_scale_rps: float, period_s: float,
                 lower: Optional[Sequence[float]] = None,
                 upper: Optional[Sequence[float]] = None):
        missing = [name for name in joint_names if name not in action_names]
        if not joint_names or missing:
            raise ValueError(f'joint targets from joint-space actions need an action axis per '
                             f'joint; missing: {", ".join(missing) or "all (no joint_names)"}')
        if joint_speed_scale_rps <= 0 or period_s <= 0:
            raise ValueError('joint_speed_scale_rps and the control period must be positive')
        self.joint_names = tuple(joint_names)
        self._axes = [list(action_names).index(name) for name in joint_names]
        self.step_rad = float(joint_speed_scale_rps) * float(period_s)
        self.lower = None if lower is None else np.asarray(lower, dtype=float)
        self.upper = None if upper is None else np.asarray(upper, dtype=float)
        for name, bound in (('joint_lower', self.lower), ('joint_upper', self.upper)):
            if bound is not None and bound.shape != (len(joint_names),):
                raise ValueError(f'{name} needs one value per joint ({len(joint_names)})')

    def targets(self, action: np.ndarray, measured: Mapping[str, float]) -> np.ndarray:
        """Return the joint position targets, in rad or m, in the order of the joint names."""
        missing = [name for name in self.joint_names if name not in measured]
        if missing:
            raise ValueError(f'no measured position for joint(s) {", ".join(missing)}')
        action = np.asarray(action, dtype=float)
        current = np.array([measured[name] for name in self.joint_names], dtype=float)
        targets = current + action[self._axes] * self.step_rad
        if self.lower is not None:
            targets = np.maximum(targets, self.lower)
        if self.upper is not None:
            targets = np.minimum(targets, self.upper)
        return targets


def gripper_position(value: float, open_position: float, closed_position: float) -> float:
    """Return the gripper joint position for a gripper action: -1 open, +1 closed."""
    fraction = (float(np.clip(value, -1.0, 1.0)) + 1.0) / 2.0
    return open_position + fraction * (closed_position - open_position)
