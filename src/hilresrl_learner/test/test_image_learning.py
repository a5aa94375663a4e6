"""The learner with camera images: frames in replay, the shared encoder, checkpoints, weights."""

import dataclasses

from hilresrl_learner.checkpoint import (CheckpointError, latest_checkpoint, load_checkpoint,
                                         save_checkpoint)
from hilresrl_learner.replay import ReplayBuffer
from hilresrl_learner.residual_td3 import LearnerConfig
from hilresrl_learner.training import ResidualLearner, StepRecord
from hilresrl_policy.image_encoder import load_pretrained_encoder
from hilresrl_policy.residual import (load_actor_weights, ResidualActor, serialize_actor,
                                      WeightsError)
import numpy as np
import pytest
import torch

CAMERAS = ('front', 'wrist')
CONFIG = LearnerConfig(obs_dim=3, action_dim=2, actor_hidden=(16,), critic_hidden=(16, 16),
                       warmup_updates=2, batch_size=8, cameras=CAMERAS, image_size=(24, 24, 3),
                       image_features=8)


def _frame(value, rng=None, side=24):
    frame = np.full((3, side, side), value % 256, dtype=np.uint8)
    if rng is not None:
        frame[:, rng.integers(side), rng.integers(side)] = 255  # something for the encoder to see
    return frame


def _learner(seed=0, steps=40, config=CONFIG, pretrained=None):
    learner = ResidualLearner(config, min_steps=1, seed=seed, pretrained_encoder=pretrained)
    rng = np.random.default_rng(42)
    for index in range(steps):
        episode, step = divmod(index, 10)
        human = rng.uniform(-1, 1, 2).astype(np.float32) if index % 4 == 0 else None
        side = config.image_size[0]
        frames = {camera: _frame(index + 50 * number, rng, side)
                  for number, camera in enumerate(CAMERAS)}
        next_frames = {camera: _frame(index + 1 + 50 * number, rng, side)
                       for number, camera in enumerate(CAMERAS)}
        learner.add(StepRecord(episode, step, rng.normal(size=3), rng.uniform(-1, 1, 2),
                               rng.uniform(-1, 1, 2), float(step == 9), rng.normal(size=3),
                               step == 9, False, human, frames=frames,
                               next_frames=next_frames))
    return learner


def test_a_batch_carries_each_cameras_frames_and_those_it_bootstraps_from():
    buffer = ReplayBuffer(obs_dim=1, action_dim=1, cameras=CAMERAS, frame_shape=(3, 24, 24))
    for step in range(5):  # one episode, frame values = step numbers (wrist: + 100)
        buffer.add('a', step, [0.0], [0.0], [0.0], 1.0, [0.0], step == 4, False,
                   frames={'front': _frame(step), 'wrist': _frame(100 + step)},
                   next_frames={'front': _frame(step + 1), 'wrist': _frame(101 + step)})
    batch = buffer.gather(np.array([0, 3]), n_step=3, gamma=0.5)
    front, wrist = batch.frames
    assert front[:, 0, 0, 0].tolist() == [0, 3] and wrist[:, 0, 0, 0].tolist() == [100, 103]
    # 3 steps ahead from step 0: next frame of step 2; from step 3: the episode ends at 4
    boot_front, boot_wrist = batch.bootstrap_frames
    assert boot_front[:, 0, 0, 0].tolist() == [3, 5]
    assert boot_wrist[:, 0, 0, 0].tolist() == [103, 105]
    assert len(buffer.frames.stores['front']) == 6  # each frame stored once
    with pytest.raises(ValueError, match='stores frames of cameras front, wrist'):
        buffer.add('b', 0, [0.0], [0.0], [0.0], 0.0, [0.0], False, False)


def test_the_critic_trains_the_encoder_and_the_actor_reads_it_without_moving_it():
    learner = _learner()
    agent = learner.agent
    assert agent.actor.encoder is agent.encoder  # the weights the actor broadcasts carry it
    before = {name: tensor.clone() for name, tensor in agent.encoder.state_dict().items()}
    learner.train(1)  # a critic step only (warm-up)
    assert agent.actor_updates == 0
    moved = [name for name, tensor in agent.encoder.state_dict().items()
             if not torch.equal(tensor, before[name])]
    assert moved  # the critic's gradients reach the encoder
    tensors = agent._shifted(agent._tensors(learner.sampler.sample(8, learner.rng, 3, 0.99)))
    before = {name: tensor.clone() for name, tensor in agent.encoder.state_dict().items()}
    agent.critic_optimizer.zero_grad(set_to_none=True)
    agent._actor_step(tensors)
    assert all(torch.equal(tensor, before[name])
               for name, tensor in agent.encoder.state_dict().items())
    assert all(parameter.grad is None for parameter in agent.encoder.parameters())


def test_an_update_encodes_each_frame_batch_once_the_actor_reusing_the_critics_features():
    learner = _learner()
    agent = learner.agent
    learner.train(CONFIG.warmup_updates + 1)  # past the warm-up: the next update moves the actor
    assert agent.actor_step_due(agent.updates + 1)
    passes = []
    hook = agent.encoder.register_forward_hook(
        lambda module, inputs, output: passes.append(torch.is_grad_enabled()))
    try:
        learner.train(1)
    finally:
        hook.remove()
    assert agent.actor_updates == 1
    # s_t with gradients for the critic, s_t+n without for the target: the actor adds none
    assert sorted(passes) == [False, True]


# DrQ-v2's encoder, and the DQN stack (its smallest frame is 36x36).
ENCODER_CONFIGS = {'drqv2': CONFIG, 'nature': dataclasses.replace(
    CONFIG, image_encoder='nature', image_size=(36, 36, 3))}


@pytest.mark.parametrize('encoder', sorted(ENCODER_CONFIGS))
def test_a_checkpoint_with_an_encoder_round_trips_bit_exactly(tmp_path, encoder):
    config = ENCODER_CONFIGS[encoder]
    learner = _learner(config=config)
    learner.train(6)
    save_checkpoint(tmp_path, learner.agent, learner.rng, {})
    copy = _learner(seed=5, config=config)
    load_checkpoint(latest_checkpoint(tmp_path), copy.agent, copy.rng)
    state, copied = learner.agent.network_state(), copy.agent.network_state()
    assert any(name.startswith('actor.encoder.') for name in state)
    assert set(state) == set(copied)
    for name, tensor in state.items():
        assert torch.equal(tensor, copied[name]), name
    assert copy.agent.encoder is copy.agent.actor.encoder  # still one encoder after loading
    learner.train(4)
    copy.train(4)  # and the copy learns on exactly as the original
    for name, tensor in learner.agent.network_state().items():
        assert torch.equal(tensor, copy.agent.network_state()[name]), name


def test_the_broadcast_actor_acts_on_frames_as_the_learner_does():
    learner = _learner()
    learner.train(8)
    weights = serialize_actor(learner.agent.actor)
    receiver = ResidualActor(CONFIG.actor_config)
    load_actor_weights(receiver, weights.blob, weights.sha256, weights.architecture)
    rng = np.random.default_rng(7)
    observation, base = rng.normal(size=3).astype(np.float32), np.zeros(2, np.float32)
    frames = [_frame(3, rng), _frame(60, rng)]
    with torch.no_grad():
        received = receiver(torch.as_tensor(observation)[None], torch.as_tensor(base)[None],
                            [torch.as_tensor(frame)[None] for frame in frames])[0].numpy()
    np.testing.assert_array_equal(learner.agent.residual(observation, base, frames=frames),
                                  received)


class Backbone(torch.nn.Module):
    """A stand-in for a pretrained classifier (torchvision is not needed): a head named fc."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.body(x))


def _pretrained_learner(tmp_path, seed=0, weights_seed=0, name='backbone.pth', copy_of=None):
    path = tmp_path / name
    if copy_of is None:
        torch.manual_seed(weights_seed)
        torch.save(Backbone().state_dict(), path)
    else:  # the same file on another machine
        path.write_bytes((tmp_path / copy_of).read_bytes())
    pretrained = load_pretrained_encoder(Backbone, str(path), CONFIG.actor_config.image_inputs)
    config = dataclasses.replace(CONFIG, image_encoder=pretrained.architecture,
                                 image_encoder_sha256=pretrained.weights_sha256)
    return _learner(seed, config=config, pretrained=pretrained), pretrained


def test_a_learner_over_a_frozen_encoder_trains_its_projection_and_never_the_network(
        tmp_path):
    learner, pretrained = _pretrained_learner(tmp_path)
    agent = learner.agent
    assert agent.encoder.pretrained is pretrained and agent.actor.encoder is agent.encoder
    frozen = {name: tensor.clone() for name, tensor in pretrained.state_dict().items()}
    projection = {name: tensor.clone() for name, tensor in agent.encoder.state_dict().items()}
    optimised = {id(parameter) for optimizer in (agent.actor_optimizer, agent.critic_optimizer)
                 for group in optimizer.param_groups for parameter in group['params']}
    assert not optimised & {id(parameter) for parameter in pretrained.parameters()}
    assert {id(parameter) for parameter in agent.encoder.trunk.parameters()} <= optimised
    learner.train(CONFIG.warmup_updates + 4)
    assert agent.actor_updates >= 2
    assert all(torch.equal(tensor, frozen[name])  # running BatchNorm statistics included
               for name, tensor in pretrained.state_dict().items())
    assert all(parameter.grad is None for parameter in pretrained.parameters())
    assert any(not torch.equal(tensor, projection[name])
               for name, tensor in agent.encoder.state_dict().items())  # the critic trains it
    state = agent.network_state()
    assert not any('pretrained' in name or 'network' in name for name in state)
    weights = serialize_actor(agent.actor)
    assert pretrained.weights_sha256 in weights.architecture


def test_a_checkpoint_over_a_frozen_encoder_is_refused_by_a_learner_over_another_file(tmp_path):
    learner, _ = _pretrained_learner(tmp_path)
    learner.train(4)
    save_checkpoint(tmp_path / 'run', learner.agent, learner.rng, {})
    same, _ = _pretrained_learner(tmp_path, seed=3, name='copy.pth', copy_of='backbone.pth')
    load_checkpoint(latest_checkpoint(tmp_path / 'run'), same.agent, same.rng)
    for name, tensor in learner.agent.network_state().items():
        assert torch.equal(tensor, same.agent.network_state()[name]), name
    other, pretrained = _pretrained_learner(tmp_path, weights_seed=1, name='other.pth')
    with pytest.raises(CheckpointError, match=f'image_encoder_sha256: .* != '
                                              f"'{pretrained.weights_sha256}'"):
        load_checkpoint(latest_checkpoint(tmp_path / 'run'), other.agent, other.rng)
    weights = serialize_actor(learner.agent.actor)
    with pytest.raises(WeightsError, match='image_encoder_weights: a file of SHA-256'):
        load_actor_weights(ResidualActor(other.config.actor_config, pretrained), weights.blob,
                           weights.sha256, weights.architecture)
