"""
The run's progress as the learner reports it: status fields, the progress line, curve, TensorBoard.

Training success and the share of steps a person controlled (over the run and over each
progress period: the human cost, as it falls), update rates over each progress period, the
latest evaluation round; drawn on the learning curve and TensorBoard once a period. Training
steps are the robot's steps outside evaluation episodes. The node puts ``status_fields`` into a
LearnerStatus. No ROS here.
"""

import math
import pathlib
import time
from typing import Callable, Dict, Optional, Tuple

from hilresrl_common.success_statistics import SuccessWindow
import numpy as np

from .actor_learners import ActorLearners
from .evaluation_rounds import EvaluationRounds
from .progress import LearningCurve


def tensorboard_writer(run_dir: pathlib.Path, warn: Callable[[str], None]):
    """Return a TensorBoard writer into run_dir/tensorboard, or None when it is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warn('TensorBoard is not installed (pip install tensorboard): no event files')
        return None
    return SummaryWriter(str(run_dir / 'tensorboard'))


class RunProgress:
    """Counters of the robot's steps and episodes, rates, and where they are drawn."""

    def __init__(self, run_dir: pathlib.Path, success_window: int, period_s: float,
                 writer=None):
        self.curve = LearningCurve(run_dir)
        self.writer = writer
        self.period_s = period_s
        self.train_success = SuccessWindow(success_window)
        self.train_steps = 0
        self.train_intervention_steps = 0  # the human cost: training steps a person took
        self._period_from = (0, 0)  # training and human steps when the period began
        self.started_s = time.monotonic()
        self.updates_per_s = 0.0
        self._last = (time.monotonic(), 0)  # when, paced updates then

    @property
    def wall_s(self) -> float:
        """Return the seconds since the learner started."""
        return time.monotonic() - self.started_s

    @property
    def intervention_rate(self) -> float:
        """Return the share of training steps a person controlled."""
        return self.train_intervention_steps / self.train_steps if self.train_steps else 0.0

    def count_step(self, intervened: bool) -> None:
        """Count a training step (evaluation steps are not counted at all)."""
        self.train_steps += 1
        self.train_intervention_steps += int(intervened)

    def start_period(self) -> None:
        """Begin the period of the human share here (a resume: after the replayed steps)."""
        self._period_from = (self.train_steps, self.train_intervention_steps)

    def _take_period(self) -> Tuple[int, Optional[float]]:
        """Return the training steps since the last call and the share a person took then."""
        steps = self.train_steps - self._period_from[0]
        human = self.train_intervention_steps - self._period_from[1]
        self.start_period()
        return steps, (human / steps if steps else None)

    def period_over(self, updates: int) -> bool:
        """Return whether a progress period is over; if so, take the update rate over it."""
        now = time.monotonic()
        then, previous = self._last
        if now - then < self.period_s:
            return False
        self.updates_per_s = (updates - previous) / (now - then)
        self._last = (now, updates)
        return True

    def status_fields(self, learners: ActorLearners, rounds: EvaluationRounds) -> Dict:
        """Return the LearnerStatus fields of the progress (all but state and versions)."""
        learner, updates = learners.residual, learners.paced_updates()
        env_steps = learner.env_steps if learner else 0
        latest = rounds.latest or {'success_rate': math.nan, 'ci_low': math.nan,
                                   'ci_high': math.nan}
        fields = {'updates': updates, 'env_steps': env_steps,
                  'updates_per_s': self.updates_per_s,
                  'update_to_data_target': learners.paced_update_to_data,
                  'latent_updates': learners.latent.updates if learners.latent else 0,
                  'train_episodes': self.train_success.episodes,
                  'train_success_rate': self.train_success.rate,
                  'intervention_rate': self.intervention_rate,
                  'eval_episodes': len(rounds.results),
                  'eval_success_rate': latest['success_rate'],
                  'eval_success_ci_low': latest['ci_low'],
                  'eval_success_ci_high': latest['ci_high']}
        if learner is not None:
            metrics = learner.last_metrics
            fields.update(
                online_buffer_size=len(learner.online),
                intervention_buffer_size=len(learner.intervention),
                offline_buffer_size=len(learner.offline) if learner.offline else 0,
                critic_loss=metrics.get('critic_loss', math.nan),
                actor_loss=metrics.get('actor_loss', math.nan),
                mean_q=metrics.get('mean_q', math.nan),
                update_to_data_ratio=updates / env_steps if env_steps else 0.0)
        return fields

    def report(self, learners: ActorLearners, rounds: EvaluationRounds, weights_version: int,
               latent_version: int) -> str:
        """Draw the period's progress (curve, TensorBoard); return the progress line."""
        learner, latent = learners.residual, learners.latent
        metrics, updates = learner.last_metrics, learners.paced_updates()
        step = learner.env_steps
        utd = updates / step if step else 0.0
        success = float(np.nan_to_num(self.train_success.rate))
        evaluation = (f'{100 * rounds.latest["success_rate"]:.0f}%' if rounds.latest
                      else 'none yet')
        period_steps, period_rate = self._take_period()
        if period_rate is not None:
            self.scalar('train/period_intervention_rate', period_rate, step)
        for name, value in {'train/success_rate': success,
                            'train/intervention_rate': self.intervention_rate,
                            'train/human_steps': self.train_intervention_steps,
                            'learner/updates_per_s': self.updates_per_s,
                            'learner/update_to_data': utd,
                            **{f'losses/{name}': value for name, value in metrics.items()}
                            }.items():
            self.scalar(name, value, step)
        self.curve.add_train(step, self.wall_s, success, self.intervention_rate,
                             period_rate, period_steps, self.train_intervention_steps)
        recent = 'none' if period_rate is None else f'{100 * period_rate:.0f}%'
        return (f'{step} steps | {updates} updates ({self.updates_per_s:.0f}/s, UTD {utd:.2f}) '
                f'| train success {100 * success:.0f}% | eval {evaluation} | human '
                f'{100 * self.intervention_rate:.0f}% ({recent} of the last {period_steps} '
                f'steps, {self.train_intervention_steps} in all) | Q '
                f'{metrics.get("mean_q", math.nan):.3f}'
                f' critic {metrics.get("critic_loss", math.nan):.4f} | weights '
                f'v{weights_version}' + (f' | refinement actor {latent.updates} updates, '
                                         f'v{latent_version}' if latent else ''))

    def summary(self, reason: str, learners: ActorLearners, rounds: EvaluationRounds,
                weights_version: int, latent_version: int, checkpoint,
                target_round: Optional[Dict[str, float]] = None) -> Dict:
        """
        Return what summary.json says at the end of the run.

        env_steps are training steps; human_steps the training steps a person controlled, in
        all and (target) when the round that reached the target ended (None: not reached).
        """
        learner, latent = learners.residual, learners.latent
        target = None if target_round is None else {
            key: target_round.get(key) for key in ('env_steps', 'human_steps', 'updates',
                                                   'wall_s', 'success_rate')}
        return {'reason': reason, 'env_steps': learner.env_steps if learner else 0,
                'human_steps': self.train_intervention_steps,
                'intervention_rate': self.intervention_rate, 'target': target,
                'updates': learner.updates if learner else 0,
                'actor_mode': learners.actor_mode,
                'latent_updates': latent.updates if latent else 0,
                'latent_weights_version': latent_version, 'weights_version': weights_version,
                'wall_s': self.wall_s, 'eval_rounds': rounds.rounds,
                'checkpoint': str(checkpoint)}

    def add_round(self, record: Dict[str, float]) -> None:
        """Draw a finished evaluation round."""
        self.curve.add_eval(record)
        self.scalar('eval/success_rate', record['success_rate'], record['env_steps'])

    def scalar(self, name: str, value: float, step: int) -> None:
        """Write one TensorBoard value, where there is a writer."""
        if self.writer is not None:
            self.writer.add_scalar(name, value, step)

    def close(self, draw: bool = True) -> Optional[pathlib.Path]:
        """Close the event files; draw the learning curve (its PNG path) unless told not to."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        return self.curve.write_png() if draw else None
