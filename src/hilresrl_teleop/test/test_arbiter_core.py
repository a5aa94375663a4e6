"""The arbiter's core without ROS: holds, rejections, takeover, device timeout, watchdog."""

from hilresrl_teleop.arbiter_core import ArbiterCore
from hilresrl_teleop.arbiter_parameters import arbiter_settings
import numpy as np
import pytest

STILL = [0.0, 0.0, 0.0, -1.0]
POSE = np.array([0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0])


def make_core(**values):
    core = ArbiterCore(arbiter_settings({'quiet_period_s': 0.3, 'watchdog_timeout_s': 0.3,
                                         'safety.workspace_min': [-1.0, -1.0, 0.0],
                                         'safety.workspace_max': [1.0, 1.0, 1.0], **values}),
                       now_s=0.0)
    assert core.end_effector_pose(0.0, POSE, 0) == ''
    return core


def propose(core, now_s, action, base=None):
    return core.step(now_s, int(now_s * 1e9), action if base is None else base, action, [])


def test_a_proposal_passes_through_the_safety_filter():
    step = propose(make_core(), 0.1, [0.2, 0.3, -0.1, -1.0])
    assert not step.held and step.decision is not None and not step.decision.active
    assert step.command.tolist() == pytest.approx([0.2, 0.3, -0.1, -1.0])
    assert step.correction is None  # no segment, no words


def test_a_bad_proposal_is_rejected_and_held_without_arbitration():
    step = propose(make_core(), 0.1, [0.1, 0.1, np.inf, 0.0])
    assert step.rejected == 'composed action: non-finite value in axis 2'
    assert step.hold_reason == 'rejected: ' + step.rejected and step.decision is None
    assert step.command.tolist() == [0.0] * 4


def test_the_e_stop_holds_until_released_and_pause_sends_nothing():
    core = make_core()
    assert core.estop.trigger('test') and not core.estop.trigger('again')
    assert propose(core, 0.1, STILL).hold_reason == 'e-stop: test'
    assert core.release_estop() and not core.release_estop()
    core.paused = True
    assert propose(core, 0.2, STILL).command is None
    assert core.tick(0.25)[1] == 'paused'  # the watchdog tick holds the robot


def test_a_stale_pose_holds_the_robot():
    core = make_core()
    step = propose(core, 0.5, [0.5, 0.0, 0.0, -1.0])
    assert step.held and step.stale_pose == 'stale end-effector pose (0.50 s old)'
    assert step.hold_reason == step.stale_pose and step.command.tolist()[:3] == [0.0] * 3


def test_a_refused_pose_or_device_sample_changes_nothing():
    core = make_core()
    assert core.end_effector_pose(0.1, POSE * np.nan, 1) == 'non-finite value'
    assert core.ee_position.tolist() == [0.0, 0.0, 0.5]
    assert 'non-finite' in core.device_twist(0.1, (np.nan, 0, 0), (0, 0, 0))
    assert 'buttons' in core.device_buttons(0.1, [0] * 100)


def test_takeover_hands_back_with_the_correction_in_words():
    core = make_core(per_axis=True)
    assert core.device_twist(0.0, (0.0, 1.0, 0.0), (0.0, 0.0, 0.0)) == ''
    first = propose(core, 0.1, [0.2, 0.3, -0.1, -1.0])
    assert first.decision.started and first.handover == 'segment 1'
    assert first.decision.intervened_axes.tolist() == [False, True, False, False]
    assert first.correction == 'move left 1 cm'  # 0.7 cm faster than the policy
    core.device_twist(0.15, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    steps = []
    for now_s in (0.2, 0.3, 0.4):  # the quiet period
        assert core.end_effector_pose(now_s, POSE, int(now_s * 1e9)) == ''
        steps.append(propose(core, now_s + 0.01, [0.2, 0.3, -0.1, -1.0]))
    assert [s.correction for s in steps[:2]] == [None, None]  # the policy's steps: no words
    last = steps[-1]
    assert last.decision.ended and last.handover == 'segment 1: move left 1 cm'
    assert last.correction == 'move left 1 cm'  # the person's step only, not the quiet ones


def test_an_episode_start_ends_the_segment_of_the_last_episode():
    core = make_core(per_axis=True)
    core.episode_started(1, 'robot1')
    core.device_twist(0.0, (0.0, 1.0, 0.0), (0.0, 0.0, 0.0))
    assert propose(core, 0.1, STILL).decision.intervened  # the episode ends mid-correction
    core.episode_ended()
    core.device_twist(0.15, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    assert core.episode_started(2, 'robot1') == 'segment 1: episode start'
    step = propose(core, 0.2, STILL)  # within what was the quiet period
    assert not step.decision.active and not step.decision.intervened and not step.handover
    assert step.command.tolist() == pytest.approx(STILL) and step.correction is None
    assert core.episode_started(3, 'robot1') == ''  # nothing running: nothing to end


def test_a_silent_device_lets_go_after_its_timeout():
    core = make_core(**{'spacemouse.timeout_s': 0.5, 'watchdog_timeout_s': 5.0})
    core.device_twist(0.0, (0.9, 0.0, 0.0), (0.0, 0.0, 0.0))
    assert propose(core, 0.1, STILL).decision.active
    step = propose(core, 0.8, STILL)
    assert step.device_lost == ('spacemouse: nothing on spacenav/twist for 0.5 s: its command '
                                'is zero, the policy commands')
    assert step.decision.ended and 'device timeout' in step.handover
    assert step.command.tolist() == pytest.approx(STILL)
    core.device_twist(0.9, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    assert propose(core, 1.0, STILL).device_back == 'spacemouse is back'


def test_the_watchdog_arms_with_a_proposal_inside_an_episode_only():
    core = make_core()
    assert core.tick(1.0)[1] == ''  # nothing proposed yet: nothing to stop
    core.episode_started(3, 'robot1')
    assert core.episode_id == 3 and core.robot_id == 'robot1'
    propose(core, 0.1, STILL)
    core.tick(0.2)  # the first check starts the clock of sources never fed
    status, hold = core.tick(0.7)
    assert status.became_stale == ['ee_pose', 'proposal']
    assert hold == 'watchdog: no ee_pose, proposal'
    core.episode_ended()
    assert core.episode_id == 0
    propose(core, 0.8, STILL)  # the episode's last proposal, after its end
    assert core.tick(2.0)[1] == ''
