"""
The learner node's two learners: the residual actor's and the refinement (latent) actor's.

Builds them (configuration checked at start-up; the networks once the observation size is
known), turns transitions into each one's steps, schedules their updates in rounds (offline
warm-up first, then each at its update-to-data ratio, taking turns) and checkpoints both.
Which are learned is ``actor_mode``: residual, latent or dual. No ROS here.
"""

import pathlib
import time
from typing import Any, Callable, Dict, Hashable, Mapping, Optional, Sequence, Tuple

from hilresrl_policy.image_encoder import configured_pretrained_encoder, ImageInputs
import numpy as np

from .checkpoint import latest_checkpoint, load_checkpoint, read_config, save_checkpoint
from .latent_steps import COMMAND_FEATURES, latent_step_record, refinement_config
from .learner_parameters import config_settings, latent_scale
from .residual_td3 import LearnerConfig
from .training import ResidualLearner, StepRecord
from .transition_data import checked_step_record

LATENT_FOLDER = 'latent'  # the refinement actor's part of the run folder


class ActorLearners:
    """The residual learner and the refinement learner, as ``actor_mode`` asks."""

    def __init__(self, values: Mapping[str, Any], run_dir: pathlib.Path,
                 log: Callable[[str], None] = print, warn: Callable[[str], None] = print):
        """Take the learner parameters' values; ValueError: a configuration it cannot run."""
        self.values = values
        self.actor_mode: str = values['actor_mode']
        self.action_dim: int = values['action_dim']
        self.policy_inputs = list(values['policy_inputs'])
        self.latent_dim: int = values['latent.dim']
        self.latent_scale = latent_scale(values)
        self.compiled: bool = values['compile_updates']
        self.settings = config_settings(values)
        # A frozen pretrained image encoder, loaded now so that a missing file or library stops
        # the start; the actor's weights name its file by SHA-256, never carry it.
        self.pretrained_encoder = configured_pretrained_encoder(
            self.settings.get('image_encoder', ''), values.get('image_encoder_weights', ''),
            ImageInputs(self.settings['cameras'], *self.settings['image_size'])
            if self.settings.get('cameras') else None, values['action_dim'])
        if self.pretrained_encoder is not None:
            self.settings['image_encoder_sha256'] = self.pretrained_encoder.weights_sha256
            log(f'image encoder: {self.pretrained_encoder.architecture}, frozen, from '
                f'{values["image_encoder_weights"]} (SHA-256 '
                f'{self.pretrained_encoder.weights_sha256[:16]})')
        self.run_dir, self.latent_dir = run_dir, run_dir / LATENT_FOLDER
        self.log, self.warn = log, warn
        self.residual: Optional[ResidualLearner] = None
        self.latent: Optional[ResidualLearner] = None
        self.offline_updates_left = 0
        self._mismatch_warned_s = -float('inf')
        # The sizes of the observation come with the data; everything else is checked now.
        self._config(1)
        if self.actor_mode != 'residual':
            refinement_config(1, self.latent_dim or 1, self.settings,
                              values['latent.actor_lr'])

    def _config(self, obs_dim: int) -> LearnerConfig:
        return LearnerConfig(obs_dim=obs_dim, action_dim=self.action_dim, **self.settings)

    @property
    def learned(self) -> Tuple[Optional[ResidualLearner], ...]:
        """Return the learners of the actors this mode learns, built or not yet."""
        return {'residual': (self.residual,), 'latent': (self.latent,),
                'dual': (self.residual, self.latent)}[self.actor_mode]

    @property
    def primary(self) -> Optional[ResidualLearner]:
        """Return the learner whose progress is the run's: the residual one unless latent."""
        return self.latent if self.actor_mode == 'latent' else self.residual

    def create_residual(self, obs_dim: int) -> ResidualLearner:
        """Build the residual learner's networks for observations of ``obs_dim`` values."""
        values = self.values
        config = self._config(obs_dim)
        self.residual = ResidualLearner(
            config, values['update_to_data'], values['intervention_fraction'],
            values['min_steps'], values['device'], values['seed'],
            offline_fraction=values['offline_fraction'], graph_updates=values['graph_updates'],
            use_compile=self.compiled, pretrained_encoder=self.pretrained_encoder)
        self.log(f'residual TD3: {obs_dim} observation values, {self.action_dim} axes, '
                 f'{config.critic_heads} critic heads, update-to-data '
                 f'{values["update_to_data"]}, {100 * values["intervention_fraction"]:.0f}% '
                 'of each batch from interventions')
        return self.residual

    def _create_latent(self, obs_dim: int) -> None:
        values = self.values
        config = refinement_config(obs_dim - COMMAND_FEATURES, self.latent_dim, self.settings,
                                   values['latent.actor_lr'])
        self.latent = ResidualLearner(config, values['latent.update_to_data'], 0.0,
                                      values['min_steps'], values['device'],
                                      values['seed'] + 1, graph_updates=values['graph_updates'],
                                      use_compile=self.compiled)
        self.log(f'refinement actor (TD3 on the latent): {config.obs_dim} observation values '
                 f'(with the command features), latent of {self.latent_dim} in '
                 f'[-{self.latent_scale}, {self.latent_scale}], update-to-data '
                 f'{values["latent.update_to_data"]}')

    # --- data in --------------------------------------------------------------------------
    def records(self, transition, episode: Hashable) -> Tuple[StepRecord, Optional[StepRecord]]:
        """Return a transition's residual and refinement steps; ValueError: unfit to learn."""
        return self._record(transition, episode), self._latent_record(transition, episode)

    def _record(self, transition, episode: Hashable) -> StepRecord:
        # A residual learned under another scale would move the arm by other amounts; the
        # refinement actor alone (latent) does not learn the residual.
        scale = self.settings['residual_scale'] if self.actor_mode != 'latent' else None
        try:
            record = checked_step_record(
                transition, self.policy_inputs, self.action_dim, episode,
                self.residual.config.obs_dim if self.residual is not None else None, scale)
        except KeyError as error:
            raise ValueError(f'missing {error.args[0]}') from None
        if self.residual is None:
            self.create_residual(record.observation.size)
        return record

    def _latent_record(self, transition, episode: Hashable) -> Optional[StepRecord]:
        if self.actor_mode == 'residual':
            return None
        latent_size = len(transition.latent)
        if not self.latent_dim and latent_size and not transition.intervened:
            self.latent_dim = latent_size
        elif self.latent_dim and latent_size and latent_size != self.latent_dim and \
                time.monotonic() - self._mismatch_warned_s >= 30.0:
            self._mismatch_warned_s = time.monotonic()
            self.warn(f'transitions carry a latent of {latent_size} values; the refinement '
                      f'actor learns {self.latent_dim} (latent.dim): these are left out')
        record = latent_step_record(transition, self.policy_inputs, self.latent_dim,
                                    self.latent_scale, episode)
        if record is None:
            return None
        if not all(np.all(np.isfinite(values)) for values in (
                record.observation, record.next_observation, record.executed_action)):
            raise ValueError('non-finite values in the refinement step')
        if self.latent is None:
            self._create_latent(record.observation.size)
        elif record.observation.size != self.latent.config.obs_dim:
            raise ValueError(f'a refinement step of {record.observation.size} observation '
                             f'values, not {self.latent.config.obs_dim}')
        return record

    def add(self, record: StepRecord, steered: Optional[StepRecord], offline: bool = False):
        """Store a transition's steps (of a recorded run: ``offline``)."""
        self.residual.add_offline(record) if offline else self.residual.add(record)
        if steered is not None:
            self.latent.add_offline(steered) if offline else self.latent.add(steered)

    def add_demonstrations(self, records: Sequence[StepRecord]) -> None:
        """Store demonstration steps (intervention buffer only); they may build the nets."""
        if records and self.residual is None:
            self.create_residual(records[0].observation.size)
        for record in records:
            self.residual.add(record, demonstration=True)

    # --- updates --------------------------------------------------------------------------
    def train_round(self) -> bool:
        """
        Do one round of the updates due; return False when none was due.

        A round is one offline warm-up update while the warm-up lasts, then one call of
        updates_per_call for each learner that is behind its update-to-data ratio (to every
        transition received, the refinement actor's included): taking turns, so that each
        keeps its ratio when time is short.
        """
        if self.residual is None:
            return False
        if self.offline_updates_left > 0:
            self.residual.train(1, offline=True)
            self.offline_updates_left -= 1
            if not self.offline_updates_left:
                self.log(f'offline warm-up done: {self.residual.offline_updates} updates on '
                         'recorded runs; the robot may move')
            return True
        worked = False
        for learner in self.learned:
            if learner is not None and \
                    learner.updates_due(self.residual.env_steps) >= learner.updates_per_call:
                learner.train(learner.updates_per_call)
                worked = True
        return worked

    @property
    def paced_update_to_data(self) -> float:
        """Return the update-to-data ratio of the actor the cells pace themselves by."""
        ratios = {'residual': (self.values['update_to_data'],),
                  'latent': (self.values['latent.update_to_data'],),
                  'dual': (self.values['update_to_data'], self.values['latent.update_to_data'])}
        return float(min(ratios[self.actor_mode]))

    def paced_updates(self) -> int:
        """Return the updates the cells pace themselves by: of the slower learned actor."""
        learned = self.learned
        if any(learner is None for learner in learned):
            return 0
        return min(learner.updates for learner in learned)

    # --- checkpoints ----------------------------------------------------------------------
    def save(self, counters: Dict[str, Any], latent_version: int) -> Optional[pathlib.Path]:
        """Checkpoint both learners; return the residual checkpoint (None: nothing built)."""
        if self.residual is None:
            return None
        if self.latent is not None:
            save_checkpoint(self.latent_dir, self.latent.agent, self.latent.rng,
                            {'weights_version': latent_version,
                             'env_steps': self.latent.env_steps})
        return save_checkpoint(self.run_dir, self.residual.agent, self.residual.rng,
                               {**counters, 'env_steps': self.residual.env_steps,
                                'offline_updates': self.residual.offline_updates})

    def restore(self) -> Tuple[Optional[pathlib.Path], Dict[str, Any], Dict[str, Any]]:
        """
        Load the newest checkpoints; return the residual one and both learners' counters.

        CheckpointError: a checkpoint that cannot be used.
        """
        checkpoint = latest_checkpoint(self.run_dir, warn=self.warn)
        counters, latent_counters = {}, {}
        if checkpoint is not None:
            if self.residual is None:
                self.create_residual(read_config(checkpoint).obs_dim)
            counters = load_checkpoint(checkpoint, self.residual.agent, self.residual.rng)
            self.residual.offline_updates = counters.get('offline_updates', 0)
        latent_checkpoint = latest_checkpoint(self.latent_dir, warn=self.warn)
        if latent_checkpoint is not None and self.latent is not None:
            latent_counters = load_checkpoint(latent_checkpoint, self.latent.agent,
                                              self.latent.rng)
        return checkpoint, counters, latent_counters
