"""Tests of behaviour cloning, its checkpoints and its base-policy adapter."""

import hashlib
import json
import pickle

from hilresrl_policy.adapters import BasePolicyError, load_base_policy
from hilresrl_policy.bc import BCConfig, load_checkpoint, save_checkpoint, train_bc
from hilresrl_policy.model_checkpoint import CheckpointError, CONFIG_FILE, MODEL_FILE
import numpy as np
import pytest
import torch

WEIGHTS = np.array([[0.8, -0.5, 0.0], [0.3, 0.3, 0.3], [0.0, 0.0, -1.2], [0.5, 0.0, 0.5]],
                   dtype=np.float32)


def _linear_task(count: int, seed: int):
    generator = np.random.default_rng(seed)
    # Offset and scaled inputs: the network has to use its input normalization.
    states = generator.normal(size=(count, 3)).astype(np.float32) * [1.0, 5.0, 0.2] + 10.0
    centred = (states - 10.0) / [1.0, 5.0, 0.2]
    return states, np.tanh(centred @ WEIGHTS.T).astype(np.float32)


@pytest.fixture(scope='module')
def network():
    states, actions = _linear_task(512, seed=0)
    return train_bc(states, actions, epochs=60, batch_size=64, seed=0, task='linear-v0')


@pytest.fixture
def checkpoint(network, tmp_path):
    return save_checkpoint(tmp_path / 'bc', network, {'note': 'test', 'success_rate': 0.5})


def test_learns_a_simple_mapping(network):
    states, actions = _linear_task(256, seed=1)
    predicted = network.act(states)
    assert predicted.shape == (256, 4) and predicted.dtype == np.float32
    assert float(np.mean((predicted - actions) ** 2)) < 0.001
    assert network.act(states[0]).shape == (4,)


def test_training_is_deterministic_for_a_seed():
    states, actions = _linear_task(64, seed=2)
    first = train_bc(states, actions, epochs=3, seed=7)
    second = train_bc(states, actions, epochs=3, seed=7)
    other = train_bc(states, actions, epochs=3, seed=8)
    np.testing.assert_array_equal(first.act(states), second.act(states))
    assert not np.array_equal(first.act(states), other.act(states))


def test_checkpoint_round_trip_gives_identical_outputs(network, checkpoint):
    assert sorted(path.name for path in checkpoint.iterdir()) == [CONFIG_FILE, MODEL_FILE]
    loaded = load_checkpoint(checkpoint)
    states, _ = _linear_task(32, seed=3)
    np.testing.assert_array_equal(loaded.network.act(states), network.act(states))
    assert loaded.network.config == network.config
    assert loaded.metadata == {'note': 'test', 'success_rate': 0.5}
    assert loaded.sha256 == hashlib.sha256((checkpoint / MODEL_FILE).read_bytes()).hexdigest()
    assert not loaded.network.training


def test_loading_unpickles_nothing(checkpoint, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('unpickling attempted')

    monkeypatch.setattr(torch, 'load', refuse)
    monkeypatch.setattr(pickle, 'load', refuse)
    monkeypatch.setattr(pickle, 'loads', refuse)
    load_checkpoint(checkpoint)


def test_saving_again_replaces_the_checkpoint_atomically(network, checkpoint):
    save_checkpoint(checkpoint, network, {'note': 'second'})
    assert load_checkpoint(checkpoint).metadata == {'note': 'second'}
    # No staging or retired directories are left beside it.
    assert sorted(path.name for path in checkpoint.parent.iterdir()) == ['bc']


def test_save_refuses_to_replace_a_directory_with_other_files(network, tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(CheckpointError, match='notes.txt'):
        save_checkpoint(tmp_path, network)
    assert (tmp_path / 'notes.txt').read_text() == 'mine'


def test_a_base_policys_demonstrations_do_not_stop_it_being_rebuilt(network, checkpoint):
    # its own and those recorded again with a pixel learner's cameras belong to it
    (checkpoint / 'demonstrations.npz').write_bytes(b'')
    (checkpoint / 'demonstrations-corner-gripperPOV-128px.npz').write_bytes(b'')
    save_checkpoint(checkpoint, network, {'note': 'rebuilt'})
    assert load_checkpoint(checkpoint).metadata == {'note': 'rebuilt'}


def test_missing_files_are_named(checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match='not a directory'):
        load_checkpoint(tmp_path / 'nothing_here')
    (checkpoint / MODEL_FILE).unlink()
    with pytest.raises(CheckpointError, match=f'{MODEL_FILE} is missing'):
        load_checkpoint(checkpoint)
    (checkpoint / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match=f'{CONFIG_FILE} is missing'):
        load_checkpoint(checkpoint)


def test_corrupt_files_are_named(checkpoint):
    model = checkpoint / MODEL_FILE
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f'{MODEL_FILE} is not a valid safetensors'):
        load_checkpoint(checkpoint)
    (checkpoint / CONFIG_FILE).write_text('{"format": "hilresrl-bc", ')
    with pytest.raises(CheckpointError, match=f'{CONFIG_FILE} is not readable JSON'):
        load_checkpoint(checkpoint)


def test_a_config_that_does_not_match_the_weights_is_refused(checkpoint):
    config_path = checkpoint / CONFIG_FILE
    stored = json.loads(config_path.read_text())
    stored['model']['hidden_sizes'] = [128, 256]
    config_path.write_text(json.dumps(stored))
    with pytest.raises(CheckpointError,
                       match=f'{MODEL_FILE} does not match .*{CONFIG_FILE}: tensor head.0.weight'):
        load_checkpoint(checkpoint)
    stored['model']['kind'] = 'transformer'
    config_path.write_text(json.dumps(stored))
    with pytest.raises(CheckpointError, match=f'{CONFIG_FILE} has an invalid model section'):
        load_checkpoint(checkpoint)


def test_adapter_through_the_registry(network, checkpoint):
    policy = load_base_policy('bc', {'checkpoint': str(checkpoint)})
    states, _ = _linear_task(1, seed=4)
    chunk = policy.act({'task_state': states[0], 'joint_positions': np.zeros(7)})
    assert chunk.dtype == np.float32 and chunk.shape == (1, 4)
    np.testing.assert_array_equal(chunk[0], network.act(states[0]))
    assert (policy.horizon, policy.action_dim) == (1, 4)
    digest = hashlib.sha256((checkpoint / MODEL_FILE).read_bytes()).hexdigest()
    assert policy.source_model == f'bc_mlp:linear-v0@{digest[:12]}'


def test_adapter_errors_name_the_problem(checkpoint, tmp_path):
    with pytest.raises(BasePolicyError, match="'checkpoint'"):
        load_base_policy('bc', {})
    with pytest.raises(BasePolicyError, match='config.json is missing'):
        load_base_policy('bc', {'checkpoint': str(tmp_path)})
    policy = load_base_policy('bc', {'checkpoint': str(checkpoint)})
    with pytest.raises(BasePolicyError, match="needs observation 'task_state'"):
        policy.act({'joint_positions': np.zeros(7)})
    with pytest.raises(BasePolicyError, match='has 5 values'):
        policy.act({'task_state': np.zeros(5)})


def test_cnn_trains_saves_and_acts_through_the_adapter(tmp_path):
    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, size=(16, 24, 32, 3), dtype=np.uint8)
    states = generator.normal(size=(16, 2)).astype(np.float32)
    actions = np.clip(generator.normal(size=(16, 4)), -1, 1).astype(np.float32)
    losses = []
    network = train_bc(states, actions, kind='cnn', images=images, image_key='image/front',
                       hidden_sizes=(32,), epochs=5, batch_size=8, task='cnn-test',
                       progress=lambda epoch, loss: losses.append(loss))
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert network.config == BCConfig(kind='cnn', state_dim=2, action_dim=4, hidden_sizes=(32,),
                                      image_key='image/front', image_shape=(24, 32, 3),
                                      task='cnn-test')
    directory = save_checkpoint(tmp_path / 'cnn', network)
    policy = load_base_policy('bc', {'checkpoint': str(directory), 'device': 'cpu'})
    assert policy.source_model.startswith('bc_cnn:cnn-test@')
    chunk = policy.act({'image/front': images[3], 'task_state': states[3]})
    np.testing.assert_array_equal(chunk[0], network.act(states[3], images[3]))
    with pytest.raises(BasePolicyError, match='image/front'):
        policy.act({'image/front': images[3, :10], 'task_state': states[3]})


def test_bad_training_inputs_are_refused():
    with pytest.raises(ValueError, match='states must be'):
        train_bc(np.zeros((3, 2)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match='images'):
        train_bc(None, np.zeros((4, 4)), kind='cnn', image_key='image/front')
    with pytest.raises(ValueError, match='kind'):
        train_bc(np.zeros((4, 2)), np.zeros((4, 4)), kind='rnn')
