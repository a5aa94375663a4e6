"""Checkpoints: exact round trips, a resumed run that continues identically, refusals."""

import json

from hilresrl_learner.checkpoint import (CheckpointError, latest_checkpoint, load_checkpoint,
                                         save_checkpoint)
from hilresrl_learner.residual_td3 import LearnerConfig
from hilresrl_learner.training import ResidualLearner, StepRecord
import numpy as np
import pytest
from safetensors.torch import load_file, save_file
import torch

CONFIG = LearnerConfig(obs_dim=3, action_dim=2, actor_hidden=(16,), critic_hidden=(16, 16),
                       warmup_updates=2, batch_size=8)


def _learner(seed=0):
    learner = ResidualLearner(CONFIG, min_steps=1, seed=seed)
    rng = np.random.default_rng(42)
    for index in range(40):
        human = rng.uniform(-1, 1, 2).astype(np.float32) if index % 4 == 0 else None
        learner.add(StepRecord(index // 10, index % 10, rng.normal(size=3), rng.uniform(-1, 1, 2),
                               rng.uniform(-1, 1, 2), float(index % 10 == 9), rng.normal(size=3),
                               index % 10 == 9, False, human))
    return learner


def _parameters(learner):
    return {name: tensor.clone() for name, tensor in learner.agent.network_state().items()}


def test_a_resumed_learner_continues_exactly_as_the_original(tmp_path):
    original = _learner()
    original.train(10)
    save_checkpoint(tmp_path, original.agent, original.rng, {'weights_version': 3})
    original.train(10)
    expected = _parameters(original)

    resumed = _learner(seed=123)  # other seed: everything must come from the checkpoint
    counters = load_checkpoint(latest_checkpoint(tmp_path), resumed.agent, resumed.rng)
    assert counters == {'weights_version': 3} and resumed.updates == 10
    resumed.train(10)
    assert resumed.updates == 20
    for name, tensor in _parameters(resumed).items():
        assert torch.equal(tensor, expected[name]), name


def test_round_trip_is_bit_exact_and_latest_moves(tmp_path):
    learner = _learner()
    learner.train(5)
    first = save_checkpoint(tmp_path, learner.agent, learner.rng, {})
    learner.train(5)
    second = save_checkpoint(tmp_path, learner.agent, learner.rng, {})
    assert latest_checkpoint(tmp_path) == second.resolve() and first != second
    copy = _learner(seed=9)
    load_checkpoint(second, copy.agent, copy.rng)
    assert all(torch.equal(a, b) for a, b in zip(_parameters(copy).values(),
                                                 _parameters(learner).values()))
    assert copy.rng.bit_generator.state == learner.rng.bit_generator.state


def test_a_checkpoint_for_other_networks_is_refused_naming_the_mismatch(tmp_path):
    learner = _learner()
    path = save_checkpoint(tmp_path, learner.agent, learner.rng, {})
    other = ResidualLearner(LearnerConfig(**{**CONFIG.__dict__, 'critic_heads': 4}))
    with pytest.raises(CheckpointError, match='critic_heads: 2 != 4'):
        load_checkpoint(path, other.agent, other.rng)


def test_a_damaged_checkpoint_is_refused_naming_the_file(tmp_path):
    learner = _learner()
    path = save_checkpoint(tmp_path, learner.agent, learner.rng, {})
    (path / 'networks.safetensors').write_bytes(b'garbage')
    with pytest.raises(CheckpointError, match='unreadable checkpoint file'):
        load_checkpoint(path, _learner().agent, np.random.default_rng())
    (path / 'state.json').write_text(json.dumps({'config': {'obs_dim': 1}}))
    with pytest.raises(CheckpointError, match='state.json'):
        load_checkpoint(path, _learner().agent, np.random.default_rng())


def test_old_checkpoints_are_pruned(tmp_path):
    learner = _learner()
    for _ in range(4):
        learner.train(1)
        save_checkpoint(tmp_path, learner.agent, learner.rng, {}, keep=2)
    kept = sorted(p.name for p in (tmp_path / 'checkpoints').glob('update-*'))
    assert kept == ['update-0000000003', 'update-0000000004']


def test_a_dangling_latest_falls_back_to_the_newest_readable_checkpoint(tmp_path):
    learner = _learner()
    learner.train(2)
    older = save_checkpoint(tmp_path, learner.agent, learner.rng, {'weights_version': 1})
    learner.train(2)
    newer = save_checkpoint(tmp_path, learner.agent, learner.rng, {'weights_version': 2})
    import shutil
    shutil.rmtree(newer)  # latest now dangles
    warnings = []
    found = latest_checkpoint(tmp_path, warn=warnings.append)
    assert found == older.resolve()
    assert len(warnings) == 1 and newer.name in warnings[0] and older.name in warnings[0]
    resumed = _learner(seed=5)
    assert load_checkpoint(found, resumed.agent, resumed.rng) == {'weights_version': 1}
    assert resumed.updates == 2


def test_a_damaged_latest_falls_back_and_nothing_readable_names_the_damage(tmp_path):
    learner = _learner()
    older = save_checkpoint(tmp_path, learner.agent, learner.rng, {})
    learner.train(2)
    newer = save_checkpoint(tmp_path, learner.agent, learner.rng, {})
    (newer / 'networks.safetensors').write_bytes(b'garbage')
    assert latest_checkpoint(tmp_path, warn=lambda _: None) == older.resolve()
    (older / 'state.json').unlink()
    assert latest_checkpoint(tmp_path, warn=lambda _: None) == newer.resolve()
    with pytest.raises(CheckpointError, match='unreadable checkpoint file'):
        load_checkpoint(newer, _learner().agent, np.random.default_rng())


def test_a_checkpoint_with_nan_tensors_is_refused_naming_the_tensor(tmp_path):
    from safetensors.torch import load_file, save_file
    learner = _learner()
    path = save_checkpoint(tmp_path, learner.agent, learner.rng, {})
    networks = load_file(str(path / 'networks.safetensors'))
    name = sorted(networks)[0]
    networks[name] = networks[name].clone()
    networks[name].view(-1)[0] = float('nan')
    save_file(networks, str(path / 'networks.safetensors'))
    target = _learner(seed=3)
    before = _parameters(target)
    with pytest.raises(CheckpointError, match=f'tensor {name} holds 1 NaN or infinite'):
        load_checkpoint(path, target.agent, target.rng)
    assert all(torch.equal(tensor, before[key]) for key, tensor in _parameters(target).items())


@pytest.mark.parametrize('damage, expected', [
    ('state', 'missing updates, numpy_rng'),
    ('optimizers', 'missing optimizers.critic'),
    ('generator', 'optimizers.safetensors: missing torch_generator'),
    ('file', 'missing optimizers.safetensors'),
])
def test_missing_keys_and_files_are_reported_as_messages(tmp_path, damage, expected):
    from safetensors.torch import load_file, save_file
    learner = _learner()
    path = save_checkpoint(tmp_path, learner.agent, learner.rng, {})
    state = json.loads((path / 'state.json').read_text())
    if damage == 'state':
        del state['updates'], state['numpy_rng']
    elif damage == 'optimizers':
        del state['optimizers']['critic']
    (path / 'state.json').write_text(json.dumps(state))
    if damage == 'generator':
        tensors = load_file(str(path / 'optimizers.safetensors'))
        del tensors['torch_generator']
        save_file(tensors, str(path / 'optimizers.safetensors'))
    if damage == 'file':
        (path / 'optimizers.safetensors').unlink()
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path, _learner().agent, np.random.default_rng())


def test_the_checkpoint_folder_is_fsynced_after_the_renames(tmp_path, monkeypatch):
    import os
    import stat
    synced = []
    original = os.fsync

    def recording(descriptor):
        if stat.S_ISDIR(os.fstat(descriptor).st_mode):
            synced.append(os.readlink(f'/proc/self/fd/{descriptor}'))
        return original(descriptor)

    monkeypatch.setattr(os, 'fsync', recording)
    learner = _learner()
    save_checkpoint(tmp_path, learner.agent, learner.rng, {})
    assert str(tmp_path / 'checkpoints') in synced


def test_observation_statistics_are_kept_and_checkpoints_without_them_load(tmp_path):
    normalized = LearnerConfig(**dict(vars(CONFIG), observation_normalization=True))
    learner = ResidualLearner(normalized, min_steps=1)
    rng = np.random.default_rng(0)
    for index in range(20):
        learner.add(StepRecord(0, index, rng.normal(size=3) * [1, 100, 0.01], np.zeros(2),
                               np.zeros(2), 0.0, rng.normal(size=3), False, False))
    learner.train(3)
    statistics = learner.agent.critic.observation_normalizer.std.clone()
    save_checkpoint(tmp_path / 'normalized', learner.agent, learner.rng, {})
    resumed = ResidualLearner(normalized, min_steps=1)
    resumed.add(StepRecord(0, 0, np.full(3, 1e3), np.zeros(2), np.zeros(2), 0.0, np.zeros(3),
                           False, False))
    load_checkpoint(latest_checkpoint(tmp_path / 'normalized'), resumed.agent, resumed.rng)
    resumed.train(1)  # statistics came with the checkpoint: not fitted again on new steps
    for network in (resumed.agent.actor, resumed.agent.critic_target):
        assert torch.equal(network.observation_normalizer.std, statistics)

    # a checkpoint written before the statistics existed: the networks see raw observations
    old = _learner()
    old.train(5)
    path = save_checkpoint(tmp_path / 'old', old.agent, old.rng, {})
    networks = load_file(str(path / 'networks.safetensors'))
    save_file({name: tensor for name, tensor in networks.items()
               if 'observation_normalizer' not in name}, str(path / 'networks.safetensors'))
    copy = _learner(seed=5)
    load_checkpoint(path, copy.agent, copy.rng)
    assert not copy.agent.observations_normalized
    assert all(torch.equal(a, b) for a, b in zip(_parameters(copy).values(),
                                                 _parameters(old).values()))
