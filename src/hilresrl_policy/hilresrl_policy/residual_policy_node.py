"""
residual_policy_node: corrects the base action at the control rate and proposes the result.

Each control step: the latest observation and the base action for its time (a row of the newest
chunk) go through the residual actor; composed = clip(base + residual_scale * residual) is
published with the version of the weights that produced it. New weights from the learner's
latched topic are checked (size before decoding, learner run and version, hash, architecture,
finite values) and swapped in between steps; bad ones are refused and counted, and the old ones
keep acting, as they do when the learner is down. Base chunks with non-finite values are refused.
On the CPU one step's forward pass runs in numpy (SingleStepActor), free of torch's per-op cost.
With cameras, each frame's share of the image features is computed in a worker thread as it
arrives (camera_features), so that a step mostly adds shares instead of running the encoder.
With residual_in_arbiter:=true the arbiter runs in this process and gets each proposal by a
direct call (hand_proposals_to) before it is published.
"""

import time
from typing import Callable, Dict, List, Optional

from hilresrl_common.conversions import float32_field, ns_to_stamp, parse_source, stamp_to_ns
from hilresrl_common.instruction_features import INSTRUCTION_INPUT, policy_vector
from hilresrl_common.node_runner import ConfigurationError, run_node
from hilresrl_common.observation import Observation, ObservationAssembler, SilentSources
from hilresrl_common.observation_topics import (declare_observation_parameters,
                                                subscribe_observations)
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.qos import COMMAND_QOS, EVENTS_QOS, LATCHED_QOS, STEP_QOS
from hilresrl_common.residual_contract import compose, residual_scale_vector
from hilresrl_msgs.msg import ActionChunk, EpisodeEvent, Mode, PolicyWeights, ProposedAction
import numpy as np
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from std_msgs.msg import String
import torch

from .camera_features import ArrivingFrames, CameraShares
from .chunking import Chunk, ChunkBuffer
from .image_encoder import configured_pretrained_encoder, encoder_frame, ImageInputs
from .residual import (encoder_fields, load_actor_weights, ResidualActor, ResidualConfig,
                       SingleStepActor, WeightsError)
from .residual_policy_parameters import ACTOR_MODES, CHUNK_EXECUTIONS, PARAMETERS, TRIGGERS
from .weights_acceptance import weights_gate, weights_gate_parameters


class ResidualPolicyNode(Node):
    """Observation + base action -> residual -> ProposedAction, every control step."""

    def __init__(self, **kwargs):
        super().__init__('residual_policy', **kwargs)

        values = declare_parameters(self, PARAMETERS)
        self.action_dim: int = values['action_dim']
        self.policy_inputs = values['policy_inputs']
        try:
            self.residual_scale = residual_scale_vector(values['residual_scale'],
                                                        self.action_dim)
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        self._residual_scale_field = float32_field(self.residual_scale)  # the same every step
        self.hidden_sizes = tuple(values['hidden_sizes'])
        # Camera images beside the observation vector: resized, then through the actor's encoder.
        self.camera_inputs = tuple(values['camera_inputs'])
        if len(values['image_size']) != 2:
            raise ConfigurationError(f'image_size {values["image_size"]}: give height and width')
        self.image_features: int = values['image_features']
        self._image_inputs = (ImageInputs(self.camera_inputs, *values['image_size'])
                              if self.camera_inputs else None)
        # A frozen pretrained encoder is loaded from this machine's own file, now: weights from
        # a learner that loaded another file (its SHA-256) are refused.
        self.image_encoder: str = values['image_encoder']
        try:
            self._pretrained_encoder = configured_pretrained_encoder(
                values['image_encoder'], values['image_encoder_weights'], self._image_inputs,
                values['action_dim'])
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        self.layer_norm: bool = values['layer_norm']
        self.exploration_std: float = values['exploration_std']
        self.device = torch.device(values['device'])
        self.trigger: str = values['trigger']
        self.control_rate_hz: float = values['control_rate_hz']
        self.frame_id: str = values['frame_id']
        self.wait_for_chunk: bool = values['wait_for_chunk']
        self.actor_mode: str = values['actor_mode']
        chunk_execution: str = values['chunk_execution']
        for name, value, choices in (('trigger', self.trigger, TRIGGERS),
                                     ('actor_mode', self.actor_mode, ACTOR_MODES),
                                     ('chunk_execution', chunk_execution, CHUNK_EXECUTIONS)):
            if value not in choices:
                raise ConfigurationError(f'{name} must be one of {", ".join(choices)}, '
                                         f'not {value!r}')
        observation = declare_observation_parameters(self)
        self._weights_gate = weights_gate(
            declare_parameters(self, weights_gate_parameters('policy_weights')))
        torch.set_num_threads(1)  # a small MLP per step; threads only contend with the cell

        self._rng = np.random.default_rng(values['seed'])
        self._assembler = ObservationAssembler(observation.sources, observation.sync)
        # With latest sync the robot's state clocks the loop (trigger observation): a camera
        # frame alone starts no step, it joins the next one, as cameras run on their own clocks.
        self._clock_sources = frozenset(observation.sources)
        if observation.sync == 'latest':
            states = [source for source in observation.sources
                      if parse_source(source)[1] not in ('image', 'compressed_image')]
            self._clock_sources = frozenset(states or observation.sources)
        self._silence: Optional[SilentSources] = None
        self._reported_silent: List[str] = []
        if values['source_timeout_s'] > 0:
            self._silence = SilentSources(observation.sources, values['source_timeout_s'],
                                          time.monotonic())
            self.create_timer(values['source_timeout_s'] / 2, self._check_sources)
        self._chunks = ChunkBuffer(values['execute_steps'] or None,
                                   0 if self.wait_for_chunk else values['chunk_hold_steps'],
                                   values['ensemble_decay'] if chunk_execution == 'ensemble'
                                   else None)
        self._actor: Optional[ResidualActor] = None
        self._single_step: Optional[SingleStepActor] = None  # the actor in numpy, on the CPU
        self._arriving: Optional[ArrivingFrames] = None  # camera frames encoded as they arrive
        self._latest_sync = observation.sync == 'latest'
        self._receiver: Optional[Callable[[ProposedAction], None]] = None
        self._weights_version = 0
        self.refused_weights = 0
        self.refused_chunks = 0
        self._pending_weights: Optional[PolicyWeights] = None
        self._waiting: Optional[Observation] = None
        self._last_stamp_ns = -1
        self._last_proposal: Optional[ProposedAction] = None
        self._step = 0
        self._mode = Mode.TRAIN
        self._instruction = ''

        self._proposals = self.create_publisher(ProposedAction, 'proposed_action', STEP_QOS)
        subscribe_observations(self, observation, self._on_observation_message)
        self.create_subscription(ActionChunk, 'base_action_chunk', self._on_chunk, COMMAND_QOS)
        # Raw: the size is checked before anything is decoded.
        self.create_subscription(PolicyWeights, 'policy_weights', self._on_weights, LATCHED_QOS,
                                 raw=True)
        self.create_subscription(Mode, 'mode', self._on_mode, LATCHED_QOS)
        self.create_subscription(EpisodeEvent, 'episode_events', self._on_event, EVENTS_QOS)
        if INSTRUCTION_INPUT in self.policy_inputs:  # one actor for several tasks
            self.create_subscription(String, 'task_instruction', self._on_instruction,
                                     LATCHED_QOS)
        if self.trigger == 'timer':
            self.create_timer(1.0 / self.control_rate_hz, self._on_timer)

    @property
    def weights_version(self) -> int:
        """Return the version of the weights in use (0: the zero-initialised actor)."""
        return self._weights_version

    def hand_proposals_to(self, receiver: Callable[[ProposedAction], None]) -> None:
        """Give each proposal to ``receiver``, a node of this process, before publishing it."""
        self._receiver = receiver

    def _on_observation_message(self, source, stamp_ns, arrays) -> None:
        if self._silence is not None:
            self._silence.heard(source, time.monotonic())
        if self._arriving is not None:
            for name, pixels in arrays.items():
                if name in self.camera_inputs:
                    self._arriving.offer(name, pixels)
        observation = self._assembler.add(source, stamp_ns, arrays)
        if (self.trigger != 'observation' or observation is None
                or source not in self._clock_sources):
            return
        if (observation.repeat and self._last_proposal is not None
                and observation.stamp_ns == self._last_stamp_ns):
            self._propose(self._last_proposal)  # it may not have reached anyone
            return
        self._waiting = observation
        self._try_step()

    def _check_sources(self) -> None:
        silent = self._silence.silent(time.monotonic())
        if silent == self._reported_silent:
            return
        if silent:
            self.get_logger().warning(
                f'observation source(s) {", ".join(silent)} sent nothing for over '
                f'{self._silence.timeout_s:g} s while the others send: no observation, no '
                'proposal (the arbiter holds the robot)')
        else:
            self.get_logger().info(f'observation source(s) {", ".join(self._reported_silent)} '
                                   'sending again')
        self._reported_silent = silent

    def _on_timer(self) -> None:
        observation = self._assembler.latest()
        if observation is not None and observation.stamp_ns != self._last_stamp_ns:
            self._waiting = observation
            self._try_step()

    def _on_chunk(self, message: ActionChunk) -> None:
        actions = np.asarray(message.data, dtype=np.float32)
        if message.action_dim != self.action_dim or actions.size != (
                message.horizon * message.action_dim):
            self.get_logger().error(
                f'chunk {message.chunk_id} from {message.source_model} has {message.horizon} x '
                f'{message.action_dim} shape for {actions.size} values; this cell has '
                f'{self.action_dim} axes: ignored', throttle_duration_sec=5.0)
            return
        if not np.all(np.isfinite(actions)):
            self.refused_chunks += 1
            self.get_logger().error(
                f'chunk {message.chunk_id} from {message.source_model} holds '
                f'{int(np.sum(~np.isfinite(actions)))} NaN or infinite value(s): refused '
                f'({self.refused_chunks} so far)', throttle_duration_sec=5.0)
            return
        self._chunks.add(Chunk(stamp_to_ns(message.header.stamp), message.step_period_s,
                               actions.reshape(message.horizon, message.action_dim),
                               message.chunk_id, message.source_model, tuple(message.latent),
                               tuple(message.latent_condition),
                               message.latent_weights_version))
        if self._waiting is not None:
            self._try_step()

    def _try_step(self) -> None:
        observation = self._waiting
        # In lockstep the base policy plans from this very observation when it is due, so wait
        # for that chunk rather than play an older one.
        base = self._chunks.action_at(observation.stamp_ns, fresh_only=self.wait_for_chunk)
        if base is None:
            if not self.wait_for_chunk:
                self.get_logger().warning('no base action for the current time (base policy '
                                          'slow or down?)', throttle_duration_sec=5.0)
            return
        self._waiting = None
        self._last_stamp_ns = observation.stamp_ns
        self._step += 1
        state = policy_vector(observation.arrays, self.policy_inputs, self._instruction)
        residual = self._residual(state, np.asarray(base.action, dtype=np.float32),
                                  self._camera_arrays(observation))
        if self.actor_mode == 'latent':  # the steered base policy acts alone
            residual = np.zeros_like(residual)
        elif self._mode == Mode.TRAIN and self.exploration_std > 0:
            residual = np.clip(residual + self._rng.normal(0.0, self.exploration_std,
                                                           residual.shape), -1.0, 1.0)
        composed = compose(base.action, residual, self.residual_scale)
        # A new message each step: the last one is kept (here, and by an arbiter in this
        # process, whose holds record it), so it must not change afterwards.
        message = ProposedAction(step=self._step, base_action=float32_field(base.action),
                                 residual=float32_field(residual),
                                 residual_scale=self._residual_scale_field,
                                 composed_action=float32_field(composed),
                                 weights_version=self._weights_version,
                                 base_chunk_id=base.chunk.chunk_id,
                                 base_source_model=base.chunk.source_model,
                                 latent=float32_field(base.chunk.latent),
                                 latent_condition=float32_field(base.chunk.latent_condition),
                                 latent_weights_version=base.chunk.latent_weights_version)
        message.header.stamp = ns_to_stamp(observation.stamp_ns)
        message.header.frame_id = self.frame_id
        self._last_proposal = message
        self._propose(message)

    def _propose(self, message: ProposedAction) -> None:
        if self._receiver is not None:  # the arbiter of this process: the command goes out first
            self._receiver(message)
        self._proposals.publish(message)

    def _camera_arrays(self, observation: Observation) -> Optional[Dict[str, np.ndarray]]:
        """Return each camera's image of this observation by camera input (or None)."""
        if self._image_inputs is None:
            return None
        missing = [name for name in self.camera_inputs if name not in observation.arrays]
        if missing:
            raise ConfigurationError(f'camera_inputs {missing} are not in the observation (it '
                                     f'has {sorted(observation.arrays)}): add their topics to '
                                     'observation_sources')
        return {name: observation.arrays[name] for name in self.camera_inputs}

    def _residual(self, state: np.ndarray, base_action: np.ndarray,
                  cameras: Optional[Dict[str, np.ndarray]] = None) -> np.ndarray:
        """Return the actor's residual for one step (action_dim,)."""
        actor = self._actor_for(state.size)
        if self._single_step is not None:
            return self._single_step(state, base_action)
        frames = features = None
        with torch.inference_mode():
            if cameras is not None and self._arriving is not None:
                features = self._arriving.features(cameras)
            elif cameras is not None:
                frames = [torch.from_numpy(encoder_frame(cameras[name], self._image_inputs)
                                           ).unsqueeze(0).to(self.device)
                          for name in self.camera_inputs]
            residual = actor(torch.from_numpy(state).unsqueeze(0).to(self.device),
                             torch.from_numpy(base_action).unsqueeze(0).to(self.device), frames,
                             features)
        return residual[0].cpu().numpy()

    def _actor_for(self, obs_dim: int) -> ResidualActor:
        if self._actor is None:
            inputs = self._image_inputs
            config = ResidualConfig(
                obs_dim, self.action_dim, self.hidden_sizes, self.layer_norm,
                residual_scale=tuple(self.residual_scale), cameras=self.camera_inputs,
                image_size=(inputs.height, inputs.width, inputs.channels) if inputs else (),
                image_features=self.image_features,
                **encoder_fields(self.image_encoder, self._pretrained_encoder))
            self._actor = ResidualActor(config, self._pretrained_encoder).to(self.device).eval()
            if self.device.type == 'cpu' and inputs is None:  # numpy has no convolutions
                self._single_step = SingleStepActor(self._actor)
            if inputs is not None:
                # With latest sync a step takes each camera's newest encoded frame and never
                # waits for the encoder; with exact sync, the frame of its own stamp.
                self._arriving = ArrivingFrames(CameraShares(self._actor.encoder),
                                                self.camera_inputs, self.device,
                                                newest_ready=self._latest_sync)
            cameras = (f' + cameras {list(self.camera_inputs)} at {inputs.height}x{inputs.width}'
                       f' ({config.image_encoder or "drqv2"} encoder)' if inputs else '')
            self.get_logger().info(f'residual actor: {obs_dim} observation values{cameras} + '
                                   f'{self.action_dim} base action -> {self.action_dim}, '
                                   f'hidden {list(self.hidden_sizes)}')
            if self._pending_weights is not None:
                self._adopt(self._pending_weights)
        elif self._actor.config.obs_dim != obs_dim:
            raise ConfigurationError(f'the observation changed size from '
                                     f'{self._actor.config.obs_dim} to {obs_dim} values')
        return self._actor

    def _on_weights(self, data: bytes) -> None:
        try:
            self._weights_gate.check_size(len(data))
            message = deserialize_message(data, PolicyWeights)
        except WeightsError as error:
            self._refuse('weights', error)
            return
        except Exception as error:  # noqa: B902 - undecodable bytes: refused, never fatal
            self._refuse('weights', f'undecodable message ({type(error).__name__}: {error})')
            return
        if self._actor is None:
            try:
                self._weights_gate.check_order(message.learner_run_id, message.version)
            except WeightsError as error:
                self._refuse(_describe(message), error)
                return
            self._pending_weights = message  # adopted with the first observation
            return
        self._adopt(message)

    def _adopt(self, message: PolicyWeights) -> None:
        self._pending_weights = None
        try:
            note = self._weights_gate.check_order(message.learner_run_id, message.version)
            load_actor_weights(self._actor, bytes(message.blob), message.sha256,
                               message.architecture, message.format)
        except WeightsError as error:
            self._refuse(_describe(message), error)
            return
        if self._single_step is not None:
            self._single_step.refresh(self._actor)
        if self._arriving is not None:
            self._arriving.refresh()
        self._weights_gate.accepted(message.learner_run_id, message.version)
        if note:
            self.get_logger().info(note)
        self._weights_version = message.version
        self.get_logger().info(f'residual weights version {message.version} in use')

    def _refuse(self, what: str, reason) -> None:
        self.refused_weights += 1
        self.get_logger().error(f'{what} refused, keeping version {self._weights_version}: '
                                f'{reason} ({self.refused_weights} refused so far)')

    def _on_event(self, event: EpisodeEvent) -> None:
        if event.event == EpisodeEvent.EPISODE_START:
            # The event is stamped with the episode's first observation: a plan (or a waiting
            # observation) from before it belongs to the last episode, perhaps to another
            # instruction, and must not move the robot now. A plan from that first observation
            # may already be here: it stays.
            started_ns = stamp_to_ns(event.header.stamp)
            self._chunks.forget_before(started_ns)
            if self._waiting is not None and self._waiting.stamp_ns < started_ns:
                self._waiting = None
        elif event.event == EpisodeEvent.INTERVENTION_END:
            self._chunks.keep_newest()  # plans made before the correction no longer count

    def _on_instruction(self, message: String) -> None:
        self._instruction = message.data

    def destroy_node(self):
        """Stop the camera worker thread, then the node."""
        if self._arriving is not None:
            self._arriving.close()
        super().destroy_node()

    def _on_mode(self, message: Mode) -> None:
        self._mode = message.value


def _describe(message: PolicyWeights) -> str:
    return (f'weights version {message.version} of run '
            f'{message.learner_run_id or "(none)"!r}')


def main(args=None):
    """Run the residual-policy node until shutdown."""
    return run_node(ResidualPolicyNode, args)


if __name__ == '__main__':
    main()
