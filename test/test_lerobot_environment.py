"""
The LeRobot tests, run in the LeRobot environment, and a LeRobot policy planning for the cell.

LeRobot 0.6.1 wants Python 3.12 and torch < 2.12, so it lives in a virtual environment of its
own (scripts/setup-lerobot.sh; `make test` makes it first). The tests marked ``lerobot`` skip in
the suite's environment, which has no LeRobot; the first test here runs them in that environment
and fails with their output if any fails there, or if none ran. The second serves a LeRobot ACT
policy from that environment (hilresrl serve-policy, the lerobot adapter) to a base-policy node
of this one over the openpi protocol, and checks the chunk the node publishes over DDS.
"""

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
                 'src/hilresrl_recording/test/test_lerobot_dataset.py']


# The lerobot adapter by its import path: the LeRobot environment has the suite's sources on its
# path, not installed, so no entry point names it there.
LEROBOT_ADAPTER = 'hilresrl_policy.adapters.lerobot_policy:make_lerobot_policy'
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
    result = subprocess.run(
        [str(python), '-m', 'pytest', '-q', '-m', 'lerobot', '-p', 'no:cacheprovider',
         *LEROBOT_TESTS], cwd=ROOT, env=_lerobot_environment(), capture_output=True,
        text=True, timeout=570)
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
        [str(python), '-m', 'hilresrl_policy.policy_server', '--kind', LEROBOT_ADAPTER,
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
