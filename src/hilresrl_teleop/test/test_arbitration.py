"""Intervention arbitration between the policy and the person (core, no ROS)."""

from hilresrl_teleop.arbitration import InterventionArbiter
from hilresrl_teleop.spacemouse import DeviceReading
import numpy as np
import pytest

PROPOSAL = np.array([0.5, 0.4, 0.3, 1.0])
IDLE = DeviceReading.idle(4)


def moving(*axes_values, **flags) -> DeviceReading:
    """Return a reading with the given (axis, value) pairs outside the deadband."""
    action = np.zeros(4)
    active = np.zeros(4, dtype=bool)
    for axis, value in axes_values:
        action[axis], active[axis] = value, True
    if flags.get('gripper_toggled'):
        active[3] = True
    return DeviceReading(action, active, **flags)


def test_policy_commands_while_nobody_touches_the_device():
    arbiter = InterventionArbiter(4)
    result = arbiter.arbitrate(0.0, PROPOSAL, IDLE)
    assert result.executed.tolist() == PROPOSAL.tolist()
    assert result.human_action is None
    assert result.intervened_axes.tolist() == [False] * 4
    assert (result.active, result.segment_id, result.started, result.ended) == (
        False, 0, False, False)
    assert result.active_duration_s == 0.0


def test_full_takeover_commands_every_axis():
    arbiter = InterventionArbiter(4)
    arbiter.arbitrate(0.0, PROPOSAL, IDLE)
    result = arbiter.arbitrate(0.1, PROPOSAL, moving((1, -0.6)))
    # The person holds x and z still and keeps the gripper closed, as last executed.
    assert result.executed.tolist() == [0.0, -0.6, 0.0, 1.0]
    assert result.human_action.tolist() == [0.0, -0.6, 0.0, 1.0]
    assert result.intervened_axes.tolist() == [True] * 4
    assert (result.active, result.segment_id, result.started, result.ended) == (
        True, 1, True, False)


def test_per_axis_takeover_mixes_human_and_policy_axes():
    arbiter = InterventionArbiter(4, per_axis=True)
    result = arbiter.arbitrate(0.0, PROPOSAL, moving((0, -0.2)))
    assert result.executed.tolist() == [-0.2, 0.4, 0.3, 1.0]
    assert result.intervened_axes.tolist() == [True, False, False, False]
    result = arbiter.arbitrate(0.1, PROPOSAL, moving((2, 0.7)))
    # x stays taken though back in the deadband: the person holds it still.
    assert result.executed.tolist() == [0.0, 0.4, 0.7, 1.0]
    assert result.intervened_axes.tolist() == [True, False, True, False]
    result = arbiter.arbitrate(0.2, -PROPOSAL, moving(gripper_toggled=True))
    # The gripper was last executed closed (+1): the toggle opens it.
    assert result.executed.tolist() == [0.0, -0.4, 0.0, -1.0]
    assert result.intervened_axes.tolist() == [True, False, True, True]
    assert not result.started and result.segment_id == 1


def test_takeover_button_takes_every_axis_even_per_axis():
    arbiter = InterventionArbiter(4, per_axis=True)
    result = arbiter.arbitrate(0.0, PROPOSAL, moving(takeover_held=True))
    assert result.started
    assert result.executed.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert result.intervened_axes.tolist() == [True] * 4


@pytest.mark.parametrize('last_gripper, expected', [(-0.3, -1.0), (0.8, 1.0), (0.0, 0.0)])
def test_gripper_state_starts_from_the_last_executed_gripper(last_gripper, expected):
    arbiter = InterventionArbiter(4)
    arbiter.arbitrate(0.0, np.array([0.0, 0.0, 0.0, last_gripper]), IDLE)
    result = arbiter.arbitrate(0.1, np.array([0.0, 0.0, 0.0, -last_gripper]),
                               moving((0, 0.5)))
    assert result.executed[3] == expected


def test_gripper_toggle_starts_a_segment_from_the_last_executed_state():
    arbiter = InterventionArbiter(4, per_axis=True)
    arbiter.arbitrate(0.0, np.array([0.0, 0.0, 0.0, -1.0]), IDLE)
    result = arbiter.arbitrate(0.1, PROPOSAL, moving(gripper_toggled=True))
    assert result.started
    assert result.executed.tolist() == [0.5, 0.4, 0.3, 1.0]  # open -> closed
    assert result.intervened_axes.tolist() == [False, False, False, True]
    result = arbiter.arbitrate(0.2, -PROPOSAL, moving(button_held=True))
    assert result.executed.tolist() == [-0.5, -0.4, -0.3, 1.0]  # the person keeps it closed
    result = arbiter.arbitrate(0.3, -PROPOSAL, IDLE)
    assert result.executed.tolist() == (-PROPOSAL).tolist()  # let go: the policy's gripper


def test_hand_back_exactly_after_the_quiet_period():
    arbiter = InterventionArbiter(4, quiet_period_s=0.5)
    arbiter.arbitrate(1.0, PROPOSAL, moving((0, 0.5)))
    arbiter.arbitrate(1.25, PROPOSAL, moving((0, 0.5)))  # the last input
    result = arbiter.arbitrate(1.5, PROPOSAL, IDLE)
    assert result.active and result.executed.tolist() == PROPOSAL.tolist()  # the policy's
    result = arbiter.arbitrate(1.74, PROPOSAL, IDLE)
    assert result.active and not result.ended and not result.intervened
    assert result.active_duration_s == pytest.approx(0.74)
    result = arbiter.arbitrate(1.75, PROPOSAL, IDLE)
    assert (result.active, result.ended, result.started) == (False, True, False)
    assert result.executed.tolist() == PROPOSAL.tolist()
    assert result.human_action is None and result.segment_id == 1
    assert result.active_duration_s == pytest.approx(0.75)
    result = arbiter.arbitrate(1.8, PROPOSAL, IDLE)
    assert (result.active, result.ended, result.active_duration_s) == (False, False, 0.0)


def test_no_step_after_release_is_the_persons():
    arbiter = InterventionArbiter(4, quiet_period_s=0.5)
    taken = arbiter.arbitrate(0.0, PROPOSAL, moving((0, 0.5)))
    assert taken.intervened and taken.executed.tolist() == [0.5, 0.0, 0.0, 1.0]
    results = [arbiter.arbitrate(now_s, PROPOSAL, IDLE) for now_s in (0.1, 0.2, 0.3, 0.4, 0.5)]
    for result in results:  # the quiet period executes the proposal, labelled the policy's
        assert result.executed.tolist() == PROPOSAL.tolist()
        assert result.human_action is None and not result.intervened
        assert result.intervened_axes.tolist() == [False] * 4
        assert result.segment_id == 1 and not result.started
    assert [r.active for r in results] == [True] * 4 + [False]
    assert [r.ended for r in results] == [False] * 4 + [True]  # one end, at the period's end
    assert results[2].active_duration_s == pytest.approx(0.3)


def test_resuming_within_the_quiet_period_keeps_the_segment_and_its_axes():
    arbiter = InterventionArbiter(4, per_axis=True, quiet_period_s=0.5)
    arbiter.arbitrate(0.0, PROPOSAL, moving((0, -0.2)))
    assert not arbiter.arbitrate(0.1, PROPOSAL, IDLE).intervened  # a reading through zero
    result = arbiter.arbitrate(0.2, PROPOSAL, moving((2, 0.7)))
    assert (result.segment_id, result.started, result.ended, result.active) == (
        1, False, False, True)
    # x is still taken: the person holds it still while they move z.
    assert result.intervened_axes.tolist() == [True, False, True, False]
    assert result.executed.tolist() == [0.0, 0.4, 0.7, 1.0]
    assert result.active_duration_s == pytest.approx(0.2)


def test_taking_the_gripper_again_after_a_quiet_step_keeps_what_the_policy_executed():
    arbiter = InterventionArbiter(4, quiet_period_s=0.5)
    closed, opened = np.array([0.1, 0.0, 0.0, 1.0]), np.array([0.1, 0.0, 0.0, -0.6])
    assert arbiter.arbitrate(0.0, closed, moving((0, 0.5))).executed[3] == 1.0
    assert arbiter.arbitrate(0.1, opened, IDLE).executed[3] == -0.6  # the policy opens it
    result = arbiter.arbitrate(0.2, closed, moving((0, 0.5)))
    assert result.intervened and not result.started
    assert result.executed[3] == -1.0  # the person does not close it again by surprise


def test_reset_ends_the_segment_and_forgets_its_axes_and_gripper():
    arbiter = InterventionArbiter(4, per_axis=True, quiet_period_s=0.5)
    assert not arbiter.reset()  # nothing running
    arbiter.arbitrate(0.0, PROPOSAL, moving((0, 0.5), gripper_toggled=True))
    assert arbiter.reset() and not arbiter.active and arbiter.segment_id == 1
    result = arbiter.arbitrate(0.1, PROPOSAL, IDLE)  # within the old quiet period
    assert (result.active, result.ended, result.intervened) == (False, False, False)
    assert result.executed.tolist() == PROPOSAL.tolist()
    arbiter.reset()
    # A new segment: only the axis moved now, and the gripper from this proposal (the last
    # executed one, closed, is forgotten with the episode).
    result = arbiter.arbitrate(0.2, -PROPOSAL, moving((1, 0.3), gripper_toggled=True))
    assert (result.started, result.segment_id) == (True, 2)
    assert result.intervened_axes.tolist() == [False, True, False, True]
    assert result.executed.tolist() == [-0.5, 0.3, -0.3, 1.0]  # open (-1) toggled closed


def test_a_held_button_keeps_the_segment():
    arbiter = InterventionArbiter(4, quiet_period_s=0.5)
    arbiter.arbitrate(0.0, PROPOSAL, moving((0, 0.5)))
    assert arbiter.arbitrate(1.0, PROPOSAL, moving(button_held=True)).active
    assert arbiter.arbitrate(1.4, PROPOSAL, IDLE).active
    assert arbiter.arbitrate(1.5, PROPOSAL, IDLE).ended


def test_new_segments_are_counted():
    arbiter = InterventionArbiter(4, quiet_period_s=0.0)
    assert arbiter.arbitrate(0.0, PROPOSAL, moving((0, 0.5))).started
    assert arbiter.arbitrate(0.1, PROPOSAL, IDLE).ended
    result = arbiter.arbitrate(0.2, PROPOSAL, moving((1, 0.5)))
    assert (result.started, result.segment_id) == (True, 2)
    assert arbiter.segment_id == 2 and arbiter.active


def test_per_axis_set_starts_empty_in_a_new_segment():
    arbiter = InterventionArbiter(4, per_axis=True, quiet_period_s=0.0)
    arbiter.arbitrate(0.0, PROPOSAL, moving((0, 0.5)))
    arbiter.arbitrate(0.1, PROPOSAL, IDLE)
    result = arbiter.arbitrate(0.2, PROPOSAL, moving((1, 0.5)))
    assert result.intervened_axes.tolist() == [False, True, False, False]


def test_disallowed_never_starts_and_ends_a_segment_at_once():
    arbiter = InterventionArbiter(4)
    result = arbiter.arbitrate(0.0, PROPOSAL, moving((0, 0.5), takeover_held=True),
                               allowed=False)
    assert not result.active and not result.started and result.segment_id == 0
    assert result.executed.tolist() == PROPOSAL.tolist()
    arbiter.arbitrate(1.0, PROPOSAL, moving((0, 0.5)))
    result = arbiter.arbitrate(1.1, PROPOSAL, moving((0, 0.5)), allowed=False)
    assert (result.active, result.ended, result.segment_id) == (False, True, 1)
    assert result.executed.tolist() == PROPOSAL.tolist()
    assert result.active_duration_s == pytest.approx(0.1)


def test_a_proposal_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match='expected a proposal of 4 values'):
        InterventionArbiter(4).arbitrate(0.0, np.zeros(3), IDLE)
