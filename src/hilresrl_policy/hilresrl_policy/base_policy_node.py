"""
base_policy_node: runs the frozen base policy (any adapter) and publishes its action chunks.

It runs at its own pace, apart from the control loop: on a timer (a real cell, where a VLA may
take 100-300 ms) or when a new observation needs a new plan (a lockstep simulator). Adapters are
found by name in the hilresrl.base_policies entry-point group. A plan with non-finite values is
refused (no chunk); refinement-actor weights pass the same checks as the residual node's.
"""

import json
import time
from typing import Optional

from hilresrl_common.conversions import float32_field, ns_to_stamp
from hilresrl_common.corrections import command_features, parse_command
from hilresrl_common.instruction_features import policy_vector
from hilresrl_common.node_runner import ConfigurationError, run_node
from hilresrl_common.observation import Observation, ObservationAssembler
from hilresrl_common.observation_topics import (declare_observation_parameters,
                                                subscribe_observations)
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.qos import EVENTS_QOS, LATCHED_QOS, STEP_QOS
from hilresrl_msgs.msg import ActionChunk, EpisodeEvent, Mode, PolicyWeights
import numpy as np
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from std_msgs.msg import String

from .adapters import BasePolicyError, load_base_policy
from .base_policy_parameters import ACTOR_MODES, PARAMETERS, TRIGGERS
from .chunking import Chunk, ChunkBuffer
from .refinement import COMMAND_FEATURES, LatentSteering
from .weights_acceptance import weights_gate, weights_gate_parameters


class BasePolicyNode(Node):
    """Observation in, ActionChunk out, for any registered base-policy adapter."""

    def __init__(self, **kwargs):
        super().__init__('base_policy', **kwargs)

        values = declare_parameters(self, PARAMETERS)
        kind = values['base_policy.kind']
        config = {'checkpoint': values['base_policy.checkpoint'],
                  'task': values['base_policy.task'], 'device': values['base_policy.device']}
        self.trigger: str = values['trigger']
        self.rate_hz: float = values['rate_hz']
        self.step_period_s: float = values['step_period_s']
        self.execute_steps: int = values['execute_steps'] or 0
        self.frame_id: str = values['frame_id']
        self.actor_mode: str = values['actor_mode']
        self.latent_exploration_std: float = values['latent_exploration_std']
        self.policy_inputs = values['policy_inputs']
        self.action_names = values['action_names']
        observation = declare_observation_parameters(self)
        if self.trigger not in TRIGGERS:
            raise ConfigurationError(f'trigger must be one of {", ".join(TRIGGERS)}, '
                                     f'not {self.trigger!r}')
        try:
            config.update(json.loads(values['base_policy.config_json']))
            self.policy = load_base_policy(kind, config)
        except (BasePolicyError, ValueError, OSError) as error:
            raise ConfigurationError(f'base policy {kind!r}: {error}') from error
        self.steering: Optional[LatentSteering] = None
        self._weights_gate = weights_gate(
            declare_parameters(self, weights_gate_parameters('latent_weights')))
        if self.actor_mode not in ACTOR_MODES:
            raise ConfigurationError(f'actor_mode must be residual, latent or dual, not '
                                     f'{self.actor_mode!r}')
        if self.actor_mode != 'residual':
            if not self.policy.latent_dim:
                raise ConfigurationError(
                    f'actor_mode {self.actor_mode}: {self.policy.source_model} takes no latent '
                    '(a generative base policy such as flow_bc can be steered; this one '
                    'cannot)')
            self.steering = LatentSteering(self.policy.latent_dim, values['latent_scale'],
                                           values['seed'])

        self._assembler = ObservationAssembler(observation.sources, observation.sync)
        self._chunks = ChunkBuffer(self.execute_steps or None)
        self._chunk_id = 0
        self.failures = 0
        self.refused_plans = 0
        self.refused_weights = 0
        self._condition = np.zeros(COMMAND_FEATURES, np.float32)
        self._refinement_command = ''
        self._training = True
        self._last_chunk: Optional[ActionChunk] = None
        self._instruction = ''
        self._chunks_pub = self.create_publisher(ActionChunk, 'base_action_chunk', STEP_QOS)
        subscribe_observations(self, observation, self._on_observation_message)
        self.create_subscription(EpisodeEvent, 'episode_events', self._on_event, EVENTS_QOS)
        self.create_subscription(String, 'task_instruction', self._on_instruction, LATCHED_QOS)
        if self.trigger == 'timer':
            self.create_timer(1.0 / self.rate_hz, self._on_timer)
        if self.steering is not None:
            self.create_subscription(PolicyWeights, 'latent_weights', self._on_latent_weights,
                                     LATCHED_QOS, raw=True)  # raw: size checked first
            self.create_subscription(String, 'refinement_command', self._on_refinement_command,
                                     LATCHED_QOS)
            self.create_subscription(Mode, 'mode', self._on_mode, LATCHED_QOS)
        self.get_logger().info(
            f'base policy {self.policy.source_model}: horizon {self.policy.horizon}, '
            f'{self.policy.action_dim} axes, planning on {self.trigger}')

    def _on_observation_message(self, source, stamp_ns, arrays) -> None:
        observation = self._assembler.add(source, stamp_ns, arrays)
        if self.trigger != 'observation' or observation is None:
            return
        chunk = self._chunks.chunk
        if observation.repeat and chunk is not None and chunk.stamp_ns == observation.stamp_ns:
            self._chunks_pub.publish(self._last_chunk)  # it may not have reached anyone
        elif self._chunks.needs_replan(observation.stamp_ns):
            self._plan(observation)

    def _on_timer(self) -> None:
        observation = self._assembler.latest()
        if observation is not None:
            self._plan(observation)

    def _plan(self, observation: Observation) -> None:
        started = time.perf_counter()
        latent, condition, latent_version = np.zeros(0, np.float32), self._condition, 0
        try:
            if self.steering is not None:
                latent, latent_version = self.steering.choose(
                    policy_vector(observation.arrays, self.policy_inputs, self._instruction),
                    condition,
                    self.latent_exploration_std if self._training else 0.0)
                actions = np.asarray(self.policy.act_with_latent(observation.arrays, latent),
                                     dtype=np.float32)
            else:
                actions = np.asarray(self.policy.act(observation.arrays), dtype=np.float32)
        except BasePolicyError as error:
            # A model server that is slow, down or wrong: no chunk now (the loop holds on the
            # last one, then the arbiter's watchdog holds the robot), try again next time.
            self.failures += 1
            self.get_logger().error(f'{self.policy.source_model}: {error}',
                                    throttle_duration_sec=5.0)
            return
        latency_s = time.perf_counter() - started
        if self.failures:
            self.get_logger().info(f'{self.policy.source_model} answers again after '
                                   f'{self.failures} failed plan(s)')
            self.failures = 0
        if actions.ndim != 2 or actions.shape[1] != self.policy.action_dim:
            self.get_logger().error(f'{self.policy.source_model} returned shape {actions.shape}, '
                                    f'not (horizon, {self.policy.action_dim}): no chunk',
                                    throttle_duration_sec=5.0)
            return
        if not np.all(np.isfinite(actions)):
            self.refused_plans += 1
            self.get_logger().error(
                f'{self.policy.source_model} planned {int(np.sum(~np.isfinite(actions)))} NaN '
                f'or infinite value(s): no chunk ({self.refused_plans} refused so far)',
                throttle_duration_sec=5.0)
            return
        self._chunk_id += 1
        chunk = Chunk(observation.stamp_ns, self.step_period_s, actions, self._chunk_id,
                      self.policy.source_model)
        self._chunks.add(chunk)
        message = ActionChunk(source_model=chunk.source_model, chunk_id=chunk.chunk_id,
                              action_dim=int(actions.shape[1]), horizon=chunk.horizon,
                              step_period_s=chunk.step_period_s, data=float32_field(actions),
                              inference_latency_s=latency_s, latent=float32_field(latent),
                              latent_condition=float32_field(condition if latent.size else []),
                              latent_weights_version=latent_version)
        message.header.stamp = ns_to_stamp(observation.stamp_ns)
        message.header.frame_id = self.frame_id
        self._chunks_pub.publish(message)
        self._last_chunk = message  # to send again if the cell repeats this observation

    def _on_event(self, event: EpisodeEvent) -> None:
        if event.event == EpisodeEvent.EPISODE_START:
            self.policy.reset(self._instruction)
            self._chunks.clear()
            self._assembler.reset()
        elif event.event == EpisodeEvent.INTERVENTION_END:
            # A person moved the robot: the plan made before is stale. Plan from where the
            # robot is now (at once on a timer; on the next observation in lockstep).
            self._chunks.clear()
            if self.trigger == 'timer':
                self._on_timer()

    def _on_instruction(self, message: String) -> None:
        self._instruction = message.data

    def _on_latent_weights(self, data: bytes) -> None:
        what = 'refinement actor weights'
        try:
            self._weights_gate.check_size(len(data))
            message = deserialize_message(data, PolicyWeights)
            what = (f'refinement actor weights {message.version} of run '
                    f'{message.learner_run_id or "(none)"!r}')
            note = self._weights_gate.check_order(message.learner_run_id, message.version)
            self.steering.adopt(bytes(message.blob), message.sha256, message.architecture,
                                message.format, message.version)
        except Exception as error:  # noqa: B902 - WeightsError, or undecodable: never fatal
            self.refused_weights += 1
            self.get_logger().error(f'{what} refused, keeping version {self.steering.version}: '
                                    f'{error} ({self.refused_weights} refused so far)')
            return
        self._weights_gate.accepted(message.learner_run_id, message.version)
        if note:
            self.get_logger().info(note)
        self.get_logger().info(f'refinement actor version {message.version} in use',
                               throttle_duration_sec=30.0)

    def _on_refinement_command(self, message: String) -> None:
        """Steer the refinement actor by a person's words, from the next plan on."""
        parsed = parse_command(message.data, self.action_names)
        self._refinement_command = message.data
        self._condition = command_features(parsed) if message.data else np.zeros(
            COMMAND_FEATURES, np.float32)
        if message.data and not parsed.understood:
            self.get_logger().warning(f'refinement command {message.data!r} not understood: '
                                      'the actor goes on unconditioned')
        else:
            self.get_logger().info(f'refinement command: {message.data!r}')

    def _on_mode(self, message: Mode) -> None:
        self._training = message.value == Mode.TRAIN

    def destroy_node(self):
        """Release the policy, then the node."""
        self.policy.close()
        return super().destroy_node()


def main(args=None):
    """Run the base-policy node until shutdown."""
    return run_node(BasePolicyNode, args)


if __name__ == '__main__':
    main()
