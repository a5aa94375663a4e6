"""
intervention_arbiter: decides who commands the robot each step, and filters every command.

The policy's proposal goes to the robot unless a person takes over with the SpaceMouse (all axes
or per axis, handed back after a quiet period). Every outgoing command passes the safety filter:
length and NaN/inf rejection, per-axis and per-step limits, the workspace box, a watchdog that
holds the robot when proposals or observations stop, and a latched e-stop. No input can take it
down: a bad message is rejected, counted and logged, and every shutdown ends with a stop command.
"""

from collections import Counter
import time
from typing import Callable, Optional

from geometry_msgs.msg import PoseStamped, Twist
from hilresrl_msgs.msg import (EpisodeEvent, ExecutedAction, InterventionState, Mode,
                               ProposedAction)
from hilresrl_policy.conversions import (bool_field, float32_field, ns_to_stamp,
                                         pose_to_array, stamp_to_ns)
from hilresrl_policy.corrections import CorrectionDescriber
from hilresrl_policy.node_runner import (ConfigurationError, run_node,
                                         wait_for_acknowledgements)
from hilresrl_policy.qos import COMMAND_QOS, EVENTS_QOS, LATCHED_QOS
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from .arbitration import ArbitrationResult, InterventionArbiter
from .command_interface import TwistInterface
from .command_output import CommandOutput, CommandSettings
from .safety import check_proposal, EStop, SafetyFilter, SafetyLimits, Watchdog
from .spacemouse import DeviceReading, SpaceMouseConfig, SpaceMouseMapper

# The spacenav driver and most devices publish reliable; best effort receives from either.
DEVICE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.BEST_EFFORT)
# A best-effort e-stop publisher matches no reliable subscription: the e-stop has one of each.
ESTOP_BEST_EFFORT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                   reliability=ReliabilityPolicy.BEST_EFFORT)
# How long the stop command sent at shutdown may wait for the robot side to acknowledge it.
STOP_ACKNOWLEDGEMENT_TIMEOUT_S = 1.0
MODES = (Mode.TRAIN, Mode.EVAL, Mode.PAUSE)


def _optional(values):
    """Return a list parameter, or None for the one-zero 'not set' value."""
    values = list(values)
    return None if values == [0.0] else values


class InterventionArbiterNode(Node):
    """Proposal + SpaceMouse -> arbitration -> safety filter -> robot command."""

    def __init__(self, **kwargs):
        super().__init__('intervention_arbiter', **kwargs)

        def parameter(name, default, description):
            return self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=True)).value

        self.action_names = list(parameter(
            'action_names', ['x', 'y', 'z', 'gripper'],
            'Names of the action axes, in order: x, y, z, roll, pitch, yaw, gripper'))
        self.action_dim = len(self.action_names)
        linear_speed = parameter('linear_speed_scale_mps', 0.1,
                                 'Twist speed (m/s) of a translation axis at action 1')
        angular_speed = parameter('angular_speed_scale_rps', 0.5,
                                  'Twist speed (rad/s) of a rotation axis at action 1')
        control_period_s = parameter('control_period_s', 0.1,
                                     'Seconds per control step (end-effector motion per step '
                                     'for the workspace check)')
        self.frame_id: str = parameter('command_frame_id', 'world',
                                       'Base frame of the commands and Cartesian targets')
        command = CommandSettings(
            interface=parameter('command_interface', 'servo_twist',
                                'What the robot takes: servo_twist (TwistStamped, MoveIt '
                                'Servo), cartesian_pose (PoseStamped target), '
                                'joint_trajectory (JointTrajectory), joint_forward '
                                '(Float64MultiArray positions)'),
            frame=parameter('command_frame', 'base',
                            'Frame the Cartesian action axes are in: base or tool'),
            base_frame_id=self.frame_id,
            tool_frame_id=parameter('tool_frame_id', 'tool0',
                                    'The tool (end-effector) frame, for command_frame tool'),
            period_s=control_period_s,
            joint_names=[n for n in parameter('joint_names', [''],
                                              'Joints of the joint-target interfaces, in the '
                                              "controller's order") if n],
            joint_speed_scale_rps=parameter('joint_speed_scale_rps', 0.5,
                                            'Joint speed (rad/s) of a joint axis at action 1'),
            joint_lower=_optional(parameter('joint_lower', [0.0],
                                            'Lower joint limits (one 0: none)')),
            joint_upper=_optional(parameter('joint_upper', [0.0],
                                            'Upper joint limits (one 0: none)')),
            gripper_interface=parameter('gripper.interface', 'float64_array',
                                        'Gripper command: float64_array (gripper/command), '
                                        'joint_trajectory, or none'),
            gripper_joint_names=[n for n in parameter(
                'gripper.joint_names', [''], 'Gripper joints, for gripper.interface '
                                             'joint_trajectory') if n],
            gripper_open_position=parameter('gripper.open_position', -1.0,
                                            'Gripper command for an open gripper (action -1)'),
            gripper_closed_position=parameter('gripper.closed_position', 1.0,
                                              'Gripper command for a closed gripper (action '
                                              '+1)'),
            ik_group=parameter('ik.group', 'manipulator', 'MoveIt planning group, for IK'),
            ik_tip_link=parameter('ik.tip_link', '', 'Link whose pose IK solves for'),
            ik_service=parameter('ik.service', '/compute_ik',
                                 "move_group's IK service, where moveit_py is missing"),
            ik_wait_s=parameter('ik.wait_s', 5.0, 'Seconds to wait for the IK service'))
        servo_start: str = parameter(
            'servo.start_service', '', "MoveIt Servo's start service to call at start-up "
                                       '(Humble: <servo>/start_servo, std_srvs/Trigger; empty: '
                                       'none)')
        servo_command_type: str = parameter(
            'servo.command_type_service', '', "MoveIt Servo's command-type switch (Jazzy and "
                                              'later: <servo>/switch_command_type, set to '
                                              'twist; empty: none)')
        servo_wait_s: float = parameter('servo.wait_s', 5.0,
                                        'Seconds to wait for the servo services at start-up')
        self.device_name: str = parameter('device_name', 'spacemouse',
                                          'Name of the human input device in the records')
        deadband = parameter('spacemouse.deadband', 0.1, 'Device deadband, on channel values')
        channels = list(parameter('spacemouse.channels', ['linear.x', 'linear.y', 'linear.z', ''],
                                  'Device channel driving each action axis (empty: none)'))
        scales = list(parameter('spacemouse.scales', [1.0, 1.0, 1.0, 1.0],
                                'Scale (and sign) from each channel to its action axis'))
        gripper_button = parameter('spacemouse.gripper_button', 0,
                                   'Joy button that toggles the gripper (-1: none)')
        takeover_button = parameter('spacemouse.takeover_button', -1,
                                    'Joy button held to take over without moving (-1: none)')
        per_axis = parameter('per_axis', False,
                             'Take over only the axes the person moves (else all axes)')
        quiet_period_s = parameter('quiet_period_s', 0.5,
                                   'Seconds of device rest before control returns to the policy')
        self.device_timeout_s: float = parameter(
            'spacemouse.timeout_s', 0.5, 'A device that published before and then sent nothing '
                                         'for this long (s, wall clock) is let go: its command '
                                         'goes to zero and control returns to the policy (0: off)')
        action_bound: float = parameter(
            'safety.action_bound', 1.0, 'Largest |value| of a proposed base or composed action; '
                                        'beyond it (or non-finite) the proposal is rejected and '
                                        'the robot holds, never clipped to full speed')
        max_abs_action = list(parameter('safety.max_abs_action', [1.0],
                                        'Largest |action| per axis (one value or one per axis)'))
        max_change = list(parameter('safety.max_action_change', [0.0],
                                    'Largest change of an axis per step (one value or one per '
                                    'axis; 0: no rate limit)'))
        workspace_min = list(parameter('safety.workspace_min', [0.0],
                                       'End-effector box minimum x, y, z (m); one 0: no box'))
        workspace_max = list(parameter('safety.workspace_max', [0.0],
                                       'End-effector box maximum x, y, z (m); one 0: no box'))
        self.watchdog_timeout_s: float = parameter(
            'watchdog_timeout_s', 0.5, 'Hold the robot when no proposal or end-effector pose '
                                       'arrived for this long (s, wall clock; 0: off)')
        ee_pose_reliability = parameter('observation_reliability', 'reliable',
                                        'QoS reliability of the ee_pose subscription')

        try:
            self.interface = TwistInterface(self.action_names, linear_speed, angular_speed,
                                            command.joint_names)
            gripper_axis = self.interface.gripper_axis
            cartesian = all(axis in self.action_names for axis in ('x', 'y', 'z'))
            if (workspace_min != [0.0] or workspace_max != [0.0]) and not cartesian:
                raise ValueError('the workspace box needs x, y, z action axes; with '
                                 'joint-space actions use joint_lower and joint_upper')
            self.mapper = SpaceMouseMapper(SpaceMouseConfig(
                deadband=deadband, channels=tuple(channels), scales=tuple(scales),
                gripper_axis=gripper_axis, gripper_button=gripper_button,
                takeover_button=takeover_button), self.action_dim)
            self.arbiter = InterventionArbiter(self.action_dim, per_axis, quiet_period_s,
                                               gripper_axis)
            self.safety = SafetyFilter(SafetyLimits(
                action_dim=self.action_dim,
                max_abs_action=max_abs_action[0] if len(max_abs_action) == 1
                else tuple(max_abs_action),
                max_action_change=None if max_change == [0.0]
                else (max_change[0] if len(max_change) == 1 else tuple(max_change)),
                workspace_min=None if workspace_min == [0.0] else tuple(workspace_min),
                workspace_max=None if workspace_max == [0.0] else tuple(workspace_max),
                translation_axes=tuple(self.action_names.index(a) for a in ('x', 'y', 'z'))
                if cartesian else None,
                translation_step_m=linear_speed * control_period_s,
                gripper_axis=gripper_axis))
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        if not action_bound > 0.0:
            raise ConfigurationError(f'safety.action_bound must be positive, got {action_bound}')
        self.action_bound = float(action_bound)

        self.watchdog = (Watchdog(self.watchdog_timeout_s, ('proposal', 'ee_pose'))
                         if self.watchdog_timeout_s > 0 else None)  # 0: off
        self.estop = EStop()
        self._mode = Mode.TRAIN
        self._episode_id = 0
        self._episode_running = False
        self._episodes_managed = False  # an episode manager has spoken: arm inside episodes only
        self._correction = ''
        self._ee_position: Optional[np.ndarray] = None
        self._latest_stamp_ns = 0
        self._robot_id = ''
        self._armed = False
        self._last_proposal: Optional[ProposedAction] = None
        self.device_messages = 0
        self.pose_messages = 0
        self._started_s = time.monotonic()
        self._ee_pose_s: Optional[float] = None  # when the last valid pose arrived (monotonic)
        self._device_seen_s = {}  # device topic -> when its last valid sample arrived
        self._device_stale = False
        self.rejected_inputs: Counter = Counter()  # topic -> messages refused
        self.callback_errors: Counter = Counter()  # callback -> unexpected exceptions
        self._stopped = False

        command.workspace_min = None if workspace_min == [0.0] else workspace_min
        command.workspace_max = None if workspace_max == [0.0] else workspace_max
        self.command_frame = command.frame
        self._ee_orientation: Optional[np.ndarray] = None
        self.output = CommandOutput(self, command, self.interface, self.action_names)
        try:  # talk-and-tweak needs Cartesian axes; joint-space actions have no words here
            self.corrections: Optional[CorrectionDescriber] = CorrectionDescriber(
                self.action_names, linear_speed, angular_speed, control_period_s)
        except ValueError:
            self.corrections = None
        self._needs_orientation = (command.interface != 'servo_twist'
                                   or self.command_frame == 'tool')
        self._correction_pub = self.create_publisher(String, 'correction', COMMAND_QOS)
        guard = self._guarded
        if self.output.needs_joint_states:
            self.create_subscription(JointState, 'joint_states',
                                     guard('joint_states', self._on_joint_states),
                                     QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE
                                                if ee_pose_reliability == 'reliable'
                                                else ReliabilityPolicy.BEST_EFFORT))
        self._start_servo(servo_start, servo_command_type, servo_wait_s)
        self._executed_pub = self.create_publisher(ExecutedAction, 'executed_action',
                                                   COMMAND_QOS)
        self._state_pub = self.create_publisher(InterventionState, 'intervention_state',
                                                COMMAND_QOS)
        self._events_pub = self.create_publisher(EpisodeEvent, 'episode_events', EVENTS_QOS)
        self.create_subscription(ProposedAction, 'proposed_action',
                                 guard('proposed_action', self._on_proposal), COMMAND_QOS)
        self.create_subscription(Twist, 'spacenav/twist',
                                 guard('spacenav/twist', self._on_device_twist), DEVICE_QOS)
        self.create_subscription(Joy, 'spacenav/joy', guard('spacenav/joy', self._on_device_joy),
                                 DEVICE_QOS)
        self.create_subscription(PoseStamped, 'ee_pose', guard('ee_pose', self._on_ee_pose),
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE
                                            if ee_pose_reliability == 'reliable'
                                            else ReliabilityPolicy.BEST_EFFORT))
        self.create_subscription(Mode, 'mode', guard('mode', self._on_mode), LATCHED_QOS)
        self.create_subscription(EpisodeEvent, 'episode_events',
                                 guard('episode_events', self._on_event), EVENTS_QOS)
        estop = guard('estop', self._on_estop_topic)
        self.create_subscription(Bool, 'estop', estop, COMMAND_QOS)
        self.create_subscription(Bool, 'estop', estop, ESTOP_BEST_EFFORT_QOS)
        self.create_service(Trigger, 'estop', guard('estop service', self._on_estop_service))
        self.create_service(Trigger, 'release_estop',
                            guard('release_estop service', self._on_release_service))
        if self.watchdog_timeout_s > 0:
            on_timer = guard('watchdog timer', self._on_watchdog_timer)
            # A lambda without arguments: newer rclpy passes TimerInfo to callbacks taking any.
            self.create_timer(1.0 / max(1.0 / control_period_s, 10.0), lambda: on_timer())

    @property
    def episode_running(self) -> bool:
        """Return whether an episode has started and not ended, by the episode events."""
        return self._episode_running

    @property
    def ee_position(self) -> Optional[np.ndarray]:
        """Return the last measured end-effector position (m), if any."""
        return self._ee_position

    # --- inputs --------------------------------------------------------------------------
    def _guarded(self, name: str, callback: Callable) -> Callable:
        """Wrap a callback so that nothing it raises reaches the executor (the last defence)."""
        def guarded(*args):
            try:
                return callback(*args)
            except Exception as error:  # noqa: B902 (whatever it is, the arbiter stays up)
                self._on_callback_error(name, error)
                return args[-1] if len(args) == 2 else None  # a service's response
        return guarded

    def _on_callback_error(self, name: str, error: Exception) -> None:
        self.callback_errors[name] += 1
        if self.callback_errors[name] == 1:  # once per callback; the counter has the rest
            self.get_logger().error(f'{name}: unexpected {type(error).__name__}: {error}; '
                                    'holding the robot')
        try:
            self._hold(self._latest_stamp_ns, f'internal error in {name}')
        except Exception:  # noqa: B902 (holding failed too: the watchdog timer tries again)
            pass

    def _reject_input(self, topic: str, reason: str) -> None:
        self.rejected_inputs[topic] += 1
        self.get_logger().error(f'{topic} refused ({reason}); {self.rejected_inputs[topic]} so '
                                'far', throttle_duration_sec=2.0)

    def _on_device_twist(self, message: Twist) -> None:
        self.device_messages += 1
        try:
            self.mapper.update_twist((message.linear.x, message.linear.y, message.linear.z),
                                     (message.angular.x, message.angular.y, message.angular.z))
        except ValueError as error:  # the sample is dropped: the person's command goes to 0
            self.mapper.clear()
            self._reject_input('spacenav/twist', str(error))
            return
        self._device_seen_s['spacenav/twist'] = time.monotonic()

    def _on_device_joy(self, message: Joy) -> None:
        try:
            self.mapper.update_buttons(message.buttons)
        except ValueError as error:
            self.mapper.clear()
            self._reject_input('spacenav/joy', str(error))
            return
        self._device_seen_s['spacenav/joy'] = time.monotonic()

    def _on_ee_pose(self, message: PoseStamped) -> None:
        pose = pose_to_array(message).astype(np.float64)
        if not np.all(np.isfinite(pose)):  # treated as no pose: the last one goes stale
            self._reject_input('ee_pose', 'non-finite value')
            return
        if self._needs_orientation and not np.linalg.norm(pose[3:]) > 1e-6:
            self._reject_input('ee_pose', 'orientation is not a rotation (zero quaternion)')
            return
        self.pose_messages += 1
        self._ee_pose_s = time.monotonic()
        self._ee_position, self._ee_orientation = pose[:3], pose[3:]
        self.output.update_pose(pose[:3], pose[3:], stamp_to_ns(message.header.stamp))
        self._latest_stamp_ns = max(self._latest_stamp_ns, stamp_to_ns(message.header.stamp))
        if self.watchdog is not None:
            self.watchdog.feed('ee_pose', self._ee_pose_s)

    def _on_joint_states(self, message: JointState) -> None:
        if len(message.name) != len(message.position):
            self._reject_input('joint_states', f'{len(message.name)} names but '
                                               f'{len(message.position)} positions')
            return
        if not np.all(np.isfinite(np.asarray(message.position, dtype=np.float64))):
            self._reject_input('joint_states', 'non-finite position')
            return
        self.output.update_joints(message.name, message.position)

    def _on_mode(self, message: Mode) -> None:
        if message.value not in MODES:
            self._reject_input('mode', f'unknown mode {message.value}; keeping the current one')
            return
        self._mode = message.value

    def _on_event(self, event: EpisodeEvent) -> None:
        if event.event == EpisodeEvent.EPISODE_START:
            self._episode_id, self._episode_running = event.episode_id, True
            self._episodes_managed = True
            self._robot_id = event.robot_id
            self.safety.reset()
        elif event.event == EpisodeEvent.EPISODE_END:
            self._episode_running = self._armed = False
            self._episodes_managed = True
            # Between episodes a cell may go quiet (a lockstep simulator idles until its
            # reset, a learner that lags holds the next episode back): no alarm for that; the
            # next proposal of an episode arms the watchdog again.

    # --- one control step ----------------------------------------------------------------
    def _on_proposal(self, proposal: ProposedAction) -> None:
        now_s = time.monotonic()
        if self.watchdog is not None:
            self.watchdog.feed('proposal', now_s)
        self._last_proposal = proposal
        # The last proposal of an episode can arrive after its end event (another topic):
        # where episodes are managed, only a proposal inside one arms the watchdog.
        self._armed = self._episode_running or not self._episodes_managed
        stamp_ns = stamp_to_ns(proposal.header.stamp)
        self._latest_stamp_ns = max(self._latest_stamp_ns, stamp_ns)
        if self.estop.active:
            self._hold(stamp_ns, f'e-stop: {self.estop.reason}', proposal)
            return
        if self._mode == Mode.PAUSE:
            return  # the watchdog timer holds the robot while paused
        problem = check_proposal(proposal.base_action, proposal.composed_action,
                                 proposal.residual, self.action_dim, self.action_bound)
        if problem:
            self._reject(stamp_ns, problem, proposal)
            return
        stale_pose = self._stale_pose(now_s)
        if stale_pose:  # never checked against an old pose: the arm may have moved since
            self.get_logger().warning(f'{stale_pose}: holding the robot',
                                      throttle_duration_sec=2.0)
            self._hold(stamp_ns, stale_pose, proposal)
            return
        composed = np.asarray(proposal.composed_action, dtype=np.float64)
        device_fresh = self._device_fresh(now_s)
        timed_out = not device_fresh and self.arbiter.active
        reading = (self.mapper.reading() if device_fresh
                   else DeviceReading.idle(self.action_dim))
        allowed = self._mode == Mode.TRAIN and device_fresh
        decision = self.arbiter.arbitrate(stamp_ns * 1e-9, composed, reading, allowed)
        self._correction = self._describe_correction(decision, proposal)
        if decision.started or decision.ended:
            detail = f'segment {decision.segment_id}'
            if decision.ended and timed_out:
                detail += (f': device timeout (nothing from the {self.device_name} for '
                           f'{self.device_timeout_s:g} s)')
            elif decision.ended and self._correction:
                detail += f': {self._correction}'
            self._publish_event(EpisodeEvent.INTERVENTION_START if decision.started
                                else EpisodeEvent.INTERVENTION_END, detail)
        if timed_out:  # the person's last command is no reference for the policy's first
            self.safety.hold()
        verdict = self.safety.filter(decision.executed, self._ee_position,
                                     self._ee_orientation if self.command_frame == 'tool'
                                     else None)
        if verdict.rejected:
            self._reject(stamp_ns, verdict.reason, proposal)
            return
        if verdict.limited:
            self.get_logger().warning('command limited: ' + ', '.join(verdict.limits_applied),
                                      throttle_duration_sec=5.0)
        self._send(stamp_ns, verdict.command)
        self._publish_executed(stamp_ns, verdict.command, proposal, decision,
                               limited=verdict.limited)
        self._publish_state(decision)

    def _stale_pose(self, now_s: float) -> str:
        """Return why the end-effector pose is too old to check a command against ('' if not)."""
        if self.watchdog_timeout_s <= 0:
            return ''
        if self._ee_pose_s is None:  # as the watchdog: a pose gets the timeout to connect
            if now_s - self._started_s > self.watchdog_timeout_s:
                return f'no end-effector pose after {self.watchdog_timeout_s:g} s'
            return ''
        age_s = now_s - self._ee_pose_s
        if age_s > self.watchdog_timeout_s:
            return f'stale end-effector pose ({age_s:.2f} s old)'
        return ''

    def _device_fresh(self, now_s: float) -> bool:
        """Whether every device topic that has published did so within spacemouse.timeout_s."""
        if self.device_timeout_s <= 0:
            return True
        stale = sorted(topic for topic, seen_s in self._device_seen_s.items()
                       if now_s - seen_s > self.device_timeout_s)
        if stale and not self._device_stale:
            self.mapper.clear()  # as if let go: no stale deflection or button drives anything
            self.get_logger().warning(
                f'{self.device_name}: nothing on {", ".join(stale)} for '
                f'{self.device_timeout_s:g} s: its command is zero, the policy commands')
        elif not stale and self._device_stale:
            self.get_logger().info(f'{self.device_name} is back')
        self._device_stale = bool(stale)
        return not stale

    def _describe_correction(self, decision: ArbitrationResult,
                             proposal: ProposedAction) -> str:
        """Talk-and-tweak: the correction of the segment so far, in words (published live)."""
        if self.corrections is None:
            return ''
        if decision.started:
            self.corrections.start()
        if decision.active:
            # What the person changed: only the axes in their hands (the executed action has
            # the policy's values on the others).
            self.corrections.add(decision.executed, np.asarray(proposal.base_action
                                                               or proposal.composed_action))
            command = self.corrections.command()
            self._correction_pub.publish(String(data=command))
            return command
        if decision.ended:
            command = self.corrections.finish()
            self._correction_pub.publish(String(data=command))
            return command
        return ''

    def _on_watchdog_timer(self) -> None:
        if not self._armed:
            return  # nothing commanded yet: there is no motion to stop
        status = self.watchdog.check(time.monotonic())
        for source in status.became_stale:
            self.get_logger().error(f'watchdog: no {source} for {self.watchdog_timeout_s} s, '
                                    'holding the robot')
            self._publish_event(EpisodeEvent.WATCHDOG_HOLD, f'no {source}')
        for source in status.recovered:
            self.get_logger().info(f'watchdog: {source} is back')
        if self.estop.active:
            self._hold(self._latest_stamp_ns, f'e-stop: {self.estop.reason}')
        elif self._mode == Mode.PAUSE:
            self._hold(self._latest_stamp_ns, 'paused')
        elif not status.ok:
            self._hold(self._latest_stamp_ns, 'watchdog: no ' + ', '.join(status.stale))

    # --- outputs -------------------------------------------------------------------------
    def _send(self, stamp_ns: int, command: np.ndarray) -> None:
        problem = self.output.send(stamp_ns, command)
        if problem:
            self.get_logger().warning(f'no command sent: {problem}', throttle_duration_sec=5.0)

    def _start_servo(self, start_service: str, command_type_service: str, wait_s: float) -> None:
        """Start MoveIt Servo where its services are configured; refuse if it is not there."""
        if start_service:  # Humble: a std_srvs/Trigger
            client = self.create_client(Trigger, start_service)
            if not client.wait_for_service(timeout_sec=wait_s):
                raise ConfigurationError(f'MoveIt Servo is not there: no {start_service} '
                                         f'service after {wait_s:g} s (is servo_node running? '
                                         'empty servo.start_service: do not start it)')
            client.call_async(Trigger.Request()).add_done_callback(
                lambda done: self._servo_started(start_service, done.result()))
        if command_type_service:  # Jazzy and later: moveit_msgs/srv/ServoCommandType
            try:
                from moveit_msgs.srv import ServoCommandType
            except ImportError:
                raise ConfigurationError(
                    'servo.command_type_service needs moveit_msgs (ServoCommandType), which '
                    'is not installed: install MoveIt 2 or leave the parameter empty') from None
            client = self.create_client(ServoCommandType, command_type_service)
            if not client.wait_for_service(timeout_sec=wait_s):
                raise ConfigurationError(f'MoveIt Servo is not there: no '
                                         f'{command_type_service} service after {wait_s:g} s')
            request = ServoCommandType.Request(command_type=ServoCommandType.Request.TWIST)
            client.call_async(request).add_done_callback(
                lambda done: self._servo_started(command_type_service, done.result()))

    def _servo_started(self, service: str, response) -> None:
        if response is not None and response.success:
            self.get_logger().info(f'MoveIt Servo ready ({service})')
        else:
            self.get_logger().error(f'MoveIt Servo refused {service}: '
                                    f'{getattr(response, "message", "no response")}')

    def _hold(self, stamp_ns: int, reason: str, proposal: ProposedAction = None) -> None:
        command = self.safety.hold()  # the next command starts from rest
        self._send(stamp_ns, command)
        # A hold the policy did not ask for (watchdog, e-stop) still records what the policy
        # last proposed, so that the step it becomes has a base action to learn from.
        self._publish_executed(stamp_ns, command, proposal or self._last_proposal, None,
                               held=True, reason=reason)

    def _reject(self, stamp_ns: int, reason: str, proposal: ProposedAction) -> None:
        self.get_logger().error(f'command rejected ({reason}): holding the robot',
                                throttle_duration_sec=2.0)
        self._publish_event(EpisodeEvent.COMMAND_REJECTED, reason)
        self._hold(stamp_ns, f'rejected: {reason}', proposal)

    def _publish_executed(self, stamp_ns: int, command: np.ndarray,
                          proposal: Optional[ProposedAction],
                          decision: Optional[ArbitrationResult], limited: bool = False,
                          held: bool = False, reason: str = '') -> None:
        message = ExecutedAction(executed_action=float32_field(command),
                                 safety_limited=limited, held=held, hold_reason=reason)
        message.header.stamp = ns_to_stamp(stamp_ns)
        message.header.frame_id = self.frame_id
        if proposal is not None:
            message.step = proposal.step
            message.base_action = proposal.base_action
            message.residual = proposal.residual
            message.residual_scale = proposal.residual_scale
            message.weights_version = proposal.weights_version
            message.latent = proposal.latent
            message.latent_condition = proposal.latent_condition
            message.latent_weights_version = proposal.latent_weights_version
        if decision is not None and (decision.active or decision.ended):
            message.correction = self._correction
        if decision is not None and decision.active:
            message.intervened = True
            message.intervened_axes = bool_field(decision.intervened_axes)
            message.human_action = float32_field(decision.human_action)
            message.device = self.device_name
        self._executed_pub.publish(message)

    def _publish_state(self, decision: ArbitrationResult) -> None:
        message = InterventionState(active=decision.active, segment_id=decision.segment_id,
                                    active_duration_s=decision.active_duration_s)
        message.header.stamp = ns_to_stamp(self._latest_stamp_ns)
        if decision.active:
            message.axis_mask = bool_field(decision.intervened_axes)
            message.human_action = float32_field(decision.human_action)
            message.device = self.device_name
            message.correction = self._correction
        self._state_pub.publish(message)

    def _publish_event(self, event: int, detail: str) -> None:
        message = EpisodeEvent(robot_id=self._robot_id, event=event, detail=detail,
                               episode_id=self._episode_id if self._episode_running else 0)
        message.header.stamp = ns_to_stamp(self._latest_stamp_ns)
        message.mode.value = self._mode
        self._events_pub.publish(message)

    # --- e-stop --------------------------------------------------------------------------
    def _on_estop_topic(self, message: Bool) -> None:
        if message.data:
            self._trigger_estop('estop topic')

    def _on_estop_service(self, request, response):
        response.success = True
        response.message = ('e-stop latched' if self._trigger_estop('estop service')
                            else f'e-stop already latched ({self.estop.reason})')
        return response

    def _on_release_service(self, request, response):
        response.success = self.estop.release()
        response.message = 'e-stop released' if response.success else 'e-stop was not active'
        if response.success:
            self.safety.reset()
            self.get_logger().warning('e-stop released')
            self._publish_event(EpisodeEvent.SAFETY_RELEASE, 'released')
        return response

    def _trigger_estop(self, source: str) -> bool:
        if not self.estop.trigger(source):
            return False
        self.get_logger().error(f'e-stop latched by {source}: holding until release_estop')
        self._publish_event(EpisodeEvent.SAFETY_STOP, source)
        self._hold(self._latest_stamp_ns, f'e-stop: {source}')
        return True

    # --- shutdown ------------------------------------------------------------------------
    def send_stop(self) -> bool:
        """Send the stop command (hold still, gripper kept) and wait for its acknowledgement."""
        if self._stopped or not self.context.ok():
            return False
        self._stopped = True
        problem = self.output.stop(self._latest_stamp_ns, self.safety.hold())
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
