"""Tests of the scripted experts and of their base-policy adapter."""

from hilresrl_policy.adapters import BasePolicyError, load_base_policy
from hilresrl_sim.experts import make_expert, panda_pick_cube_expert
from hilresrl_sim.scripted_policy import make_scripted_policy
from hilresrl_sim.tasks import make_task
import numpy as np
import pytest


@pytest.mark.parametrize('name', ['pick-place-v3', 'PandaPickCube'])
def test_expert_solves_the_task_within_its_time_limit(name):
    expert = make_expert(name)
    steps_to_success = []
    with make_task(name, seed=0) as task:
        for seed in (101, 202, 303):
            task.reset(seed=seed)
            for step in range(1, task.max_episode_steps + 1):
                task.step(expert(task.task_state()))
                if task.success():
                    steps_to_success.append(step)
                    break
        limit = task.max_episode_steps
    assert len(steps_to_success) == 3, f'solved {len(steps_to_success)} of 3 in {limit} steps'


@pytest.mark.parametrize('name', ['pick-place-v3', 'PandaPickCube'])
def test_expert_is_a_function_of_the_task_state(name):
    expert = make_expert(name)
    with make_task(name, seed=5) as task:
        task.step(np.array([0.5, -0.5, 0.2, 0.0]))
        state = task.task_state()
    action = expert(state)
    assert action.dtype == np.float32 and action.shape == (4,)
    assert np.all(np.abs(action) <= 1.0)
    np.testing.assert_array_equal(make_expert(name)(state.copy()), action)


def test_panda_expert_phases():
    state = np.zeros(21, dtype=np.float32)
    state[15:18] = (0.4, 0.0, 0.1)   # pinch point
    state[18:21] = (0.5, 0.0, 0.02)  # block, 10 cm ahead
    action = panda_pick_cube_expert(state)
    assert action[0] == 1.0 and action[3] == -1.0  # go over it, gripper open
    state[15:18] = (0.5, 0.0, 0.02)  # at the block
    assert panda_pick_cube_expert(state)[3] == 1.0  # close
    state[14] = 255.0                # closed on it
    action = panda_pick_cube_expert(state)
    assert action[2] == 1.0 and action[3] == 1.0  # lift, holding
    state[18:21] = (0.45, 0.05, 0.02)  # closed, but the block is elsewhere
    assert panda_pick_cube_expert(state)[3] == -1.0  # open and start over


def test_panda_expert_rejects_a_state_of_the_wrong_length():
    with pytest.raises(ValueError, match='21'):
        panda_pick_cube_expert(np.zeros(39))


def test_unknown_task_has_no_expert():
    with pytest.raises(ValueError, match='no scripted expert'):
        make_expert('no-such-task-v3')


def test_scripted_policy_through_the_registry():
    policy = load_base_policy('scripted', {'task': 'pick-place-v3'})
    with make_task('pick-place-v3', seed=2) as task:
        state = task.task_state()
        expected = task.expert_action()
    chunk = policy.act({'task_state': state})
    assert chunk.dtype == np.float32 and chunk.shape == (1, 4)
    np.testing.assert_array_equal(chunk[0], expected)
    assert (policy.horizon, policy.action_dim) == (1, 4)
    assert policy.source_model == 'scripted:pick-place-v3'


def test_scripted_policy_errors_name_the_problem():
    with pytest.raises(BasePolicyError, match="'task'"):
        make_scripted_policy({})
    with pytest.raises(BasePolicyError, match='no scripted expert'):
        make_scripted_policy({'task': 'nope'})
    policy = make_scripted_policy({'task': 'PandaPickCube'})
    with pytest.raises(BasePolicyError, match='task_state'):
        policy.act({'joint_positions': np.zeros(7)})
    with pytest.raises(BasePolicyError, match='3 values'):
        policy.act({'task_state': np.zeros(3)})
