"""Checkpoints: exact round trips, a resumed run that continues identically, refusals."""

import json

from hilresrl_learner.checkpoint import (CheckpointError, latest_checkpoint, load_checkpoint,
                                         save_checkpoint)
from hilresrl_learner.residual_td3 import LearnerConfig
from hilresrl_learner.training import ResidualLearner, StepRecord
import numpy as np
import pytest
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
