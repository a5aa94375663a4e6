"""base_policy_node over DDS with remote and exported models: a failing server never stops it."""

import json
import threading

from hilresrl_msgs.msg import ActionChunk, StateVector
from hilresrl_policy.adapters import BasePolicy
from hilresrl_policy.base_policy_node import BasePolicyNode
from hilresrl_policy.conversions import float32_field, ns_to_stamp
from hilresrl_policy.policy_server import PolicyServer
from hilresrl_policy.qos import COMMAND_QOS
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy


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


def test_a_lerobot_act_policy_from_its_config_runs_through_the_node(ros_context, probe,
                                                                    tmp_path):
    pytest.importorskip('lerobot', reason='LeRobot is an optional extra (pip install '
                                          'lerobot==0.4.4, with its own torch<2.11, in an '
                                          'environment of its own): not installed here')
    from hilresrl_policy.adapters.lerobot_policy import save_random_act_policy
    folder = save_random_act_policy(tmp_path / 'act', state_dim=2, action_dim=2)
    node = BasePolicyNode(context=ros_context, parameter_overrides=[
        Parameter('base_policy.kind', value='lerobot'),
        Parameter('base_policy.checkpoint', value=str(folder)),
        Parameter('base_policy.config_json', value='{"environment_state": true}'),
        Parameter('observation_sources', value=['task_state'])])
    try:
        chunks = []
        probe.node.create_subscription(ActionChunk, 'base_action_chunk', chunks.append,
                                       COMMAND_QOS)
        probe.executor.add_node(node)
        states = probe.node.create_publisher(StateVector, 'task_state', 10)
        probe.wait_for(lambda: states.get_subscription_count() == 1, message='the node')
        states.publish(StateVector(data=float32_field([0.1, 0.2])))
        probe.wait_for(lambda: chunks, 60, 'an ACT chunk')
        assert chunks[-1].action_dim == 2 and chunks[-1].source_model.startswith('lerobot:')
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
    with pytest.raises(BasePolicyError, match="pip install 'lerobot==0.4.4'"):
        load_base_policy('lerobot', {'checkpoint': str(tmp_path)})
