"""Instruction features: the same words give the same numbers everywhere; tasks differ."""

from hilresrl_common.instruction_features import INSTRUCTION_FEATURE_SIZE
from hilresrl_common.instruction_features import instruction_features, policy_vector
import numpy as np
import pytest


def test_the_same_instruction_gives_the_same_unit_vector_whatever_the_case():
    pick = instruction_features('Pick up the puck, and place it at the goal.')
    assert pick.shape == (INSTRUCTION_FEATURE_SIZE,) and pick.dtype == np.float32
    assert np.linalg.norm(pick) == pytest.approx(1.0)
    assert np.array_equal(pick, instruction_features('pick UP the puck and place it at the '
                                                     'goal'))
    # Fixed across processes and releases (no salted hash): a recorded run stays valid.
    assert np.count_nonzero(instruction_features('push')) == 1
    assert instruction_features('push').tolist() == instruction_features('push').tolist()


def test_different_tasks_differ_and_no_instruction_is_zero():
    tasks = ['pick up the puck and place it at the goal', 'push the puck to the goal',
             'insert the peg into the hole from the side', 'open the drawer']
    features = np.stack([instruction_features(text) for text in tasks])
    distances = np.linalg.norm(features[:, None] - features[None], axis=-1)
    assert (distances + np.eye(len(tasks)) > 0.3).all()
    assert instruction_features('').tolist() == [0.0] * INSTRUCTION_FEATURE_SIZE


def test_policy_vector_puts_the_instruction_where_the_inputs_name_it():
    arrays = {'task_state': np.array([1.0, 2.0]), 'ee_pose': np.arange(3.0)}
    vector = policy_vector(arrays, ['ee_pose', 'instruction', 'task_state'], 'open the drawer')
    assert vector[:3].tolist() == [0.0, 1.0, 2.0] and vector[-2:].tolist() == [1.0, 2.0]
    assert np.array_equal(vector[3:-2], instruction_features('open the drawer'))
    with pytest.raises(KeyError, match='observation has no wrench'):
        policy_vector(arrays, ['task_state', 'wrench'], '')
