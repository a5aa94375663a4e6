"""The example cell profiles of real robots: their graphs, and an arbiter that takes them."""

import pathlib

from hilresrl.graph import build_graph, load_profile
from hilresrl_teleop.intervention_arbiter_node import InterventionArbiterNode
import pytest
from rclpy.parameter import Parameter

CELLS = pathlib.Path(__file__).resolve().parents[3] / 'config' / 'cells'
REAL_CELLS = {'franka_cartesian': ('cartesian_pose', 'openpi'),
              'ur_servo': ('servo_twist', 'torch_module'),
              'joint_trajectory_arm': ('joint_trajectory', 'lerobot')}


def _parameters(profile: dict, node: str):
    values = dict((profile.get('/**') or {}).get('ros__parameters', {}))
    values.update((profile.get(f'/**/{node}') or {}).get('ros__parameters', {}))
    return values


@pytest.mark.parametrize('cell', sorted(REAL_CELLS))
def test_a_real_cell_runs_the_policy_nodes_and_no_simulation(cell):
    nodes = build_graph('train', {'cell': str(CELLS / f'{cell}.yaml'),
                                  'run_dir': '/tmp/unused'})
    executables = [node.executable for node in nodes]
    assert executables == ['base_policy_node', 'residual_policy_node', 'intervention_arbiter',
                           'episode_manager', 'learner_node']
    interface, adapter = REAL_CELLS[cell]
    profile = load_profile(str(CELLS / f'{cell}.yaml'))
    assert _parameters(profile, 'intervention_arbiter')['command_interface'] == interface
    assert nodes[0].parameters['base_policy.kind'] == adapter


@pytest.mark.parametrize('cell', sorted(REAL_CELLS))
def test_the_arbiter_takes_the_cell_profile(cell, ros_context):
    values = _parameters(load_profile(str(CELLS / f'{cell}.yaml')), 'intervention_arbiter')
    values['servo.start_service'] = values['servo.node'] = ''  # no MoveIt Servo in this test
    node = InterventionArbiterNode(context=ros_context, parameter_overrides=[
        Parameter(name, value=value) for name, value in values.items()])
    try:
        assert node.output.settings.interface == REAL_CELLS[cell][0]
        assert len(node.action_names) == values['action_dim']
    finally:
        node.destroy_node()
