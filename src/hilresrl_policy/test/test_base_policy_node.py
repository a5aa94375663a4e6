"""base_policy_node over DDS with remote and exported models: a failing server never stops it."""

import json
import threading

from hilresrl_common.conversions import float32_field, ns_to_stamp
from hilresrl_common.qos import COMMAND_QOS
from hilresrl_msgs.msg import ActionChunk, StateVector
from hilresrl_policy.adapters import BasePolicy
from hilresrl_policy.base_policy_node import BasePolicyNode
from hilresrl_policy.policy_server import PolicyServer
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
import torch


class ServedPolicy(BasePolicy):
    """A model behind a server: a chunk from the state, or slow, or of the wrong shape."""

    source_model = 'served:test'
    action_dim = 2
    horizon = 3

    def __init__(self):
        self.mode = 'ok'
        self.release = threading.Event()

    def act(self, observation):
        """Return rows of 0.1 x the first state value; misbehave as the mode says."""
        if self.mode == 'slow':
            self.release.wait(timeout=10.0)
        if self.mode == 'wrong_shape':
            return np.zeros((3, 5), np.float32)
        value = float(observation['task_state'][0])
        return np.full((3, 2), 0.1 * value, np.float32)


@pytest.fixture
def served(ros_context, probe):
    policy = ServedPolicy()
    server = PolicyServer(policy).start()
    nodes = []

    def start_node():
        config = {'host': 'localhost', 'port': server.port, 'action_dim': 2, 'timeout_s': 0.5}
        node = BasePolicyNode(context=ros_context, parameter_overrides=[
            Parameter('base_policy.kind', value='openpi'),
            Parameter('base_policy.config_json', value=json.dumps(config)),
            Parameter('observation_sources', value=['task_state']),
            Parameter('trigger', value='observation')])
        probe.executor.add_node(node)
        nodes.append(node)
        return node

    yield policy, server, start_node
    policy.release.set()
    for node in nodes:
        probe.executor.remove_node(node)
        node.destroy_node()
    server.stop()


def test_the_loop_holds_on_a_failing_model_server_and_recovers(served, probe):
    policy, server, start_node = served
    node = start_node()
    chunks = []
    probe.node.create_subscription(ActionChunk, 'base_action_chunk', chunks.append,
                                   COMMAND_QOS)
    states = probe.node.create_publisher(StateVector, 'task_state', QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE))
    probe.wait_for(lambda: states.get_subscription_count() == 1, message='the node')

    def observe(k, value):
        message = StateVector(data=float32_field([value, 0.0]))
        message.header.stamp = ns_to_stamp(k * 10**9)
        states.publish(message)

    def chunk_for(k, value):
        before = node.failures
        observe(k, value)
        probe.wait_for(lambda: (chunks and chunks[-1].header.stamp.sec == k)
                       or node.failures > before, message=f'plan {k}')
        return chunks[-1] if chunks and chunks[-1].header.stamp.sec == k else None

    first = chunk_for(1, 2.0)
    assert first.source_model.startswith('openpi:localhost:') and first.horizon == 3
    assert np.allclose(first.data, 0.2) and first.inference_latency_s > 0
    policy.mode = 'slow'  # longer than the adapter's 0.5 s: this plan fails, the node lives
    assert chunk_for(2, 3.0) is None and node.failures == 1
    policy.release.set()
    policy.mode = 'wrong_shape'
    assert chunk_for(3, 3.0) is None and node.failures == 2
    policy.mode = 'ok'
    recovered = chunk_for(4, 5.0)  # reconnects on its own
    assert recovered is not None and np.allclose(recovered.data, 0.5)
    assert node.failures == 0
    server.stop()  # the server goes away altogether, then comes back on its port
    assert chunk_for(5, 1.0) is None
    PolicyServer(policy, port=server.port).start()
    assert np.allclose(chunk_for(6, 4.0).data, 0.4)


class InfinitePolicy(ServedPolicy):
    """A model in the node's own process whose output is not checked on the way."""

    source_model = 'infinite:test'

    def act(self, observation):
        """Return infinite rows in mode 'infinite', else as ServedPolicy."""
        if self.mode == 'infinite':
            return np.full((3, 2), np.inf, np.float32)
        return super().act(observation)


def test_a_plan_with_non_finite_values_is_refused(ros_context, probe, monkeypatch):
    from hilresrl_policy import base_policy_node
    policy = InfinitePolicy()
    monkeypatch.setattr(base_policy_node, 'load_base_policy', lambda kind, config: policy)
    node = BasePolicyNode(context=ros_context, parameter_overrides=[
        Parameter('observation_sources', value=['task_state']),
        Parameter('trigger', value='observation')])
    probe.executor.add_node(node)
    try:
        chunks = []
        probe.node.create_subscription(ActionChunk, 'base_action_chunk', chunks.append,
                                       COMMAND_QOS)
        states = probe.node.create_publisher(StateVector, 'task_state', QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))
        probe.wait_for(lambda: states.get_subscription_count() == 1, message='the node')

        def observe(k):
            message = StateVector(data=float32_field([3.0, 0.0]))
            message.header.stamp = ns_to_stamp(k * 10**9)
            states.publish(message)

        policy.mode = 'infinite'
        observe(1)
        probe.wait_for(lambda: getattr(node, 'refused_plans', 0) == 1 or chunks,
                       message='the infinite plan')
        policy.mode = 'ok'
        observe(2)
        probe.wait_for(lambda: chunks, message='a chunk')
        assert [chunk.header.stamp.sec for chunk in chunks] == [2]  # none from the bad plan
        assert np.allclose(chunks[0].data, 0.3)
    finally:
        probe.executor.remove_node(node)
        node.destroy_node()


def test_without_lerobot_the_adapter_names_the_extra(tmp_path):
    try:
        import lerobot  # noqa: F401
        pytest.skip('LeRobot is installed here')
    except ImportError:
        pass
    from hilresrl_policy.adapters import BasePolicyError, load_base_policy
    with pytest.raises(BasePolicyError, match='scripts/setup-lerobot.sh makes that environment'):
        load_base_policy('lerobot', {'checkpoint': str(tmp_path)})


def _flow_checkpoint(directory):
    from hilresrl_policy.flow_bc import FlowConfig, FlowPolicy, save_flow_checkpoint
    torch.manual_seed(0)
    model = FlowPolicy(FlowConfig(state_dim=2, action_dim=3, hidden_sizes=(16,), steps=2))
    return save_flow_checkpoint(directory, model, {'note': 'untrained, for the node test'})


def _latent_node(ros_context, kind, config, actor_mode='latent'):
    return BasePolicyNode(context=ros_context, parameter_overrides=[
        Parameter('base_policy.kind', value=kind),
        Parameter('base_policy.config_json', value=json.dumps(config)),
        Parameter('observation_sources', value=['task_state']),
        Parameter('trigger', value='observation'),
        Parameter('actor_mode', value=actor_mode),
        Parameter('latent_scale', value=1.5),
        Parameter('action_names', value=['x', 'y', 'gripper'])])


def test_latent_mode_refuses_a_base_policy_without_a_latent(ros_context, tmp_path):
    from hilresrl_policy.bc import BCConfig, BCNetwork, save_checkpoint
    from hilresrl_common.node_runner import ConfigurationError
    network = BCNetwork(BCConfig(state_dim=2, action_dim=3, hidden_sizes=(8,)))
    bc = save_checkpoint(tmp_path / 'bc', network, {'note': 'test'})
    for mode in ('latent', 'dual'):
        with pytest.raises(ConfigurationError, match='takes no latent'):
            _latent_node(ros_context, 'bc', {'checkpoint': str(bc)}, mode)
    with pytest.raises(ConfigurationError, match='actor_mode must be'):
        _latent_node(ros_context, 'flow_bc', {'checkpoint': str(_flow_checkpoint(
            tmp_path / 'flow'))}, 'steer')


def test_latent_mode_publishes_the_latent_its_command_and_the_actor_version(
        ros_context, probe, tmp_path):
    from hilresrl_msgs.msg import Mode, PolicyWeights
    from hilresrl_common.corrections import command_features, parse_command
    from hilresrl_common.qos import LATCHED_QOS
    from hilresrl_policy.residual import ResidualActor, ResidualConfig, serialize_actor
    from std_msgs.msg import String
    node = _latent_node(ros_context, 'flow_bc',
                        {'checkpoint': str(_flow_checkpoint(tmp_path / 'flow'))})
    probe.executor.add_node(node)
    try:
        chunks = []
        probe.node.create_subscription(ActionChunk, 'base_action_chunk', chunks.append,
                                       COMMAND_QOS)
        states = probe.node.create_publisher(StateVector, 'task_state', QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))
        commands = probe.node.create_publisher(String, 'refinement_command', LATCHED_QOS)
        weights = probe.node.create_publisher(PolicyWeights, 'latent_weights', LATCHED_QOS)
        mode = probe.node.create_publisher(Mode, 'mode', LATCHED_QOS)
        probe.wait_for(lambda: states.get_subscription_count() == 1, message='the node')

        def plan(k):
            message = StateVector(data=float32_field([0.5, -0.5]))
            message.header.stamp = ns_to_stamp(k * 10**9)
            count = len(chunks)
            states.publish(message)
            probe.wait_for(lambda: len(chunks) > count, message=f'chunk {k}')
            return chunks[-1]

        sampled = plan(1)
        assert len(sampled.latent) == 3 and sampled.latent_weights_version == 0
        assert np.all(np.abs(np.asarray(sampled.latent)) <= 1.5)
        assert np.asarray(sampled.latent_condition).tolist() == [0.0] * 8

        commands.publish(String(data='move left 2 cm'))
        expected = command_features(parse_command('move left 2 cm', ['x', 'y', 'gripper']))
        assert expected[7] == 1.0
        probe.wait_for(lambda: node._refinement_command == 'move left 2 cm',
                       message='the command')
        assert np.asarray(plan(2).latent_condition).tolist() == pytest.approx(expected.tolist())

        # An actor whose output is +1 on every latent axis: the latent is latent_scale itself.
        actor = ResidualActor(ResidualConfig(obs_dim=2 + 8, action_dim=3, hidden_sizes=(4,)))
        with torch.no_grad():
            actor.net[-1].bias.fill_(10.0)
        serialized = serialize_actor(actor)
        mode.publish(Mode(value=Mode.EVAL))
        weights.publish(PolicyWeights(version=4, format=serialized.format, blob=serialized.blob,
                                      sha256=serialized.sha256,
                                      architecture=serialized.architecture,
                                      learner_run_id='run-a'))
        probe.wait_for(lambda: node.steering.version == 4 and not node._training,
                       message='the refinement actor and EVAL mode')
        steered = plan(3)
        assert steered.latent_weights_version == 4
        assert np.asarray(steered.latent).tolist() == pytest.approx([1.5, 1.5, 1.5])
        expected_action = node.policy.act_with_latent(
            {'task_state': np.array([0.5, -0.5], np.float32)}, np.full(3, 1.5, np.float32))
        assert np.asarray(steered.data).tolist() == pytest.approx(
            expected_action.ravel().tolist(), abs=1e-6)
    finally:
        probe.executor.remove_node(node)
        node.destroy_node()
