"""Replay buffers: episode links, n-step returns and the mixing ratio (core, no ROS)."""

from hilresrl_learner.replay import MixedSampler, ReplayBuffer
import numpy as np
import pytest


def _episode(buffer, episode, rewards, terminated_at_end=True, truncated_at_end=False):
    for step, reward in enumerate(rewards):
        last = step == len(rewards) - 1
        buffer.add(episode, step, observation=[step, 0.0], base_action=[step / 10, 0.0],
                   executed_action=[0.0, step / 10], reward=reward,
                   next_observation=[step + 1, 0.0], terminated=last and terminated_at_end,
                   truncated=last and truncated_at_end)


def test_n_step_returns_bootstrap_from_the_state_n_steps_ahead():
    buffer = ReplayBuffer(obs_dim=2, action_dim=2)
    _episode(buffer, 'a', [0.0, 0.0, 0.0, 0.0, 0.0], terminated_at_end=False,
             truncated_at_end=True)
    batch = buffer.gather(np.array([0, 3]), n_step=3, gamma=0.5)
    assert batch.n_step_return.tolist() == [0.0, 0.0]
    # step 0 looks ahead to step 2 and bootstraps from its next state (3) with gamma^3
    assert batch.bootstrap_observation[0].tolist() == [3.0, 0.0]
    assert batch.bootstrap_discount[0] == pytest.approx(0.125)
    assert batch.bootstrap_base_action[0].tolist() == pytest.approx([0.3, 0.0])
    # step 3 runs into the truncated last step: it still bootstraps (a time limit, not a goal)
    assert batch.bootstrap_observation[1].tolist() == [5.0, 0.0]
    assert batch.bootstrap_discount[1] == pytest.approx(0.25)


def test_a_terminal_reward_ends_the_return():
    buffer = ReplayBuffer(obs_dim=2, action_dim=2)
    _episode(buffer, 'a', [0.0, 0.0, 1.0])
    batch = buffer.gather(np.array([0, 1, 2]), n_step=3, gamma=0.9)
    assert batch.n_step_return.tolist() == pytest.approx([0.81, 0.9, 1.0])
    assert batch.bootstrap_discount.tolist() == [0.0, 0.0, 0.0]


def test_episodes_of_several_robots_interleave_without_mixing():
    buffer = ReplayBuffer(obs_dim=2, action_dim=2, initial_size=2)  # grows on the way
    for step in range(3):
        for robot, reward in (('r1', 1.0), ('r2', 10.0)):
            buffer.add(robot, step, [step, 0], [0, 0], [0, 0], reward, [step + 1, 0],
                       terminated=step == 2, truncated=False)
    batch = buffer.gather(np.array([0, 1]), n_step=3, gamma=1.0)
    assert batch.n_step_return.tolist() == [3.0, 30.0]
    assert len(buffer) == 6


def test_human_steps_keep_the_human_action():
    buffer = ReplayBuffer(obs_dim=1, action_dim=2)
    buffer.add('e', 0, [0], [0.1, 0.1], [0.5, -0.5], 0.0, [1], False, False,
               human_action=[0.5, -0.5])
    buffer.add('e', 1, [1], [0.1, 0.1], [0.2, 0.2], 0.0, [2], True, False)
    batch = buffer.gather(np.array([0, 1]))
    assert batch.intervened.tolist() == [True, False]
    assert batch.human_action.tolist() == [[0.5, -0.5], [0.0, 0.0]]
    assert batch.human_axes.tolist() == [[True, True], [False, False]]  # no axes said: all


def test_human_steps_keep_the_axes_the_person_took():
    buffer = ReplayBuffer(obs_dim=1, action_dim=3, initial_size=1)
    buffer.add('e', 0, [0], [0, 0, 0], [0.5, 0, 0], 0.0, [1], False, False,
               human_action=[0.5, 0, 0], human_axes=[True, False, False])
    buffer.add('e', 1, [1], [0, 0, 0], [0, 0, 0], 0.0, [2], False, False,
               human_axes=[True, True, True])  # no human action: no axes, whatever is said
    buffer.add('e', 2, [2], [0, 0, 0], [0, 0.3, 0.2], 0.0, [3], True, False,
               human_action=[0, 0.3, 0.2], human_axes=[False, True, True])  # grown twice
    batch = buffer.gather(np.array([0, 1, 2]))
    assert batch.human_axes.tolist() == [[True, False, False], [False, False, False],
                                         [False, True, True]]


def test_mixed_sampler_draws_the_configured_share():
    online, intervention = ReplayBuffer(1, 1), ReplayBuffer(1, 1)
    for step in range(10):
        online.add('o', step, [0.0], [0], [0], 0.0, [0.0], False, False)
        intervention.add('i', step, [1.0], [0], [0], 0.0, [1.0], False, False, human_action=[0])
    sampler = MixedSampler(online, intervention, intervention_fraction=0.25)
    batch = sampler.sample(64, np.random.default_rng(0))
    assert int(batch.observation[:, 0].sum()) == 16  # exactly a quarter from interventions
    empty = MixedSampler(online, ReplayBuffer(1, 1), 0.5).sample(8, np.random.default_rng(0))
    assert empty.observation.sum() == 0  # nothing to mix in yet: all online
    with pytest.raises(ValueError):
        MixedSampler(online, intervention, 1.5)
