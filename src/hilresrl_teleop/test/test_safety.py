"""Safety filter, watchdog and e-stop (core, no ROS)."""

from hilresrl_teleop.safety import check_proposal, EStop, SafetyFilter, SafetyLimits, Watchdog
import numpy as np
import pytest

CENTRE = np.array([0.5, 0.0, 0.3])


def box_filter(**limits) -> SafetyFilter:
    """Return a filter with the box x 0.3..0.7, y -0.2..0.2, z 0.1..0.5, 0.01 m per step."""
    return SafetyFilter(SafetyLimits(4, workspace_min=(0.3, -0.2, 0.1),
                                     workspace_max=(0.7, 0.2, 0.5), translation_step_m=0.01,
                                     **limits))


def test_a_command_within_limits_passes_unchanged():
    result = SafetyFilter(SafetyLimits(4)).filter(np.array([0.5, -0.5, 1.0, -1.0]), None)
    assert result.command.tolist() == [0.5, -0.5, 1.0, -1.0]
    assert (result.rejected, result.reason, result.limited, result.limits_applied) == (
        False, '', False, [])


@pytest.mark.parametrize('action, reason', [
    ([0.0, 0.0, 0.0], 'expected 4 values, got 3'),
    ([[0.0, 0.0], [0.0, 0.0]], 'expected 4 values, got shape (2, 2)'),
    ([0.0, 0.0, np.nan, 0.0], 'non-finite value in axis 2'),
    ([np.inf, 0.0, 0.0, 0.0], 'non-finite value in axis 0'),
    ([0.0, -np.inf, np.nan, 0.0], 'non-finite values in axes 1, 2'),
])
def test_malformed_commands_are_rejected_with_the_reason(action, reason):
    result = SafetyFilter(SafetyLimits(4)).filter(action, None)
    assert (result.command, result.rejected, result.reason) == (None, True, reason)


def test_each_axis_is_clipped():
    safety = SafetyFilter(SafetyLimits(4, max_abs_action=(0.5, 0.5, 1.0, 1.0)))
    result = safety.filter(np.array([0.7, -2.0, 0.9, 1.0]), None)
    assert result.command.tolist() == [0.5, -0.5, 0.9, 1.0]
    assert result.limits_applied == ['max_abs_action axis 0', 'max_abs_action axis 1']
    assert result.limited


def test_rate_limit_against_the_previous_accepted_command():
    safety = SafetyFilter(SafetyLimits(4, max_action_change=0.25))
    # From rest on the arm axes; the gripper's state is unknown, so it is not ramped.
    result = safety.filter(np.array([1.0, -0.1, 0.0, -1.0]), None)
    assert result.command.tolist() == [0.25, -0.1, 0.0, -1.0]
    assert result.limits_applied == ['max_action_change axis 0']
    assert safety.filter(np.array([0.0, 0.0, np.nan, 0.0]), None).rejected
    result = safety.filter(np.array([1.0, -1.0, 0.0, 1.0]), None)
    assert result.command.tolist() == [0.5, -0.35, 0.0, -0.75]
    safety.reset()
    assert safety.filter(np.array([1.0, 0.0, 0.0, 1.0]), None).command.tolist() == [
        0.25, 0.0, 0.0, 1.0]


@pytest.mark.parametrize('ee, action, command, applied', [
    # x max 0.7: from 0.695 at most 0.5 of a step.
    ((0.695, 0.0, 0.3), [1.0, 0.0, 0.0, 1.0], [0.5, 0.0, 0.0, 1.0], ['workspace x max']),
    # x min 0.3 and y max 0.2 at once; z moves freely.
    ((0.302, 0.195, 0.3), [-1.0, 1.0, 1.0, 1.0], [-0.2, 0.5, 1.0, 1.0],
     ['workspace x min', 'workspace y max']),
    # z min 0.1: from 0.105 down by 0.5 of a step at most.
    ((0.5, 0.0, 0.105), [0.0, 0.0, -0.8, 1.0], [0.0, 0.0, -0.5, 1.0], ['workspace z min']),
    # Already above z max: moving further up stops, moving down is allowed.
    ((0.5, 0.0, 0.6), [0.0, 0.0, 0.3, 1.0], [0.0, 0.0, 0.0, 1.0], ['workspace z max']),
    ((0.5, 0.0, 0.6), [0.0, 0.0, -1.0, 1.0], [0.0, 0.0, -1.0, 1.0], []),
    # Already below y min: further out stops, back in is allowed.
    ((0.5, -0.3, 0.3), [0.0, -0.1, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0], ['workspace y min']),
    ((0.5, -0.3, 0.3), [0.0, 0.4, 0.0, 1.0], [0.0, 0.4, 0.0, 1.0], []),
    # The gripper axis is not a translation: never limited by the box.
    ((0.7, 0.2, 0.5), [0.0, 0.0, 0.0, -1.0], [0.0, 0.0, 0.0, -1.0], []),
])
def test_workspace_box_per_axis(ee, action, command, applied):
    result = box_filter().filter(np.array(action), np.array(ee))
    assert result.command == pytest.approx(command, abs=1e-9)
    assert result.limits_applied == applied


def test_workspace_with_other_translation_axes():
    safety = box_filter(translation_axes=(3, 2, 1), gripper_axis=0)
    result = safety.filter(np.array([1.0, 1.0, 0.0, 1.0]), np.array([0.695, 0.0, 0.3]))
    assert result.command == pytest.approx([1.0, 1.0, 0.0, 0.5])
    assert result.limits_applied == ['workspace x max']


def test_workspace_needs_an_end_effector_position():
    result = box_filter().filter(np.zeros(4), None)
    assert (result.rejected, result.reason) == (
        True, 'no end-effector position to check the workspace')
    assert box_filter().filter(np.zeros(4), np.array([0.5, np.nan, 0.3])).rejected
    with pytest.raises(ValueError, match='needs translation_step_m'):
        SafetyFilter(SafetyLimits(4, workspace_max=(1.0, 1.0, 1.0)))


def test_hold_command_keeps_the_last_accepted_gripper():
    safety = box_filter()
    assert safety.hold_command().tolist() == [0.0, 0.0, 0.0, 0.0]
    safety.filter(np.array([0.3, 0.2, -0.1, 0.8]), CENTRE)
    safety.filter(np.array([0.3, 0.2, -0.1, np.nan]), CENTRE)
    assert safety.hold_command().tolist() == [0.0, 0.0, 0.0, 0.8]
    no_gripper = SafetyFilter(SafetyLimits(3, gripper_axis=None))
    no_gripper.filter(np.array([0.3, 0.2, -0.1]), None)
    assert no_gripper.hold_command().tolist() == [0.0, 0.0, 0.0]


def test_watchdog_reports_each_change_once():
    watchdog = Watchdog(0.5, sources=('spacemouse', 'ee_pose'))
    watchdog.feed('spacemouse', 10.0)
    status = watchdog.check(10.0)
    assert (status.stale, status.became_stale, status.recovered, status.ok) == ([], [], [], True)
    # ee_pose was never fed: stale only after timeout_s from the first check.
    assert watchdog.check(10.5).stale == []
    status = watchdog.check(10.6)
    assert (status.stale, status.became_stale) == (['ee_pose', 'spacemouse'],
                                                   ['ee_pose', 'spacemouse'])
    status = watchdog.check(10.7)
    assert (status.stale, status.became_stale, status.ok) == (['ee_pose', 'spacemouse'], [],
                                                              False)
    watchdog.feed('spacemouse', 10.8)
    status = watchdog.check(10.8)
    assert (status.stale, status.became_stale, status.recovered) == (['ee_pose'], [],
                                                                     ['spacemouse'])
    assert watchdog.check(10.9).recovered == []


def test_estop_latches_until_released():
    estop = EStop()
    assert (estop.active, estop.reason) == (False, '')
    assert estop.trigger('ee_pose stale')
    assert not estop.trigger('operator button')
    assert (estop.active, estop.reason) == (True, 'ee_pose stale')
    assert estop.release()
    assert (estop.active, estop.reason) == (False, '')
    assert not estop.release()


def test_tool_frame_motion_is_shortened_to_stay_in_the_box():
    from scipy.spatial.transform import Rotation
    safety = SafetyFilter(SafetyLimits(action_dim=3, workspace_min=(-1, -1, 0.0),
                                       workspace_max=(1, 1, 0.5), translation_step_m=0.1,
                                       gripper_axis=None))
    # the tool points down: its +z is base -z; 0.2 m above the floor, action 1 on tool z
    # would go 0.1 m down (fine), action 1 on tool -z 0.1 m up past the 0.25 m ceiling
    down = Rotation.from_euler('x', 180, degrees=True).as_quat()
    free = safety.filter(np.array([0.0, 0.0, 1.0]), np.array([0, 0, 0.2]), down)
    assert free.command.tolist() == pytest.approx([0.0, 0.0, 1.0]) and not free.limited
    capped = safety.filter(np.array([0.0, 0.0, -1.0]), np.array([0, 0, 0.45]), down)
    assert capped.command.tolist() == pytest.approx([0.0, 0.0, -0.5])  # lands on z = 0.5
    assert capped.limits_applied == ['workspace (tool frame)']


def test_a_hold_makes_rest_the_reference_of_the_rate_limit():
    safety = SafetyFilter(SafetyLimits(action_dim=4, max_action_change=0.5))
    safety.filter(np.array([0.5, 0, 0, 1.0]), None)
    assert safety.filter(np.array([1.0, 0, 0, 1.0]), None).command[0] == pytest.approx(1.0)
    assert safety.hold().tolist() == [0.0, 0.0, 0.0, 1.0]  # still, the gripper kept
    after = safety.filter(np.array([-1.0, 0, 0, 1.0]), None)
    assert after.command.tolist() == pytest.approx([-0.5, 0, 0, 1.0])  # from rest, its way


def test_a_hold_before_any_command_leaves_the_gripper_free():
    safety = SafetyFilter(SafetyLimits(action_dim=4, max_action_change=0.5))
    safety.hold()
    assert safety.filter(np.array([1.0, 0, 0, -1.0]), None).command.tolist() == pytest.approx(
        [0.5, 0, 0, -1.0])


@pytest.mark.parametrize('base, composed, residual, reason', [
    ([0.1] * 4, [0.1] * 4, [], ''),
    ([], [0.1] * 4, [], ''),  # a policy without a base action
    ([np.inf, 0, 0, 0], [1.0, 0, 0, 0], [], 'base action: non-finite value in axis 0'),
    ([5.0, 0, 0, 0], [1.0, 0, 0, 0], [], 'base action: axis 0 is 5, beyond the action bound 1'),
    ([0.1] * 4, [0.1] * 3, [], 'composed action: expected 4 values, got 3'),
    ([0.1] * 4, [0, 0, -2.0, 0], [], 'composed action: axis 2 is -2'),
    ([0.1] * 4, [0.1] * 4, [0, np.nan, 0, 0], 'residual: non-finite value in axis 1'),
])
def test_proposals_beyond_the_action_bounds_are_rejected_not_clipped(base, composed, residual,
                                                                     reason):
    got = check_proposal(base, composed, residual, 4, 1.0)
    assert got.startswith(reason) if reason else got == ''
