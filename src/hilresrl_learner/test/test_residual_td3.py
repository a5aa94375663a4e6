"""Residual TD3: starts at the base policy, warms up the critic, learns from corrections."""

from hilresrl_learner.replay import Batch
from hilresrl_learner.residual_td3 import LearnerConfig, ResidualTD3
import numpy as np
import pytest
import torch

CONFIG = LearnerConfig(obs_dim=3, action_dim=2, residual_scale=(0.5,), actor_hidden=(32,),
                       critic_hidden=(32, 32), critic_heads=4, warmup_updates=5,
                       batch_size=16, actor_lr=1e-2, bc_weight=10.0, support_weight=0.0)


def _batch(size=16, intervened=True, human=0.4, axes=(True, True)):
    rng = np.random.default_rng(0)
    base = np.zeros((size, 2), np.float32)
    return Batch(observation=rng.normal(size=(size, 3)).astype(np.float32), base_action=base,
                 executed_action=np.full((size, 2), human, np.float32),
                 human_action=np.full((size, 2), human, np.float32),
                 human_axes=np.tile(np.asarray(axes) & intervened, (size, 1)),
                 intervened=np.full(size, intervened), n_step_return=np.zeros(size, np.float32),
                 bootstrap_observation=rng.normal(size=(size, 3)).astype(np.float32),
                 bootstrap_base_action=base, bootstrap_discount=np.full(size, 0.9, np.float32))


def test_untrained_actor_leaves_the_base_action_alone():
    agent = ResidualTD3(CONFIG)
    assert agent.residual(np.ones(3), np.zeros(2)).tolist() == [0.0, 0.0]


def test_the_actor_waits_for_the_critic_warm_up():
    agent = ResidualTD3(CONFIG)
    before = [p.clone() for p in agent.actor.parameters()]
    for _ in range(CONFIG.warmup_updates):
        metrics = agent.update(_batch())
        assert 'actor_loss' not in metrics
    assert all(torch.equal(a, b) for a, b in zip(before, agent.actor.parameters()))
    assert agent.updates == 5 and agent.actor_updates == 0
    agent.update(_batch())
    agent.update(_batch())  # actor_delay 2: the next even update moves the actor
    assert agent.actor_updates == 1


def test_an_actor_step_moves_the_actor_and_leaves_the_critic_and_its_gradients_alone():
    agent = ResidualTD3(CONFIG)
    tensors = agent._tensors(_batch())
    agent._critic_step(tensors)
    critic = [(p.clone(), p.grad.clone()) for p in agent.critic.parameters()]
    actor = [p.clone() for p in agent.actor.parameters()]
    agent._actor_step(tensors)
    assert all(torch.equal(value, p) and torch.equal(grad, p.grad)
               for (value, grad), p in zip(critic, agent.critic.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(actor, agent.actor.parameters()))
    # and the critic learns on afterwards
    assert all(p.requires_grad for p in agent.critic.parameters())


def test_guidance_pulls_the_residual_toward_the_human_correction():
    agent = ResidualTD3(LearnerConfig(**{**CONFIG.__dict__, 'critic_lr': 0.0}))
    for _ in range(200):
        agent.update(_batch(human=0.4))
    # human 0.4 over a base of 0 at scale 0.5: the residual that reproduces it is 0.8
    residual = agent.residual(np.zeros(3), np.zeros(2))
    assert residual == pytest.approx([0.8, 0.8], abs=0.1)


@pytest.mark.parametrize('algorithm', ['td3', 'sac'])
def test_guidance_pulls_only_the_axes_the_person_took(algorithm):
    from hilresrl_learner.residual_sac import ResidualSAC
    from hilresrl_learner.residual_td3 import guidance_loss
    config = LearnerConfig(**{**CONFIG.__dict__, 'algorithm': algorithm})
    agent = (ResidualSAC if algorithm == 'sac' else ResidualTD3)(config)
    tensors = agent._tensors(_batch(human=0.4, axes=(True, False)))
    residual = torch.zeros(16, 2)
    # the wanted residual is 0.8 on both axes; only the first one was the person's
    assert float(guidance_loss(residual, tensors, agent.scale)) == pytest.approx(0.64)
    untouched = residual.clone()
    untouched[:, 1] = -1.0  # far from the human label, on an axis the person left alone
    assert float(guidance_loss(untouched, tensors, agent.scale)) == pytest.approx(0.64)
    every_axis = agent._tensors(_batch(human=0.4))
    assert float(guidance_loss(residual, every_axis, agent.scale)) == pytest.approx(1.28)
    nobody = agent._tensors(_batch(intervened=False))
    assert float(guidance_loss(residual, nobody, agent.scale)) == 0.0

    # learning under the guidance alone (no critic): the second axis gets no pull
    agent = (ResidualSAC if algorithm == 'sac' else ResidualTD3)(
        LearnerConfig(**{**config.__dict__, 'critic_lr': 0.0}))
    for parameter in agent.critic.parameters():  # Q flat in the action: guidance alone
        parameter.data.zero_()
    agent.critic_target.load_state_dict(agent.critic.state_dict())
    for _ in range(200):
        agent.update(_batch(human=0.4, axes=(True, False)))
    residual = agent.residual(np.zeros(3), np.zeros(2))
    assert residual[0] == pytest.approx(0.8, abs=0.1)
    assert abs(residual[1]) < 0.1


class _RisingCritic(torch.nn.Module):
    """Q = the first action axis, for every head: the actor gains by raising it without end."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(()))

    def forward(self, observation, base_action, action, image_features=None):
        return (self.gain * action[..., 0]).expand(CONFIG.critic_heads, -1)


@pytest.mark.parametrize('algorithm', ['td3', 'sac'])
def test_the_support_pull_keeps_the_actor_where_the_critic_has_data(algorithm):
    from hilresrl_learner.residual_sac import ResidualSAC
    from hilresrl_learner.residual_td3 import support_loss
    # The cell executed the base action (0) at every step; nobody intervened.
    batch = _batch(intervened=False, human=0.0)
    tensors = ResidualTD3(CONFIG)._tensors(batch)
    assert float(support_loss(torch.full((16, 2), 0.5), tensors, torch.tensor(0.5))) == \
        pytest.approx(0.5)  # 0.25 per axis, two axes

    def drift(support_weight):
        config = LearnerConfig(**{**CONFIG.__dict__, 'algorithm': algorithm, 'critic_lr': 0.0,
                                  'support_weight': support_weight})
        agent = (ResidualSAC if algorithm == 'sac' else ResidualTD3)(config, seed=3)
        agent.critic = _RisingCritic()  # its value grows with the first axis of the action
        agent.critic_target = _RisingCritic()
        agent.critic_optimizer = torch.optim.SGD(agent.critic.parameters(), lr=0.0)
        for _ in range(300):
            agent.update(batch)
        observations = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
        return max(abs(agent.residual(o, np.zeros(2, np.float32))[0]) for o in observations)

    # Far from the executed actions the critic's value is extrapolation: without the pull the
    # actor climbs it to the residual's bound; with it, it stays near what was executed.
    assert drift(0.0) > 0.6
    assert drift(10.0) < 0.2
    with pytest.raises(ValueError, match='must not be negative'):
        LearnerConfig(obs_dim=3, action_dim=2, support_weight=-1.0)


def test_config_differences_are_named():
    other = LearnerConfig(**{**CONFIG.__dict__, 'critic_heads': 10, 'n_step': 1})
    assert set(CONFIG.differences(other)) == {'critic_heads: 4 != 10', 'n_step: 3 != 1'}
    with pytest.raises(ValueError, match='at least 2 heads'):
        LearnerConfig(obs_dim=1, action_dim=1, critic_heads=1)


def test_residual_sac_starts_at_the_base_policy_and_learns_its_temperature():
    from hilresrl_learner.residual_sac import ResidualSAC
    config = LearnerConfig(**{**CONFIG.__dict__, 'algorithm': 'sac', 'warmup_updates': 0,
                              'actor_delay': 1})
    agent = ResidualSAC(config)
    observation, base = np.zeros(config.obs_dim, np.float32), np.full(2, 0.3, np.float32)
    assert np.array_equal(agent.residual(observation, base), np.zeros(2))  # the mean: zero
    rng = np.random.default_rng(0)
    samples = np.stack([agent.residual(observation, base, 0.1, rng) for _ in range(200)])
    assert 0.05 < samples.std() < 0.2  # exploration near TD3's 0.1 from the start
    alpha = float(agent.alpha)
    for _ in range(20):
        metrics = agent.update(_batch())
    assert np.isfinite(float(metrics['critic_loss'])) and 'actor_loss' in metrics
    assert float(agent.alpha) != alpha and agent.actor_updates == 20
    with pytest.raises(ValueError, match='algorithm must be td3 or sac'):
        LearnerConfig(obs_dim=3, action_dim=2, algorithm='ppo')


def test_the_broadcast_actor_carries_the_scale_a_residual_node_checks():
    from hilresrl_common.residual_contract import RESIDUAL_SCALE
    from hilresrl_policy.residual import (load_actor_weights, ResidualActor, ResidualConfig,
                                          serialize_actor, WeightsError)
    assert LearnerConfig(obs_dim=3, action_dim=2).residual_scale == tuple(RESIDUAL_SCALE.default)
    config = LearnerConfig(obs_dim=3, action_dim=4, residual_scale=(0.5, 0.5, 0.5, 1.0),
                           actor_hidden=(32,))
    assert config.actor_config.residual_scale == (0.5, 0.5, 0.5, 1.0)
    weights = serialize_actor(ResidualTD3(config).actor)
    node_actor = ResidualActor(ResidualConfig(3, 4, (32,), residual_scale=(0.5, 0.5, 0.5, 1.0)))
    load_actor_weights(node_actor, weights.blob, weights.sha256, weights.architecture)
    other = ResidualActor(ResidualConfig(3, 4, (32,), residual_scale=(0.3, 0.3, 0.3, 0.3)))
    with pytest.raises(WeightsError, match='residual_scale'):
        load_actor_weights(other, weights.blob, weights.sha256, weights.architecture)
