"""
The intervention arbiter's parameters, declared once, and the settings of its cores they make.

The node declares PARAMETERS (hilresrl_common.parameter_declaration); a headless benchmark
reads their defaults (hilresrl_common.parameters.defaults). No rclpy and no messages here.
"""

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple

from hilresrl_common.action_axes import LINEAR_AXES
from hilresrl_common.parameters import above, at_least, checked, one_of, Parameter

from .command_interface import (COMMAND_FRAMES, COMMAND_INTERFACES, CommandSettings,
                                GRIPPER_INTERFACES, TwistInterface)
from .safety import SafetyLimits
from .spacemouse import SpaceMouseConfig

RELIABILITIES = ('reliable', 'best_effort')

PARAMETERS = (
    Parameter('action_names', ['x', 'y', 'z', 'gripper'],
              'Names of the action axes, in order: x, y, z, roll, pitch, yaw, gripper'),
    Parameter('linear_speed_scale_mps', 0.1,
              'Twist speed (m/s) of a translation axis at action 1', check=above(0.0)),
    Parameter('angular_speed_scale_rps', 0.5,
              'Twist speed (rad/s) of a rotation axis at action 1', check=above(0.0)),
    Parameter('control_period_s', 0.1, 'Seconds per control step (end-effector motion per step '
              'for the workspace check)', check=above(0.0)),
    Parameter('command_frame_id', 'world', 'Base frame of the commands and Cartesian targets'),
    Parameter('command_interface', 'servo_twist',
              'What the robot takes: servo_twist (TwistStamped, MoveIt Servo), cartesian_pose '
              '(PoseStamped target), joint_trajectory (JointTrajectory), joint_forward '
              '(Float64MultiArray positions)', check=one_of(COMMAND_INTERFACES)),
    Parameter('command_frame', 'base', 'Frame the Cartesian action axes are in: base or tool',
              check=one_of(COMMAND_FRAMES)),
    Parameter('tool_frame_id', 'tool0', 'The tool (end-effector) frame, for command_frame tool'),
    Parameter('joint_names', [''],
              "Joints of the joint-target interfaces, in the controller's order"),
    Parameter('joint_speed_scale_rps', 0.5, 'Joint speed (rad/s) of a joint axis at action 1',
              check=above(0.0)),
    Parameter('joint_lower', None, 'Lower joint limits (one 0: none)', type='double_array'),
    Parameter('joint_upper', None, 'Upper joint limits (one 0: none)', type='double_array'),
    Parameter('gripper.interface', 'float64_array', 'Gripper command: float64_array '
              '(gripper/command), joint_trajectory, or none', check=one_of(GRIPPER_INTERFACES)),
    Parameter('gripper.joint_names', [''],
              'Gripper joints, for gripper.interface joint_trajectory'),
    Parameter('gripper.open_position', -1.0, 'Gripper command for an open gripper (action -1)'),
    Parameter('gripper.closed_position', 1.0,
              'Gripper command for a closed gripper (action +1)'),
    Parameter('ik.group', 'manipulator', 'MoveIt planning group, for IK'),
    Parameter('ik.tip_link', '', 'Link whose pose IK solves for'),
    Parameter('ik.service', '/compute_ik', "move_group's IK service, where moveit_py is missing"),
    Parameter('ik.wait_s', 5.0, 'Seconds to wait for the IK service', check=at_least(0.0)),
    Parameter('ik.moveit_config_package', '',
              "The robot's MoveIt configuration package, for moveit_py (empty: moveit_py reads "
              'its parameters from the launch); where moveit_py cannot be set up, /compute_ik'),
    Parameter('ik.moveit_robot_name', '',
              'Robot name of that configuration (its URDF and SRDF files are named after it)'),
    Parameter('servo.node', '',
              "MoveIt Servo's node (e.g. /servo_node), started the way its distribution's "
              'services say: Humble <node>/start_servo; Jazzy and later <node>/pause_servo '
              '(unpaused) and <node>/switch_command_type (twist); empty: the two below'),
    Parameter('servo.start_service', '', "MoveIt Servo's start service to call at start-up "
              '(Humble: <servo>/start_servo, std_srvs/Trigger; empty: none)'),
    Parameter('servo.command_type_service', '', "MoveIt Servo's command-type switch (Jazzy and "
              'later: <servo>/switch_command_type, set to twist; empty: none)'),
    Parameter('servo.wait_s', 5.0, 'Seconds to wait for the servo services at start-up',
              check=at_least(0.0)),
    Parameter('device_name', 'spacemouse', 'Name of the human input device in the records'),
    Parameter('spacemouse.deadband', 0.1, 'Device deadband, on channel values'),
    Parameter('spacemouse.channels', ['linear.x', 'linear.y', 'linear.z', ''],
              'Device channel driving each action axis (empty: none)'),
    Parameter('spacemouse.scales', [1.0, 1.0, 1.0, 1.0],
              'Scale (and sign) from each channel to its action axis'),
    Parameter('spacemouse.gripper_button', 0, 'Joy button that toggles the gripper (-1: none)'),
    Parameter('spacemouse.takeover_button', -1,
              'Joy button held to take over without moving (-1: none)'),
    Parameter('per_axis', False, 'Take over only the axes the person moves (else all axes)'),
    Parameter('quiet_period_s', 0.5,
              'Seconds of device rest before an intervention segment ends (the policy commands '
              'every step the device rests)', check=at_least(0.0)),
    Parameter('spacemouse.timeout_s', 0.5, 'A device that published before and then sent '
              'nothing for this long (s, wall clock) is let go: its command goes to zero and '
              'control returns to the policy (0: off)', check=at_least(0.0)),
    Parameter('safety.action_bound', 1.0, 'Largest |value| of a proposed base or composed '
              'action; beyond it (or non-finite) the proposal is rejected and the robot holds, '
              'never clipped to full speed', check=above(0.0)),
    Parameter('safety.max_abs_action', [1.0],
              'Largest |action| per axis (one value or one per axis)', check=above(0.0)),
    Parameter('safety.max_action_change', None, 'Largest change of an axis per step (one value '
              'or one per axis; 0: no rate limit)', type='double_array', check=at_least(0.0)),
    Parameter('safety.workspace_min', None,
              'End-effector box minimum x, y, z (m); one 0: no box', type='double_array'),
    Parameter('safety.workspace_max', None,
              'End-effector box maximum x, y, z (m); one 0: no box', type='double_array'),
    Parameter('watchdog_timeout_s', 0.5, 'Hold the robot when no proposal or end-effector pose '
              'arrived for this long (s, wall clock; 0: off)', check=at_least(0.0)),
    Parameter('observation_reliability', 'reliable',
              'QoS reliability of the ee_pose subscription', check=one_of(RELIABILITIES)),
)


@dataclass(frozen=True)
class ArbiterSettings:
    """The arbiter's parameters as its cores take them."""

    action_names: Tuple[str, ...]
    linear_speed_scale_mps: float
    angular_speed_scale_rps: float
    control_period_s: float
    command: CommandSettings
    spacemouse: SpaceMouseConfig
    safety: SafetyLimits
    per_axis: bool = False
    quiet_period_s: float = 0.5
    device_name: str = 'spacemouse'
    device_timeout_s: float = 0.5  # 0: off
    action_bound: float = 1.0
    watchdog_timeout_s: float = 0.5  # 0: off
    servo_node: str = ''
    servo_start_service: str = ''
    servo_command_type_service: str = ''
    servo_wait_s: float = 5.0
    ee_pose_reliability: str = 'reliable'

    @property
    def gripper_axis(self) -> Optional[int]:
        """Return the index of the gripper axis (None: the action has none)."""
        return self.safety.gripper_axis

    @property
    def twist(self) -> TwistInterface:
        """Return the mapping between these actions and twists."""
        return TwistInterface(self.action_names, self.linear_speed_scale_mps,
                              self.angular_speed_scale_rps, self.command.joint_names)


def _optional(values: Optional[Sequence[float]]) -> Optional[Tuple[float, ...]]:
    """Return an optional list; one 0 is how the profiles said "none" before (sim.yaml does)."""
    return None if values is None or list(values) in ([], [0.0]) else tuple(values)


def _one_or_per_axis(values: Sequence[float]):
    return values[0] if len(values) == 1 else tuple(values)


def arbiter_settings(values: Mapping[str, Any]) -> ArbiterSettings:
    """
    Return the settings of parameter values (the defaults where one is not given).

    ValueError names each value that cannot work; the cores' constructors check the rest.
    """
    values = checked(PARAMETERS, values)
    names = tuple(values['action_names'])
    period_s = values['control_period_s']
    # Checks the axis names and the speeds, and knows the gripper axis.
    twist = TwistInterface(names, values['linear_speed_scale_mps'],
                           values['angular_speed_scale_rps'], values['joint_names'])
    cartesian = all(axis in names for axis in LINEAR_AXES)
    workspace_min = _optional(values['safety.workspace_min'])
    workspace_max = _optional(values['safety.workspace_max'])
    if (workspace_min or workspace_max) and not cartesian:
        raise ValueError('the workspace box needs x, y, z action axes; with joint-space '
                         'actions use joint_lower and joint_upper')
    command = CommandSettings(
        interface=values['command_interface'], frame=values['command_frame'],
        base_frame_id=values['command_frame_id'], tool_frame_id=values['tool_frame_id'],
        period_s=period_s, joint_names=list(values['joint_names']),
        joint_speed_scale_rps=values['joint_speed_scale_rps'],
        joint_lower=_optional(values['joint_lower']),
        joint_upper=_optional(values['joint_upper']),
        workspace_min=workspace_min, workspace_max=workspace_max,
        gripper_interface=values['gripper.interface'],
        gripper_joint_names=list(values['gripper.joint_names']),
        gripper_open_position=values['gripper.open_position'],
        gripper_closed_position=values['gripper.closed_position'],
        ik_group=values['ik.group'], ik_tip_link=values['ik.tip_link'],
        ik_service=values['ik.service'], ik_wait_s=values['ik.wait_s'],
        moveit_config_package=values['ik.moveit_config_package'],
        moveit_robot_name=values['ik.moveit_robot_name'])
    command.validate(names)
    spacemouse = SpaceMouseConfig(
        deadband=values['spacemouse.deadband'],
        channels=tuple(values['spacemouse.channels']) or ('',),  # [''] came as []
        scales=tuple(values['spacemouse.scales']), gripper_axis=twist.gripper_axis,
        gripper_button=values['spacemouse.gripper_button'],
        takeover_button=values['spacemouse.takeover_button'])
    max_change = _optional(values['safety.max_action_change'])
    safety = SafetyLimits(
        action_dim=len(names), max_abs_action=_one_or_per_axis(values['safety.max_abs_action']),
        max_action_change=None if max_change is None else _one_or_per_axis(max_change),
        workspace_min=workspace_min, workspace_max=workspace_max,
        translation_axes=tuple(names.index(axis) for axis in LINEAR_AXES) if cartesian
        else None,
        translation_step_m=values['linear_speed_scale_mps'] * period_s,
        gripper_axis=twist.gripper_axis)
    return ArbiterSettings(
        action_names=names, linear_speed_scale_mps=values['linear_speed_scale_mps'],
        angular_speed_scale_rps=values['angular_speed_scale_rps'],
        control_period_s=period_s, command=command,
        spacemouse=spacemouse, safety=safety, per_axis=values['per_axis'],
        quiet_period_s=values['quiet_period_s'], device_name=values['device_name'],
        device_timeout_s=values['spacemouse.timeout_s'],
        action_bound=float(values['safety.action_bound']),
        watchdog_timeout_s=values['watchdog_timeout_s'],
        servo_node=values['servo.node'],
        servo_start_service=values['servo.start_service'],
        servo_command_type_service=values['servo.command_type_service'],
        servo_wait_s=values['servo.wait_s'],
        ee_pose_reliability=values['observation_reliability'])
