"""The learner's run folder, run id, weights versions and its weights channel (no ROS)."""

import time

from hilresrl_learner.run_folder import (checkpoint_refusal, choose_run_folder,
                                         learner_run_id, read_weights_version)
from hilresrl_learner.weights_channel import WeightsChannel
import pytest


def test_resume_takes_the_newest_training_run_never_an_evaluation_run(tmp_path, monkeypatch):
    monkeypatch.setenv('HILRESRL_HOME', str(tmp_path))
    with pytest.raises(ValueError, match='no run in'):
        choose_run_folder(None, resume=True)
    for name in ('20240101-000000', '20240102-000000', '20240103-000000-eval'):
        (tmp_path / 'runs' / name / 'replay').mkdir(parents=True)
    assert choose_run_folder('', resume=True).name == '20240102-000000'
    fresh = choose_run_folder(None, resume=False)
    assert fresh.is_dir() and fresh.parent == tmp_path / 'runs'
    with pytest.raises(ValueError, match='holds no run'):
        choose_run_folder(str(tmp_path / 'empty'), resume=True)


def test_the_run_id_is_drawn_once_per_folder(tmp_path):
    run_id = learner_run_id(tmp_path)
    assert len(run_id) == 32 and learner_run_id(tmp_path) == run_id


def test_checkpoints_outside_the_run_folder_are_refused(tmp_path):
    (tmp_path / 'run').mkdir()
    assert checkpoint_refusal(str(tmp_path / 'run' / 'checkpoints'), tmp_path / 'run', []) == ''
    assert 'outside the run folder' in checkpoint_refusal(
        str(tmp_path / 'run' / '..' / 'other'), tmp_path / 'run', [])
    assert checkpoint_refusal(str(tmp_path / 'other'), tmp_path / 'run',
                              [str(tmp_path / 'other')]) == ''


class _Learner:
    def __init__(self, updates, actor_updates):
        from hilresrl_policy.residual import ResidualActor, ResidualConfig
        self.updates, self.env_steps = updates, 3 * updates

        class Agent:
            pass
        self.agent = Agent()
        self.agent.actor_updates = actor_updates
        self.agent.actor = ResidualActor(ResidualConfig(2, 1, (4,), True))


def test_one_channel_paces_versions_and_keeps_them_across_restarts(tmp_path):
    channel = WeightsChannel(tmp_path / 'latent', 'run', period_updates=10, period_s=60.0)
    assert not channel.due(None) and not channel.due(_Learner(50, 0))  # the actor waits
    assert channel.due(_Learner(10, 1)) and not channel.due(_Learner(9, 1))
    fields = channel.take(_Learner(10, 1))
    assert (fields['version'], fields['learner_run_id'], fields['learner_updates'],
            fields['env_steps']) == (1, 'run', 10, 30)
    assert fields['format'] == 'safetensors' and len(fields['sha256']) == 64
    assert not channel.due(_Learner(19, 1)) and channel.due(_Learner(20, 1))
    channel.sent_s = time.monotonic() - 61.0
    assert channel.due(_Learner(11, 1))  # the period in seconds is over
    assert read_weights_version(tmp_path / 'latent') == 1
    again = WeightsChannel(tmp_path / 'latent', 'run', 10, 60.0)
    again.restored(0)
    assert again.take(_Learner(1, 1))['version'] == 2
