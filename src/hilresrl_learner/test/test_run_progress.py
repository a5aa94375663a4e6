"""The human cost as the learner reports it: the person's share per period and in all."""

import json
from types import SimpleNamespace

from hilresrl_learner.evaluation_rounds import EvaluationRounds
from hilresrl_learner.run_progress import RunProgress
import pytest


def _learners(env_steps: int):
    residual = SimpleNamespace(env_steps=env_steps, updates=0, last_metrics={})
    return SimpleNamespace(residual=residual, latent=None, actor_mode='residual',
                           paced_updates=lambda: 0)


def test_the_curve_shows_the_share_of_each_period_and_the_summary_the_human_steps(tmp_path):
    progress = RunProgress(tmp_path, success_window=20, period_s=0.0)
    rounds = EvaluationRounds(eval_episodes=2, target_success=0.5, target_window=2)
    for step in range(10):
        progress.count_step(intervened=step < 6)  # a person takes 6 of the first 10 steps
    progress.report(_learners(10), rounds, 1, 0)
    for step in range(10):
        progress.count_step(intervened=step < 1)  # ... and 1 of the next 10
    line = progress.report(_learners(20), rounds, 2, 0)
    assert 'human 35% (10% of the last 10 steps, 7 in all)' in line
    progress.report(_learners(20), rounds, 2, 0)  # a period without training steps
    rounds.add(True, env_steps=20, human_steps=progress.train_intervention_steps)
    target = rounds.add(True, env_steps=20, human_steps=progress.train_intervention_steps)
    assert rounds.target_reached()
    progress.count_step(intervened=True)  # after the target, before the end of the run

    train = [json.loads(line) for line in (tmp_path / 'curve.jsonl').read_text().splitlines()]
    assert [(p['period_intervention_rate'], p['period_steps'], p['human_steps'])
            for p in train] == [(0.6, 10, 6), (0.1, 10, 7), (None, 0, 7)]
    assert [p['intervention_rate'] for p in train] == pytest.approx([0.6, 0.35, 0.35])
    summary = progress.summary('target', _learners(21), rounds, 2, 0, 'ckpt', target)
    assert (summary['env_steps'], summary['human_steps']) == (21, 8)
    assert summary['intervention_rate'] == pytest.approx(8 / 21)
    assert summary['target']['env_steps'] == 20 and summary['target']['human_steps'] == 7
    assert progress.summary('budget', _learners(21), rounds, 2, 0, 'ckpt')['target'] is None
    assert progress.curve.write_png().stat().st_size > 0


def test_a_resumed_run_starts_its_period_after_the_replayed_steps(tmp_path):
    progress = RunProgress(tmp_path, success_window=20, period_s=0.0)
    for _ in range(50):
        progress.count_step(intervened=True)  # the replay bag, back in the buffers
    progress.start_period()
    progress.count_step(intervened=False)
    progress.report(_learners(51), EvaluationRounds(2), 1, 0)
    point = json.loads((tmp_path / 'curve.jsonl').read_text())
    assert (point['period_intervention_rate'], point['period_steps']) == (0.0, 1)
