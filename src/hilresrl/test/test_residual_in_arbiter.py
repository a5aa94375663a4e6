"""
residual_in_arbiter:=true over DDS: the residual policy and the arbiter in one process.

The process is started as hilresrl launch starts it (the graph's spec and command line); the
probe plays the cell, the learner and a robot driver that subscribes to the commands.
"""

import json

from geometry_msgs.msg import PoseStamped, TwistStamped
from hilresrl.graph import build_graph, write_inline_parameters
from hilresrl.process_launcher import find_executable, node_command
from hilresrl_common.conversions import float32_field, ns_to_stamp, stamp_to_ns
from hilresrl_common.qos import COMMAND_QOS, LATCHED_QOS
from hilresrl_msgs.msg import (ActionChunk, ExecutedAction, PolicyWeights, ProposedAction,
                               StateVector)
from hilresrl_policy.residual import ResidualActor, ResidualConfig, serialize_actor
import numpy as np
import pytest
from rcl_interfaces.srv import GetParameters
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Empty
import torch

PROFILE = """
/**:
  ros__parameters:
    action_dim: 4
    action_names: ['x', 'y', 'z', 'gripper']
    observation_sources: ['task_state']
    policy_inputs: ['task_state']
    residual_scale: [0.5, 0.5, 0.5, 1.0]
    hidden_sizes: [16, 16]
    linear_speed_scale_mps: 0.1
/**/residual_policy:
  ros__parameters:
    execute_steps: 1
    exploration_std: 0.3
/**/intervention_arbiter:
  ros__parameters:
    watchdog_timeout_s: 1.0
"""
SCALE = [0.5, 0.5, 0.5, 1.0]
CONFIG = ResidualConfig(obs_dim=6, action_dim=4, hidden_sizes=(16, 16), residual_scale=SCALE)
STATE = np.linspace(-1.0, 1.0, 6).astype(np.float32)
BASE = np.array([0.2, -0.4, 0.1, -1.0], dtype=np.float32)


@pytest.fixture
def fast_path(tmp_path, monkeypatch, launch_process, probe):
    """Start the residual_in_arbiter process of an eval graph; return the probe's cell."""
    monkeypatch.setenv('HILRESRL_HOME', str(tmp_path / 'home'))
    (tmp_path / 'cells').mkdir()
    (tmp_path / 'cells' / 'cell.yaml').write_text(PROFILE)
    nodes = build_graph('eval', {'cell': 'cell', 'residual_in_arbiter': 'true'}, str(tmp_path))
    spec = next(node for node in nodes if node.hosted)
    launched = launch_process(node_command(spec, find_executable(spec.package, spec.executable),
                                           write_inline_parameters(spec, str(tmp_path))))
    yield Cell(probe, launched)
    launched.interrupt(timeout_s=60)


class Cell:
    """The probe's side: observations, chunks, poses and weights in; what comes out, kept."""

    def __init__(self, probe, launched):
        self.probe, self.launched = probe, launched
        self.proposals, self.executed, self.commands = [], [], []
        node = probe.node
        self.states = node.create_publisher(StateVector, 'task_state', COMMAND_QOS)
        self.chunks = node.create_publisher(ActionChunk, 'base_action_chunk', COMMAND_QOS)
        self.pose = node.create_publisher(PoseStamped, 'ee_pose', COMMAND_QOS)
        self.weights = node.create_publisher(PolicyWeights, 'policy_weights', LATCHED_QOS)
        node.create_subscription(ProposedAction, 'proposed_action', self.proposals.append,
                                 COMMAND_QOS)
        node.create_subscription(ExecutedAction, 'executed_action', self.executed.append,
                                 COMMAND_QOS)
        node.create_subscription(TwistStamped, 'servo/delta_twist_cmds', self.commands.append,
                                 COMMAND_QOS)
        # The robot's pose, measured all the time as a driver publishes it.
        self.poses_seen_sent = 0
        node.create_timer(0.05, self._measure)

        def ready():
            assert launched.process.poll() is None, launched.output
            return (self.states.get_subscription_count() == 1
                    and self.chunks.get_subscription_count() == 1
                    and self.pose.get_subscription_count() == 1
                    and self.weights.get_subscription_count() == 1
                    and node.count_publishers('proposed_action') == 1
                    and node.count_publishers('executed_action') == 1
                    and node.count_publishers('servo/delta_twist_cmds') == 1)
        probe.wait_for(ready, 60, 'the residual and the arbiter')
        self.poses_seen_sent = 0
        probe.wait_for(lambda: self.poses_seen_sent >= 3, message='poses to the arbiter')

    def _measure(self) -> None:
        if self.pose.get_subscription_count():
            self.poses_seen_sent += 1
        self.pose.publish(self._pose(0))

    @classmethod
    def _pose(cls, stamp_ns: int) -> PoseStamped:
        pose = PoseStamped()
        pose.header.stamp = ns_to_stamp(stamp_ns)
        pose.pose.position.z, pose.pose.orientation.w = 0.5, 1.0
        return pose

    @staticmethod
    def stamp_ns(k: int) -> int:
        return 1_000_000_000 + k * 100_000_000

    def observe(self, k: int, base=BASE, state=STATE) -> None:
        """Publish step k's pose, base chunk (none: base=None) and observation, as a cell."""
        pose = self._pose(self.stamp_ns(k))
        stamp = pose.header.stamp
        self.pose.publish(pose)
        if base is not None:  # planned from this very observation
            chunk = ActionChunk(action_dim=4, horizon=1, step_period_s=0.1, chunk_id=k,
                                source_model='test', data=float32_field(base))
            chunk.header.stamp = stamp
            self.chunks.publish(chunk)
        self.states.publish(StateVector(header=pose.header, data=float32_field(state)))

    def of_step(self, messages, k: int):
        """Return the first message stamped with step k's observation (None: none yet)."""
        return next((message for message in messages
                     if stamp_to_ns(message.header.stamp) == self.stamp_ns(k)), None)

    def step(self, k: int, base=BASE):
        """Run step k; return its proposal, executed action and twist command."""
        self.observe(k, base)
        self.probe.wait_for(lambda: self.of_step(self.proposals, k) is not None
                            and self.of_step(self.executed, k) is not None
                            and self.of_step(self.commands, k) is not None,
                            message=f'step {k}')
        # The first with the stamp is the step's own; a watchdog hold may repeat it later.
        return (self.of_step(self.proposals, k), self.of_step(self.executed, k),
                self.of_step(self.commands, k))

    def parameter(self, node: str, name: str):
        response = self.probe.call(GetParameters, f'/{node}/get_parameters',
                                   GetParameters.Request(names=[name]))
        return response.values[0]


def _trained_actor() -> ResidualActor:
    torch.manual_seed(4)
    actor = ResidualActor(CONFIG)
    with torch.no_grad():
        for parameter in actor.parameters():
            parameter.normal_(0.0, 0.3)
    return actor


def _twist(command: TwistStamped):
    return [command.twist.linear.x, command.twist.linear.y, command.twist.linear.z]


def test_the_fast_path_commands_the_robot_publishes_proposals_and_takes_new_weights(
        fast_path):
    cell = fast_path
    # Both nodes answer under their own names with the profile's and the graph's values.
    assert list(cell.parameter('residual_policy', 'residual_scale').double_array_value) == SCALE
    assert cell.parameter('residual_policy', 'exploration_std').double_value == 0.0  # eval's
    assert cell.parameter('intervention_arbiter', 'watchdog_timeout_s').double_value == 1.0

    proposal, executed, command = cell.step(1)
    # Zero-initialised, no exploration (eval): the robot does what the base policy says.
    assert np.asarray(proposal.residual).tolist() == [0.0] * 4
    assert np.asarray(proposal.composed_action).tolist() == pytest.approx(BASE.tolist())
    assert list(proposal.residual_scale) == SCALE and proposal.weights_version == 0
    assert not executed.held and executed.step == proposal.step
    assert np.asarray(executed.executed_action).tolist() == pytest.approx(BASE.tolist())
    assert _twist(command) == pytest.approx((0.1 * BASE[:3]).tolist(), abs=1e-6)

    # The learner's weights reach the residual in the arbiter's process.
    trained = _trained_actor()
    weights = serialize_actor(trained)
    cell.weights.publish(PolicyWeights(version=1, format='safetensors', blob=weights.blob,
                                       sha256=weights.sha256, architecture=weights.architecture,
                                       learner_run_id='run-a'))
    k = 2
    proposal, executed, command = cell.step(k)
    while proposal.weights_version != 1:  # swapped in between two steps
        k += 1
        assert k < 200, 'the new weights never came into use'
        proposal, executed, command = cell.step(k)
    with torch.no_grad():
        residual = trained(torch.from_numpy(STATE)[None], torch.from_numpy(BASE)[None])[0]
    composed = np.clip(BASE + np.array(SCALE, np.float32) * residual.numpy(), -1.0, 1.0)
    assert np.abs(residual.numpy()).max() > 0.05  # the weights change what the robot does
    assert np.asarray(proposal.residual) == pytest.approx(residual.numpy(), abs=1e-5)
    assert np.asarray(proposal.composed_action) == pytest.approx(composed, abs=1e-5)
    assert not executed.held and executed.weights_version == 1
    assert np.asarray(executed.executed_action) == pytest.approx(composed, abs=1e-5)
    assert _twist(command) == pytest.approx((0.1 * composed[:3]).tolist(), abs=1e-5)
    assert cell.launched.interrupt(timeout_s=60) == 0, cell.launched.output


def test_only_the_residual_of_its_process_drives_the_arbiter_and_a_missing_base_holds(
        fast_path):
    cell = fast_path
    cell.step(1)
    # Nothing in the process listens on proposed_action: a proposal from elsewhere moves nothing.
    assert cell.probe.node.count_subscribers('proposed_action') == 1  # the probe's own
    forged = cell.probe.node.create_publisher(ProposedAction, 'proposed_action', COMMAND_QOS)
    message = ProposedAction(step=999, base_action=float32_field([1.0] * 4),
                             composed_action=float32_field([1.0] * 4))
    message.header.stamp = ns_to_stamp(cell.stamp_ns(50))
    forged.publish(message)
    cell.probe.wait_for(lambda: cell.of_step(cell.proposals, 50) is not None,
                        message='the forged proposal, seen by the probe')
    cell.step(2)

    # No base action planned from this observation: no proposal, and the watchdog holds.
    cell.observe(3, base=None)
    cell.probe.wait_for(lambda: any(
        e.held and e.hold_reason == 'watchdog: no proposal'
        and stamp_to_ns(e.header.stamp) == cell.stamp_ns(3) for e in cell.executed)
        and cell.of_step(cell.commands, 3) is not None, 15, 'the watchdog hold')
    assert cell.of_step(cell.proposals, 3) is None
    moved = [e for e in cell.executed if e.step == 999 or stamp_to_ns(e.header.stamp) in (
        cell.stamp_ns(3), cell.stamp_ns(50)) and not e.held]
    assert moved == []
    assert cell.of_step(cell.commands, 50) is None
    held = [c for c in cell.commands if stamp_to_ns(c.header.stamp) == cell.stamp_ns(3)]
    assert held and all(_twist(command) == [0.0, 0.0, 0.0] for command in held)

    # The next complete step moves the robot again; stopping sends the stop command.
    proposal, executed, command = cell.step(4)
    assert not executed.held and _twist(command) == pytest.approx((0.1 * BASE[:3]).tolist(),
                                                                  abs=1e-6)
    count = len(cell.commands)
    assert cell.launched.interrupt(timeout_s=60) == 0, cell.launched.output
    cell.probe.wait_for(lambda: len(cell.commands) > count, 10, 'the stop command')
    assert _twist(cell.commands[-1]) == [0.0, 0.0, 0.0]
    assert 'stop command sent' in cell.launched.output


def test_a_residual_that_fails_takes_its_process_down_with_a_stop_command(fast_path):
    cell = fast_path
    cell.step(1)
    count = len(cell.commands)
    # An observation of another size than the actor's: the residual cannot go on.
    cell.observe(2, state=np.zeros(7, np.float32))
    assert cell.launched.wait(timeout_s=60) == 1, cell.launched.output
    assert '[residual_policy, intervention_arbiter]: the observation changed size' in \
        cell.launched.output
    cell.probe.wait_for(lambda: len(cell.commands) > count, 10, 'the stop command')
    assert _twist(cell.commands[-1]) == [0.0, 0.0, 0.0]
    assert 'stop command sent' in cell.launched.output


def test_an_eval_with_residual_in_arbiter_runs_its_episodes_on_every_topic(
        probe, launch_process, tmp_path):
    receive_all = QoSProfile(history=HistoryPolicy.KEEP_ALL,
                             reliability=ReliabilityPolicy.RELIABLE)
    executed, proposals = [], []
    probe.node.create_subscription(ExecutedAction, '/cell7/executed_action', executed.append,
                                   receive_all)
    probe.node.create_subscription(ProposedAction, '/cell7/proposed_action', proposals.append,
                                   receive_all)
    # Lockstep episodes end in a second: the first starts only once this probe is listening.
    params_file = tmp_path / 'wait_for_probe.yaml'
    params_file.write_text('/**/episode_manager:\n  ros__parameters:\n    wait_for_topics: '
                           '[base_action_chunk, proposed_action, executed_action, '
                           'probe_ready]\n')
    summary_file = tmp_path / 'summary.json'
    launched = launch_process(['hilresrl', 'launch', 'eval', 'namespace:=cell7',
                               'base_policy:=scripted', 'episodes:=2',
                               'residual_in_arbiter:=true', f'summary_file:={summary_file}',
                               f'params_file:={params_file}'])
    probe.wait_for(lambda: probe.node.count_publishers('/cell7/executed_action') == 1
                   and probe.node.count_publishers('/cell7/proposed_action') == 1, 120,
                   'the residual and the arbiter')
    probe.wait_for(lambda: {('residual_policy', '/cell7'), ('intervention_arbiter', '/cell7')}
                   <= set(probe.node.get_node_names_and_namespaces()), 30,
                   'both nodes under their own names')
    probe.node.create_publisher(Empty, '/cell7/probe_ready', COMMAND_QOS)
    probe.wait_for(lambda: launched.process.poll() is not None, 180, 'the two episodes')
    assert launched.wait() == 0, launched.output
    probe.wait_for(lambda: len(executed) >= 40, 10, 'the executed actions')
    steps = [e for e in executed if not e.held]
    assert len(steps) >= 40
    proposed = {p.step: p for p in proposals}
    for record in steps:  # each step proposed on the topic, and executed as proposed
        proposal = proposed[record.step]
        assert record.base_action == proposal.base_action
        assert np.array_equal(np.asarray(record.executed_action),
                              np.asarray(proposal.composed_action))
        assert not np.any(np.asarray(record.residual)) and record.weights_version == 0
    summary = json.loads(summary_file.read_text())
    assert summary['episodes'] == 2 and summary['intervention_rate'] == 0.0
    assert 'residual_in_arbiter' in launched.output
