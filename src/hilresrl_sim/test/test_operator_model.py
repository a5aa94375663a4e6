"""The simulated person's decisions (core, no ROS)."""

from hilresrl_sim.operator_model import (GripperButton, OperatorConfig, SimulatedOperator,
                                         wants_closed)
import numpy as np

EXPERT = np.array([1.0, 0.0, 0.0, -1.0])
DRIFTING = np.array([-1.0, 0.0, 0.0, -1.0])


def _operator(**changes):
    config = OperatorConfig(**{'patience_steps': 3, 'reaction_delay_steps': 1,
                               'correction_steps': 4, 'max_correction_steps': 10,
                               'agree_steps': 2, 'noise_std': 0.0, 'stuck_steps': 50,
                               **changes})
    return SimulatedOperator(config, lambda state: EXPERT, seed=0)


def _run(operator, policy, steps, moving=True):
    """Run steps with policy(k) as the policy's action; return the hand's actions."""
    actions = []
    for k in range(steps):
        position = np.array([0.01 * k if moving else 0.0, 0.0, 0.0])
        actions.append(operator.step(np.zeros(3), policy(k), position).action)
    return actions


def _hands(actions):
    return [action is not None for action in actions]


def test_a_policy_that_agrees_with_the_expert_is_left_alone():
    operator = _operator()
    assert _run(operator, lambda k: EXPERT, 30) == [None] * 30
    assert operator.interventions == 0


def test_drift_is_corrected_after_patience_and_reaction_then_handed_back():
    operator = _operator()
    # steps 0-2 drift (patience 3), step 3 waits (reaction 1), the hand corrects from step 4;
    # the policy agrees again from step 4, so the hand lets go after correction_steps (4)
    actions = _run(operator, lambda k: DRIFTING if k < 4 else EXPERT, 12)
    assert _hands(actions) == [False] * 4 + [True] * 4 + [False] * 4
    assert np.array_equal(actions[4], EXPERT) and operator.interventions == 1


def test_the_hand_stays_while_the_policy_would_still_go_wrong():
    operator = _operator()
    actions = _run(operator, lambda k: DRIFTING, 16)
    # corrects from step 4 for max_correction_steps (10), then judges the policy afresh
    assert _hands(actions) == [False] * 4 + [True] * 10 + [False] * 2


def test_a_wrong_gripper_is_corrected_without_patience():
    operator = _operator(reaction_delay_steps=0)
    actions = _run(operator, lambda k: np.array([1.0, 0.0, 0.0, 1.0]), 3)
    assert _hands(actions) == [True, True, True]


def test_no_progress_triggers_an_intervention():
    operator = _operator(stuck_steps=5, reaction_delay_steps=0)
    actions = _run(operator, lambda k: EXPERT, 8, moving=False)
    assert actions[5] is not None and operator.interventions == 1


def test_hand_noise_is_added_to_translation_only():
    operator = _operator(noise_std=0.1, reaction_delay_steps=0)
    actions = [a for a in _run(operator, lambda k: DRIFTING, 10) if a is not None]
    assert actions and all(a[3] == EXPERT[3] for a in actions)
    assert any(not np.allclose(a[:3], EXPERT[:3]) for a in actions)


def test_gripper_button_presses_once_per_needed_toggle():
    assert wants_closed(0.9) and not wants_closed(0.2) and not wants_closed(-1.0)
    button = GripperButton(cooldown_steps=2)
    # closed wanted, open believed: down for one step, up, then wait for the arbiter's state
    presses = [button.press(1.0, -1.0) for _ in range(5)]
    assert presses == [True, False, False, False, True]
    assert GripperButton().press(1.0, 1.0) is False
    assert GripperButton().press(0.0, 1.0) is True  # the expert relaxes: open it
