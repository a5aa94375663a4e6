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


@pytest.mark.parametrize('cell', ['sim_pixels', 'sim_panda_pixels'])
def test_a_pixel_cell_shows_the_residual_and_learner_no_task_state(cell, ros_context, tmp_path):
    from hilresrl_learner.camera_frames import camera_topic
    from hilresrl_learner.learner_node import LearnerNode
    from hilresrl_policy.residual_policy_node import ResidualPolicyNode
    from hilresrl_sim.tasks import make_task

    profile = load_profile(str(CELLS / f'{cell}.yaml'))
    residual, learner, manager, sim, base = (
        _parameters(profile, node) for node in ('residual_policy', 'learner', 'episode_manager',
                                                'sim_cell', 'base_policy'))
    assert 'task_state' not in residual['observation_sources']
    assert 'task_state' not in residual['policy_inputs'] + learner['policy_inputs']
    assert residual['policy_inputs'] == learner['policy_inputs'] and 'wrench' in \
        residual['policy_inputs'] and sim['publish_wrench']
    assert residual['camera_inputs'] == learner['camera_inputs'] and len(
        residual['camera_inputs']) == 2 and residual['image_size'] == learner['image_size']
    # each camera is rendered by the simulated cell, seen by the residual and named in the
    # transitions; the base policy (a VLA's stand-in) keeps the task state
    for camera in residual['camera_inputs']:
        topic = camera_topic(camera)
        assert topic in residual['observation_sources'] and topic in manager[
            'observation_sources'] and topic.split('/')[1] in sim['cameras']
    assert base['policy_inputs'] == ['task_state']
    make_task(sim['task'], 0, sim['cameras'], 32).close()  # the task has these cameras
    assert [node.executable for node in build_graph('train', {
        'cell': str(CELLS / f'{cell}.yaml'), 'run_dir': str(tmp_path / 'run')})][:2] == [
        'sim_cell', 'base_policy_node']
    # both nodes take the profile's values (the others' in "/**" are not theirs: unused)
    for make, values in ((ResidualPolicyNode, residual),
                         (LearnerNode, dict(learner, run_dir=str(tmp_path / 'run'),
                                            tensorboard=False))):
        node = make(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in values.items()])
        assert list(node.get_parameter('camera_inputs').value) == residual['camera_inputs']
        node.destroy_node()
