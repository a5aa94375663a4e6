"""
sim_cell: a simulated robot cell (MuJoCo) that speaks the topics of a real ROS 2 driver stack.

Publishes joint_states, the end-effector pose, camera images, the task state a perception stack
would give, the task instruction (latched), the simulator's success and its task_progress (what
remains to do, for the simulated operator); takes MoveIt-Servo-style
twists and a gripper command, or Cartesian target poses; resets with a seed. Two clocks:
realtime steps at a fixed rate like a robot; lockstep steps once per command, as fast as the
loop answers, for training.
"""

import time
from typing import Optional

from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from hilresrl_common.conversions import array_to_image, float32_field, ns_to_stamp, stamp_to_ns
from hilresrl_common.node_runner import ConfigurationError, run_node
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.qos import COMMAND_QOS, EVENTS_QOS, LATCHED_QOS, STEP_QOS
from hilresrl_msgs.msg import EpisodeEvent, StateVector
from hilresrl_msgs.srv import ResetCell
from hilresrl_teleop.command_interface import TwistInterface
import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from .sim_cell_parameters import CLOCK_MODES, PARAMETERS
from .tasks import make_task, PROGRESS_NAMES, SimTask

# Images: reliable (in lockstep a lost observation would stall the loop until the watchdog
# steps in), a tenth of STEP_QOS's depth (the state topics') as that history holds whole frames.
IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                       reliability=ReliabilityPolicy.RELIABLE)


class SimCellNode(Node):
    """A MuJoCo task behind the topics and services of a robot cell."""

    def __init__(self, **kwargs):
        super().__init__('sim_cell', **kwargs)

        values = declare_parameters(self, PARAMETERS)
        self.task_name: str = values['task']
        self.seed: int = values['seed']
        self.clock_mode: str = values['clock_mode']
        self.control_rate_hz: float = values['control_rate_hz']
        self.cameras = [camera for camera in values['cameras'] if camera]
        self.image_size: int = values['image_size']
        self.action_names = values['action_names']
        self.linear_speed_scale_mps: float = values['linear_speed_scale_mps']
        self.command_timeout_s: float = values['command_timeout_s']
        self.frame_id: str = values['frame_id']
        self.tool_frame_id: str = values['tool_frame_id']
        self.republish_after_s: float = values['republish_after_s']
        self.idle_between_episodes: bool = values['idle_between_episodes']
        if self.clock_mode not in CLOCK_MODES:
            raise ConfigurationError(f'clock_mode must be one of {", ".join(CLOCK_MODES)}, '
                                     f'not {self.clock_mode!r}')
        try:
            self.interface = TwistInterface(self.action_names, self.linear_speed_scale_mps)
            self.task: SimTask = make_task(self.task_name, self.seed, self.cameras,
                                           self.image_size)
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        if len(self.action_names) != self.task.action_dim:
            raise ConfigurationError(f'{self.task_name} has {self.task.action_dim} action axes, '
                                     f'action_names lists {len(self.action_names)}')
        self.period_ns = int(round(1e9 / self.control_rate_hz))
        expected_speed = self.task.translation_step_m * self.control_rate_hz
        if abs(expected_speed - self.linear_speed_scale_mps) > 1e-6 * expected_speed:
            self.get_logger().warning(
                f'{self.task_name} moves {self.task.translation_step_m} m per step at action 1: '
                f'at {self.control_rate_hz} Hz linear_speed_scale_mps should be '
                f'{expected_speed:.4f}, not {self.linear_speed_scale_mps}')

        self._stamp_ns = self.get_clock().now().nanoseconds
        self._gripper = 0.0
        self._twist: Optional[np.ndarray] = None
        self._twist_received_s = 0.0
        self.stale_commands = 0
        self.idle_commands = 0
        self.steps = 0
        self._idle = self.clock_mode == 'lockstep' and self.idle_between_episodes
        # Did a reset come after the latest episode start? Then an episode end that arrives
        # now (its event overtaken by the next reset) belongs to the episode before.
        self._reset_since_start = False
        self.republished = 0
        self._published_at = time.monotonic()

        self._joint_pub = self.create_publisher(JointState, 'joint_states', STEP_QOS)
        self._pose_pub = self.create_publisher(PoseStamped, 'ee_pose', STEP_QOS)
        self._wrench_pub = (self.create_publisher(WrenchStamped, 'wrench', STEP_QOS)
                            if values['publish_wrench'] else None)
        self._state_pub = self.create_publisher(StateVector, 'task_state', STEP_QOS)
        self._success_pub = self.create_publisher(StateVector, 'success', STEP_QOS)
        self._progress_pub = self.create_publisher(StateVector, 'task_progress', STEP_QOS)
        self._image_pubs = {camera: self.create_publisher(Image, f'camera/{camera}/image_raw',
                                                          IMAGE_QOS)
                            for camera in self.cameras}
        self._instruction_pub = self.create_publisher(String, 'task_instruction', LATCHED_QOS)
        self.create_subscription(TwistStamped, 'servo/delta_twist_cmds', self._on_twist,
                                 COMMAND_QOS)
        self.create_subscription(Float64MultiArray, 'gripper/command', self._on_gripper,
                                 COMMAND_QOS)
        self.create_subscription(PoseStamped, 'target_pose', self._on_target_pose, COMMAND_QOS)
        self.create_service(ResetCell, 'reset', self._on_reset)
        if self.clock_mode == 'lockstep' and self.idle_between_episodes:
            self.create_subscription(EpisodeEvent, 'episode_events', self._on_episode_event,
                                     EVENTS_QOS)
        if self.clock_mode == 'realtime':
            self.create_timer(1.0 / self.control_rate_hz, self._on_realtime_tick)
        elif self.republish_after_s > 0:
            self.create_timer(self.republish_after_s / 2, self._on_lockstep_watch)

        self.task.reset(self.seed)
        self._instruction_pub.publish(String(data=self.task.instruction))
        if not self._idle:  # an idle cell speaks first at its reset
            self._publish_observation()
        self.get_logger().info(
            f'{self.task_name} ({self.clock_mode}, {self.control_rate_hz} Hz): "'
            f'{self.task.instruction}", cameras {self.cameras or "none"}')

    # --- commands ------------------------------------------------------------------------
    def _on_gripper(self, message: Float64MultiArray) -> None:
        if len(message.data):
            self._gripper = float(message.data[0])

    def _on_twist(self, message: TwistStamped) -> None:
        linear = np.array([message.twist.linear.x, message.twist.linear.y,
                           message.twist.linear.z])
        angular = np.array([message.twist.angular.x, message.twist.angular.y,
                            message.twist.angular.z])
        if message.header.frame_id == self.tool_frame_id:
            from scipy.spatial.transform import Rotation
            hand = Rotation.from_quat(self.task.ee_pose()[1])
            linear, angular = hand.apply(linear), hand.apply(angular)
        action = self.interface.to_action(linear, angular, self._gripper)
        if self.clock_mode == 'realtime':
            self._twist, self._twist_received_s = action, time.monotonic()
        elif self._is_current(message):
            self._step(action)

    def _on_target_pose(self, message: PoseStamped) -> None:
        position, _ = self.task.ee_pose()
        target = np.array([message.pose.position.x, message.pose.position.y,
                           message.pose.position.z])
        # Head for the target at up to full speed; the pose controller's job, done per step.
        delta = np.clip((target - position) / self.task.translation_step_m, -1.0, 1.0)
        action = self.interface.to_action(delta * self.linear_speed_scale_mps, (0, 0, 0),
                                          self._gripper)
        if self.clock_mode == 'realtime':
            self._twist, self._twist_received_s = action, time.monotonic()
        elif self._is_current(message):
            self._step(action)

    def _is_current(self, message) -> bool:
        if self._idle:
            self.idle_commands += 1
            return False
        # A command answering an older observation (one in flight across a reset) is dropped.
        if stamp_to_ns(message.header.stamp) == self._stamp_ns:
            return True
        self.stale_commands += 1
        return False

    def _on_episode_event(self, event: EpisodeEvent) -> None:
        if event.event == EpisodeEvent.EPISODE_START:
            self._reset_since_start = False
        elif event.event == EpisodeEvent.EPISODE_END and not self._reset_since_start:
            self._idle = True

    def _on_realtime_tick(self) -> None:
        fresh = (self._twist is not None
                 and time.monotonic() - self._twist_received_s < self.command_timeout_s)
        action = self._twist if fresh else self.interface.to_action((0, 0, 0), (0, 0, 0),
                                                                    self._gripper)
        if fresh:
            action = action.copy()
            if self.interface.gripper_axis is not None:
                action[self.interface.gripper_axis] = self._gripper
        self._step(action, realtime=True)

    def _on_lockstep_watch(self) -> None:
        if not self._idle and time.monotonic() - self._published_at > self.republish_after_s:
            self.republished += 1
            self.get_logger().debug('no command for the current observation: publishing it again')
            self._publish_observation()

    # --- simulation ----------------------------------------------------------------------
    def _step(self, action: np.ndarray, realtime: bool = False) -> None:
        self.task.step(action)
        self.steps += 1
        # Real time: stamped when measured, after the physics step, as a driver stamps its
        # readings; lockstep: simulated time, one period a step.
        self._stamp_ns = (self.get_clock().now().nanoseconds if realtime
                          else self._stamp_ns + self.period_ns)
        self._publish_observation()

    def _on_reset(self, request: ResetCell.Request, response: ResetCell.Response):
        try:
            if request.task and request.task != self.task_name:
                task = make_task(request.task, self.seed, self.cameras, self.image_size)
                self.task.close()
                self.task, self.task_name = task, request.task
                self._instruction_pub.publish(String(data=self.task.instruction))
            seed = request.seed if request.seed >= 0 else int(
                np.random.default_rng().integers(2**31))
            self.task.reset(seed)
        except ValueError as error:
            response.success, response.message = False, str(error)
            return response
        self._gripper = 0.0
        self._twist = None
        self._idle, self._reset_since_start = False, True
        # Time only moves forward: the first observation of the episode is a step later.
        self._stamp_ns = max(self._stamp_ns + self.period_ns, self.get_clock().now().nanoseconds
                             if self.clock_mode == 'realtime' else 0)
        self._publish_observation()
        response.success = True
        response.seed = seed
        response.instruction = self.task.instruction
        response.observation_stamp = ns_to_stamp(self._stamp_ns)
        response.max_episode_steps = self.task.max_episode_steps
        return response

    def _publish_observation(self) -> None:
        self._published_at = time.monotonic()
        stamp = ns_to_stamp(self._stamp_ns)
        # The progress just before the task state, so that the simulated operator, who acts on
        # the pair, mostly has it when the state arrives; then the task state: the policies act
        # on it alone, and every microsecond before it leaves is control latency.
        progress = StateVector(names=list(PROGRESS_NAMES),
                               data=float32_field(self.task.progress()))
        progress.header.stamp, progress.header.frame_id = stamp, self.frame_id
        self._progress_pub.publish(progress)
        state = StateVector(data=float32_field(self.task.task_state()))
        state.header.stamp, state.header.frame_id = stamp, self.frame_id
        self._state_pub.publish(state)
        for camera, pixels in self.task.images().items():
            self._image_pubs[camera].publish(array_to_image(pixels, stamp, f'{camera}_optical'))
        positions, velocities = self.task.joint_state()
        joints = JointState(name=list(self.task.joint_names),
                            position=positions.astype(float).tolist(),
                            velocity=velocities.astype(float).tolist())
        joints.header.stamp = stamp
        self._joint_pub.publish(joints)
        position, quaternion = self.task.ee_pose()
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self.frame_id
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (
            float(v) for v in position)
        (pose.pose.orientation.x, pose.pose.orientation.y, pose.pose.orientation.z,
         pose.pose.orientation.w) = (float(v) for v in quaternion)
        self._pose_pub.publish(pose)
        if self._wrench_pub is not None:
            wrench = WrenchStamped()
            wrench.header.stamp, wrench.header.frame_id = stamp, self.frame_id
            force, torque = self.task.wrench().reshape(2, 3).astype(float)
            wrench.wrench.force.x, wrench.wrench.force.y, wrench.wrench.force.z = force
            wrench.wrench.torque.x, wrench.wrench.torque.y, wrench.wrench.torque.z = torque
            self._wrench_pub.publish(wrench)
        success = StateVector(names=['success'], data=float32_field([float(self.task.success())]))
        success.header.stamp = stamp
        self._success_pub.publish(success)

    def destroy_node(self):
        """Close the simulator (and its renderer), then the node."""
        self.task.close()
        return super().destroy_node()


def main(args=None):
    """Run the simulated cell until shutdown."""
    return run_node(SimCellNode, args)


if __name__ == '__main__':
    main()
