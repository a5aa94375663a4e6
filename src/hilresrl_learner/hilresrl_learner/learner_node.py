"""
learner_node: learns the residual policy from every cell's transitions and broadcasts it.

Takes in transitions (reliable, deep queue; sequence numbers checked per robot), writes each to
the run's replay bag (rosbag2, MCAP) before counting it, keeps the online and intervention
buffers, runs residual TD3 updates at the configured update-to-data ratio, broadcasts the actor
on the latched policy_weights topic, checkpoints atomically, and reports progress
(learner_status, the console, TensorBoard). Evaluation rounds come from the episode manager's
evaluation episodes; the run ends at the target success or the step budget with a learning
curve in the run folder. Restarted with resume:=true it reloads its checkpoint and every
transition of its replay bag and carries on. Recorded runs (offline_bags, or the load_bag
service) fill the buffers too, and can warm the networks up before the robot moves.
"""

import datetime
import json
import math
import os
import pathlib
import time
from typing import Dict, List, Optional, Tuple
import uuid

from hilresrl_msgs.msg import (EpisodeEvent, EpisodeOutcome, LearnerStatus, PolicyWeights,
                               Transition)
from hilresrl_msgs.srv import LoadBag, LoadCheckpoint, SaveCheckpoint
from hilresrl_policy.node_runner import ConfigurationError, run_node
from hilresrl_policy.qos import EVENTS_QOS, LATCHED_QOS, TRANSITIONS_QOS
from hilresrl_policy.residual import serialize_actor
from hilresrl_policy.success_statistics import SuccessWindow, wilson_interval
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.serialization import deserialize_message
import torch

from .bag import BagError, BagReader, BagWriter, qos_profile_dict
from .checkpoint import (CheckpointError, latest_checkpoint, load_checkpoint, read_config,
                         save_checkpoint)
from .latent_steps import COMMAND_FEATURES, latent_step_record, refinement_config
from .message_definitions import ros2msg_definition, type_hash
from .progress import LearningCurve
from .residual_td3 import LearnerConfig
from .sequence_tracker import SequenceTracker
from .training import demonstration_records, ResidualLearner
from .transition_data import bag_folder, checked_step_record, TRANSITION_TYPE


ACTOR_MODES = ('residual', 'latent', 'dual')


class LearnerNode(Node):
    """Transitions in, residual weights out, with checkpoints and progress."""

    def __init__(self, **kwargs):
        super().__init__('learner', **kwargs)

        def parameter(name, default, description):
            return self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=True)).value

        run_dir = parameter('run_dir', '', 'Folder of this run (checkpoints, transition log, '
                                           'curves); empty: $HILRESRL_HOME/runs/<date-time>, '
                                           'or the newest run there with resume')
        self.resume: bool = parameter('resume', False,
                                      'Continue the run in run_dir: its checkpoint, its logged '
                                      'transitions and its counters')
        self.device: str = parameter('device', 'cpu', 'Torch device of the learner')
        # One learner for several cells (robot1, robot2, ...): their transitions and episode
        # events come from their namespaces; the weights go out on this node's topic.
        self.cells = list(parameter('cells', [''], 'Namespaces of the cells this learner '
                                                   "learns from, relative to its own (['']: "
                                                   'its own namespace)')) or ['']
        self.policy_inputs = list(parameter('policy_inputs', ['task_state'],
                                            'Observation arrays the actor sees, in order (as '
                                            'the residual node has them; instruction: the '
                                            "features of the transition's instruction)"))
        self.action_dim: int = parameter('action_dim', 4, 'Number of action axes')
        self.settings = {
            'residual_scale': tuple(parameter('residual_scale', [0.5],
                                              'Residual scale: one value or one per axis')),
            'actor_hidden': tuple(parameter('hidden_sizes', [256, 256],
                                            'Hidden layer sizes of the actor')),
            'layer_norm': parameter('layer_norm', True, 'LayerNorm in actor and critic'),
            'critic_hidden': tuple(parameter('critic.hidden_sizes', [256, 256, 256],
                                             'Hidden layer sizes of each critic head')),
            'critic_heads': parameter('critic.heads', 2,
                                      'Critic ensemble size; the target takes the minimum '
                                      'over a random pair'),
            'gamma': parameter('gamma', 0.99, 'Discount per control step'),
            'n_step': parameter('n_step', 3, 'Steps of the n-step return'),
            'batch_size': parameter('batch_size', 256, 'Samples per update'),
            'actor_lr': parameter('actor_lr', 1e-4, 'Actor learning rate (small: the actor '
                                                    'must not wreck the base policy)'),
            'critic_lr': parameter('critic_lr', 3e-4, 'Critic learning rate'),
            'tau': parameter('tau', 0.005, 'Target network averaging rate'),
            'warmup_updates': parameter('warmup_updates', 500,
                                        'Critic-only updates before the actor moves'),
            'bc_weight': parameter('bc_weight', 1.0,
                                   'Weight of the pull toward (human - base) / scale on steps a '
                                   'person corrected (0: off)'),
        }
        self.update_to_data: float = parameter('update_to_data', 1.0,
                                               'Gradient updates per received transition')
        self.actor_mode: str = parameter(
            'actor_mode', 'residual', 'What is learned: residual (the residual actor), latent '
                                      '(the refinement actor that steers a generative base '
                                      "policy's latent, on latent_weights) or dual (both)")
        if self.actor_mode not in ACTOR_MODES:
            raise ConfigurationError(f'actor_mode must be one of {", ".join(ACTOR_MODES)}, '
                                     f'not {self.actor_mode!r}')
        self.latent_dim: int = parameter('latent.dim', 0, "Values of the base policy's latent "
                                                          '(0: as many as the first steered '
                                                          'transition carries)')
        self.latent_scale: float = parameter('latent.scale', 1.5,
                                             "The base policy node's latent_scale")
        self.latent_update_to_data: float = parameter(
            'latent.update_to_data', 1.0, 'Refinement-actor updates per received transition')
        self.latent_actor_lr: float = parameter(
            'latent.actor_lr', 3e-4, 'Refinement actor learning rate (it picks a latent, '
                                     'which the frozen base policy keeps on its data)')
        self.intervention_fraction: float = parameter(
            'intervention_fraction', 0.5, 'Share of each batch drawn from the intervention '
                                          'and demonstration buffer')
        self.offline_bags = [path for path in parameter(
            'offline_bags', [''],
            'Recorded runs to learn from (bag folders, .mcap/.db3 files or run folders), '
            "loaded before the robot moves; ['']: none") if path]
        self.offline_fraction: float = parameter(
            'offline_fraction', 0.0, 'Share of each batch from an offline buffer of the '
                                     "recorded runs' own steps (0: they join the online "
                                     'buffer); their human steps join the intervention buffer')
        self.offline_warmup_updates: int = parameter(
            'offline_warmup_updates', 0, 'Updates on the recorded runs (and demonstrations) '
                                         'before the robot moves (critic first, as '
                                         'warmup_updates says)')
        self.demonstrations = [path for path in parameter(
            'demonstrations', [''],
            'Demonstration files (.npz of hilresrl demos) for the intervention buffer, their '
            "base action relabelled by the base policy below; ['']: none") if path]
        self.base_policy_config = {
            'kind': parameter('base_policy.kind', 'bc', 'Base policy that relabels the '
                                                        'demonstrations: a registered adapter'),
            'checkpoint': parameter('base_policy.checkpoint', '',
                                    "Its checkpoint (the base policy node's)"),
            'task': parameter('base_policy.task', '', 'Its task, for task-specific adapters'),
        }
        self.min_steps: int = parameter('min_steps', 256, 'Transitions before updates begin')
        self.seed: int = parameter('seed', 0, 'Seed of networks and sampling')
        self.weights_period_updates: int = parameter(
            'weights_period_updates', 200, 'Broadcast the actor after this many updates...')
        self.weights_period_s: float = parameter('weights_period_s', 5.0,
                                                 '... or this many seconds, whichever first')
        self.checkpoint_period_s: float = parameter('checkpoint_period_s', 60.0,
                                                    'Seconds between checkpoints')
        self.status_period_s: float = parameter('status_period_s', 1.0,
                                                'Seconds between learner_status messages')
        self.progress_period_s: float = parameter('progress_period_s', 10.0,
                                                  'Seconds between progress lines')
        self.eval_episodes: int = parameter('eval_episodes', 20,
                                            'Evaluation episodes per round (as the episode '
                                            'manager runs them)')
        self.target_success: float = parameter('target_success', 0.95,
                                               'End the run when an evaluation round reaches '
                                               'this success rate (0: never)')
        self.target_window: int = parameter(
            'target_window_episodes', 40, 'The target counts when the last this-many '
            'evaluation episodes together reach it (two rounds of 20: one lucky round does '
            'not end a run)')
        self.max_env_steps: int = parameter('max_env_steps', 0,
                                            'End the run after this many transitions (0: none)')
        self.update_budget_s: float = parameter('update_budget_s', 0.05,
                                                'Longest stretch of updates between message '
                                                'handling (s)')
        success_window: int = parameter('success_window', 20,
                                        'Training episodes over which success is reported')
        self.tensorboard: bool = parameter('tensorboard', True, 'Write TensorBoard events')
        threads: int = parameter('torch_threads', 1,
                                 'CPU threads for updates (on 2 cores shared with the cell, 2 '
                                 'threads ran 8-14 updates/s against 35 with 1: measured)')
        self.checkpoint_allow_dirs = [path for path in parameter(
            'checkpoint_allow_dirs', [''],
            'Folders besides the run folder whose checkpoints the load_checkpoint service may '
            "load (symlinks and '..' resolved); ['']: the run folder only") if path]
        self.load_bag_max_warmup_updates: int = parameter(
            'load_bag_max_warmup_updates', 2000,
            'Most warm-up updates one load_bag call may ask for (the robot holds meanwhile)')
        # Asked to stop, go on taking the transitions that have already arrived, so that what
        # the cells were acknowledged is in the replay bag.
        self.drain_on_stop_s: float = parameter(
            'drain_on_stop_s', 2.0, 'Seconds to store transitions already received after a '
                                    'stop request (Ctrl-C, SIGTERM)')
        if self.device.startswith('cuda') and not torch.cuda.is_available():
            raise ConfigurationError(f'device {self.device!r}: no CUDA device here')
        torch.set_num_threads(threads)

        self.run_dir = self._choose_run_dir(run_dir)
        self.learner_run_id = self._learner_run_id()
        self._sequences = SequenceTracker()
        self.held_steps = 0
        self._train_success = SuccessWindow(success_window)
        self._eval_results: List[bool] = []
        self._eval_rounds: List[Dict[str, float]] = []
        self._train_steps = 0
        self._train_intervention_steps = 0
        self.malformed = 0
        self.learner: Optional[ResidualLearner] = None
        self.weights_version = self._read_weights_version()
        # The refinement actor's own learner, run folder part and weights versions.
        self.latent_learner: Optional[ResidualLearner] = None
        self.latent_dir = self.run_dir / 'latent'
        self.latent_weights_version = self._read_weights_version(self.latent_dir)
        self._last_latent_broadcast = (0, time.monotonic())
        self._last_broadcast_updates = 0
        self._last_broadcast_s = time.monotonic()
        self._last_checkpoint_s = time.monotonic()
        self._last_status = (time.monotonic(), 0, 0)
        self._status_sent_s = 0.0
        self._rate = (0.0, 0.0)
        self._started_s = time.monotonic()
        self.finished = False
        self._draining = False
        self.outcome = ''
        self.curve = LearningCurve(self.run_dir)
        self._writer = self._tensorboard_writer()

        self._status = self.create_publisher(LearnerStatus, 'learner_status', LATCHED_QOS)
        self._weights = self.create_publisher(PolicyWeights, 'policy_weights', LATCHED_QOS)
        self._latent_weights = (
            self.create_publisher(PolicyWeights, 'latent_weights', LATCHED_QOS)
            if self.actor_mode != 'residual' else None)
        self._loading = True  # the episode manager holds the robot until this is over
        self._offline_updates_left = 0
        self._offline_sources: List[str] = []
        self._log: Optional[BagWriter] = None
        self._publish_status()
        if self.resume:
            self._restore()
        loaded = [self._load_offline(path, 0).transitions for path in self.offline_bags]
        loaded += [self._load_demonstrations(index, path)
                   for index, path in enumerate(self.demonstrations)]
        # A resumed run did its warm-up before: its checkpoint holds the result.
        if any(loaded) and not self.learner.offline_updates:
            self._offline_updates_left = self.offline_warmup_updates
        self._loading = False
        self._log = self._open_replay_bag()
        for cell in self.cells:
            prefix = f'{cell.strip("/")}/' if cell.strip('/') else ''
            topic = self.resolve_topic_name(prefix + 'transitions')
            self.create_subscription(
                Transition, prefix + 'transitions',
                lambda data, topic=topic: self._on_transition(data, topic),
                TRANSITIONS_QOS, raw=True)
            self.create_subscription(EpisodeEvent, prefix + 'episode_events',
                                     self._on_episode_event, EVENTS_QOS)
        self.create_service(SaveCheckpoint, 'save_checkpoint', self._on_save)
        self.create_service(LoadCheckpoint, 'load_checkpoint', self._on_load)
        self.create_service(LoadBag, 'load_bag', self._on_load_bag)
        self.create_timer(0.01, self._on_update_tick)
        self.create_timer(self.status_period_s, self._publish_status)
        resumed = ' (resumed)' if self.resume else ''
        self.get_logger().info(f'run folder {self.run_dir}{resumed}')
        self._publish_status()

    def on_stop_requested(self) -> None:
        """Stop updating once asked to stop: the drain's time goes to storing transitions."""
        self._draining = True

    # --- the run folder ------------------------------------------------------------------
    def _choose_run_dir(self, run_dir: str) -> pathlib.Path:
        home = pathlib.Path(os.environ.get('HILRESRL_HOME')
                            or pathlib.Path.home() / '.hilresrl')
        if run_dir:
            path = pathlib.Path(run_dir).expanduser()
        elif self.resume:
            runs = sorted(p for p in (home / 'runs').glob('*') if p.is_dir())
            if not runs:
                raise ConfigurationError(f'resume: no run in {home / "runs"} to continue')
            path = runs[-1]
        else:
            path = home / 'runs' / datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
        if self.resume and not (path / 'replay').is_dir():
            raise ConfigurationError(f'resume: {path} holds no run (no replay bag)')
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _learner_run_id(self) -> str:
        """Return the id of this run's weights: drawn once per run folder, kept on resume."""
        path = self.run_dir / 'learner_run_id'
        try:
            run_id = path.read_text().strip()
        except OSError:
            run_id = ''
        if not run_id:
            run_id = uuid.uuid4().hex
            path.with_suffix('.tmp').write_text(run_id)
            os.replace(path.with_suffix('.tmp'), path)
        return run_id

    def _read_weights_version(self, folder: Optional[pathlib.Path] = None) -> int:
        try:
            return int(((folder or self.run_dir) / 'weights_version').read_text())
        except (OSError, ValueError):
            return 0

    def _tensorboard_writer(self):
        if not self.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.get_logger().warning('TensorBoard is not installed (pip install tensorboard): '
                                      'no event files')
            return None
        return SummaryWriter(str(self.run_dir / 'tensorboard'))

    def _open_replay_bag(self) -> BagWriter:
        """Open the run's replay bag: one more file in it for every start of the learner."""
        try:
            log = BagWriter(self.run_dir / 'replay', 'mcap', append=True)
            for cell in self.cells:
                prefix = f'{cell.strip("/")}/' if cell.strip('/') else ''
                log.add_topic(self.resolve_topic_name(prefix + 'transitions'), TRANSITION_TYPE,
                              ros2msg_definition(TRANSITION_TYPE), type_hash(TRANSITION_TYPE),
                              [qos_profile_dict(depth=TRANSITIONS_QOS.depth)])
        except (BagError, OSError) as error:
            raise ConfigurationError(f'cannot write the replay bag in {self.run_dir}: '
                                     f'{error}') from error
        return log

    # --- data in -------------------------------------------------------------------------
    def _on_transition(self, data: bytes, topic: str) -> None:
        transition = deserialize_message(data, Transition)
        check = self._sequences.observe(transition.robot_id, transition.sequence,
                                        transition.cell_start_id)
        if check.duplicate:
            self.get_logger().warning(
                f'transition {transition.sequence} from {transition.robot_id} arrived again or '
                'out of order: ignored', throttle_duration_sec=5.0)
            return
        if check.restarted:
            self.get_logger().info(f'cell {transition.robot_id} restarted (sequence '
                                   f'{transition.sequence})')
        if check.lost:
            self.get_logger().warning(
                f'{check.lost} transition(s) from {transition.robot_id} lost before sequence '
                f'{transition.sequence} ({self._sequences.lost[transition.robot_id]} in all)')
        # Checked before it is written: a record that cannot be learned from must never
        # reach the replay bag, where every resume would meet it again.
        try:
            records = self._admit(transition)
        except ValueError as error:
            self._refuse(f'transition {transition.sequence} from {transition.robot_id}',
                         str(error))
        else:
            # On disk (handed to the system) before it counts.
            self._log.write(topic, self.get_clock().now().nanoseconds, data)
            self._log.flush(metadata=False)
            if records is not None:
                self._store(transition, *records)
        self._status_if_due()

    def _admit(self, transition: Transition) -> Optional[Tuple[object, object]]:
        """
        Return the learner's and the refinement actor's records of a transition.

        None: a held step (recorded, never trained on). ValueError: unfit to learn from.
        """
        if transition.held:
            self.held_steps += 1
            self.get_logger().info(
                f'held steps are recorded but not trained on: {self.held_steps} so far '
                f'(latest: {transition.hold_reason or "no reason given"})',
                throttle_duration_sec=10.0)
            return None
        episode = (transition.robot_id, transition.episode_id)
        return (self._record(transition, episode),
                self._latent_record(transition, episode))

    def _refuse(self, what: str, reason: str) -> None:
        self.malformed += 1
        self.get_logger().error(f'{what} refused: {reason} ({self.malformed} refused so far)',
                                throttle_duration_sec=5.0)

    def _record(self, transition: Transition, episode):
        """Return the StepRecord of a transition (ValueError: unfit); the first builds nets."""
        try:
            record = checked_step_record(
                transition, self.policy_inputs, self.action_dim, episode,
                self.learner.config.obs_dim if self.learner is not None else None)
        except KeyError as error:
            raise ValueError(f'missing {error.args[0]}') from None
        if self.learner is None:
            self._create_learner(record.observation.size)
        return record

    def _store(self, transition: Transition, record, steered) -> None:
        self.learner.add(record)
        if steered is not None:
            self.latent_learner.add(steered)
        if not transition.evaluation:
            self._train_steps += 1
            self._train_intervention_steps += int(transition.intervened)
        if self.max_env_steps and self.learner.env_steps >= self.max_env_steps:
            self._finish(f'step budget of {self.max_env_steps} transitions reached')

    def _latent_record(self, transition: Transition, episode):
        """Return the refinement actor's step of a transition (None: not learned from)."""
        if self.actor_mode == 'residual':
            return None
        latent_size = len(transition.latent)
        if not self.latent_dim and latent_size and not transition.intervened:
            self.latent_dim = latent_size
        elif self.latent_dim and latent_size and latent_size != self.latent_dim:
            self.get_logger().warning(
                f'transitions carry a latent of {latent_size} values; the refinement actor '
                f'learns {self.latent_dim} (latent.dim): these are left out',
                throttle_duration_sec=30.0)
        record = latent_step_record(transition, self.policy_inputs, self.latent_dim,
                                    self.latent_scale, episode)
        if record is not None and not all(np.all(np.isfinite(values)) for values in (
                record.observation, record.next_observation, record.executed_action)):
            raise ValueError('non-finite values in the refinement step')
        if record is not None and self.latent_learner is not None and \
                record.observation.size != self.latent_learner.config.obs_dim:
            raise ValueError(f'a refinement step of {record.observation.size} observation '
                             f'values, not {self.latent_learner.config.obs_dim}')
        if record is not None and self.latent_learner is None:
            config = refinement_config(record.observation.size - COMMAND_FEATURES,
                                       self.latent_dim, self.settings, self.latent_actor_lr)
            self.latent_learner = ResidualLearner(config, self.latent_update_to_data, 0.0,
                                                  self.min_steps, self.device, self.seed + 1)
            self.get_logger().info(
                f'refinement actor (TD3 on the latent): {config.obs_dim} observation values '
                f'(with the command features), latent of {self.latent_dim} in '
                f'[-{self.latent_scale}, {self.latent_scale}], update-to-data '
                f'{self.latent_update_to_data}')
        return record

    def _create_learner(self, obs_dim: int) -> None:
        config = LearnerConfig(obs_dim=obs_dim, action_dim=self.action_dim, **self.settings)
        self.learner = ResidualLearner(config, self.update_to_data, self.intervention_fraction,
                                       self.min_steps, self.device, self.seed,
                                       offline_fraction=self.offline_fraction)
        self.get_logger().info(
            f'residual TD3: {obs_dim} observation values, {self.action_dim} axes, '
            f'{config.critic_heads} critic heads, update-to-data {self.update_to_data}, '
            f'{100 * self.intervention_fraction:.0f}% of each batch from interventions')

    def _on_episode_event(self, event: EpisodeEvent) -> None:
        if event.event != EpisodeEvent.EPISODE_END or event.outcome.value == EpisodeOutcome.ABORT:
            return
        success = event.outcome.value == EpisodeOutcome.SUCCESS
        if event.mode.value != event.mode.EVAL:
            self._train_success.add(success)
            return
        self._eval_results.append(success)
        if len(self._eval_results) % self.eval_episodes == 0:
            self._end_eval_round()

    def _end_eval_round(self) -> None:
        results = self._eval_results[-self.eval_episodes:]
        successes = sum(results)
        low, high = wilson_interval(successes, len(results))
        steps = self.learner.env_steps if self.learner else 0
        round_ = {'env_steps': steps, 'wall_s': time.monotonic() - self._started_s,
                  'success_rate': successes / len(results), 'ci_low': low, 'ci_high': high,
                  'episodes': len(results), 'updates': self.learner.updates if self.learner
                  else 0}
        self._eval_rounds.append(round_)
        self.curve.add_eval(round_)
        self._scalar('eval/success_rate', round_['success_rate'], steps)
        self.get_logger().info(
            f'evaluation after {steps} steps: {successes}/{len(results)} = '
            f'{100 * round_["success_rate"]:.0f}% (95% CI {100 * low:.0f}-{100 * high:.0f}%)')
        window = self._eval_results[-self.target_window:]
        if (self.target_success and len(window) >= self.target_window
                and round_['success_rate'] >= self.target_success
                and sum(window) >= self.target_success * len(window)):
            low, high = wilson_interval(sum(window), len(window))
            self._finish(f'evaluation success {sum(window)}/{len(window)} = '
                         f'{100 * sum(window) / len(window):.1f}% (95% CI {100 * low:.0f}-'
                         f'{100 * high:.0f}%) over the last {len(window)} evaluation episodes '
                         f'reached the target of {100 * self.target_success:.0f}%')

    # --- learning ------------------------------------------------------------------------
    def _on_update_tick(self) -> None:
        if self.learner is None or self.finished or self._draining:
            return
        deadline = time.monotonic() + self.update_budget_s
        while self._offline_updates_left > 0 and time.monotonic() < deadline:
            self.learner.train(1, offline=True)
            self._offline_updates_left -= 1
            self._status_if_due()
            if not self._offline_updates_left:
                self.get_logger().info(f'offline warm-up done: {self.learner.offline_updates} '
                                       'updates on recorded runs; the robot may move')
                self._publish_status()
        learners = [learner for learner in (
            self.learner if self.actor_mode != 'latent' else None, self.latent_learner)
            if learner is not None]
        # Each at its ratio to every transition received, the refinement actor included.
        due = [learner.updates_due(self.learner.env_steps) if not self._offline_updates_left
               else 0 for learner in learners]
        # Taking turns, so that each keeps its update-to-data ratio when time is short.
        while any(due) and time.monotonic() < deadline:
            for index, learner in enumerate(learners):
                if due[index] > 0:
                    learner.train(1)
                    due[index] -= 1
            self._status_if_due()
        updates = self.learner.updates
        actor_moved = self.learner.agent.actor_updates > 0
        if self.actor_mode != 'latent' and actor_moved and \
                updates > self._last_broadcast_updates and (
                    updates - self._last_broadcast_updates >= self.weights_period_updates
                    or time.monotonic() - self._last_broadcast_s >= self.weights_period_s):
            self._broadcast()
        latent = self.latent_learner
        if latent is not None and latent.agent.actor_updates > 0 and \
                latent.updates > self._last_latent_broadcast[0] and (
                    latent.updates - self._last_latent_broadcast[0]
                    >= self.weights_period_updates
                    or time.monotonic() - self._last_latent_broadcast[1]
                    >= self.weights_period_s):
            self._broadcast_latent()
        if time.monotonic() - self._last_checkpoint_s >= self.checkpoint_period_s:
            self._checkpoint()

    def _broadcast(self) -> None:
        weights = serialize_actor(self.learner.agent.actor)
        self.weights_version += 1
        message = PolicyWeights(version=self.weights_version,
                                learner_run_id=self.learner_run_id, format=weights.format,
                                architecture=weights.architecture, blob=weights.blob,
                                sha256=weights.sha256, learner_updates=self.learner.updates,
                                env_steps=self.learner.env_steps)
        message.header.stamp = self.get_clock().now().to_msg()
        self._weights.publish(message)
        # Versions stay monotonic across restarts, even for weights sent after a checkpoint.
        path = self.run_dir / 'weights_version'
        path.with_suffix('.tmp').write_text(str(self.weights_version))
        os.replace(path.with_suffix('.tmp'), path)
        self._last_broadcast_updates = self.learner.updates
        self._last_broadcast_s = time.monotonic()

    def _broadcast_latent(self) -> None:
        weights = serialize_actor(self.latent_learner.agent.actor)
        self.latent_weights_version += 1
        message = PolicyWeights(version=self.latent_weights_version,
                                learner_run_id=self.learner_run_id, format=weights.format,
                                architecture=weights.architecture, blob=weights.blob,
                                sha256=weights.sha256,
                                learner_updates=self.latent_learner.updates,
                                env_steps=self.latent_learner.env_steps)
        message.header.stamp = self.get_clock().now().to_msg()
        self._latent_weights.publish(message)
        self.latent_dir.mkdir(exist_ok=True)
        path = self.latent_dir / 'weights_version'
        path.with_suffix('.tmp').write_text(str(self.latent_weights_version))
        os.replace(path.with_suffix('.tmp'), path)
        self._last_latent_broadcast = (self.latent_learner.updates, time.monotonic())

    def _checkpoint(self) -> Optional[pathlib.Path]:
        self._last_checkpoint_s = time.monotonic()
        if self.learner is None:
            return None
        counters = {'weights_version': self.weights_version, 'env_steps':
                    self.learner.env_steps, 'eval_rounds': self._eval_rounds,
                    'eval_results': self._eval_results,
                    'offline_updates': self.learner.offline_updates}
        if self.latent_learner is not None:
            save_checkpoint(self.latent_dir, self.latent_learner.agent, self.latent_learner.rng,
                            {'weights_version': self.latent_weights_version,
                             'env_steps': self.latent_learner.env_steps})
        return save_checkpoint(self.run_dir, self.learner.agent, self.learner.rng, counters)

    # --- resume and recorded runs ---------------------------------------------------------
    def _restore(self) -> None:
        records = 0
        try:
            reader = BagReader(self.run_dir / 'replay')
        except BagError as error:
            raise ConfigurationError(f'cannot resume: {error}') from error
        skipped = []
        for index, (_, _, data) in enumerate(
                reader.messages(reader.topics_of_type(TRANSITION_TYPE))):
            # A bad record (written by an older learner) is skipped and named: resume goes on.
            try:
                transition = deserialize_message(data, Transition)
                self._sequences.observe(transition.robot_id, transition.sequence,
                                        transition.cell_start_id)
                admitted = self._admit(transition)
            except Exception as error:  # noqa: B902 (whatever a damaged record raises)
                skipped.append(index)
                self.get_logger().error(f'replay bag record {index} skipped: {error}',
                                        throttle_duration_sec=1.0)
                continue
            if admitted is not None:
                self._store(transition, *admitted)
            records += 1
            self._status_if_due()
        if skipped:
            self.malformed += len(skipped)
            self.get_logger().warning(
                f'resume: {len(skipped)} record(s) of the replay bag could not be learned from '
                f'and were skipped (indices {", ".join(map(str, skipped[:20]))}'
                f'{", ..." if len(skipped) > 20 else ""})')
        for problem in reader.problems:  # a record cut off by a kill: it was never counted
            self.get_logger().warning(problem)
        warn = self.get_logger().warning
        checkpoint = latest_checkpoint(self.run_dir, warn=warn)
        if checkpoint is not None:
            try:
                if self.learner is None:
                    self._create_learner(read_config(checkpoint).obs_dim)
                counters = load_checkpoint(checkpoint, self.learner.agent, self.learner.rng)
            except CheckpointError as error:
                raise ConfigurationError(f'cannot resume: {error}') from error
            self.weights_version = max(self.weights_version, counters.get('weights_version', 0))
            self._eval_rounds = counters.get('eval_rounds', [])
            self._eval_results = counters.get('eval_results', [])
            self.learner.offline_updates = counters.get('offline_updates', 0)
        latent_checkpoint = latest_checkpoint(self.latent_dir, warn=warn)
        if latent_checkpoint is not None and self.latent_learner is not None:
            try:
                counters = load_checkpoint(latent_checkpoint, self.latent_learner.agent,
                                           self.latent_learner.rng)
            except CheckpointError as error:
                raise ConfigurationError(f'cannot resume the refinement actor: '
                                         f'{error}') from error
            self.latent_weights_version = max(self.latent_weights_version,
                                              counters.get('weights_version', 0))
        self.get_logger().info(
            f'resumed: {records} logged transitions back in the buffers, '
            f'{self.learner.updates if self.learner else 0} updates from '
            f'{checkpoint.name if checkpoint else "no checkpoint"}, weights version '
            f'{self.weights_version}')
        if self.learner is not None and self.learner.agent.actor_updates:
            self._broadcast()
        if self.latent_learner is not None and self.latent_learner.agent.actor_updates:
            self._broadcast_latent()

    def _load_offline(self, path: str, warmup_updates: int) -> LoadBag.Response:
        """Put the transitions of a recorded run into the buffers; never fail the run."""
        response = LoadBag.Response()
        try:
            reader = BagReader(bag_folder(path))
            topics = reader.topics_of_type(TRANSITION_TYPE)
            if not topics:
                raise BagError(f'{reader.path}: no {TRANSITION_TYPE} topic (topics: '
                               f'{", ".join(sorted(reader.topics)) or "none"})'
                               + ''.join(f'; {problem}' for problem in reader.problems))
            source = len(self._offline_sources)
            records = []  # all converted before any is stored: a run is loaded whole or not
            skipped = held = 0
            for _, _, data in reader.messages(topics):
                transition = deserialize_message(data, Transition)
                if transition.held:
                    held += 1  # recorded, never trained on
                    continue
                # Episodes keyed apart from this run's own, which restart their ids.
                episode = ('offline', source, transition.robot_id, transition.episode_id)
                try:
                    records.append((self._record(transition, episode),
                                    self._latent_record(transition, episode)))
                except ValueError:
                    skipped += 1  # a malformed step: the rest of the run is still good
                self._status_if_due()
        except (BagError, OSError) as error:
            response.success, response.message = False, str(error)
            self.get_logger().error(f'offline data not loaded: {error}')
            return response
        self._offline_sources.append(str(reader.path))
        for record, steered in records:
            self.learner.add_offline(record)
            if steered is not None:
                self.latent_learner.add_offline(steered)
        response.transitions = len(records)
        response.intervention_transitions = sum(record.human_action is not None
                                                for record, _ in records)
        for problem in reader.problems:
            self.get_logger().warning(problem)
        capped = ''
        if warmup_updates > self.load_bag_max_warmup_updates:
            capped = (f'; warm-up capped at {self.load_bag_max_warmup_updates} updates '
                      f'(load_bag_max_warmup_updates), not {warmup_updates}')
            warmup_updates = self.load_bag_max_warmup_updates
        if response.transitions and warmup_updates:
            self._offline_updates_left += warmup_updates
        response.success = True
        problems = (f'; {len(reader.problems)} problem(s): ' + '; '.join(reader.problems)
                    if reader.problems else '')
        if skipped:
            problems += f'; {skipped} malformed transition(s) left out'
        if held:
            problems += f'; {held} held step(s) left out'
        response.message = (f'{response.transitions} transitions from {reader.path} '
                            f'({response.intervention_transitions} by a person){problems}'
                            f'{capped}')
        self.get_logger().info('offline data: ' + response.message + (
            f'; {self._offline_updates_left} warm-up updates before the robot moves'
            if self._offline_updates_left else ''))
        return response

    def _load_demonstrations(self, index: int, path: str) -> int:
        """Put a demonstration file into the intervention buffer; return its steps (0: none)."""
        from hilresrl_policy.adapters import BasePolicyError, load_base_policy
        try:
            from hilresrl_sim.demos import Demonstrations
            demos = Demonstrations.load(path)
            if self.policy_inputs != ['task_state']:
                raise ValueError(f'demonstrations hold the task state alone; the actor reads '
                                 f'{", ".join(self.policy_inputs)}')
            base = load_base_policy(self.base_policy_config['kind'], self.base_policy_config)
            records = list(demonstration_records(
                demos.observations, demos.expert_actions, demos.episode_index,
                demos.episode_success,
                base_policy=lambda state: base.act({'task_state': state})[0]))
            base.close()
        except (ImportError, ValueError, BasePolicyError) as error:
            self.get_logger().error(f'demonstrations {path} not loaded: {error}')
            return 0
        if self.learner is None:
            self._create_learner(demos.observations.shape[1])
        for record in records:
            record.episode = ('demonstration', index, record.episode[1])
            self.learner.add(record, demonstration=True)
        self.get_logger().info(
            f'demonstrations: {len(records)} steps of {demos.episodes} episodes from {path}, '
            f'base action relabelled by {self.base_policy_config["kind"]}')
        return len(records)

    # --- services ------------------------------------------------------------------------
    def _on_save(self, request: SaveCheckpoint.Request, response: SaveCheckpoint.Response):
        if self.learner is None:
            response.success, response.message = False, 'no data yet: nothing to save'
            return response
        path = self._checkpoint()
        response.success, response.path = True, str(path)
        response.weights_version, response.updates = self.weights_version, self.learner.updates
        return response

    def _on_load_bag(self, request: LoadBag.Request, response: LoadBag.Response):
        result = self._load_offline(request.path, request.warmup_updates)
        self._publish_status()
        return result

    def _on_load(self, request: LoadCheckpoint.Request, response: LoadCheckpoint.Response):
        if self.learner is None:
            response.success, response.message = False, 'no data yet: the networks are not ' \
                                                        'built'
            return response
        refusal = self._checkpoint_refusal(request.path)
        if refusal:
            self.get_logger().error(f'load_checkpoint refused: {refusal}')
            response.success, response.message = False, refusal
            return response
        try:
            load_checkpoint(request.path, self.learner.agent, self.learner.rng)
        except CheckpointError as error:
            response.success, response.message = False, str(error)
            return response
        self._broadcast()
        response.success = True
        response.weights_version, response.updates = self.weights_version, self.learner.updates
        return response

    def _checkpoint_refusal(self, path: str) -> str:
        """Return why a checkpoint may not be loaded over the service ('': it may)."""
        try:
            resolved = pathlib.Path(path).expanduser().resolve()
            roots = [self.run_dir.resolve()] + [pathlib.Path(folder).expanduser().resolve()
                                                for folder in self.checkpoint_allow_dirs]
        except (OSError, RuntimeError, ValueError) as error:
            return f'{path}: {error}'
        if any(resolved == root or root in resolved.parents for root in roots):
            return ''
        return (f'{path} (resolved: {resolved}) is outside the run folder {roots[0]}'
                + ''.join(f' and {root}' for root in roots[1:])
                + ': only checkpoints there may be loaded (add its folder to '
                  'checkpoint_allow_dirs to allow it)')

    # --- progress ------------------------------------------------------------------------
    def _paced_updates(self) -> int:
        """Return the updates the cells pace themselves by: of the slower learned actor."""
        counts = [learner.updates for learner, learned in (
            (self.learner, self.actor_mode != 'latent'),
            (self.latent_learner, self.actor_mode != 'residual')) if learned and learner]
        return min(counts) if len(counts) == (1 if self.actor_mode != 'dual' else 2) else 0

    def _status_if_due(self) -> None:
        """Publish the status when a period has passed, from inside long work too."""
        if time.monotonic() - self._status_sent_s >= self.status_period_s:
            self._publish_status()

    def _publish_status(self) -> None:
        learner = self.learner
        now = time.monotonic()
        self._status_sent_s = now
        updates = self._paced_updates()
        env_steps = learner.env_steps if learner else 0
        then, previous_updates, previous_steps = self._last_status
        if now - then >= self.progress_period_s:
            elapsed = now - then
            self._rate = ((updates - previous_updates) / elapsed,
                          (env_steps - previous_steps) / elapsed)
            self._last_status = (now, updates, env_steps)
            if learner is not None:
                self._log_progress()
        if self._log is not None:
            self._log.flush()  # metadata.yaml: the replay bag's counts, once a period
        status = LearnerStatus(state=self._state(), weights_version=self.weights_version,
                               updates=updates, env_steps=env_steps,
                               transitions_lost=self._sequences.total_lost)
        status.header.stamp = self.get_clock().now().to_msg()
        if learner is not None:
            status.online_buffer_size = len(learner.online)
            status.intervention_buffer_size = len(learner.intervention)
            status.offline_buffer_size = len(learner.offline) if learner.offline else 0
            metrics = learner.last_metrics
            status.critic_loss = metrics.get('critic_loss', math.nan)
            status.actor_loss = metrics.get('actor_loss', math.nan)
            status.mean_q = metrics.get('mean_q', math.nan)
            status.update_to_data_ratio = updates / env_steps if env_steps else 0.0
        status.updates_per_s = self._rate[0]
        status.actor_mode = self.actor_mode
        status.latent_weights_version = self.latent_weights_version
        status.latent_updates = self.latent_learner.updates if self.latent_learner else 0
        status.train_episodes = self._train_success.episodes
        status.train_success_rate = self._train_success.rate
        status.intervention_rate = (self._train_intervention_steps / self._train_steps
                                    if self._train_steps else 0.0)
        status.eval_episodes = len(self._eval_results)
        if self._eval_rounds:
            last = self._eval_rounds[-1]
            status.eval_success_rate = last['success_rate']
            status.eval_success_ci_low, status.eval_success_ci_high = (last['ci_low'],
                                                                       last['ci_high'])
        else:
            status.eval_success_rate = status.eval_success_ci_low = \
                status.eval_success_ci_high = math.nan
        self._status.publish(status)

    def _state(self) -> str:
        if self.finished:
            return 'finished'
        if self._loading:
            return 'loading'
        if self._offline_updates_left:
            return 'offline_warmup'
        learner = self.latent_learner if self.actor_mode == 'latent' else self.learner
        if learner is None or learner.updates == 0:
            return 'waiting_for_data'
        if learner.agent.actor_updates == 0:
            return 'warmup'
        return 'training'

    def _log_progress(self) -> None:
        learner = self.learner
        metrics = learner.last_metrics
        evaluation = (f'{100 * self._eval_rounds[-1]["success_rate"]:.0f}%'
                      if self._eval_rounds else 'none yet')
        intervention = (self._train_intervention_steps / self._train_steps
                        if self._train_steps else 0.0)
        updates = self._paced_updates()
        utd = updates / learner.env_steps if learner.env_steps else 0.0
        self.get_logger().info(
            f'{learner.env_steps} steps | {updates} updates ({self._rate[0]:.0f}/s, '
            f'UTD {utd:.2f}) | train success {100 * np.nan_to_num(self._train_success.rate):.0f}'
            f'% | eval {evaluation} | human {100 * intervention:.0f}% | Q '
            f'{metrics.get("mean_q", math.nan):.3f} critic '
            f'{metrics.get("critic_loss", math.nan):.4f}'
            f' | weights v{self.weights_version}' + (
                f' | refinement actor {self.latent_learner.updates} updates, '
                f'v{self.latent_weights_version}' if self.latent_learner else ''))
        step = learner.env_steps
        self._scalar('train/success_rate', np.nan_to_num(self._train_success.rate), step)
        self._scalar('train/intervention_rate', intervention, step)
        self._scalar('learner/updates_per_s', self._rate[0], step)
        self._scalar('learner/update_to_data', utd, step)
        for name, value in metrics.items():
            self._scalar(f'losses/{name}', value, step)
        self.curve.add_train(step, time.monotonic() - self._started_s,
                             float(np.nan_to_num(self._train_success.rate)), intervention)

    def _scalar(self, name: str, value: float, step: int) -> None:
        if self._writer is not None:
            self._writer.add_scalar(name, value, step)

    # --- the end -------------------------------------------------------------------------
    def _finish(self, reason: str) -> None:
        if self.finished:
            return
        self.finished = True
        self.outcome = reason
        path = self._checkpoint()
        self.curve.write_png()
        env_steps = self.learner.env_steps if self.learner else 0
        summary = {'reason': reason, 'env_steps': env_steps,
                   'updates': self.learner.updates if self.learner else 0,
                   'actor_mode': self.actor_mode,
                   'latent_updates': self.latent_learner.updates if self.latent_learner else 0,
                   'latent_weights_version': self.latent_weights_version,
                   'weights_version': self.weights_version,
                   'wall_s': time.monotonic() - self._started_s,
                   'eval_rounds': self._eval_rounds, 'checkpoint': str(path)}
        (self.run_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
        self.get_logger().info(f'run finished: {reason}; {env_steps} steps, '
                               f'{summary["wall_s"]:.0f} s; curve and summary in '
                               f'{self.run_dir}')

    def destroy_node(self):
        """Checkpoint, close the log and the event files, then destroy the node."""
        if not self.finished and self.learner is not None:
            self._checkpoint()
            self.curve.write_png()
        if getattr(self, '_log', None) is not None:
            self._log.close()
        if self._writer is not None:
            self._writer.close()
        return super().destroy_node()


def main(args=None):
    """Run the learner until shutdown (or until the run is finished)."""
    return run_node(LearnerNode, args)


if __name__ == '__main__':
    main()
