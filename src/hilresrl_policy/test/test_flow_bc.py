"""Tests of the flow-matching policy, its checkpoints and its steerable base-policy adapter."""

import hashlib
import json
import pickle

from hilresrl_policy.adapters import BasePolicyError
from hilresrl_policy.adapters.flow_policy import make_flow_policy
from hilresrl_policy.bc import save_checkpoint, train_bc
from hilresrl_policy.flow_bc import FlowConfig, load_flow_checkpoint, save_flow_checkpoint
from hilresrl_policy.flow_bc import train_flow
from hilresrl_policy.model_checkpoint import CheckpointError, CONFIG_FILE, MODEL_FILE
import numpy as np
import pytest
import torch

WEIGHTS = np.array([[0.8, -0.5, 0.0], [0.3, 0.3, 0.3], [0.0, 0.0, -1.2], [0.5, 0.0, 0.5]],
                   dtype=np.float32)


def _linear_task(count: int, seed: int):
    generator = np.random.default_rng(seed)
    # Offset and scaled inputs: the network has to use its state normalization.
    states = generator.normal(size=(count, 3)).astype(np.float32) * [1.0, 5.0, 0.2] + 10.0
    centred = (states - 10.0) / [1.0, 5.0, 0.2]
    return states.astype(np.float32), np.tanh(centred @ WEIGHTS.T).astype(np.float32)


def _train(**options):
    states, actions = _linear_task(512, seed=0)
    settings = {'hidden_sizes': (128, 128), 'epochs': 150, 'batch_size': 128, 'seed': 0,
                'task': 'linear-v0'}
    settings.update(options)
    return train_flow(states, actions, **settings)


@pytest.fixture(scope='module')
def trained():
    losses = []
    model = _train(progress=lambda epoch, loss: losses.append(loss))
    return model, losses


@pytest.fixture
def model(trained):
    return trained[0]


@pytest.fixture
def checkpoint(model, tmp_path):
    return save_flow_checkpoint(tmp_path / 'flow', model, {'note': 'test', 'success_rate': 0.5})


def _latents(count: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=(count, 4))).astype(np.float32)


def test_training_reduces_the_loss_and_fits_a_simple_mapping(trained):
    model, losses = trained
    assert len(losses) == 150
    # Rectified flow's loss has a floor (the spread of x_1 - x_0 over the noise), so it drops
    # a lot but not to zero; what must be exact enough is the generated action.
    assert losses[-1] < 0.5 * losses[0]
    states, actions = _linear_task(256, seed=1)
    generated = model.act(states, _latents(256, seed=2))
    assert generated.shape == (256, 4) and generated.dtype == np.float32
    assert float(np.mean((generated - actions) ** 2)) < 0.01
    assert model.config == FlowConfig(state_dim=3, action_dim=4, hidden_sizes=(128, 128),
                                      steps=8, task='linear-v0')
    assert model.config.latent_dim == 4 and not model.training


def test_the_latent_decides_the_action(model):
    states, _ = _linear_task(16, seed=3)
    latents = _latents(16, seed=4)
    first = model.act(states, latents)
    np.testing.assert_array_equal(model.act(states, latents), first)
    # One row alone is the same computation, up to how the matrix products are blocked.
    np.testing.assert_allclose(model.act(states[5], latents[5]), first[5], rtol=0, atol=1e-6)
    other = model.act(states, _latents(16, seed=5))
    assert np.all(np.any(other != first, axis=1))  # every row moved


def test_the_zero_latent_is_deterministic(model):
    states, _ = _linear_task(8, seed=6)
    zero = np.zeros((8, 4), dtype=np.float32)
    np.testing.assert_array_equal(model.act(states, zero), model.act(states, zero))
    with torch.no_grad():
        sampled = model.sample(torch.from_numpy(states), torch.from_numpy(zero)).numpy()
    np.testing.assert_array_equal(sampled, model.act(states, zero))


def test_actions_stay_in_the_action_range(model):
    states, _ = _linear_task(256, seed=7)
    # Latents far outside N(0, I), as a steering actor might pick, still give valid actions.
    generated = model.act(states, _latents(256, seed=8, scale=20.0))
    assert np.all(generated >= -1.0) and np.all(generated <= 1.0)
    assert np.any(np.abs(generated) == 1.0)  # they were clipped, not merely small


def test_sampling_is_differentiable_in_the_latent(model):
    states, _ = _linear_task(4, seed=9)
    latent = torch.zeros(4, 4, requires_grad=True)
    model.sample(torch.from_numpy(states), latent).sum().backward()
    assert latent.grad is not None and bool(torch.any(latent.grad != 0))


def test_training_is_deterministic_for_a_seed():
    states, actions = _linear_task(64, seed=10)
    latents = _latents(64, seed=11)
    options = {'hidden_sizes': (32,), 'epochs': 3, 'batch_size': 16}
    first = train_flow(states, actions, seed=7, **options)
    second = train_flow(states, actions, seed=7, **options)
    other = train_flow(states, actions, seed=8, **options)
    np.testing.assert_array_equal(first.act(states, latents), second.act(states, latents))
    assert not np.array_equal(first.act(states, latents), other.act(states, latents))


def test_checkpoint_round_trip_is_exact(model, checkpoint):
    assert sorted(path.name for path in checkpoint.iterdir()) == [CONFIG_FILE, MODEL_FILE]
    loaded = load_flow_checkpoint(checkpoint)
    states, _ = _linear_task(32, seed=12)
    latents = _latents(32, seed=13)
    np.testing.assert_array_equal(loaded.model.act(states, latents), model.act(states, latents))
    assert loaded.model.config == model.config
    assert loaded.metadata == {'note': 'test', 'success_rate': 0.5}
    assert loaded.sha256 == hashlib.sha256((checkpoint / MODEL_FILE).read_bytes()).hexdigest()
    assert not loaded.model.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name


def test_loading_unpickles_nothing(checkpoint, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('unpickling attempted')

    monkeypatch.setattr(torch, 'load', refuse)
    monkeypatch.setattr(pickle, 'load', refuse)
    monkeypatch.setattr(pickle, 'loads', refuse)
    load_flow_checkpoint(checkpoint)


def test_a_bc_checkpoint_is_refused_with_a_clear_message(tmp_path):
    states, actions = _linear_task(16, seed=14)
    bc = save_checkpoint(tmp_path / 'bc', train_bc(states, actions, epochs=1))
    with pytest.raises(CheckpointError, match='behaviour-cloning .*hilresrl-bc.*, not a '
                                              "flow-matching policy.*'bc' base policy"):
        load_flow_checkpoint(bc)
    with pytest.raises(BasePolicyError, match='behaviour-cloning'):
        make_flow_policy({'checkpoint': str(bc)})


def test_other_bad_checkpoints_are_named(checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match='not a directory'):
        load_flow_checkpoint(tmp_path / 'nothing_here')
    config_path = checkpoint / CONFIG_FILE
    stored = json.loads(config_path.read_text())
    stored['model']['kind'] = 'flow_transformer'
    config_path.write_text(json.dumps(stored))
    with pytest.raises(CheckpointError, match="invalid model section: kind must be 'flow_mlp'"):
        load_flow_checkpoint(checkpoint)
    stored['model']['kind'] = 'flow_mlp'
    stored['model']['hidden_sizes'] = [64, 128]
    config_path.write_text(json.dumps(stored))
    with pytest.raises(CheckpointError, match=f'{MODEL_FILE} does not match'):
        load_flow_checkpoint(checkpoint)
    stored['format'] = 'something-else'
    config_path.write_text(json.dumps(stored))
    with pytest.raises(CheckpointError, match='not a hilresrl-flow checkpoint'):
        load_flow_checkpoint(checkpoint)


def test_adapter_acts_from_its_own_latents_and_from_given_ones(model, checkpoint):
    policy = make_flow_policy({'checkpoint': str(checkpoint), 'device': 'cpu', 'seed': 3})
    assert (policy.horizon, policy.action_dim, policy.latent_dim) == (1, 4, 4)
    digest = hashlib.sha256((checkpoint / MODEL_FILE).read_bytes()).hexdigest()
    assert policy.source_model == f'flow_mlp:linear-v0@{digest[:12]}'
    states, _ = _linear_task(1, seed=15)
    observation = {'task_state': states[0], 'joint_positions': np.zeros(7)}
    latent = _latents(1, seed=16)[0]
    chunk = policy.act_with_latent(observation, latent)
    assert chunk.dtype == np.float32 and chunk.shape == (1, 4)
    np.testing.assert_array_equal(chunk[0], model.act(states[0], latent))
    np.testing.assert_array_equal(policy.act_with_latent(observation, latent), chunk)
    np.testing.assert_array_equal(policy.act_with_latent(observation, latent.reshape(1, 4)),
                                  chunk)
    assert not np.array_equal(policy.act_with_latent(observation, -latent), chunk)

    # act() draws N(0, I) latents from the seed alone: same seed, same actions.
    drawn = [policy.act(observation) for _ in range(3)]
    again = make_flow_policy({'checkpoint': str(checkpoint), 'seed': 3})
    for expected in drawn:
        np.testing.assert_array_equal(again.act(observation), expected)
    assert not np.array_equal(drawn[0], drawn[1])
    expected_latent = np.random.default_rng(3).standard_normal(4).astype(np.float32)
    np.testing.assert_array_equal(drawn[0][0], model.act(states[0], expected_latent))


def test_adapter_refuses_a_wrong_latent_or_observation(checkpoint, tmp_path):
    policy = make_flow_policy({'checkpoint': str(checkpoint)})
    observation = {'task_state': _linear_task(1, seed=17)[0][0]}
    with pytest.raises(BasePolicyError, match='latent has 3 values; .* takes 4'):
        policy.act_with_latent(observation, np.zeros(3))
    with pytest.raises(BasePolicyError, match='latent has 8 values'):
        policy.act_with_latent(observation, np.zeros((2, 4)))
    with pytest.raises(BasePolicyError, match='non-finite'):
        policy.act_with_latent(observation, np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(BasePolicyError, match="needs observation 'task_state'"):
        policy.act({'joint_positions': np.zeros(7)})
    with pytest.raises(BasePolicyError, match='has 5 values'):
        policy.act_with_latent({'task_state': np.zeros(5)}, np.zeros(4))
    with pytest.raises(BasePolicyError, match="'checkpoint'"):
        make_flow_policy({})
    with pytest.raises(BasePolicyError, match="'seed' must be an integer"):
        make_flow_policy({'checkpoint': str(checkpoint), 'seed': 'abc'})
    with pytest.raises(BasePolicyError, match='config.json is missing'):
        make_flow_policy({'checkpoint': str(tmp_path)})


def test_bad_training_inputs_are_refused():
    with pytest.raises(ValueError, match='states must be'):
        train_flow(np.zeros((3, 2)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match='actions must be'):
        train_flow(np.zeros((0, 2)), np.zeros((0, 4)))
    with pytest.raises(ValueError, match='steps must be at least 1'):
        train_flow(np.zeros((4, 2)), np.zeros((4, 4)), steps=0)
