"""
The learner's bookkeeping around residual TD3: buffers, the update-to-data ratio, demonstrations.

One class serves the learner node and the headless benchmarks, so both run the same algorithm:
steps go to the online buffer, the ones a person controlled (and demonstrations) to the
intervention buffer too; updates are due as data arrives, at ``update_to_data`` per step.
Steps of recorded runs (offline data) go to the same buffers, or to an offline buffer of their
own with its own share of each batch; they count as neither robot steps nor, for the
update-to-data ratio, the updates done on them before the robot moves. With observation
normalization, its statistics come from every step stored when the first update is due
(demonstrations and recorded runs included) and stay fixed. No ROS here.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Hashable, Iterator, Optional

from hilresrl_policy.image_encoder import PretrainedEncoder
from hilresrl_policy.residual import observation_statistics
import numpy as np

from .device_replay import DeviceReplay
from .graphed_updates import GraphedUpdates
from .replay import MixedSampler, ReplayBuffer
from .residual_td3 import LearnerConfig, ResidualTD3


@dataclass
class StepRecord:
    """One control step as the learner stores it."""

    episode: Hashable
    step: int
    observation: np.ndarray
    base_action: np.ndarray
    executed_action: np.ndarray
    reward: float
    next_observation: np.ndarray
    terminated: bool
    truncated: bool
    human_action: Optional[np.ndarray] = None
    # The axes of human_action the person took (bool per axis); None: all of them.
    intervened_axes: Optional[np.ndarray] = None
    # With cameras: each camera's uint8 frame (channels, height, width) at s_t and s_t+1.
    frames: Optional[Dict[str, np.ndarray]] = None
    next_frames: Optional[Dict[str, np.ndarray]] = None


class ResidualLearner:
    """Buffers + residual TD3 + the schedule of updates."""

    def __init__(self, config: LearnerConfig, update_to_data: float = 1.0,
                 intervention_fraction: float = 0.5, min_steps: int = 256,
                 device: str = 'cpu', seed: int = 0, use_compile: bool = False,
                 offline_fraction: float = 0.0, device_replay: bool = True,
                 graph_updates: int = 8,
                 pretrained_encoder: Optional[PretrainedEncoder] = None):
        """
        Build the buffers and the agent.

        On a CUDA device (with ``device_replay``) the batches are drawn there, and with
        ``graph_updates`` > 0 updates run in captured CUDA graphs of that many
        (graphed_updates); on a CPU, from the host buffers as they are.
        ``pretrained_encoder``: the frozen network the config's image_encoder names
        (hilresrl_policy.image_encoder.load_pretrained_encoder).
        """
        self.config = config
        self.update_to_data = update_to_data
        self.min_steps = min_steps
        # Frames as the encoder takes them: channels, height, width.
        frame_shape = (tuple(config.image_size[axis] for axis in (2, 0, 1)) if config.cameras
                       else ())

        def buffer() -> ReplayBuffer:
            return ReplayBuffer(config.obs_dim, config.action_dim, cameras=config.cameras,
                                frame_shape=frame_shape)

        self.online = buffer()
        self.intervention = buffer()
        # Recorded runs get a buffer of their own only when they get their own share.
        self.offline = buffer() if offline_fraction > 0 else None
        self.sampler = MixedSampler(self.online, self.intervention, intervention_fraction,
                                    self.offline, offline_fraction)
        if config.algorithm == 'sac':
            from .residual_sac import ResidualSAC
            self.agent = ResidualSAC(config, device, seed, use_compile)
        else:
            self.agent = ResidualTD3(config, device, seed, use_compile,
                                     pretrained_encoder=pretrained_encoder)
        self.rng = np.random.default_rng(seed)
        self._device_updates = None
        # (torch.compile's own CUDA graphs, mode reduce-overhead, cannot nest in these; with
        # cameras the frames are drawn on the device too, and gathered inside the graphs)
        if self.agent.device.type == 'cuda' and device_replay and config.algorithm == 'td3' \
                and not (use_compile and self.agent.compile_mode == 'reduce-overhead'):
            replay = DeviceReplay(self.sampler, self.agent.device,
                                  compile_gather=use_compile and not config.cameras)
            self._device_updates = GraphedUpdates(self.agent, replay, graph_updates)
        self.env_steps = 0
        self.demo_steps = 0
        self.offline_steps = 0
        self.offline_updates = 0  # done on recorded runs alone: outside the UTD schedule
        self._last_metrics: Dict[str, object] = {}

    @property
    def updates_per_call(self) -> int:
        """Return how many updates train() should be asked for at once: a captured run's."""
        if self._device_updates is None:
            return 1
        return max(1, self._device_updates.updates_per_graph)

    def whole_runs(self, updates: int) -> int:
        """Return ``updates`` rounded down to whole calls of updates_per_call."""
        return updates - updates % self.updates_per_call

    @property
    def updates(self) -> int:
        """Return the gradient updates done so far."""
        return self.agent.updates

    def add(self, record: StepRecord, demonstration: bool = False) -> None:
        """Store a step: every robot step online; human-controlled ones and demos also apart."""
        values = (record.step, record.observation, record.base_action, record.executed_action,
                  record.reward, record.next_observation, record.terminated, record.truncated)
        human = {'human_action': record.human_action, 'human_axes': record.intervened_axes,
                 'frames': record.frames, 'next_frames': record.next_frames}
        if not demonstration:
            self.online.add(record.episode, *values, **human)
            self.env_steps += 1
        else:
            self.demo_steps += 1
        if demonstration and record.human_action is None:
            human['human_action'] = record.executed_action
        if human['human_action'] is not None:
            self.intervention.add(record.episode, *values, **human)

    def add_offline(self, record: StepRecord) -> None:
        """Store a step of a recorded run: a person's to the intervention buffer as well."""
        values = (record.step, record.observation, record.base_action, record.executed_action,
                  record.reward, record.next_observation, record.terminated, record.truncated)
        human = {'human_action': record.human_action, 'human_axes': record.intervened_axes,
                 'frames': record.frames, 'next_frames': record.next_frames}
        buffer = self.offline if self.offline is not None else self.online
        buffer.add(record.episode, *values, **human)
        if record.human_action is not None:
            self.intervention.add(record.episode, *values, **human)
        self.offline_steps += 1

    def stored_steps(self) -> int:
        """Return the steps in all buffers."""
        return (len(self.online) + len(self.intervention)
                + (len(self.offline) if self.offline is not None else 0))

    def updates_due(self, env_steps: Optional[int] = None) -> int:
        """
        Return how many updates would bring the update-to-data ratio to its target.

        The ratio is to its own robot steps, or to ``env_steps`` (a refinement actor, which
        learns from part of the steps, keeps pace with all of them).
        """
        if self.stored_steps() < self.min_steps:
            return 0
        done = self.agent.updates - self.offline_updates
        steps = self.env_steps if env_steps is None else env_steps
        return max(0, int(self.update_to_data * steps) - done)

    def train(self, updates: int, offline: bool = False) -> None:
        """
        Do this many updates (on a GPU they may still run when this returns).

        ``offline`` updates are warm-up on recorded runs before the robot moves: they do not
        count against the update-to-data ratio of the robot's own steps.
        """
        if updates > 0 and self.config.observation_normalization and \
                not self.agent.observations_normalized:
            buffers = [buffer for buffer in (self.online, self.intervention, self.offline)
                       if buffer is not None]
            self.agent.set_observation_statistics(*observation_statistics(
                np.concatenate([buffer.observations() for buffer in buffers])))
        if self._device_updates is not None:
            if updates > 0:
                self._last_metrics.update(self._device_updates.run(updates))
        else:
            for _ in range(updates):
                batch = self.sampler.sample(self.config.batch_size, self.rng,
                                            self.config.n_step, self.config.gamma)
                self._last_metrics.update(self.agent.update(batch))
        if offline:
            self.offline_updates += updates

    @property
    def last_metrics(self) -> Dict[str, float]:
        """Return the latest losses and Q (reading them waits for the device)."""
        return {name: float(value) for name, value in self._last_metrics.items()}

    def residual(self, observation: np.ndarray, base_action: np.ndarray,
                 noise_std: float = 0.0,
                 frames: Optional[Dict[str, np.ndarray]] = None) -> np.ndarray:
        """Return the current actor's residual for one state (and its cameras' frames)."""
        ordered = (None if frames is None else
                   [frames[camera] for camera in self.config.cameras])
        return self.agent.residual(observation, base_action, noise_std, self.rng, ordered)


def demonstration_records(demonstrations,
                          base_policy: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                          observations: Optional[np.ndarray] = None,
                          frames: Optional[Dict[str, np.ndarray]] = None,
                          base_actions: Optional[np.ndarray] = None) -> Iterator[StepRecord]:
    """
    Yield the steps of demonstrations (hilresrl_common.demonstrations) as learner records.

    The executed action is what the demonstrator's arm did (its noisy action, the one that led
    to the next state): the critic learns on it. The expert's noise-free action is the
    guidance target (human_action, every axis). The base action of each step is what the
    frozen base policy would have done in that state: ``base_policy`` of the step's task state,
    or ``base_actions`` (N, action_dim) relabelled already. A successful episode's last step is
    rewarded and terminal; a failed episode's last step is left out: its next state was never
    recorded, and bootstrapping it from its own state would teach the critic a step that goes
    nowhere. The step before it then bootstraps from the last recorded state.

    ``observations`` (N, obs_dim): what the actor sees at each step (default: the task state);
    ``frames``: each camera's (N, channels, height, width) uint8 frames, by camera input name.
    """
    if (base_policy is None) == (base_actions is None):
        raise ValueError('give demonstration_records a base_policy or base_actions, not both')
    seen = demonstrations.observations if observations is None else observations
    episode_index = demonstrations.episode_index
    for index in range(len(seen)):
        episode = int(episode_index[index])
        last = index + 1 == len(seen) or int(episode_index[index + 1]) != episode
        success = bool(demonstrations.episode_success[episode])
        if last and not success:
            continue
        start = int(np.argmax(episode_index == episode))
        following = index if last else index + 1
        yield StepRecord(
            ('demonstration', episode), index - start, seen[index],
            (base_policy(demonstrations.observations[index]) if base_actions is None
             else np.asarray(base_actions[index], dtype=np.float32)),
            np.asarray(demonstrations.actions[index], dtype=np.float32), float(last),
            seen[following], last, False,
            np.asarray(demonstrations.expert_actions[index], dtype=np.float32),
            frames=(None if frames is None else
                    {camera: values[index] for camera, values in frames.items()}),
            next_frames=(None if frames is None else
                         {camera: values[following] for camera, values in frames.items()}))
