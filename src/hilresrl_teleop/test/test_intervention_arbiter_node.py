"""
intervention_arbiter over DDS: takeover and hand-back, safety rejections, watchdog, e-stop.

The fault tests at the end feed it what a broken device, a stopped node or a forged message
would send; the probe is the witness of what went out.
"""

import importlib.util
import itertools
import math
import os
import signal
import time

from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from hilresrl_common.conversions import float32_field, ns_to_stamp
from hilresrl_common.qos import COMMAND_QOS, EVENTS_QOS, LATCHED_QOS
from hilresrl_msgs.msg import (EpisodeEvent, ExecutedAction, InterventionState, Mode,
                               ProposedAction)
from hilresrl_teleop.intervention_arbiter_node import InterventionArbiterNode
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger

POLICY = [0.2, 0.3, -0.1, -1.0]


@pytest.fixture
def make_arbiter(ros_context, probe):

    def make(**overrides):
        settings = {'quiet_period_s': 0.3, 'watchdog_timeout_s': 0.3,
                    'safety.workspace_min': [-1.0, -1.0, 0.0],
                    'safety.workspace_max': [1.0, 1.0, 1.0], **overrides}
        node = InterventionArbiterNode(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in settings.items()])
        probe.spin(node)
        return Cell(probe, node)

    return make


class Cell:
    """The probe's side: proposals, device input and the end-effector pose in; records out."""

    def __init__(self, probe, arbiter):
        self.probe, self.arbiter = probe, arbiter
        self.executed, self.states, self.events, self.twists = [], [], [], []
        self.grippers = []
        node = probe.node
        self.proposals = node.create_publisher(ProposedAction, 'proposed_action', COMMAND_QOS)
        self.episode_events = node.create_publisher(EpisodeEvent, 'episode_events', EVENTS_QOS)
        self.device = node.create_publisher(Twist, 'spacenav/twist', 10)
        self.pose = node.create_publisher(PoseStamped, 'ee_pose', 10)
        node.create_subscription(ExecutedAction, 'executed_action', self.executed.append,
                                 COMMAND_QOS)
        node.create_subscription(InterventionState, 'intervention_state', self.states.append,
                                 COMMAND_QOS)
        node.create_subscription(EpisodeEvent, 'episode_events', self.events.append, EVENTS_QOS)
        node.create_subscription(TwistStamped, 'servo/delta_twist_cmds', self.twists.append,
                                 COMMAND_QOS)
        node.create_subscription(Float64MultiArray, 'gripper/command', self.grippers.append,
                                 COMMAND_QOS)
        probe.wait_for(lambda: self.proposals.get_subscription_count() == 1
                       and self.device.get_subscription_count() == 1
                       and len(node.get_publishers_info_by_topic('executed_action')) == 1,
                       message='the arbiter')
        self.move_to([0.0, 0.0, 0.5])

    def move_to(self, position):
        self.position = list(position)
        self.measure()
        self.probe.wait_for(lambda: self.arbiter.ee_position is not None and np.allclose(
            self.arbiter.ee_position, position), message='the end-effector pose')

    def announce(self, kind: int, episode_id: int = 3) -> None:
        """Publish an episode's start or end, as the episode manager does; wait until taken."""
        self.probe.wait_for(lambda: self.episode_events.get_subscription_count() >= 2,
                            message="the arbiter's episode_events subscription")  # and ours
        self.episode_events.publish(EpisodeEvent(event=kind, robot_id='robot1',
                                                 episode_id=episode_id))
        running = kind == EpisodeEvent.EPISODE_START
        self.probe.wait_for(lambda: self.arbiter.core.episode_id == (episode_id if running
                                                                     else 0), message='event')

    def state(self, k: int) -> InterventionState:
        """Return the intervention state published after step k."""
        def published():
            return next((s for s in self.states if s.header.stamp.nanosec == k * 100_000_000
                         and s.header.stamp.sec == 0), None)
        self.probe.wait_for(lambda: published() is not None, message=f'state {k}')
        return published()

    def measure(self):
        """Publish the end-effector pose again (a cell measures it every step)."""
        message = PoseStamped()
        (message.pose.position.x, message.pose.position.y,
         message.pose.position.z) = self.position
        message.pose.orientation.w = 1.0
        count = self.arbiter.pose_messages
        self.pose.publish(message)
        self.probe.wait_for(lambda: self.arbiter.pose_messages > count, message='the pose')

    def publish_refused_poses(self, pose: PoseStamped, seconds: float = 0.5) -> None:
        """Publish a pose the arbiter refuses, again and again, as a driver would."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            refused = self.arbiter.rejected_inputs['ee_pose']
            self.pose.publish(pose)
            self.probe.wait_for(lambda: self.arbiter.rejected_inputs['ee_pose'] > refused,
                                message='the pose refused')

    def hand(self, x=0.0, y=0.0, z=0.0):
        message = Twist()
        message.linear.x, message.linear.y, message.linear.z = x, y, z
        count = self.arbiter.device_messages
        self.device.publish(message)
        self.probe.wait_for(lambda: self.arbiter.device_messages > count, message='the hand')

    def propose(self, k: int, action=POLICY, base_action=None,
                measure: bool = True) -> ExecutedAction:
        if measure:  # the pose of this step first, as a cell publishes it
            self.measure()
        message = ProposedAction(step=k, composed_action=float32_field(action),
                                 base_action=float32_field(action if base_action is None
                                                           else base_action),
                                 weights_version=7)
        message.header.stamp = ns_to_stamp(k * 100_000_000)
        count = len(self.executed)
        self.proposals.publish(message)

        def answer():  # the watchdog timer's holds carry the last proposal's step too
            return next((e for e in self.executed[count:] if e.step == k
                         and not e.hold_reason.startswith('watchdog')), None)
        self.probe.wait_for(lambda: answer() is not None, message=f'command {k}')
        return answer()


def _values(field):
    return np.asarray(field, dtype=np.float64).tolist()


def test_policy_commands_pass_through(make_arbiter):
    cell = make_arbiter()
    executed = cell.propose(1)
    assert _values(executed.executed_action) == pytest.approx(POLICY)
    assert not executed.intervened and not executed.held and executed.weights_version == 7
    cell.probe.wait_for(lambda: cell.twists and cell.grippers, message='robot commands')
    assert cell.twists[-1].twist.linear.x == pytest.approx(0.2 * 0.1)  # 0.1 m/s at action 1
    assert cell.twists[-1].header.stamp.nanosec == 100_000_000
    assert cell.grippers[-1].data.tolist() == [-1.0]


def test_takeover_within_one_step_and_hand_back_after_the_quiet_period(make_arbiter):
    cell = make_arbiter()
    cell.propose(1)
    cell.hand(x=0.55)  # 0.5 after the 0.1 deadband
    executed = cell.propose(2)
    assert executed.intervened and _values(executed.intervened_axes) == [True] * 4
    assert _values(executed.executed_action) == pytest.approx([0.5, 0.0, 0.0, -1.0])
    assert _values(executed.human_action)[0] == pytest.approx(0.5)
    assert _values(executed.base_action) == pytest.approx(POLICY)
    cell.probe.wait_for(lambda: cell.states and cell.states[-1].active, message='state')
    cell.hand()  # hands off at t=0.2 s
    for k in (3, 4):  # 0.1, 0.2 s quiet: the policy commands, the segment goes on
        quiet = cell.propose(k)
        assert not quiet.intervened and not len(quiet.human_action) and not quiet.correction
        assert _values(quiet.executed_action) == pytest.approx(POLICY)
        state = cell.state(k)
        assert state.active and state.segment_id == 1
        assert not len(state.axis_mask) and not len(state.human_action)
    back = cell.propose(5)  # 0.3 s quiet: the segment ends
    assert not back.intervened
    assert _values(back.executed_action) == pytest.approx(POLICY)
    cell.probe.wait_for(lambda: [e.event for e in cell.events] == [
        EpisodeEvent.INTERVENTION_START, EpisodeEvent.INTERVENTION_END], message='events')
    assert not cell.state(5).active


def test_a_correction_is_put_into_words_while_it_happens(make_arbiter):
    cell = make_arbiter(per_axis=True)
    words = []
    cell.probe.node.create_subscription(String, 'correction', words.append, COMMAND_QOS)
    cell.hand(y=1.0)  # the policy says y 0.3: the person pushes left, 0.07 m/s faster
    executed = [cell.propose(k) for k in range(1, 4)]
    assert [e.correction for e in executed] == ['move left 1 cm', 'move left 1 cm',
                                                'move left 2 cm']  # 0.7, 1.4, 2.1 cm
    cell.probe.wait_for(lambda: len(words) >= 3, message='the words on the topic')
    assert words[-1].data == 'move left 2 cm'
    assert cell.states[-1].correction == 'move left 2 cm'
    cell.hand()  # the person lets go: the policy moves on
    for k in range(4, 8):  # quiet period, then the hand-back carries the final words
        assert not cell.propose(k).correction  # the policy's steps: none of the person's words
    cell.probe.wait_for(lambda: any(e.event == EpisodeEvent.INTERVENTION_END
                                    for e in cell.events), message='the hand-back')
    end = next(e for e in cell.events if e.event == EpisodeEvent.INTERVENTION_END)
    assert end.detail == 'segment 1: move left 2 cm'  # the person's 2.1 cm, the quiet steps none


def test_per_axis_takeover_mixes_human_and_policy(make_arbiter):
    cell = make_arbiter(per_axis=True)
    cell.hand(y=-0.55)
    executed = cell.propose(1)
    assert _values(executed.intervened_axes) == [False, True, False, False]
    assert _values(executed.executed_action) == pytest.approx([0.2, -0.5, -0.1, -1.0])


def test_bad_commands_are_rejected_and_the_cell_keeps_running(make_arbiter):
    cell = make_arbiter()
    for k, action, reason in ((1, [np.nan, 0, 0, 0], 'non-finite value in axis 0'),
                              (2, [0.1, 0.1, np.inf, 0], 'non-finite value in axis 2'),
                              (3, [0.1, 0.1, 0.1], 'expected 4 values, got 3')):
        executed = cell.propose(k, action)
        assert executed.held and reason in executed.hold_reason
        assert _values(executed.executed_action) == [0.0] * 4
    cell.probe.wait_for(lambda: sum(e.event == EpisodeEvent.COMMAND_REJECTED
                                    for e in cell.events) == 3, message='rejection events')
    cell.move_to([0.999, 0.0, 0.5])  # at the workspace's +x face
    limited = cell.propose(4, [1.0, 0.5, 0.0, 1.0])
    assert limited.safety_limited and not limited.held
    # 1 mm left to the face, and action 1 moves 1 cm a step
    assert _values(limited.executed_action)[0] == pytest.approx(0.1, abs=1e-4)
    cell.move_to([0.0, 0.0, 0.5])
    assert _values(cell.propose(5, POLICY).executed_action) == pytest.approx(POLICY)


def test_watchdog_holds_when_proposals_stop(make_arbiter):
    cell = make_arbiter()
    cell.propose(1)
    count = len(cell.executed)
    cell.probe.wait_for(lambda: any(e.held and 'watchdog' in e.hold_reason
                                    for e in cell.executed[count:]), 5.0, 'a watchdog hold')
    held = next(e for e in cell.executed[count:] if e.held)
    assert _values(held.executed_action) == [0.0, 0.0, 0.0, -1.0]  # gripper kept
    cell.probe.wait_for(lambda: any(e.event == EpisodeEvent.WATCHDOG_HOLD for e in cell.events),
                        message='watchdog event')


def test_an_episode_that_ends_mid_correction_leaves_the_next_to_the_policy(make_arbiter):
    # Quiet period 0.3 s (three steps); the device never times out and the watchdog waits
    # 5 s, so only the episode start can end the segment.
    cell = make_arbiter(**{'spacemouse.timeout_s': 0.0, 'watchdog_timeout_s': 5.0})
    cell.announce(EpisodeEvent.EPISODE_START, 1)
    cell.hand(x=0.55)
    assert cell.propose(1).intervened  # the device still deflected as the episode ends
    cell.announce(EpisodeEvent.EPISODE_END, 1)
    cell.hand()  # released between the episodes
    cell.announce(EpisodeEvent.EPISODE_START, 2)
    cell.probe.wait_for(lambda: any(e.event == EpisodeEvent.INTERVENTION_END
                                    for e in cell.events), message='the segment to end')
    end = next(e for e in cell.events if e.event == EpisodeEvent.INTERVENTION_END)
    assert (end.detail, end.episode_id) == ('segment 1: episode start', 2)
    first = cell.propose(2)  # 0.1 s after the last input: the old segment's quiet period
    assert not first.intervened and not len(first.human_action)
    assert _values(first.executed_action) == pytest.approx(POLICY)
    assert not cell.state(2).active  # no segment carried over into the new episode


def test_a_proposal_after_the_episode_end_raises_no_alarm_while_the_cell_idles(make_arbiter):
    cell = make_arbiter()
    cell.announce(EpisodeEvent.EPISODE_START)
    cell.propose(1)
    cell.announce(EpisodeEvent.EPISODE_END)
    cell.propose(2)  # the episode's last proposal, delivered after its end event
    executed, alarms = len(cell.executed), len(cell.events)
    # The cell idles between episodes for five watchdog timeouts (0.3 s): no hold, no alarm.
    idle_until = time.monotonic() + 1.5
    cell.probe.wait_for(lambda: time.monotonic() > idle_until, 10.0, 'the idle period')
    assert not any(e.held for e in cell.executed[executed:])
    assert not any(e.event == EpisodeEvent.WATCHDOG_HOLD for e in cell.events[alarms:])
    cell.announce(EpisodeEvent.EPISODE_START)  # inside an episode the watchdog is armed
    cell.propose(3)
    executed = len(cell.executed)
    cell.probe.wait_for(lambda: any(e.held and 'watchdog' in e.hold_reason
                                    for e in cell.executed[executed:]), 5.0,
                        'a watchdog hold inside the next episode')


def test_estop_latches_until_released(make_arbiter):
    cell = make_arbiter()
    assert cell.probe.call(Trigger, 'estop', Trigger.Request()).success
    for k in (1, 2):
        executed = cell.propose(k)
        assert executed.held and executed.hold_reason.startswith('e-stop')
    release = cell.probe.call(Trigger, 'release_estop', Trigger.Request())
    assert release.success and release.message == 'e-stop released'
    assert not cell.propose(3).held


# --- faults ---------------------------------------------------------------------------------
STILL = [0.0, 0.0, 0.0, -1.0]  # the policy proposes no motion, gripper open


def _wait_s(cell: Cell, seconds: float) -> None:
    """Let wall-clock time pass (what a timeout is about), spinning the probe meanwhile."""
    until = time.monotonic() + seconds
    cell.probe.wait_for(lambda: time.monotonic() > until, seconds + 30.0, 'time to pass')


def test_a_nan_device_sample_is_dropped_and_the_arbiter_stays_up(make_arbiter):
    cell = make_arbiter()
    cell.hand(x=0.55)
    assert _values(cell.propose(1, STILL).executed_action)[0] == pytest.approx(0.5)
    cell.hand(x=math.nan)  # the old arbiter raised here, in its callback, and died
    for k in (2, 3):  # the person's command went to zero; the arbiter keeps answering
        executed = cell.propose(k, STILL)
        assert np.all(np.isfinite(_values(executed.executed_action)))
        assert _values(executed.executed_action) == pytest.approx(STILL)
    cell.hand(x=1e9)  # absurd values are refused the same way
    assert _values(cell.propose(4, STILL).executed_action) == pytest.approx(STILL)
    cell.probe.wait_for(lambda: len(cell.twists) >= 4, message='the twists')
    assert all(math.isfinite(t.twist.linear.x) and abs(t.twist.linear.x) <= 0.1
               for t in cell.twists)
    assert cell.arbiter.rejected_inputs['spacenav/twist'] == 2


def test_a_silent_device_lets_go_after_its_timeout(make_arbiter):
    cell = make_arbiter(**{'spacemouse.timeout_s': 0.5, 'watchdog_timeout_s': 5.0})
    cell.hand(x=0.9)  # one sample, then the device says nothing more
    first = cell.propose(1, STILL)
    assert first.intervened and _values(first.executed_action)[0] == pytest.approx(0.8889,
                                                                                   abs=1e-3)
    _wait_s(cell, 0.8)
    for k in (2, 3, 4):  # the policy commands again: proposal 0 -> executed 0
        executed = cell.propose(k, STILL)
        assert not executed.intervened and not executed.held
        assert _values(executed.executed_action) == pytest.approx(STILL)
    cell.probe.wait_for(lambda: any(e.event == EpisodeEvent.INTERVENTION_END
                                    and 'device timeout' in e.detail for e in cell.events),
                        message='the hand-back naming the device timeout')


def test_the_first_command_after_a_rejection_is_limited_from_rest(make_arbiter):
    cell = make_arbiter(**{'safety.max_action_change': [0.5]})
    assert _values(cell.propose(1, [0.5, 0, 0, -1]).executed_action)[0] == pytest.approx(0.5)
    assert _values(cell.propose(2, [1.0, 0, 0, -1]).executed_action)[0] == pytest.approx(1.0)
    assert cell.propose(3, [1.0, 0, 0]).held  # wrong length: rejected, the robot holds
    # From rest and in the proposed direction (the old limiter went from 1.0 to +0.5).
    after = cell.propose(4, [-1.0, 0, 0, -1])
    assert _values(after.executed_action) == pytest.approx([-0.5, 0, 0, -1])


def test_the_first_command_after_a_watchdog_hold_is_limited_from_rest(make_arbiter):
    cell = make_arbiter(**{'safety.max_action_change': [0.5]})
    cell.propose(1, [0.5, 0, 0, -1])
    cell.propose(2, [1.0, 0, 0, -1])
    count = len(cell.executed)
    cell.probe.wait_for(lambda: any(e.held and 'watchdog' in e.hold_reason
                                    for e in cell.executed[count:]), 10.0, 'a watchdog hold')
    after = cell.propose(3, [-1.0, 0, 0, -1])
    assert _values(after.executed_action) == pytest.approx([-0.5, 0, 0, -1])


def test_proposals_are_held_while_the_pose_is_stale(make_arbiter):
    cell = make_arbiter()  # watchdog 0.3 s
    assert not cell.propose(1, [0.5, 0, 0, -1]).held
    count = len(cell.executed)
    _wait_s(cell, 0.5)  # no pose since: what the arm does now is unknown
    for k in range(2, 6):  # proposals keep flowing, poses do not
        executed = cell.propose(k, [0.5, 0, 0, -1], measure=False)
        assert executed.held and 'stale end-effector pose' in executed.hold_reason
    assert all(e.held for e in cell.executed[count:])
    cell.probe.wait_for(lambda: len(cell.twists) >= len(cell.executed), message='the twists')
    assert all(t.twist.linear.x == 0.0 for t in cell.twists[count:])
    assert not cell.propose(6, [0.5, 0, 0, -1]).held  # the pose is back


def test_a_non_finite_pose_counts_as_no_pose(make_arbiter):
    cell = make_arbiter()  # watchdog 0.3 s, no workspace box
    assert not cell.propose(1, [0.5, 0, 0, -1]).held
    broken = PoseStamped()
    broken.pose.position.x, broken.pose.orientation.w = math.nan, 1.0
    cell.publish_refused_poses(broken)  # the driver keeps publishing, every pose broken
    executed = cell.propose(2, [0.5, 0, 0, -1], measure=False)
    assert executed.held and 'stale end-effector pose' in executed.hold_reason
    assert _values(executed.executed_action)[:3] == [0.0, 0.0, 0.0]


def test_an_unknown_mode_is_refused_and_the_mode_in_force_kept(make_arbiter):
    cell = make_arbiter()
    modes = cell.probe.node.create_publisher(Mode, 'mode', LATCHED_QOS)
    modes.publish(Mode(value=7))  # no such mode
    cell.probe.wait_for(lambda: cell.arbiter.rejected_inputs['mode'] == 1,
                        message='the unknown mode refused')
    cell.hand(x=0.9)  # still training: the person may take over
    executed = cell.propose(1, STILL)
    assert executed.intervened and _values(executed.executed_action)[0] > 0.8


def test_a_best_effort_estop_latches(make_arbiter):
    cell = make_arbiter()
    estop = cell.probe.node.create_publisher(Bool, 'estop', QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
    cell.probe.wait_for(lambda: estop.get_subscription_count() >= 1,
                        message='a subscription matching a best-effort e-stop')
    estop.publish(Bool(data=True))
    cell.probe.wait_for(lambda: any(e.event == EpisodeEvent.SAFETY_STOP for e in cell.events),
                        message='the e-stop event')
    executed = cell.propose(1, [0.8, 0, 0, -1])
    assert executed.held and executed.hold_reason.startswith('e-stop')


@pytest.mark.parametrize('base', [[math.inf, 0, 0, -1], [5.0, 0, 0, -1]])
def test_a_base_action_out_of_bounds_is_rejected_not_clipped(make_arbiter, base):
    cell = make_arbiter()
    executed = cell.propose(1, [1.0, 0, 0, -1], base_action=base)
    assert executed.held and 'base action' in executed.hold_reason
    assert _values(executed.executed_action) == [0.0] * 4
    cell.probe.wait_for(lambda: any(e.event == EpisodeEvent.COMMAND_REJECTED
                                    and 'base action' in e.detail for e in cell.events),
                        message='the rejection event')


def _arbiter_executable() -> str:
    from ament_index_python.packages import get_package_prefix
    return os.path.join(get_package_prefix('hilresrl_teleop'), 'lib', 'hilresrl_teleop',
                        'intervention_arbiter')


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_the_arbiter_process_sends_a_stop_when_it_is_stopped(probe, launch_process, signum):
    twists = []
    probe.node.create_subscription(TwistStamped, 'servo/delta_twist_cmds', twists.append,
                                   COMMAND_QOS)
    proposals = probe.node.create_publisher(ProposedAction, 'proposed_action', COMMAND_QOS)
    arbiter = launch_process([_arbiter_executable(), '--ros-args',
                              '-p', 'watchdog_timeout_s:=60.0'])
    probe.wait_for(lambda: proposals.get_subscription_count() == 1
                   and probe.node.count_publishers('servo/delta_twist_cmds') == 1,
                   60.0, 'the arbiter process')
    steps = itertools.count(1)

    def moving() -> bool:
        if twists and twists[-1].twist.linear.x > 0.0:
            return True
        # Proposed again until a command arrives: the probe's command subscription may match
        # the arbiter's publisher after the first one went out.
        step = next(steps)
        message = ProposedAction(step=step, composed_action=float32_field([0.5, 0.0, 0.0, -1.0]))
        message.header.stamp = ns_to_stamp(100_000_000 * step)
        proposals.publish(message)
        return False

    probe.wait_for(moving, message='the motion')
    moved = len(twists)
    arbiter.process.send_signal(signum)
    probe.wait_for(lambda: arbiter.process.poll() is not None, message='the arbiter to exit')
    assert arbiter.wait(30.0) == 0, arbiter.output
    probe.wait_for(lambda: len(twists) > moved, message='the stop command')
    last = twists[-1].twist
    assert [last.linear.x, last.linear.y, last.linear.z] == [0.0, 0.0, 0.0], arbiter.output
    assert 'stop command sent' in arbiter.output


def test_a_bad_parameter_stops_the_arbiter_at_start_up_naming_it(launch_process):
    arbiter = launch_process([_arbiter_executable(), '--ros-args',
                              '-p', 'control_period_s:=-0.1'])
    assert arbiter.wait(60.0) == 1, arbiter.output
    assert 'control_period_s=-0.1: must be above 0' in arbiter.output
    assert 'stop command' not in arbiter.output  # it never ran: nothing to stop


def test_a_pose_in_another_frame_than_the_commands_is_refused_without_tf2(make_arbiter):
    # ur_robot_driver's pose is in 'base', x and y mirrored against base_link: taken as it is,
    # the workspace box would be applied mirrored. Without tf2 here, it is refused.
    if importlib.util.find_spec('tf2_ros') is not None:
        pytest.skip('tf2_ros is installed here: the pose would be transformed')
    cell = make_arbiter(command_frame_id='base_link')  # watchdog 0.3 s
    assert not cell.propose(1, [0.5, 0, 0, -1]).held  # unstamped poses: taken as they are
    foreign = PoseStamped()
    foreign.header.frame_id = 'base'
    foreign.pose.position.z, foreign.pose.orientation.w = 0.5, 1.0
    cell.publish_refused_poses(foreign)  # the driver keeps publishing, every pose in 'base'
    executed = cell.propose(2, [0.5, 0, 0, -1], measure=False)
    assert executed.held and 'stale end-effector pose' in executed.hold_reason
    cell.probe.wait_for(lambda: len(cell.twists) >= len(cell.executed), message='the twists')
    assert cell.twists[-1].twist.linear.x == 0.0
    stamped = PoseStamped()
    stamped.header.frame_id = 'base_link'  # the commands' own frame: taken
    stamped.pose.position.z, stamped.pose.orientation.w = 0.5, 1.0
    count = cell.arbiter.pose_messages
    cell.pose.publish(stamped)
    cell.probe.wait_for(lambda: cell.arbiter.pose_messages > count, message='the pose')
    assert not cell.propose(3, [0.5, 0, 0, -1], measure=False).held
