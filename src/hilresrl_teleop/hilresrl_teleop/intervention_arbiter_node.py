"""
intervention_arbiter: decides who commands the robot each step, and filters every command.

The decisions are ArbiterCore's (arbiter_core.py); this node converts and publishes. No input
can take it down: a callback that fails holds the robot, and every shutdown sends a stop.
Proposals come on proposed_action, or (proposals_in_process, residual_in_arbiter:=true) from
the residual policy node of this process through take_proposal, with no topic to forge them on.
"""

from collections import Counter
import time
from typing import Callable, Optional, Tuple

from geometry_msgs.msg import PoseStamped, Twist
from hilresrl_common.conversions import ns_to_stamp, pose_to_array, stamp_to_ns
from hilresrl_common.node_runner import (ConfigurationError, run_node,
                                         wait_for_acknowledgements)
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.qos import COMMAND_QOS, EVENTS_QOS, LATCHED_QOS, STEP_QOS
from hilresrl_msgs.msg import (EpisodeEvent, ExecutedAction, InterventionState, Mode,
                               ProposedAction)
import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from .arbiter_core import ArbiterCore, StepOutcome
from .arbiter_messages import executed_action, intervention_state
from .arbiter_parameters import arbiter_settings, PARAMETERS
from .command_output import CommandOutput, servo_services, start_servo
from .pose_frames import pose_in_frame, same_frame

# The spacenav driver and most devices publish reliable; best effort receives from either.
DEVICE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.BEST_EFFORT)
# A best-effort e-stop publisher matches no reliable subscription: the e-stop has one of each.
ESTOP_BEST_EFFORT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                   reliability=ReliabilityPolicy.BEST_EFFORT)
# How long the stop command sent at shutdown may wait for the robot side to acknowledge it.
STOP_ACKNOWLEDGEMENT_TIMEOUT_S = 1.0
MODES = (Mode.TRAIN, Mode.EVAL, Mode.PAUSE)


class InterventionArbiterNode(Node):
    """Proposal + SpaceMouse -> arbitration -> safety filter -> robot command."""

    def __init__(self, proposals_in_process: bool = False, **kwargs):
        super().__init__('intervention_arbiter', **kwargs)
        values = declare_parameters(self, PARAMETERS)
        try:
            self.settings = settings = arbiter_settings(values)
            self.core = ArbiterCore(settings, time.monotonic())
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        self.action_names = list(settings.action_names)
        self.device_messages = self.pose_messages = 0
        self.rejected_inputs: Counter = Counter()  # topic -> messages refused
        self.callback_errors: Counter = Counter()  # callback -> unexpected exceptions
        self._mode = Mode.TRAIN
        self._last_proposal: Optional[ProposedAction] = None
        self._stopped = False
        # tf2, set up at the first pose in another frame than the commands' (False: not
        # installed, so such poses are refused without trying the import again)
        self._tf_buffer = None
        self._tf_listener = None
        self.output = CommandOutput(self, settings.command, settings.twist, self.action_names)
        self._correction_pub = self.create_publisher(String, 'correction', COMMAND_QOS)
        guard = self._guarded
        pose_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE
                              if settings.ee_pose_reliability == 'reliable'
                              else ReliabilityPolicy.BEST_EFFORT)
        if self.output.needs_joint_states:
            self.create_subscription(JointState, 'joint_states',
                                     guard('joint_states', self._on_joint_states), pose_qos)
        start_servo_services = (settings.servo_start_service,
                                settings.servo_command_type_service, '')
        if settings.servo_node:  # which services it has says which distribution's Servo it is
            start_servo_services = servo_services(self, settings.servo_node,
                                                  settings.servo_wait_s)
        start_servo(self, *start_servo_services, settings.servo_wait_s)
        self._executed_pub = self.create_publisher(ExecutedAction, 'executed_action',
                                                   STEP_QOS)
        self._state_pub = self.create_publisher(InterventionState, 'intervention_state',
                                                STEP_QOS)
        self._events_pub = self.create_publisher(EpisodeEvent, 'episode_events', EVENTS_QOS)
        # One control step per proposal; take_proposal is how a node of this process hands one.
        self.take_proposal = guard('proposed_action', self._on_proposal)
        if not proposals_in_process:
            self.create_subscription(ProposedAction, 'proposed_action', self.take_proposal,
                                     COMMAND_QOS)
        self.create_subscription(Twist, 'spacenav/twist',
                                 guard('spacenav/twist', self._on_device_twist), DEVICE_QOS)
        self.create_subscription(Joy, 'spacenav/joy', guard('spacenav/joy', self._on_device_joy),
                                 DEVICE_QOS)
        self.create_subscription(PoseStamped, 'ee_pose', guard('ee_pose', self._on_ee_pose),
                                 pose_qos)
        self.create_subscription(Mode, 'mode', guard('mode', self._on_mode), LATCHED_QOS)
        self.create_subscription(EpisodeEvent, 'episode_events',
                                 guard('episode_events', self._on_event), EVENTS_QOS)
        estop = guard('estop', self._on_estop_topic)
        self.create_subscription(Bool, 'estop', estop, COMMAND_QOS)
        self.create_subscription(Bool, 'estop', estop, ESTOP_BEST_EFFORT_QOS)
        self.create_service(Trigger, 'estop', guard('estop service', self._on_estop_service))
        self.create_service(Trigger, 'release_estop',
                            guard('release_estop service', self._on_release_service))
        if settings.watchdog_timeout_s > 0:
            on_timer = guard('watchdog timer', self._on_watchdog_timer)
            # A lambda without arguments: newer rclpy passes TimerInfo to callbacks taking any.
            self.create_timer(1.0 / max(1.0 / settings.control_period_s, 10.0),
                              lambda: on_timer())

    episode_running = property(lambda self: self.core.episode_running,
                               doc='Whether an episode runs, by the episode events.')
    ee_position = property(lambda self: self.core.ee_position,
                           doc='The last measured end-effector position (m), or None.')

    # --- inputs --------------------------------------------------------------------------
    def _guarded(self, name: str, callback: Callable) -> Callable:
        """Wrap a callback so that nothing it raises reaches the executor (the last defence)."""
        def guarded(*args):
            try:
                return callback(*args)
            except Exception as error:  # noqa: B902 (whatever it is, the arbiter stays up)
                self.callback_errors[name] += 1
                if self.callback_errors[name] == 1:  # once per callback; a counter the rest
                    self.get_logger().error(f'{name}: unexpected {type(error).__name__}: '
                                            f'{error}; holding the robot')
                try:
                    self._hold(self.core.latest_stamp_ns, f'internal error in {name}')
                except Exception:  # noqa: B902 (that failed too: the watchdog timer tries again)
                    pass
                return args[-1] if len(args) == 2 else None  # a service's response
        return guarded

    def _refused(self, topic: str, reason: str) -> bool:
        """Count and log a refused input message; return whether it was refused."""
        if reason:
            self.rejected_inputs[topic] += 1
            self.get_logger().error(f'{topic} refused ({reason}); {self.rejected_inputs[topic]} '
                                    'so far', throttle_duration_sec=2.0)
        return bool(reason)

    def _on_device_twist(self, message: Twist) -> None:
        self.device_messages += 1
        linear, angular = message.linear, message.angular
        self._refused('spacenav/twist', self.core.device_twist(
            time.monotonic(), (linear.x, linear.y, linear.z), (angular.x, angular.y, angular.z)))

    def _on_device_joy(self, message: Joy) -> None:
        self._refused('spacenav/joy', self.core.device_buttons(time.monotonic(), message.buttons))

    def _on_ee_pose(self, message: PoseStamped) -> None:
        pose = pose_to_array(message).astype(np.float64)
        stamp_ns = stamp_to_ns(message.header.stamp)
        if not same_frame(message.header.frame_id, self.settings.command.base_frame_id):
            pose, reason = self._in_command_frame(pose, message.header.frame_id)
            if self._refused('ee_pose', reason):
                return  # no pose taken: the robot is held once the last one is stale
        if not self._refused('ee_pose',
                             self.core.end_effector_pose(time.monotonic(), pose, stamp_ns)):
            self.pose_messages += 1
            self.output.update_pose(pose[:3], pose[3:], stamp_ns)

    def _in_command_frame(self, pose: np.ndarray, frame: str) -> Tuple[np.ndarray, str]:
        """Return the pose in command_frame_id through tf2, or a reason it cannot be."""
        command_frame = self.settings.command.base_frame_id
        if self._tf_buffer is None:
            try:
                import tf2_ros
            except ImportError:
                self._tf_buffer = False
            else:
                # Only now: a cell whose pose is in the commands' frame needs no tf subscriptions.
                self._tf_buffer = tf2_ros.Buffer()
                self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        if self._tf_buffer is False:
            return pose, (f'the pose is in frame {frame!r}, the commands in {command_frame!r} '
                          '(command_frame_id), and tf2_ros is not installed to transform it: '
                          f'publish the pose in {command_frame!r} or set command_frame_id to '
                          f'{frame!r}')
        try:
            transform = self._tf_buffer.lookup_transform(command_frame, frame, Time()).transform
        except Exception as error:  # noqa: B902 - tf2's lookup, connectivity, extrapolation
            return pose, (f"no transform from the pose's frame {frame!r} to {command_frame!r} "
                          f'(command_frame_id) in tf: {error}')
        translation, rotation = transform.translation, transform.rotation
        return pose_in_frame(pose, (translation.x, translation.y, translation.z),
                             (rotation.x, rotation.y, rotation.z, rotation.w)), ''

    def _on_joint_states(self, message: JointState) -> None:
        self._refused('joint_states', self.output.update_joints(message.name, message.position))

    def _on_mode(self, message: Mode) -> None:
        if message.value not in MODES:
            self._refused('mode', f'unknown mode {message.value}; keeping the current one')
            return
        self._mode = message.value
        self.core.paused = message.value == Mode.PAUSE
        self.core.interventions_allowed = message.value == Mode.TRAIN

    def _on_event(self, event: EpisodeEvent) -> None:
        if event.event == EpisodeEvent.EPISODE_START:
            handover = self.core.episode_started(event.episode_id, event.robot_id)
            if handover:  # the last episode ended mid-correction: its segment ends here
                self._publish_event(EpisodeEvent.INTERVENTION_END, handover)
        elif event.event == EpisodeEvent.EPISODE_END:
            self.core.episode_ended()

    # --- one control step ----------------------------------------------------------------
    def _on_proposal(self, proposal: ProposedAction) -> None:
        self._last_proposal = proposal
        stamp_ns = stamp_to_ns(proposal.header.stamp)
        step = self.core.step(time.monotonic(), stamp_ns, proposal.base_action,
                              proposal.composed_action, proposal.residual)
        if step.device_lost:
            self.get_logger().warning(step.device_lost)
        if step.device_back:
            self.get_logger().info(step.device_back)
        if step.stale_pose:
            self.get_logger().warning(f'{step.stale_pose}: holding the robot',
                                      throttle_duration_sec=2.0)
        if step.correction is not None:
            self._correction_pub.publish(String(data=step.correction))
        if step.handover:
            self._publish_event(EpisodeEvent.INTERVENTION_START if step.decision.started
                                else EpisodeEvent.INTERVENTION_END, step.handover)
        if step.rejected:
            self.get_logger().error(f'command rejected ({step.rejected}): holding the robot',
                                    throttle_duration_sec=2.0)
            self._publish_event(EpisodeEvent.COMMAND_REJECTED, step.rejected)
        if step.limits:
            self.get_logger().warning('command limited: ' + ', '.join(step.limits),
                                      throttle_duration_sec=5.0)
        if step.command is None:
            return
        self._send(stamp_ns, step.command)
        self._publish_executed(stamp_ns, step.command, proposal, step)
        if not step.held:
            self._state_pub.publish(intervention_state(
                self.core.latest_stamp_ns, self.settings.device_name, step.decision,
                step.correction or ''))

    def _on_watchdog_timer(self) -> None:
        status, hold_reason = self.core.tick(time.monotonic())
        for source in status.became_stale:
            self.get_logger().error(f'watchdog: no {source} for '
                                    f'{self.settings.watchdog_timeout_s} s, holding the robot')
            self._publish_event(EpisodeEvent.WATCHDOG_HOLD, f'no {source}')
        for source in status.recovered:
            self.get_logger().info(f'watchdog: {source} is back')
        if hold_reason:
            self._hold(self.core.latest_stamp_ns, hold_reason)

    # --- outputs -------------------------------------------------------------------------
    def _send(self, stamp_ns: int, command: np.ndarray) -> None:
        problem = self.output.send(stamp_ns, command)
        if problem:
            self.get_logger().warning(f'no command sent: {problem}', throttle_duration_sec=5.0)

    def _publish_executed(self, stamp_ns: int, command: np.ndarray,
                          proposal: Optional[ProposedAction], step: StepOutcome) -> None:
        self._executed_pub.publish(executed_action(
            stamp_ns, self.settings.command.base_frame_id, self.settings.device_name, command,
            proposal, step))

    def _hold(self, stamp_ns: int, reason: str) -> None:
        command = self.core.hold()  # the next command starts from rest
        self._send(stamp_ns, command)
        # A hold the policy did not ask for (watchdog, e-stop) still records what the policy
        # last proposed, so that the step it becomes has a base action to learn from.
        self._publish_executed(stamp_ns, command, self._last_proposal,
                               StepOutcome(command, reason))

    def _publish_event(self, event: int, detail: str) -> None:
        message = EpisodeEvent(robot_id=self.core.robot_id, event=event, detail=detail,
                               episode_id=self.core.episode_id)
        message.header.stamp = ns_to_stamp(self.core.latest_stamp_ns)
        message.mode.value = self._mode
        self._events_pub.publish(message)

    # --- e-stop --------------------------------------------------------------------------
    def _on_estop_topic(self, message: Bool) -> None:
        if message.data:
            self._trigger_estop('estop topic')

    def _on_estop_service(self, request, response):
        response.success = True
        response.message = ('e-stop latched' if self._trigger_estop('estop service')
                            else f'e-stop already latched ({self.core.estop.reason})')
        return response

    def _on_release_service(self, request, response):
        response.success = self.core.release_estop()
        response.message = 'e-stop released' if response.success else 'e-stop was not active'
        if response.success:
            self.get_logger().warning('e-stop released')
            self._publish_event(EpisodeEvent.SAFETY_RELEASE, 'released')
        return response

    def _trigger_estop(self, source: str) -> bool:
        if not self.core.estop.trigger(source):
            return False
        self.get_logger().error(f'e-stop latched by {source}: holding until release_estop')
        self._publish_event(EpisodeEvent.SAFETY_STOP, source)
        self._hold(self.core.latest_stamp_ns, f'e-stop: {source}')
        return True

    # --- shutdown ------------------------------------------------------------------------
    def send_stop(self) -> bool:
        """Send the stop command (hold still, gripper kept) and wait for its acknowledgement."""
        if self._stopped or not self.context.ok():
            return False
        self._stopped = True
        problem = self.output.stop(self.core.latest_stamp_ns, self.core.hold())
        if problem:
            self.get_logger().error(f'shutting down without a stop command: {problem}')
            return False
        wait_for_acknowledgements(self, STOP_ACKNOWLEDGEMENT_TIMEOUT_S, self.output.publishers)
        self.get_logger().info('shutting down: stop command sent')
        return True

    def destroy_node(self):
        """Send the stop command, then destroy the node (every shutdown path comes here)."""
        try:
            self.send_stop()
        except Exception as error:  # noqa: B902 (destroying the node must still happen)
            self.get_logger().error(f'stop command failed: {error}')
        return super().destroy_node()


def main(args=None):
    """Run the intervention arbiter until shutdown."""
    return run_node(InterventionArbiterNode, args)


if __name__ == '__main__':
    main()
