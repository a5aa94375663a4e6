"""The refinement actor's steps: command features in the observation, latent as the action."""

from hilresrl_common.conversions import float32_field, to_named_arrays
from hilresrl_common.corrections import command_features, parse_command
from hilresrl_learner.latent_steps import condition_vector, latent_step_record
from hilresrl_msgs.msg import Transition
import numpy as np
import pytest


def _transition(latent, condition=(), intervened=False) -> Transition:
    return Transition(step=3, observation=to_named_arrays({'task_state': [1.0, 2.0]}),
                      next_observation=to_named_arrays({'task_state': [3.0, 4.0]}),
                      base_action=float32_field([0.1, 0.2]),
                      executed_action=float32_field([0.1, 0.2]), latent=float32_field(latent),
                      latent_condition=float32_field(condition), reward=1.0, terminated=True,
                      intervened=intervened)


def test_a_steered_step_becomes_command_features_and_a_scaled_latent():
    condition = command_features(parse_command('move left 2 cm', ['x', 'y', 'gripper']))
    record = latent_step_record(_transition([0.75, -3.0], condition), ['task_state'], 2, 1.5,
                                ('r1', 1))
    assert record.observation.tolist() == pytest.approx([1.0, 2.0] + condition.tolist())
    assert record.next_observation.tolist() == pytest.approx([3.0, 4.0] + condition.tolist())
    # latent / latent_scale, clipped to the actor's range; the base action is zero
    assert record.executed_action.tolist() == [0.5, -1.0]
    assert record.base_action.tolist() == [0.0, 0.0]
    assert (record.step, record.reward, record.terminated, record.human_action) == (
        3, 1.0, True, None)


def test_steps_without_a_latent_or_under_a_person_are_not_the_actors():
    assert latent_step_record(_transition([]), ['task_state'], 2, 1.5, 'e') is None
    assert latent_step_record(_transition([0.1, 0.2, 0.3]), ['task_state'], 2, 1.5, 'e') is None
    assert latent_step_record(_transition([0.1, 0.2], intervened=True), ['task_state'], 2,
                              1.5, 'e') is None


def test_no_command_is_zero_features_and_a_wrong_size_is_refused():
    assert condition_vector([]).tolist() == [0.0] * 8
    record = latent_step_record(_transition([0.0, 0.0]), ['task_state'], 2, 1.5, 'e')
    assert record.observation.tolist() == [1.0, 2.0] + [0.0] * 8
    with pytest.raises(ValueError, match='8 values, not 3'):
        condition_vector(np.ones(3))


def test_the_instruction_input_is_the_transitions_own_instruction():
    from hilresrl_learner.transition_data import step_record
    from hilresrl_common.instruction_features import instruction_features
    message = _transition([0.0, 0.0])
    message.instruction = 'push the puck to the goal'
    features = instruction_features('push the puck to the goal')
    record = step_record(message, ['task_state', 'instruction'], 2, 'e')
    assert record.observation.tolist() == pytest.approx([1.0, 2.0] + features.tolist())
    assert record.next_observation.tolist() == pytest.approx([3.0, 4.0] + features.tolist())
    steered = latent_step_record(message, ['instruction', 'task_state'], 2, 1.5, 'e')
    assert steered.observation.tolist() == pytest.approx(features.tolist() + [1.0, 2.0]
                                                         + [0.0] * 8)
    with pytest.raises(ValueError, match='check policy_inputs'):
        step_record(message, ['task_state', 'wrench'], 2, 'e')
