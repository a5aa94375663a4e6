"""
The robot side of the arbiter: the publishers of one command interface, and what they send.

servo_twist: TwistStamped on servo/delta_twist_cmds (MoveIt Servo); cartesian_pose: a
PoseStamped target on target_pose (FZI cartesian controllers' target_frame, Franka equilibrium
poses), integrated from the action against the measured pose; joint_trajectory: a one-point
JointTrajectory (joint_trajectory_controller); joint_forward: Float64MultiArray positions
(forward command controllers). Joint targets come from joint-space actions, or from Cartesian
actions through inverse kinematics (moveit_py, else move_group's /compute_ik), refused at start-up
where neither exists. Gripper: Float64MultiArray or a gripper JointTrajectory. MoveIt Servo is
started at start-up where its services are configured.
"""

import time
from typing import Dict, Optional, Sequence, Tuple

from builtin_interfaces.msg import Duration as DurationMsg
from geometry_msgs.msg import PoseStamped, TwistStamped
from hilresrl_common.conversions import ns_to_stamp
from hilresrl_common.node_runner import ConfigurationError
from hilresrl_common.qos import COMMAND_QOS
import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from .command_interface import (CartesianPoseIntegrator, CommandSettings, gripper_position,
                                JointTargetIntegrator, LINEAR_AXES, TwistInterface)


class CommandOutput:
    """Publish an executed action the way the configured controller expects it."""

    def __init__(self, node: Node, settings: CommandSettings, interface: TwistInterface,
                 action_names: Sequence[str]):
        self.node, self.settings, self.interface = node, settings, interface
        self.action_names = list(action_names)
        self._pose: Optional[tuple] = None
        self._pose_stamp_ns = -1
        # A pose target waits for the pose measured at its own step (in lockstep the pose of
        # a step can come after its proposal): integrating from an older pose would add the
        # last step's motion again.
        self._pending: Optional[tuple] = None
        self._joints: Dict[str, float] = {}
        self._ik = None
        self._joint_integrator: Optional[JointTargetIntegrator] = None
        self._pose_integrator: Optional[CartesianPoseIntegrator] = None
        kind = settings.interface
        try:
            settings.validate(action_names)
            if kind in ('cartesian_pose', 'joint_trajectory', 'joint_forward'):
                self._pose_integrator = CartesianPoseIntegrator(
                    interface, settings.period_s, settings.frame, settings.workspace_min,
                    settings.workspace_max)
            cartesian = any(name in LINEAR_AXES for name in action_names)
            if kind in ('joint_trajectory', 'joint_forward') and not cartesian:
                self._joint_integrator = JointTargetIntegrator(
                    action_names, settings.joint_names, settings.joint_speed_scale_rps,
                    settings.period_s, settings.joint_lower, settings.joint_upper)
            elif kind in ('joint_trajectory', 'joint_forward'):
                if not settings.joint_names:
                    raise ValueError('joint targets need joint_names')
                self._ik = inverse_kinematics(node, settings)
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        if kind == 'servo_twist':
            self._publisher = node.create_publisher(TwistStamped, 'servo/delta_twist_cmds',
                                                    COMMAND_QOS)
        elif kind == 'cartesian_pose':
            self._publisher = node.create_publisher(PoseStamped, 'target_pose', COMMAND_QOS)
        elif kind == 'joint_trajectory':
            self._publisher = node.create_publisher(
                JointTrajectory, 'joint_trajectory_controller/joint_trajectory', COMMAND_QOS)
        else:
            self._publisher = node.create_publisher(
                Float64MultiArray, 'forward_position_controller/commands', COMMAND_QOS)
        self._gripper_publisher = None
        if interface.gripper_axis is not None and settings.gripper_interface == 'float64_array':
            self._gripper_publisher = node.create_publisher(Float64MultiArray, 'gripper/command',
                                                            COMMAND_QOS)
        elif interface.gripper_axis is not None and \
                settings.gripper_interface == 'joint_trajectory':
            self._gripper_publisher = node.create_publisher(
                JointTrajectory, 'gripper_controller/joint_trajectory', COMMAND_QOS)

    @property
    def needs_joint_states(self) -> bool:
        """Whether the interface needs the measured joint positions."""
        return self.settings.interface in ('joint_trajectory', 'joint_forward')

    def update_pose(self, position: np.ndarray, quaternion_xyzw: np.ndarray,
                    stamp_ns: int = 0) -> None:
        """Take the measured end-effector pose (base frame); send a target waiting for it."""
        self._pose = (np.asarray(position, dtype=float), np.asarray(quaternion_xyzw, float))
        self._pose_stamp_ns = stamp_ns
        if self._pending is not None and stamp_ns >= self._pending[0]:
            pending, self._pending = self._pending, None
            self.send(*pending)

    def update_joints(self, names: Sequence[str], positions: Sequence[float]) -> str:
        """Take measured joint positions (a JointState may carry only some); return a refusal."""
        if len(names) != len(positions):
            return f'{len(names)} names but {len(positions)} positions'
        if not np.all(np.isfinite(np.asarray(positions, dtype=np.float64))):
            return 'non-finite position'
        self._joints.update(zip(names, (float(p) for p in positions)))
        return ''

    def send(self, stamp_ns: int, command: np.ndarray) -> Optional[str]:
        """Publish one command; return why it could not be sent (None: sent)."""
        kind = self.settings.interface
        self._send_gripper(stamp_ns, command)  # first, so a lockstep cell steps with it
        if kind == 'servo_twist':
            self._publisher.publish(self._twist(stamp_ns, command))
            return None
        if self._pose is None and (kind == 'cartesian_pose' or self._ik is not None):
            return 'no end-effector pose yet'
        if (kind == 'cartesian_pose' or self._ik is not None) and \
                self._pose_stamp_ns < stamp_ns:
            self._pending = (stamp_ns, np.array(command))  # sent when its pose arrives
            return None
        if kind == 'cartesian_pose':
            position, orientation = self._pose_integrator.target(command, *self._pose)
            self._publisher.publish(self._pose_message(stamp_ns, position, orientation))
            return None
        if self._joint_integrator is not None:
            try:
                targets = self._joint_integrator.targets(command, self._joints)
            except ValueError as error:
                return str(error)
            self._publish_joints(stamp_ns, self.settings.joint_names, targets)
            return None
        position, orientation = self._pose_integrator.target(command, *self._pose)
        pose = self._pose_message(stamp_ns, position, orientation)
        self._ik.solve(pose, self._joints, lambda targets: self._publish_joints(
            stamp_ns, self.settings.joint_names, targets))
        return None

    def stop(self, stamp_ns: int, command: np.ndarray) -> Optional[str]:
        """
        Publish the stop command now (a hold: no motion, the gripper as ``command`` says).

        For shutdown: nothing waits for a newer pose. A twist goes out as zeros; a pose target
        is the measured pose; joint targets are the measured joints. Return why it could not be
        sent (None: sent).
        """
        self._pending = None
        kind = self.settings.interface
        if kind == 'servo_twist':
            return self.send(stamp_ns, command)
        self._send_gripper(stamp_ns, command)
        if kind == 'cartesian_pose':
            if self._pose is None:
                return 'no end-effector pose to hold'
            self._publisher.publish(self._pose_message(stamp_ns, *self._pose))
            return None
        missing = [name for name in self.settings.joint_names if name not in self._joints]
        if missing or not self.settings.joint_names:
            return 'no measured position for joint(s) ' + ', '.join(missing)
        self._publish_joints(stamp_ns, self.settings.joint_names,
                             [self._joints[name] for name in self.settings.joint_names])
        return None

    @property
    def publishers(self) -> list:
        """Return the publishers of the robot's commands (arm and gripper)."""
        return [p for p in (self._publisher, self._gripper_publisher) if p is not None]

    # --- messages --------------------------------------------------------------------------
    def _twist(self, stamp_ns: int, command: np.ndarray) -> TwistStamped:
        twist = self.interface.to_twist(command)
        message = TwistStamped()
        message.header.stamp = ns_to_stamp(stamp_ns)
        message.header.frame_id = (self.settings.tool_frame_id if self.settings.frame == 'tool'
                                   else self.settings.base_frame_id)
        message.twist.linear.x, message.twist.linear.y, message.twist.linear.z = (
            float(v) for v in twist.linear)
        message.twist.angular.x, message.twist.angular.y, message.twist.angular.z = (
            float(v) for v in twist.angular)
        return message

    def _pose_message(self, stamp_ns: int, position, orientation) -> PoseStamped:
        message = PoseStamped()
        message.header.stamp = ns_to_stamp(stamp_ns)
        message.header.frame_id = self.settings.base_frame_id  # targets are in the base frame
        message.pose.position.x, message.pose.position.y, message.pose.position.z = (
            float(v) for v in position)
        (message.pose.orientation.x, message.pose.orientation.y, message.pose.orientation.z,
         message.pose.orientation.w) = (float(v) for v in orientation)
        return message

    def _publish_joints(self, stamp_ns: int, names: Sequence[str],
                        positions: Sequence[float]) -> None:
        if self.settings.interface == 'joint_forward':
            self._publisher.publish(Float64MultiArray(data=[float(p) for p in positions]))
        else:
            self._publisher.publish(self._trajectory(stamp_ns, names, positions))

    def _trajectory(self, stamp_ns: int, names: Sequence[str],
                    positions: Sequence[float]) -> JointTrajectory:
        # The point is reached one control period from now; a zero stamp means "start at once"
        # to joint_trajectory_controller, which a stamp from another clock would delay.
        message = JointTrajectory(joint_names=list(names))
        period_ns = int(round(self.settings.period_s * 1e9))
        message.points = [JointTrajectoryPoint(
            positions=[float(p) for p in positions],
            time_from_start=DurationMsg(sec=period_ns // 10**9, nanosec=period_ns % 10**9))]
        return message

    def _send_gripper(self, stamp_ns: int, command: np.ndarray) -> None:
        axis = self.interface.gripper_axis
        if axis is None or self._gripper_publisher is None:
            return
        position = gripper_position(command[axis], self.settings.gripper_open_position,
                                    self.settings.gripper_closed_position)
        if self.settings.gripper_interface == 'float64_array':
            self._gripper_publisher.publish(Float64MultiArray(data=[position]))
        else:
            names = self.settings.gripper_joint_names
            self._gripper_publisher.publish(self._trajectory(stamp_ns, names,
                                                             [position] * len(names)))


class _ComputeIK:
    """Inverse kinematics through move_group's /compute_ik service (moveit_msgs)."""

    def __init__(self, node: Node, settings: CommandSettings, service_type):
        self.node, self.settings, self.service_type = node, settings, service_type
        self.client = node.create_client(service_type, settings.ik_service)
        if not self.client.wait_for_service(timeout_sec=settings.ik_wait_s):
            raise ValueError(f'no {settings.ik_service} service after {settings.ik_wait_s:g} s: '
                             'start move_group (MoveIt 2), install moveit_py, or give '
                             'joint-space actions (action_names = joint names)')

    def solve(self, pose: PoseStamped, seed: Dict[str, float], publish) -> None:
        request = self.service_type.Request()
        request.ik_request.group_name = self.settings.ik_group
        request.ik_request.pose_stamped = pose
        request.ik_request.ik_link_name = self.settings.ik_tip_link
        request.ik_request.robot_state.joint_state.name = list(seed)
        request.ik_request.robot_state.joint_state.position = list(seed.values())
        request.ik_request.timeout.nanosec = int(0.5 * self.settings.period_s * 1e9)
        future = self.client.call_async(request)

        def done(result):
            response = result.result()
            if response is None or response.error_code.val != 1:  # MoveItErrorCodes.SUCCESS
                self.node.get_logger().warning('no inverse kinematics solution: holding',
                                               throttle_duration_sec=2.0)
                return
            solution = dict(zip(response.solution.joint_state.name,
                                response.solution.joint_state.position))
            publish([solution[name] for name in self.settings.joint_names])
        future.add_done_callback(done)


class _MoveItPyIK:
    """Inverse kinematics through moveit_py's RobotState (MoveIt 2's Python API)."""

    def __init__(self, node: Node, settings: CommandSettings, moveit_py):
        from moveit.core.robot_state import RobotState
        self.settings = settings
        name = node.get_name() + '_moveit_py'
        if settings.moveit_config_package:
            if not settings.moveit_robot_name:
                raise ValueError('ik.moveit_config_package needs ik.moveit_robot_name')
            from moveit_configs_utils import MoveItConfigsBuilder
            config = MoveItConfigsBuilder(settings.moveit_robot_name,
                                          package_name=settings.moveit_config_package)
            self._moveit = moveit_py(node_name=name,
                                     config_dict=config.to_moveit_configs().to_dict())
        else:  # its parameters come from the launch, as MoveIt's own launch files give them
            self._moveit = moveit_py(node_name=name)
        self._state = RobotState(self._moveit.get_robot_model())

    def solve(self, pose: PoseStamped, seed: Dict[str, float], publish) -> None:
        self._state.joint_positions = dict(seed)
        if self._state.set_from_ik(self.settings.ik_group, pose.pose,
                                   self.settings.ik_tip_link, 0.5 * self.settings.period_s):
            positions = self._state.joint_positions
            publish([positions[name] for name in self.settings.joint_names])


def inverse_kinematics(node: Node, settings: CommandSettings):
    """Return an IK backend: moveit_py where it can be set up, else /compute_ik; else refuse."""
    try:
        from moveit.planning import MoveItPy
    except ImportError:
        MoveItPy = None
    if MoveItPy is not None:
        try:
            return _MoveItPyIK(node, settings, MoveItPy)
        except Exception as error:  # noqa: B902 - a RuntimeError without its configuration,
            # or anything from its C++ side: the service still solves the same IK
            node.get_logger().warning(
                f'moveit_py is installed but could not be set up ({type(error).__name__}: '
                f'{error}); solving IK through {settings.ik_service} instead')
    try:
        from moveit_msgs.srv import GetPositionIK
    except ImportError:
        raise ValueError('joint targets from Cartesian actions need inverse kinematics, and '
                         'neither moveit_py nor moveit_msgs (for the /compute_ik service of '
                         'move_group) is installed: install MoveIt 2 (ros-<distro>-moveit-py or '
                         'ros-<distro>-moveit), or give joint-space actions (action_names = '
                         'joint names), or use command_interface servo_twist or '
                         'cartesian_pose') from None
    return _ComputeIK(node, settings, GetPositionIK)


def servo_services(node: Node, servo_node: str, wait_s: float) -> Tuple[str, str, str]:
    """
    Return (start, command type, pause) services of the MoveIt Servo node that is there.

    Humble's Servo has <node>/start_servo; Jazzy's and later have <node>/switch_command_type
    and <node>/pause_servo instead. Waits up to wait_s for either; refuses if neither comes.
    """
    if not servo_node.startswith('/'):  # relative, as a node's own names are
        servo_node = f'{node.get_namespace().rstrip("/")}/{servo_node}'
    servo_node = servo_node.rstrip('/')
    start, switch, pause = (f'{servo_node}/start_servo', f'{servo_node}/switch_command_type',
                            f'{servo_node}/pause_servo')
    deadline = time.monotonic() + wait_s
    while True:
        names = {name for name, _ in node.get_service_names_and_types()}
        if switch in names:
            return '', switch, pause if pause in names else ''
        if start in names:
            return start, '', ''
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f'MoveIt Servo is not there: neither {start} (Humble) nor {switch} (Jazzy and '
                f'later) after {wait_s:g} s (is servo_node running under that name?)')
        time.sleep(0.1)  # the graph fills in as discovery goes on; nothing to spin here


def start_servo(node: Node, start_service: str, command_type_service: str, pause_service: str,
                wait_s: float) -> None:
    """Start MoveIt Servo where its services are configured; refuse if it is not there."""
    def report(service, done):
        response = done.result()
        if response is not None and response.success:
            node.get_logger().info(f'MoveIt Servo ready ({service})')
        else:
            node.get_logger().error(f'MoveIt Servo refused {service}: '
                                    f'{getattr(response, "message", "no response")}')
    if start_service:  # Humble: a std_srvs/Trigger
        client = node.create_client(Trigger, start_service)
        if not client.wait_for_service(timeout_sec=wait_s):
            raise ConfigurationError(f'MoveIt Servo is not there: no {start_service} '
                                     f'service after {wait_s:g} s (is servo_node running? '
                                     'empty servo.start_service: do not start it)')
        client.call_async(Trigger.Request()).add_done_callback(
            lambda done: report(start_service, done))
    if command_type_service:  # refused before anything is called
        try:
            from moveit_msgs.srv import ServoCommandType
        except ImportError:
            raise ConfigurationError(
                f'MoveIt Servo at {command_type_service} needs moveit_msgs (ServoCommandType), '
                'which is not installed: install MoveIt 2 (ros-<distro>-moveit-msgs)') from None
    if pause_service:  # Jazzy and later: a std_srvs/SetBool, false to run
        client = node.create_client(SetBool, pause_service)
        if not client.wait_for_service(timeout_sec=wait_s):
            raise ConfigurationError(f'MoveIt Servo is not there: no {pause_service} '
                                     f'service after {wait_s:g} s')
        client.call_async(SetBool.Request(data=False)).add_done_callback(
            lambda done: report(pause_service, done))
    if command_type_service:  # Jazzy and later: moveit_msgs/srv/ServoCommandType
        client = node.create_client(ServoCommandType, command_type_service)
        if not client.wait_for_service(timeout_sec=wait_s):
            raise ConfigurationError(f'MoveIt Servo is not there: no '
                                     f'{command_type_service} service after {wait_s:g} s')
        request = ServoCommandType.Request(command_type=ServoCommandType.Request.TWIST)
        client.call_async(request).add_done_callback(
            lambda done: report(command_type_service, done))
