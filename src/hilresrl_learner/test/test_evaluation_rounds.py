"""Evaluation rounds by the episode manager's round id, and the run's target (no ROS)."""

from hilresrl_learner.evaluation_rounds import describe, EvaluationRounds
import pytest


def test_a_round_ends_when_its_id_has_all_its_episodes_whatever_else_arrives():
    rounds = EvaluationRounds(eval_episodes=2)
    assert rounds.add(True, 'robot1', 1, 3, env_steps=10) is None
    assert rounds.add(False, 'robot2', 1, 3) is None  # another cell's round 1
    assert rounds.add(False, 'robot1', 1, 3) is None
    assert rounds.add(True, 'robot2', 1, 3) is None
    record = rounds.add(True, 'robot1', 1, 3, env_steps=30, updates=7, wall_s=1.0)
    assert record['success_rate'] == pytest.approx(2 / 3) and record['episodes'] == 3
    assert (record['robot_id'], record['round'], record['env_steps'], record['updates']) == (
        'robot1', 1, 30, 7)
    assert record['ci_low'] < 2 / 3 < record['ci_high']
    assert rounds.latest is record and len(rounds.results) == 5
    assert describe(record).startswith('evaluation round 1 of robot1 after 30 steps: 2/3 = 67%')


def test_episodes_without_a_round_id_count_in_rounds_of_eval_episodes():
    rounds = EvaluationRounds(eval_episodes=2)
    assert rounds.add(True) is None
    record = rounds.add(False)
    assert (record['round'], record['episodes'], record['success_rate']) == (0, 2, 0.5)
    assert describe(record).startswith('evaluation round after')


def test_the_target_needs_the_round_and_the_whole_window():
    rounds = EvaluationRounds(eval_episodes=2, target_success=0.95, target_window=4)
    for number, outcomes in enumerate(((True, True), (True, False), (True, True)), start=1):
        for outcome in outcomes:
            rounds.add(outcome, 'r', number, 2)
        assert rounds.target_reached() == ''
    rounds.add(True, 'r', 4, 2)
    rounds.add(True, 'r', 4, 2)
    assert rounds.target_reached().startswith('evaluation success 4/4 = 100.0%')


def test_a_checkpoint_keeps_rounds_under_way():
    rounds = EvaluationRounds(eval_episodes=3)
    rounds.add(True, 'r', 5, 2)
    rounds.add(True)
    resumed = EvaluationRounds(eval_episodes=3)
    resumed.restore(rounds.state())
    assert resumed.add(False, 'r', 5, 2)['success_rate'] == 0.5
    assert resumed.results == [True, True, False]
    # an older checkpoint: results and rounds only, counted modulo eval_episodes
    older = EvaluationRounds(eval_episodes=3)
    older.restore({'eval_results': [True] * 4, 'eval_rounds': [{'success_rate': 1.0}]})
    assert older.add(True) is None and older.add(False)['success_rate'] == pytest.approx(2 / 3)
