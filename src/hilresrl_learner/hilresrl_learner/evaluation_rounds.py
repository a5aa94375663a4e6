"""
Evaluation rounds as the learner counts them: by the round id the episode manager gives each.

A round (robot, eval_round) is over when it has eval_round_episodes finished episodes; its
success rate and Wilson interval go to the curve and the status. An episode without a round id
(an older episode manager, or an evaluation-only job) falls back to rounds of ``eval_episodes``
consecutive such episodes. The run reaches its target when a round does and the last
``target_window`` episodes together do. No ROS here.
"""

from typing import Dict, List, Optional, Tuple

from hilresrl_common.success_statistics import wilson_interval

NO_ROUND = 0  # EpisodeEvent.eval_round of an episode outside any numbered round


class EvaluationRounds:
    """Outcomes of evaluation episodes, rounds by id, and whether the target is reached."""

    def __init__(self, eval_episodes: int, target_success: float = 0.0,
                 target_window: int = 40):
        self.eval_episodes = eval_episodes
        self.target_success = target_success
        self.target_window = target_window
        self.results: List[bool] = []  # every evaluation episode, in order of arrival
        self.rounds: List[Dict[str, float]] = []  # finished rounds, in order
        self._open: Dict[Tuple[str, int], List[bool]] = {}  # rounds under way
        self._unnumbered: List[bool] = []

    def add(self, success: bool, robot_id: str = '', eval_round: int = NO_ROUND,
            round_episodes: int = 0, env_steps: int = 0, updates: int = 0,
            wall_s: float = 0.0, human_steps: int = 0) -> Optional[Dict[str, float]]:
        """
        Count one finished evaluation episode; return its round's record if it ended one.

        The record: success_rate with its 95% interval (ci_low, ci_high), episodes, the round
        (robot_id, round: 0 when unnumbered) and the run's env_steps (training steps),
        human_steps (those a person controlled), updates and wall_s.
        """
        self.results.append(bool(success))
        if eval_round == NO_ROUND or round_episodes <= 0:
            eval_round, self._unnumbered = NO_ROUND, self._unnumbered + [bool(success)]
            if len(self._unnumbered) < self.eval_episodes:
                return None
            outcomes, self._unnumbered = self._unnumbered, []
        else:
            outcomes = self._open.setdefault((robot_id, eval_round), [])
            outcomes.append(bool(success))
            if len(outcomes) < round_episodes:
                return None
            del self._open[(robot_id, eval_round)]
        successes = sum(outcomes)
        low, high = wilson_interval(successes, len(outcomes))
        record = {'env_steps': env_steps, 'human_steps': human_steps, 'updates': updates,
                  'wall_s': wall_s,
                  'success_rate': successes / len(outcomes), 'ci_low': low,
                  'ci_high': high, 'episodes': len(outcomes), 'robot_id': robot_id,
                  'round': eval_round}
        self.rounds.append(record)
        return record

    @property
    def latest(self) -> Optional[Dict[str, float]]:
        """Return the latest finished round, or None."""
        return self.rounds[-1] if self.rounds else None

    def target_reached(self) -> str:
        """Return why the latest round ends the run ('': it does not)."""
        window = self.results[-self.target_window:]
        latest = self.latest
        if not (self.target_success and latest and len(window) >= self.target_window
                and latest['success_rate'] >= self.target_success
                and sum(window) >= self.target_success * len(window)):
            return ''
        low, high = wilson_interval(sum(window), len(window))
        return (f'evaluation success {sum(window)}/{len(window)} = '
                f'{100 * sum(window) / len(window):.1f}% (95% CI {100 * low:.0f}-'
                f'{100 * high:.0f}%) over the last {len(window)} evaluation episodes reached '
                f'the target of {100 * self.target_success:.0f}%')

    def state(self) -> dict:
        """Return what a checkpoint keeps (rounds under way included)."""
        return {'eval_rounds': self.rounds, 'eval_results': self.results,
                'eval_open_rounds': [[robot, number, outcomes] for (robot, number), outcomes
                                     in self._open.items()],
                'eval_unnumbered': self._unnumbered}

    def restore(self, state: dict) -> None:
        """Take back what ``state`` returned (older checkpoints hold rounds and results only)."""
        self.rounds = list(state.get('eval_rounds', []))
        self.results = list(state.get('eval_results', []))
        self._open = {(robot, number): list(outcomes)
                      for robot, number, outcomes in state.get('eval_open_rounds', [])}
        # An older learner counted every evaluation episode modulo eval_episodes.
        self._unnumbered = list(state.get(
            'eval_unnumbered', self.results[len(self.results) - len(self.results)
                                            % self.eval_episodes:]))


def describe(record: Dict[str, float]) -> str:
    """Return a finished round in one line: which, when, and its success with the interval."""
    name = (f' {record["round"]} of {record["robot_id"] or "the cell"}' if record['round']
            else '')
    return (f'evaluation round{name} after {record["env_steps"]} steps: '
            f'{round(record["success_rate"] * record["episodes"])}/{record["episodes"]} = '
            f'{100 * record["success_rate"]:.0f}% (95% CI {100 * record["ci_low"]:.0f}-'
            f'{100 * record["ci_high"]:.0f}%)')
