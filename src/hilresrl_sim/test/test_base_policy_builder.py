"""Tests of the base-policy builder: a tiny real build, the calibration search, --if-missing."""

from hilresrl_common.success_statistics import wilson_interval
from hilresrl_policy.adapters import load_base_policy
from hilresrl_policy.adapters.flow_policy import make_flow_policy
from hilresrl_policy.bc import BCConfig, BCNetwork, load_checkpoint, save_checkpoint
from hilresrl_policy.flow_bc import FlowConfig, FlowPolicy, load_flow_checkpoint
from hilresrl_policy.flow_bc import save_flow_checkpoint
from hilresrl_policy.model_checkpoint import CheckpointError
from hilresrl_sim import base_policy_builder as builder
from hilresrl_sim.demos import Demonstrations
import numpy as np
import pytest


@pytest.fixture
def tiny_training(monkeypatch):
    monkeypatch.setattr(builder, 'EPOCHS', 5)


def test_a_tiny_build_saves_a_loadable_checkpoint_with_its_measurements(tiny_training,
                                                                        tmp_path):
    lines = []
    result = builder.build_base_policy('pick-place-v3', tmp_path / 'base', target=(0.0, 1.0),
                                       eval_episodes=2, seed=3, progress=lines.append)
    assert [line.split(' ')[0] for line in lines] == [
        'demonstrations:', 'training', 'evaluation', 'saved']
    assert result['in_band'] is True
    assert result['demonstrations']['episodes'] == 10
    assert result['evaluation']['episodes'] == 2
    assert result['success_rate'] == result['evaluation']['successes'] / 2
    assert result['success_interval_95'] == list(
        wilson_interval(result['evaluation']['successes'], 2))
    assert result['evaluation']['seeds'] == builder.evaluation_seeds(3, 2)
    assert not set(result['evaluation']['seeds']) & set(
        result['demonstrations']['episode_seeds'])
    stored = load_checkpoint(tmp_path / 'base').metadata
    assert stored == {key: value for key, value in result.items()
                      if key not in ('checkpoint', 'source_model')}
    policy = load_base_policy('bc', {'checkpoint': result['checkpoint']})
    assert policy.source_model == result['source_model']
    assert policy.act({'task_state': np.zeros(39, dtype=np.float32)}).shape == (1, 4)
    # The demonstrations it learnt from lie beside it, for the learner to preload.
    kept = Demonstrations.load(tmp_path / 'base' / result['demonstrations']['file'])
    assert kept.episodes == result['demonstrations']['episodes']
    assert len(kept) == result['demonstrations']['steps']
    assert kept.task == 'pick-place-v3'

    # Built again in its own folder (its demonstrations belong to it): the same weights.
    again = builder.build_base_policy('pick-place-v3', tmp_path / 'base', target=(0.0, 1.0),
                                      eval_episodes=2, seed=3, progress=None)
    assert again['source_model'] == result['source_model']  # same seed, same weights
    assert Demonstrations.load(tmp_path / 'base' / 'demonstrations.npz').episodes == 10


def _fake_calibration(monkeypatch, success_by_demos):
    """Replace collection and training by a success rate that depends on the demo count."""
    trained = []

    def collect(task, episodes, seed, say):
        return Demonstrations(np.zeros((episodes, 39)), np.zeros((episodes, 4)),
                              np.zeros((episodes, 4)), np.arange(episodes),
                              np.ones(episodes, dtype=bool), task=task)

    def train_and_evaluate(task, demos, seeds, seed, number, say):
        trained.append(demos.episodes)
        rate = success_by_demos(demos.episodes)
        return {'demos': demos.episodes, 'samples': len(demos), 'success_rate': rate,
                'successes': round(rate * len(seeds)), 'loss': 0.1,
                'network': BCNetwork(BCConfig(state_dim=39, task=task.name)),
                'demo_success_rate': 1.0}

    monkeypatch.setattr(builder, '_collect', collect)
    monkeypatch.setattr(builder, '_train_and_evaluate', train_and_evaluate)
    return trained


def test_calibration_moves_the_demo_count_into_the_band(monkeypatch, tmp_path):
    trained = _fake_calibration(monkeypatch, lambda demos: min(20, demos) / 20)
    result = builder.build_base_policy('pick-place-v3', tmp_path / 'base', target=(0.8, 0.9),
                                       eval_episodes=20, progress=None)
    assert trained == [10, 20, 15, 17]  # double, then bisect
    assert result['in_band'] is True
    assert result['demonstrations']['episodes'] == 17
    assert result['calibration'] == [{'demos': 10, 'success_rate': 0.5},
                                     {'demos': 20, 'success_rate': 1.0},
                                     {'demos': 15, 'success_rate': 0.75},
                                     {'demos': 17, 'success_rate': 0.85}]


def test_calibration_keeps_the_closest_when_the_band_is_jumped_over(monkeypatch, tmp_path):
    trained = _fake_calibration(monkeypatch, lambda demos: 0.2 if demos <= 12 else 0.9)
    result = builder.build_base_policy('pick-place-v3', tmp_path / 'base', target=(0.4, 0.6),
                                       eval_episodes=20, progress=None)
    assert trained == [10, 20, 15, 12, 13]
    assert result['in_band'] is False
    assert result['demonstrations']['episodes'] == 10  # of the closest, the fewest
    assert result['success_rate'] == 0.2


def test_calibration_halves_when_the_first_guess_is_too_good(monkeypatch, tmp_path):
    trained = _fake_calibration(monkeypatch, lambda demos: min(20, demos) / 20)
    builder.build_base_policy('pick-place-v3', tmp_path / 'base', target=(0.1, 0.3),
                              eval_episodes=20, progress=None)
    assert trained == [10, 5]


def _tiny_checkpoint(directory, task):
    save_checkpoint(directory, BCNetwork(BCConfig(state_dim=39, task=task)), {'task': task})


def test_if_missing_keeps_a_valid_checkpoint(monkeypatch, tmp_path, capsys):
    _tiny_checkpoint(tmp_path / 'base', 'pick-place-v3')
    monkeypatch.setattr(builder, 'build_base_policy', pytest.fail)
    assert builder.main(['--task', 'pick-place-v3', '--out', str(tmp_path / 'base'),
                         '--if-missing']) == 0
    assert 'nothing to do' in capsys.readouterr().out


@pytest.mark.parametrize('existing', [None, 'PandaPickCube', 'corrupt'])
def test_if_missing_builds_when_there_is_no_valid_checkpoint(monkeypatch, tmp_path, capsys,
                                                             existing):
    out = tmp_path / 'base'
    if existing == 'corrupt':
        _tiny_checkpoint(out, 'pick-place-v3')
        (out / 'model.safetensors').write_bytes(b'garbage')
    elif existing:
        _tiny_checkpoint(out, existing)
    calls = []

    def build(task, out_dir, target, eval_episodes, seed, progress, kind):
        calls.append((task, out_dir, target, eval_episodes, seed, kind))
        return {'in_band': True, 'success_rate': 0.5}

    monkeypatch.setattr(builder, 'build_base_policy', build)
    assert builder.main(['--task', 'pick-place-v3', '--out', str(out), '--if-missing',
                         '--eval-episodes', '7', '--seed', '4']) == 0
    assert calls == [('pick-place-v3', out, (0.3, 0.7), 7, 4, 'bc')]
    assert 'building a base policy' in capsys.readouterr().out


def test_a_directory_with_other_files_is_refused_before_any_work(monkeypatch, tmp_path,
                                                                 capsys):
    (tmp_path / 'notes.txt').write_text('mine')
    monkeypatch.setattr(builder, 'make_task', pytest.fail)
    assert builder.main(['--out', str(tmp_path)]) == 2
    assert 'notes.txt' in capsys.readouterr().err
    assert (tmp_path / 'notes.txt').read_text() == 'mine'


def test_unknown_task_is_an_error(tmp_path, capsys):
    assert builder.main(['--task', 'no-such-task', '--out', str(tmp_path / 'base')]) == 2
    assert 'unknown task' in capsys.readouterr().err


@pytest.fixture
def tiny_flow_training(monkeypatch):
    monkeypatch.setattr(builder, 'FLOW_EPOCHS', 5)
    monkeypatch.setattr(builder, 'FLOW_HIDDEN_SIZES', (64, 64))


def test_a_tiny_flow_build_saves_a_steerable_checkpoint(tiny_flow_training, tmp_path):
    lines = []
    result = builder.build_base_policy('pick-place-v3', tmp_path / 'flow', target=(0.0, 1.0),
                                       eval_episodes=2, seed=3, progress=lines.append,
                                       kind='flow')
    assert [line.split(' ')[0] for line in lines] == [
        'demonstrations:', 'training', 'evaluation', 'saved']
    assert 'flow matching' in lines[1]
    assert result['in_band'] is True
    assert result['demonstrations']['episodes'] == 10
    assert result['success_rate'] == result['evaluation']['successes'] / 2
    assert result['evaluation']['seeds'] == builder.evaluation_seeds(3, 2)
    assert result['training']['kind'] == 'flow_mlp'
    assert result['training']['epochs'] == 5
    assert result['training']['hidden_sizes'] == [64, 64]
    assert result['training']['integration_steps'] == builder.FLOW_STEPS
    loaded = load_flow_checkpoint(tmp_path / 'flow')
    assert loaded.metadata == {key: value for key, value in result.items()
                               if key not in ('checkpoint', 'source_model')}
    assert loaded.model.config.task == 'pick-place-v3'
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / 'flow')  # a flow checkpoint is no BC one

    policy = make_flow_policy({'checkpoint': result['checkpoint']})
    assert policy.source_model == result['source_model']
    assert policy.source_model.startswith('flow_mlp:pick-place-v3@')
    observation = {'task_state': np.zeros(39, dtype=np.float32)}
    latent = np.full(4, 0.5, dtype=np.float32)
    action = policy.act_with_latent(observation, latent)
    assert action.shape == (1, 4) and np.all(np.abs(action) <= 1.0)
    np.testing.assert_array_equal(policy.act_with_latent(observation, latent), action)

    again = builder.build_base_policy('pick-place-v3', tmp_path / 'again', target=(0.0, 1.0),
                                      eval_episodes=2, seed=3, progress=None, kind='flow')
    assert again['source_model'] == result['source_model']  # same seed, same weights


def test_an_unknown_kind_is_refused_before_any_work(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(builder, 'make_task', pytest.fail)
    with pytest.raises(ValueError, match='kind must be one of bc, flow'):
        builder.build_base_policy('pick-place-v3', tmp_path / 'base', kind='diffusion')
    with pytest.raises(SystemExit):
        builder.main(['--kind', 'diffusion', '--out', str(tmp_path / 'base')])
    assert 'invalid choice' in capsys.readouterr().err


def test_the_flow_policy_has_its_own_default_directory(monkeypatch, tmp_path):
    monkeypatch.setenv('HILRESRL_HOME', str(tmp_path))
    assert builder.default_checkpoint_dir('pick-place-v3') == (
        tmp_path / 'base_policies' / 'pick-place-v3')
    assert builder.default_checkpoint_dir('pick-place-v3', 'flow') == (
        tmp_path / 'base_policies' / 'pick-place-v3-flow')


def _tiny_flow_checkpoint(directory, task):
    save_flow_checkpoint(directory, FlowPolicy(FlowConfig(state_dim=39, task=task)),
                         {'task': task})


def test_if_missing_with_kind_flow_keeps_only_a_flow_checkpoint(monkeypatch, tmp_path,
                                                                capsys):
    calls = []

    def build(task, out_dir, target, eval_episodes, seed, progress, kind):
        calls.append((task, out_dir, kind))
        return {'in_band': True, 'success_rate': 0.5}

    monkeypatch.setattr(builder, 'build_base_policy', build)
    flow, bc = tmp_path / 'flow', tmp_path / 'bc'
    _tiny_flow_checkpoint(flow, 'pick-place-v3')
    _tiny_checkpoint(bc, 'pick-place-v3')
    assert builder.main(['--kind', 'flow', '--out', str(flow), '--if-missing']) == 0
    assert 'nothing to do' in capsys.readouterr().out
    assert builder.main(['--kind', 'flow', '--out', str(bc), '--if-missing']) == 0
    assert 'behaviour-cloning' in capsys.readouterr().out  # why it builds
    assert builder.main(['--out', str(flow), '--if-missing']) == 0  # and the other way round
    assert calls == [('pick-place-v3', bc, 'flow'), ('pick-place-v3', flow, 'bc')]
    monkeypatch.setenv('HILRESRL_HOME', str(tmp_path / 'home'))
    assert builder.main(['--kind', 'flow']) == 0
    assert calls[-1] == ('pick-place-v3', tmp_path / 'home' / 'base_policies' /
                         'pick-place-v3-flow', 'flow')
