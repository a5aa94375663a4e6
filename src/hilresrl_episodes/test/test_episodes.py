"""Episode bookkeeping rules (core, no ROS)."""

from hilresrl_episodes.episodes import EpisodeError, EpisodeTracker, Mode, Outcome
import pytest


def test_episodes_are_numbered_and_summed():
    episodes = EpisodeTracker()
    assert episodes.start() == 1
    episodes.record_step(0.0, intervened=False)
    episodes.record_step(1.0, intervened=True)
    summary = episodes.end(Outcome.SUCCESS)
    assert (summary.episode_id, summary.mode, summary.outcome) == (1, Mode.TRAIN, Outcome.SUCCESS)
    assert (summary.steps, summary.episode_return, summary.intervention_steps) == (2, 1.0, 1)
    assert episodes.start(Mode.EVAL) == 2
    assert episodes.steps == 0 and episodes.episode_mode == Mode.EVAL


def test_one_episode_at_a_time():
    episodes = EpisodeTracker()
    episodes.start()
    with pytest.raises(EpisodeError, match='episode 1 is still running'):
        episodes.start()


def test_no_steps_or_end_without_an_episode():
    episodes = EpisodeTracker()
    with pytest.raises(EpisodeError, match='no episode is running'):
        episodes.record_step(0.0, False)
    with pytest.raises(EpisodeError, match='no episode is running'):
        episodes.end(Outcome.FAILURE)


def test_an_episode_ends_with_an_outcome():
    episodes = EpisodeTracker()
    episodes.start()
    with pytest.raises(EpisodeError, match='ends with SUCCESS'):
        episodes.end(Outcome.NONE)
    assert episodes.running


def test_paused_cell_starts_no_episode():
    episodes = EpisodeTracker()
    assert episodes.set_mode(Mode.PAUSE) == Mode.TRAIN
    with pytest.raises(EpisodeError, match='paused'):
        episodes.start()
    episodes.set_mode(Mode.EVAL)
    episodes.start()
    assert episodes.episode_mode == Mode.EVAL


def test_evaluation_episodes_allow_no_intervention():
    episodes = EpisodeTracker(Mode.EVAL)
    episodes.start()
    with pytest.raises(EpisodeError, match='evaluation'):
        episodes.record_step(0.0, intervened=True)
