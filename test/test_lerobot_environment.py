"""
The LeRobot tests, run in the LeRobot environment, and LeRobot policies planning for the cell.

LeRobot 0.6.1 wants Python 3.12 and torch < 2.12, so it lives in a virtual environment of its
own (scripts/setup-lerobot.sh; `make test` makes it first), with the ROS 2 wheels for its Python
and hilresrl_msgs built for it. The tests marked ``lerobot`` skip in the suite's environment,
which has no LeRobot; the first test here runs them in that environment and fails with their
output if any fails there, or if none ran. The others put LeRobot policies to work for the
cell over DDS: served from that environment over the openpi protocol; planning in the
base-policy node of that environment, their chunks executed by the residual node of this one;
started by ``base_policy:=lerobot`` on the simulated cell; and the README's round trip (record,
export, train with lerobot-train, run the cell with the trained policy), as written.
"""

import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import threading

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV = pathlib.Path(os.environ.get('HILRESRL_LEROBOT_VENV', ROOT / '.venv-lerobot'))
LEROBOT_TESTS = ['src/hilresrl_policy/test/test_lerobot_adapter.py',
                 'src/hilresrl_recording/test/test_lerobot_dataset.py',
                 'src/hilresrl_recording/test/test_export.py']


# Run there: an ACT policy for a 3-value state (as robot and environment state: ACT without
# cameras takes both) and 2 action axes, random weights, with action statistics far from 0 and
# 1, and the chunk the adapter gives for one state.
MAKE_ACT = """
import json, sys
import numpy as np
from hilresrl_policy.adapters.lerobot_policy import make_lerobot_policy, save_random_policy
folder, state, out = sys.argv[1], np.array(json.loads(sys.argv[2]), np.float32), sys.argv[3]
statistics = {'observation.state': {'mean': np.full(3, 0.1), 'std': np.full(3, 2.0),
                                    'min': -np.ones(3), 'max': np.ones(3)},
              'action': {'mean': np.full(2, 0.5), 'std': np.full(2, 0.1),
                         'min': -np.ones(2), 'max': np.ones(2)}}
save_random_policy(folder, 'act', 3, 2, statistics=statistics, environment_dim=3)
config = {'checkpoint': folder, 'environment_keys': ['task_state']}
np.save(out, make_lerobot_policy(config).act({'task_state': state}))
"""


def _lerobot_python() -> pathlib.Path:
    python = VENV / 'bin' / 'python'
    if not python.is_file():
        pytest.skip(f'no LeRobot environment at {VENV}: scripts/setup-lerobot.sh makes it '
                    '(make test does, where Python 3.12 is at hand)')
    return python


def _lerobot_environment() -> dict:
    """Return this process's environment without its Python path, venv or ROS 2 settings."""
    return {name: value for name, value in os.environ.items()
            if name not in ('PYTHONPATH', 'VIRTUAL_ENV', 'PYTHONHOME')
            and not name.startswith(('ROS_', 'AMENT_', 'COLCON_', 'RMW_'))}


@pytest.mark.timeout(600)
def test_the_lerobot_tests_pass_in_the_lerobot_environment():
    python = _lerobot_python()
    # (with that environment's ROS 2 and hilresrl_msgs: a bag's export reads the messages)
    result = subprocess.run(
        [str(VENV / 'bin' / 'hilresrl-lerobot-env'), str(python), '-m', 'pytest', '-q', '-m',
         'lerobot', '-p', 'no:cacheprovider', *LEROBOT_TESTS], cwd=ROOT,
        env=_lerobot_environment(), capture_output=True, text=True, timeout=570)
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    assert ' passed' in result.stdout and ' skipped' not in result.stdout, output


@pytest.mark.timeout(300)
def test_an_act_policy_served_from_the_lerobot_environment_plans_for_the_base_policy_node(
        ros_context, probe, tmp_path):
    from hilresrl_common.conversions import float32_field, ns_to_stamp
    from hilresrl_common.qos import COMMAND_QOS
    from hilresrl_msgs.msg import ActionChunk, StateVector
    from hilresrl_policy.base_policy_node import BasePolicyNode
    from rclpy.parameter import Parameter

    python = _lerobot_python()
    state = [0.3, -0.2, 0.9]
    made = subprocess.run([str(python), '-c', MAKE_ACT, str(tmp_path / 'act'), json.dumps(state),
                           str(tmp_path / 'expected.npy')], cwd=ROOT, env=_lerobot_environment(),
                          capture_output=True, text=True, timeout=240)
    assert made.returncode == 0, made.stderr[-3000:]
    expected = np.load(tmp_path / 'expected.npy')
    with socket.socket() as free:
        free.bind(('localhost', 0))
        port = free.getsockname()[1]
    server = subprocess.Popen(
        [str(python), '-m', 'hilresrl_policy.policy_server', '--kind', 'lerobot',
         '--checkpoint', str(tmp_path / 'act'), '--config-json',
         json.dumps({'environment_keys': ['task_state']}), '--port', str(port)], cwd=ROOT,
        env=_lerobot_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True).start()
    node = None
    try:
        probe.wait_for(lambda: any('serving' in line for line in lines)
                       or server.poll() is not None, 120, 'the LeRobot policy server')
        assert server.poll() is None, ''.join(lines)[-3000:]
        config = {'host': 'localhost', 'port': port, 'action_dim': 2, 'timeout_s': 30.0}
        node = BasePolicyNode(context=ros_context, parameter_overrides=[
            Parameter('base_policy.kind', value='openpi'),
            Parameter('base_policy.config_json', value=json.dumps(config)),
            Parameter('observation_sources', value=['task_state']),
            Parameter('trigger', value='observation')])
        probe.executor.add_node(node)
        chunks = []
        probe.node.create_subscription(ActionChunk, 'base_action_chunk', chunks.append,
                                       COMMAND_QOS)
        states = probe.node.create_publisher(StateVector, 'task_state', 10)
        probe.wait_for(lambda: states.get_subscription_count() == 1, message='the node')
        message = StateVector(data=float32_field(state))
        message.header.stamp = ns_to_stamp(1_000_000_000)
        states.publish(message)
        probe.wait_for(lambda: chunks, 120, 'the chunk the LeRobot policy planned')
        chunk = chunks[-1]
        assert chunk.source_model.startswith('openpi:localhost:')
        assert (chunk.horizon, chunk.action_dim) == expected.shape == (10, 2)
        # The very chunk the adapter gives in LeRobot's environment, in the action's own units
        # (its statistics: mean 0.5, std 0.1), through the node and DDS.
        assert np.allclose(np.asarray(chunk.data).reshape(10, 2), expected, atol=1e-5)
    finally:
        if node is not None:
            probe.executor.remove_node(node)
            node.destroy_node()
        server.terminate()
        server.wait(timeout=30)


# Run there: a recorded run's transitions as a LeRobotDataset (what hilresrl export writes),
# then that dataset as a demonstrations file (hilresrl import-lerobot); the arrays beside it.
MAKE_DEMOS = """
import sys
import numpy as np
from hilresrl_recording.export import write_lerobot
from hilresrl_recording.lerobot_import import main
root = sys.argv[1]
rng = np.random.default_rng(3)
steps = 6
arrays = {'observation/joint_state': rng.normal(size=(steps, 5)).astype(np.float32),
          'executed_action': rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
          'base_action': np.zeros((steps, 4), np.float32),
          'human_action': np.full((steps, 4), np.nan, np.float32),
          'intervened': np.zeros(steps, bool),
          'reward': np.array([0, 0, 1, 0, 0, 1], np.float32),
          'terminated': np.array([0, 0, 1, 0, 0, 1], bool), 'truncated': np.zeros(steps, bool),
          'robot_id': np.array(['robot'] * steps), 'episode_id': np.array([0, 0, 0, 1, 1, 1]),
          'instruction': np.array(['stack'] * steps),
          'images/camera/front': rng.integers(0, 256, (steps, 16, 16, 3), dtype=np.uint8)}
write_lerobot(arrays, root + '/dataset', 10.0, 'hilresrl/demos')
np.savez(root + '/arrays.npz', **{name.replace('/', '.'): value for name, value in arrays.items()})
sys.exit(main([root + '/dataset', '--repo-id', 'hilresrl/demos', '--out', root + '/demos.npz',
               '--state-name', 'joint_state',
               '--image', 'observation.images.camera_front=image/camera/front']))
"""


def test_a_lerobot_dataset_preloads_the_learners_demonstrations_relabelled_by_the_base_policy(
        tmp_path):
    import torch
    from hilresrl_learner.offline_data import demonstration_steps
    from hilresrl_policy.image_encoder import ImageInputs

    python = _lerobot_python()
    made = subprocess.run([str(python), '-c', MAKE_DEMOS, str(tmp_path)], cwd=ROOT,
                          env=_lerobot_environment(), capture_output=True, text=True,
                          timeout=240)
    assert made.returncode == 0, made.stderr[-3000:]
    arrays = np.load(tmp_path / 'arrays.npz')
    # The frozen base policy: an exported module that reads the joint state.
    torch.manual_seed(0)
    base = torch.nn.Linear(5, 4).eval()
    torch.jit.save(torch.jit.trace(base, torch.zeros(1, 5)), str(tmp_path / 'base.pt'))
    records, episodes = demonstration_steps(
        str(tmp_path / 'demos.npz'), 0, ['joint_state'],
        {'kind': 'torch_module', 'checkpoint': str(tmp_path / 'base.pt'), 'action_dim': 4,
         'inputs': ['joint_state']}, ImageInputs(('image/camera/front',), 16, 16))
    assert episodes == 2 and len(records) == 6
    states = arrays['observation.joint_state']
    with torch.no_grad():
        relabelled = base(torch.from_numpy(states)).numpy()
    for step, record in enumerate(records):
        assert np.allclose(record.observation, states[step])
        assert np.allclose(record.base_action, relabelled[step], atol=1e-6)
        assert np.allclose(record.executed_action, arrays['executed_action'][step])
        assert np.array_equal(record.frames['image/camera/front'],
                              arrays['images.camera.front'][step].transpose(2, 0, 1))
    assert [record.terminated for record in records] == [False, False, True] * 2


# Run there: a LeRobot policy with random weights for a 3-value state (robot and environment
# state alike), 2 action axes, action statistics far from 0 and 1, and for ACT the chunk the
# adapter gives for each of the states in the second argument.
MAKE_POLICY = """
import json, sys
import numpy as np
from hilresrl_policy.adapters.lerobot_policy import make_lerobot_policy, save_random_policy
policy_type, folder, states, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
state = {'mean': np.full(3, 0.1), 'std': np.full(3, 2.0), 'min': -np.ones(3), 'max': np.ones(3)}
statistics = {'observation.state': state, 'observation.environment_state': state,
              'action': {'mean': np.full(2, 0.5), 'std': np.full(2, 0.1),
                         'min': np.full(2, 0.2), 'max': np.full(2, 0.4)}}
save_random_policy(folder, policy_type, 3, 2, statistics=statistics, environment_dim=3)
if policy_type == 'act':  # deterministic: no history, no sampled noise
    policy = make_lerobot_policy({'checkpoint': folder, 'environment_keys': ['task_state']})
    np.save(out, np.stack([policy.act({'task_state': np.array(s, np.float32)}) for s in states]))
"""


def _ensembled(chunks, step: int, decay: float) -> np.ndarray:
    """Return step's action from the chunks planned at steps 0..step (ACT's ensembling)."""
    rows = np.stack([chunk[step - planned] for planned, chunk in enumerate(chunks[:step + 1])])
    weights = np.exp(-decay * np.arange(len(rows)))  # the oldest chunk weighs most
    return (weights[:, None] * rows).sum(axis=0) / weights.sum()


@pytest.mark.timeout(400)
@pytest.mark.parametrize('policy_type, execution, execute_steps', [
    ('act', 'ensemble', 1), ('diffusion', 'receding', 3)])
def test_a_lerobot_policy_plans_in_the_base_policy_node_and_the_residual_executes_its_chunks(
        ros_context, probe, tmp_path, policy_type, execution, execute_steps):
    from hilresrl_common.conversions import float32_field, ns_to_stamp
    from hilresrl_common.qos import COMMAND_QOS
    from hilresrl_msgs.msg import ActionChunk, ProposedAction, StateVector
    from hilresrl_policy.residual_policy_node import ResidualPolicyNode
    from rclpy.parameter import Parameter

    python = _lerobot_python()
    program = VENV / 'bin' / 'hilresrl-base-policy-node'
    states = [[0.3, -0.2, 0.9], [0.1, 0.4, -0.5], [-0.7, 0.0, 0.2], [0.5, 0.5, 0.5],
              [0.0, -0.9, 0.3]]
    made = subprocess.run([str(python), '-c', MAKE_POLICY, policy_type, str(tmp_path / 'policy'),
                           json.dumps(states), str(tmp_path / 'expected.npy')], cwd=ROOT,
                          env=_lerobot_environment(), capture_output=True, text=True,
                          timeout=240)
    assert made.returncode == 0, made.stderr[-3000:]
    decay = 0.5
    parameters = tmp_path / 'base_policy.yaml'
    parameters.write_text(json.dumps({'/base_policy': {'ros__parameters': {
        'base_policy.kind': 'lerobot', 'base_policy.checkpoint': str(tmp_path / 'policy'),
        'base_policy.config_json': json.dumps({'environment_keys': ['task_state']}),
        'observation_sources': ['task_state'], 'trigger': 'observation',
        'execute_steps': execute_steps}}}))  # (JSON is YAML)
    # The base-policy node in LeRobot's environment, as base_policy:=lerobot starts it; this
    # process's environment with its domain, which the program sets aside what is not its own.
    node_process = subprocess.Popen(
        [str(program), '--ros-args', '-r', '__node:=base_policy', '--params-file',
         str(parameters)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(node_process.stdout), daemon=True).start()
    residual = ResidualPolicyNode(context=ros_context, parameter_overrides=[
        Parameter('action_dim', value=2), Parameter('hidden_sizes', value=[16, 16]),
        Parameter('exploration_std', value=0.0),
        Parameter('observation_sources', value=['task_state']),
        Parameter('policy_inputs', value=['task_state']),
        Parameter('execute_steps', value=execute_steps),
        Parameter('chunk_execution', value=execution),
        Parameter('ensemble_decay', value=decay)])
    probe.executor.add_node(residual)
    try:
        chunks, proposals = [], []
        probe.node.create_subscription(ActionChunk, 'base_action_chunk', chunks.append,
                                       COMMAND_QOS)
        probe.node.create_subscription(ProposedAction, 'proposed_action', proposals.append,
                                       COMMAND_QOS)
        publisher = probe.node.create_publisher(StateVector, 'task_state', 10)
        probe.wait_for(lambda: publisher.get_subscription_count() == 2
                       or node_process.poll() is not None, 180, 'the LeRobot base-policy node')
        assert node_process.poll() is None, ''.join(lines)[-3000:]
        for step, state in enumerate(states):
            message = StateVector(data=float32_field(state))
            message.header.stamp = ns_to_stamp(1_000_000_000 + step * 100_000_000)
            publisher.publish(message)
            probe.wait_for(lambda: len(proposals) > step, 120, f'the proposal of step {step}')
        planned = [np.asarray(chunk.data).reshape(chunk.horizon, chunk.action_dim)
                   for chunk in chunks]
        assert all(chunk.source_model.startswith(f'lerobot:{policy_type}:') for chunk in chunks)
        base = np.stack([np.asarray(proposal.base_action) for proposal in proposals])
        if policy_type == 'act':
            # A plan per step, each the adapter's chunk in LeRobot's environment (ACT's 10
            # rows, in the action's own units: mean 0.5, std 0.1), ensembled over time.
            assert np.allclose(np.stack(planned), np.load(tmp_path / 'expected.npy'),
                               atol=1e-5)
            expected = [_ensembled(planned, step, decay) for step in range(len(states))]
        else:
            # A plan every 3 steps, of Diffusion's 8 rows inside the action's own range
            # [0.2, 0.4] (min-max normalisation), executed row by row.
            assert [chunk.horizon for chunk in chunks] == [8, 8]
            assert 0.2 - 1e-6 <= np.stack(planned).min() <= np.stack(planned).max() <= 0.4 + 1e-6
            expected = [planned[step // 3][step % 3] for step in range(len(states))]
        assert np.allclose(base, np.stack(expected), atol=1e-6)
        # An untrained residual is zero: the robot would be sent the base action.
        assert np.allclose([p.composed_action for p in proposals], base, atol=1e-6)
    finally:
        probe.executor.remove_node(residual)
        residual.destroy_node()
        node_process.terminate()
        node_process.wait(timeout=30)


# Run there: an ACT policy for the simulated cell (pick-place-v3: a 39-value task state as robot
# and environment state, 4 action axes), random weights.
MAKE_CELL_POLICY = """
import sys
from hilresrl_policy.adapters.lerobot_policy import save_random_policy
save_random_policy(sys.argv[1], 'act', 39, 4, environment_dim=39)
"""
LAUNCHERS = ['processes', 'launch']


@pytest.mark.timeout(500)
@pytest.mark.parametrize('launcher', LAUNCHERS)
def test_base_policy_lerobot_runs_the_node_in_lerobots_environment_on_the_simulated_cell(
        probe, launch_process, tmp_path, launcher):
    from hilresrl import cli
    from hilresrl_common.qos import COMMAND_QOS
    from hilresrl_msgs.msg import ActionChunk, ExecutedAction
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Empty

    if launcher == 'launch' and not cli.launch_system_available():
        pytest.skip('the ROS 2 launch system (launch_ros) is not installed here')
    python = _lerobot_python()
    made = subprocess.run([str(python), '-c', MAKE_CELL_POLICY, str(tmp_path / 'act')],
                          cwd=ROOT, env=_lerobot_environment(), capture_output=True, text=True,
                          timeout=240)
    assert made.returncode == 0, made.stderr[-3000:]
    chunks, executed = [], []
    probe.node.create_subscription(ActionChunk, '/lr/base_action_chunk', chunks.append,
                                   COMMAND_QOS)
    probe.node.create_subscription(ExecutedAction, '/lr/executed_action', executed.append,
                                   QoSProfile(history=HistoryPolicy.KEEP_ALL,
                                              reliability=ReliabilityPolicy.RELIABLE))
    # Short episodes, and the first only once this probe listens (it says so on probe_ready).
    params_file = tmp_path / 'short.yaml'
    params_file.write_text('/**/episode_manager:\n  ros__parameters:\n    max_episode_steps: 8\n'
                           '    wait_for_topics: [base_action_chunk, proposed_action, '
                           'executed_action, probe_ready]\n')
    summary_file = tmp_path / 'summary.json'
    launched = launch_process(['hilresrl', 'launch', '--launcher', launcher, 'eval',
                               'namespace:=lr', 'base_policy:=lerobot',
                               f'base_checkpoint:={tmp_path / "act"}',
                               'base_policy_config:={"environment_keys": ["task_state"]}',
                               'episodes:=2', f'params_file:={params_file}',
                               f'summary_file:={summary_file}'])
    probe.wait_for(lambda: probe.node.count_publishers('/lr/executed_action') == 1
                   and probe.node.count_publishers('/lr/base_action_chunk') == 1, 180,
                   'the arbiter and the base-policy node')
    probe.node.create_publisher(Empty, '/lr/probe_ready', COMMAND_QOS)
    probe.wait_for(lambda: launched.process.poll() is not None, 300, 'the two episodes')
    assert launched.wait() == 0, launched.output
    # LeRobot is not in this environment: the node ran as the LeRobot environment's program,
    # under the node's own name and namespace (the chunks' topic).
    assert importlib.util.find_spec('lerobot') is None
    assert 'hilresrl-base-policy-node' in launched.output
    probe.wait_for(lambda: len(executed) >= 16, 10, 'the executed actions')
    assert chunks and all(chunk.source_model.startswith('lerobot:act:') and
                          (chunk.horizon, chunk.action_dim) == (10, 4) for chunk in chunks)
    rows = np.concatenate([np.asarray(chunk.data).reshape(10, 4) for chunk in chunks])
    steps = [record for record in executed if not record.held]
    assert len(steps) >= 16
    for record in steps:  # an untrained residual: the robot does what the LeRobot policy says
        assert np.abs(rows - np.asarray(record.base_action)).max(axis=1).min() < 1e-6
        assert np.array_equal(np.asarray(record.executed_action),
                              np.clip(np.asarray(record.base_action), -1.0, 1.0))
    assert json.loads(summary_file.read_text())['episodes'] == 2


@pytest.mark.timeout(900)
def test_the_readmes_lerobot_round_trip_runs_as_written(probe, tmp_path, monkeypatch):
    from hilresrl_common.qos import COMMAND_QOS
    from hilresrl_msgs.msg import ActionChunk

    _lerobot_python()
    # The README's block, parsed as benchmarks/lerobot_round_trip.py (which times it) parses it.
    spec = importlib.util.spec_from_file_location(
        'lerobot_round_trip', ROOT / 'benchmarks' / 'lerobot_round_trip.py')
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    commands = benchmark.round_trip_commands()
    assert len(commands) == 5 and 'base_policy:=lerobot' in commands[-1], commands
    # From the repository's root, as the README says: here a folder of the test's own that
    # links the checkout's LeRobot environment and config, so that the outputs land in it.
    (tmp_path / '.venv-lerobot').symlink_to(VENV)
    (tmp_path / 'config').symlink_to(ROOT / 'config')
    monkeypatch.setenv('HILRESRL_HOME', str(tmp_path / 'home'))  # its base policy, built here
    for command in commands[:-1]:
        done = subprocess.run(['bash', '-c', command], cwd=tmp_path, capture_output=True,
                              text=True, timeout=400)
        assert done.returncode == 0, f'{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}'
    chunks = []
    probe.node.create_subscription(ActionChunk, 'base_action_chunk', chunks.append,
                                   COMMAND_QOS)
    served = subprocess.Popen(['bash', '-c', commands[-1]], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(served.stdout), daemon=True).start()
    try:
        probe.wait_for(lambda: served.poll() is not None, 400, 'the episode with ACT')
    finally:
        served.kill()
    output = ''.join(lines)
    assert served.wait() == 0, output[-6000:]
    assert 'episode 1/1 eval' in output, output[-6000:]
    # The cell's base policy was the ACT policy the round trip trained, from its folder.
    assert chunks and {chunk.source_model for chunk in chunks} == {
        'lerobot:act:pretrained_model'}
    assert all((chunk.horizon, chunk.action_dim) == (100, 4) for chunk in chunks)
