"""The simulated person's decisions (core, no ROS): when to step in, how, and when to let go."""

from hilresrl_sim.operator_model import (GripperButton, GripperRange, OperatorConfig,
                                         SimulatedOperator)
import numpy as np
import pytest

OPEN, CLOSED = -1.0, 0.6  # the gripper commands of Meta-World's pick-place-like experts
EXPERT = np.array([1.0, 0.0, 0.0, OPEN])
AWAY = np.array([-1.0, 0.0, 0.0, OPEN])  # the opposite way, gripper as the expert has it


def _operator(expert=lambda state: EXPERT, **changes):
    config = OperatorConfig(**{'stuck_steps': 5, 'reaction_delay_steps': 1,
                               'correction_steps': 4, 'max_correction_steps': 10,
                               'agree_steps': 2, 'noise_std': 0.0,
                               'gripper_patience_steps': 2, **changes})
    return SimulatedOperator(config, expert, seed=0)


def _run(operator, policy, steps, progressing=True, moving=True, start=0):
    """Run steps with policy(k) as the policy's latest proposal; return the hand's actions."""
    actions = []
    for k in range(start, start + steps):
        position = np.array([0.01 * k if moving else 0.0, 0.0, 0.0])
        # hand to object, object to goal: 1 cm nearer a step while the task goes on
        remaining = max(1.0 - 0.01 * k, 0.0) if progressing else 1.0
        progress = np.array([remaining, remaining, remaining])
        actions.append(operator.step(np.zeros(3), policy(k), position, progress).action)
    return actions


def _hands(actions):
    return [action is not None for action in actions]


def test_a_policy_that_gets_there_its_own_way_is_left_alone():
    # It heads against the expert on x all along and its gripper noise straddles open, but the
    # task keeps advancing: a person does not take that over.
    operator = _operator()
    rng = np.random.default_rng(0)
    operator.gripper_range.see(CLOSED)  # the person knows the task's gripper
    actions = _run(operator, lambda k: np.array([-1.0, 0.5, 0.0, OPEN + rng.normal(0, 0.3)]),
                   60)
    assert actions == [None] * 60 and operator.interventions == 0


def test_a_still_policy_with_no_progress_is_taken_over_after_stuck_steps():
    operator = _operator(reaction_delay_steps=0)
    actions = _run(operator, lambda k: np.zeros(4), 8, progressing=False, moving=False)
    # judged from step 0: steps 1-5 without progress, noticed and acted on at step 5
    assert _hands(actions) == [False] * 5 + [True] * 3 and operator.interventions == 1


def test_a_moving_hand_is_not_stuck_even_without_progress():
    operator = _operator(wander_steps=40)
    assert _run(operator, lambda k: EXPERT, 30, progressing=False) == [None] * 30


def test_a_hand_that_wanders_without_progress_is_taken_over_after_wander_steps():
    operator = _operator(reaction_delay_steps=0, wander_steps=12)
    actions = _run(operator, lambda k: EXPERT, 16, progressing=False)
    # moving all along, nothing nearer from step 1 on: noticed and acted on at step 12
    assert _hands(actions) == [False] * 12 + [True] * 4 and operator.interventions == 1


@pytest.mark.parametrize('delay', [0, 1, 3])
def test_the_reaction_delay_is_the_configured_number_of_steps(delay):
    operator = _operator(reaction_delay_steps=delay, stuck_steps=3)
    noticed = []
    for k in range(12):
        decision = operator.step(np.zeros(3), np.zeros(4), np.zeros(3), np.ones(3))
        noticed.append(decision.triggered == 'no progress')
        if decision.action is not None:
            break
    assert noticed.index(True) == 3 and k == 3 + delay


def test_a_gripper_that_contradicts_the_expert_at_the_grasp_is_taken_over():
    grasping = np.array([0.0, 0.0, 0.0, CLOSED])
    operator = _operator(lambda state: grasping if state[0] > 0 else EXPERT)
    _run(operator, lambda k: EXPERT, 3)  # the approach: the person has seen "open"
    decisions = []
    for k in range(4):  # at the grasp: the expert closes, the policy stays open
        decisions.append(operator.step(np.ones(3), EXPERT, np.zeros(3), np.full(3, 0.5 - k)))
    # two contradicting steps (patience 2), then the reaction delay of 1
    assert [d.triggered for d in decisions[:2]] == ['', 'gripper']
    assert [d.action is not None for d in decisions] == [False, False, True, True]
    assert decisions[2].action[3] == CLOSED


def test_gripper_states_come_from_the_experts_own_commands():
    gripper = GripperRange()
    gripper.see(OPEN)
    assert not gripper.known and gripper.state(0.6) == 0  # one state seen: nothing judged
    gripper.see(CLOSED)
    # midpoint -0.2, undecided within a quarter span (0.4) of it
    assert [gripper.state(c) for c in (-1.0, -0.7, -0.5, 0.0, 0.2, 0.3, 1.0)] == [
        -1, -1, 0, 0, 0, 1, 1]
    assert gripper.closed(0.0) and not gripper.closed(-0.5)
    faint = GripperRange()
    for command in (0.0, 0.1):  # an expert that varies its effort by 0.1 has one state
        faint.see(command)
    assert not faint.known and faint.state(-1.0) == 0


def test_an_object_knocked_away_from_its_goal_is_taken_over():
    operator = _operator(reaction_delay_steps=0, setback_m=0.05)
    at_object = [np.array([0.5, 0.01, 0.3 - 0.01 * k]) for k in range(5)]
    knocked = np.array([0.5, 0.2, 0.35])  # out of the hand, 9 cm further than its best
    actions = [operator.step(np.zeros(3), EXPERT, np.zeros(3), progress).action
               for progress in at_object + [knocked]]
    assert _hands(actions) == [False] * 5 + [True]


def test_the_hand_lets_go_once_back_on_track_and_stays_while_the_policy_heads_away():
    operator = _operator(reaction_delay_steps=0)
    # stuck at steps 0-5, corrected from step 5; the task then advances and the policy agrees
    actions = _run(operator, lambda k: np.zeros(4), 6, progressing=False, moving=False)
    actions += _run(operator, lambda k: EXPERT, 9, start=6)
    assert _hands(actions) == [False] * 5 + [True] * 4 + [False] * 6
    assert np.array_equal(actions[5], EXPERT) and operator.interventions == 1

    stubborn = _operator(reaction_delay_steps=0)
    actions = _run(stubborn, lambda k: np.zeros(4), 6, progressing=False, moving=False)
    actions += _run(stubborn, lambda k: AWAY, 13, start=6)
    # corrects for max_correction_steps (10) against a policy that would head away, then
    # judges it afresh
    assert _hands(actions) == [False] * 5 + [True] * 10 + [False] * 4


def test_hand_noise_is_added_to_translation_only():
    operator = _operator(noise_std=0.1, reaction_delay_steps=0)
    actions = [a for a in _run(operator, lambda k: AWAY, 15, progressing=False, moving=False)
               if a is not None]
    assert actions and all(a[3] == EXPERT[3] for a in actions)
    assert any(not np.allclose(a[:3], EXPERT[:3]) for a in actions)


def test_gripper_button_presses_once_per_needed_toggle():
    button = GripperButton(cooldown_steps=2)
    # closed wanted, open believed: down for one step, up, then wait for the arbiter's state
    presses = [button.press(True, -1.0) for _ in range(5)]
    assert presses == [True, False, False, False, True]
    assert GripperButton().press(True, 1.0) is False
    assert GripperButton().press(False, 1.0) is True  # the expert opens: open it
    assert GripperButton().press(False, None) is False  # unknown counts as open


def test_the_pace_says_late_only_past_the_slowest_expert_by_the_factor():
    from hilresrl_sim.expert_pace import ExpertPace, LATE_MARGIN
    # The slowest expert episode had 1.0 left until step 10, then 0.1 less a step, done at 20.
    most_left = np.concatenate([np.ones(10), np.linspace(0.9, 0.0, 10), np.zeros(10)])
    pace = ExpertPace(most_left, late_factor=2.0)
    assert not pace.late(19, 1.0)  # at step 19 it may be where the expert was at step 9
    assert not pace.late(24, 0.7 + LATE_MARGIN / 2)  # the expert's at step 12, plus noise
    assert pace.late(24, 0.8)
    assert pace.late(100, 0.05)  # past the end of the calibration: any progress left is late
    assert not pace.late(100, 0.0)
    with pytest.raises(ValueError, match='at least 1'):
        ExpertPace(most_left, late_factor=0.5)


def test_a_policy_too_slow_to_finish_in_time_is_taken_over_as_late():
    from hilresrl_sim.expert_pace import ExpertPace
    # The expert gets 1 cm nearer a step (as _run's progress); a policy at a quarter of that
    # pace keeps getting nearer, so no other trigger fires, but it cannot finish in time.
    pace = ExpertPace(np.maximum(1.0 - 0.01 * np.arange(200), 0.0), late_factor=1.25)
    on_time = _operator(wander_steps=1000)
    on_time.pace = pace
    assert _run(on_time, lambda k: EXPERT, 100) == [None] * 100
    slow = SimulatedOperator(on_time.config, lambda state: EXPERT, seed=0, pace=pace)
    noticed = []
    for k in range(100):
        remaining = 1.0 - 0.0025 * k  # progressing, at a quarter of the pace
        hand = slow.step(np.zeros(3), EXPERT, np.array([0.01 * k, 0, 0]),
                         np.full(3, remaining))
        noticed.append(hand.triggered)
        if hand.action is not None:
            break
    assert 'late' in noticed and slow.interventions == 1
    # Late from the step at which the progress left passed the expert's 1.25 times earlier
    # (plus the margin): 1 - 0.0025 k > 1 - 0.01 k / 1.25 + 0.02 from k = 4.
    assert noticed.index('late') == pytest.approx(4, abs=1)
