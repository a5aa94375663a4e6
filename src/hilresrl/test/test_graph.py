"""The declared node graph: arguments, validation, profiles and the commands it makes."""

import json
import os

from hilresrl.graph import (arguments, base_policies_to_build, build_graph, cell_profile,
                            demonstrations_to_record, GraphError, normalize_namespace,
                            parse_assignments,
                            resolve_arguments, write_inline_parameters)
from hilresrl.process_launcher import node_command
import pytest
import yaml

SIM_PROFILE = """
/**:
  ros__parameters:
    control_rate_hz: 10.0
/**/sim_cell:
  ros__parameters:
    task: pick-place-v3
/**/base_policy:
  ros__parameters:
    base_policy.kind: bc
"""


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('HILRESRL_HOME', str(tmp_path / 'home'))
    (tmp_path / 'cells').mkdir()
    (tmp_path / 'cells' / 'sim.yaml').write_text(SIM_PROFILE)
    (tmp_path / 'cells' / 'franka.yaml').write_text('/**:\n  ros__parameters: {}\n')
    return str(tmp_path)


def _executables(nodes):
    return [node.executable for node in nodes]


def test_defaults_fill_every_argument():
    values = resolve_arguments('train', {})
    assert values == {argument.name: argument.default for argument in arguments('train')}
    assert values['cell'] == 'sim' and values['operator'] == 'auto'
    assert resolve_arguments('eval', {})['episodes'] == '50'


def test_unknown_argument_lists_the_valid_ones():
    with pytest.raises(GraphError) as error:
        resolve_arguments('train', {'cel': 'sim'})
    message = str(error.value)
    assert 'unknown argument cel' in message
    for argument in arguments('train'):
        assert argument.name in message


def test_choices_are_enforced():
    with pytest.raises(GraphError, match='log_level:=loud is not one of debug, info'):
        resolve_arguments('eval', {'log_level': 'loud'})


def test_unknown_job_is_refused():
    with pytest.raises(GraphError, match='unknown job'):
        arguments('deploy')


def test_parse_assignments():
    assert parse_assignments(['cell:=sim', 'namespace:=', 'x:=a:=b']) == {
        'cell': 'sim', 'namespace': '', 'x': 'a:=b'}
    with pytest.raises(GraphError, match='name:=value'):
        parse_assignments(['cell=sim'])


@pytest.mark.parametrize('given,expected', [
    ('', '/'), ('/', '/'), ('robot1', '/robot1'), ('/lab/robot1/', '/lab/robot1')])
def test_namespaces_are_normalized(given, expected):
    assert normalize_namespace(given) == expected


@pytest.mark.parametrize('bad', ['1robot', 'robot-1', 'a//b c'])
def test_invalid_namespaces_are_refused(bad):
    with pytest.raises(GraphError, match='not a valid ROS namespace'):
        normalize_namespace(bad)


def test_cell_profiles_by_name_or_path(config_dir, tmp_path):
    assert cell_profile('franka', config_dir).endswith('cells/franka.yaml')
    with pytest.raises(GraphError, match='known: franka, sim'):
        cell_profile('ur5', config_dir)
    own = tmp_path / 'my_cell.yaml'
    own.write_text('{}')
    assert cell_profile(str(own), config_dir) == str(own)
    with pytest.raises(GraphError, match='no such parameter file'):
        cell_profile(str(tmp_path / 'missing.yaml'), config_dir)


def test_train_graph_in_the_simulated_cell(config_dir, tmp_path):
    nodes = build_graph('train', {'namespace': 'robot2', 'robot_id': 'r2'}, config_dir)
    assert _executables(nodes) == ['sim_cell', 'base_policy_node', 'residual_policy_node',
                                   'intervention_arbiter', 'episode_manager',
                                   'simulated_operator', 'learner_node']
    assert {n.namespace for n in nodes} == {'/robot2'}
    assert all(n.parameter_files[0].endswith('cells/sim.yaml') for n in nodes)
    manager = nodes[4]
    assert manager.full_name == '/robot2/episode_manager'
    assert manager.parameters['robot_id'] == 'r2' and manager.parameters['episodes'] == 0
    base = nodes[1].parameters
    assert base['base_policy.kind'] == 'bc' and base['base_policy.task'] == 'pick-place-v3'
    assert base['base_policy.checkpoint'] == str(tmp_path / 'home' / 'base_policies' /
                                                 'pick-place-v3')
    learner = nodes[6].parameters
    assert learner['resume'] is False and learner['seed'] == 0
    # a new dated run folder, resolved once for the learner (and the recorder)
    assert learner['run_dir'].startswith(str(tmp_path / 'home' / 'runs') + '/')
    assert manager.parameters['wait_for_learner'] is True
    assert 'wait_for_recorder' not in manager.parameters


def test_train_run_folder_resume_and_learner_device(config_dir, tmp_path):
    nodes = build_graph('train', {'run_dir': str(tmp_path / 'run7'), 'resume': 'true',
                                  'learner_device': 'cuda', 'demonstrations': ''}, config_dir)
    learner = {n.executable: n.parameters for n in nodes}['learner_node']
    assert learner == {'resume': True, 'seed': 0, 'run_dir': str(tmp_path / 'run7'),
                       'device': 'cuda'}
    with pytest.raises(GraphError, match='resume:=maybe is not one of'):
        build_graph('train', {'resume': 'maybe'}, config_dir)
    with pytest.raises(GraphError, match='resume:=true: no run in'):
        build_graph('train', {'resume': 'true'}, config_dir)
    for name in ('20261101-080000', '20261102-080000', '20261103-080000-eval'):
        (tmp_path / 'home' / 'runs' / name).mkdir(parents=True)
    newest = {n.executable: n.parameters for n in build_graph(
        'train', {'resume': 'true'}, config_dir)}['learner_node']['run_dir']
    assert newest == str(tmp_path / 'home' / 'runs' / '20261102-080000')  # evals do not count


def test_base_policy_lerobot_runs_the_node_of_lerobots_environment_where_lerobot_is_not_here(
        config_dir, tmp_path, monkeypatch):
    import importlib.util
    if importlib.util.find_spec('lerobot') is not None:
        pytest.skip('LeRobot is in this environment: the node runs here')
    venv = tmp_path / 'lerobot-env'
    monkeypatch.setenv('HILRESRL_LEROBOT_VENV', str(venv))

    def base_policy(**values):
        graph = build_graph('eval', dict(values, base_policy='lerobot'), config_dir)
        return next(node for node in graph if node.executable == 'base_policy_node')

    with pytest.raises(GraphError, match=r'base_policy:=lerobot needs LeRobot.*no '
                       rf'{venv}/bin/hilresrl-base-policy-node; scripts/setup-lerobot.sh '
                       'makes it'):
        base_policy()
    program = venv / 'bin' / 'hilresrl-base-policy-node'
    program.parent.mkdir(parents=True)
    program.write_text('#!/bin/sh\n')
    program.chmod(0o755)
    node = base_policy()
    assert node.program == str(program) and node.name == 'base_policy'
    assert node.parameters['base_policy.kind'] == 'lerobot'
    # The program starts as the package's executable would, with the node's own arguments.
    command = node_command(node, node.program, None)
    assert command[:4] == [str(program), '--ros-args', '-r', '__node:=base_policy']
    assert base_policy(base_policy_environment='this').program == ''
    elsewhere = tmp_path / 'elsewhere'
    with pytest.raises(GraphError, match=f'base_policy_environment:={elsewhere} is not an '
                       'environment for the node'):
        base_policy(base_policy_environment=str(elsewhere))
    # Other adapters run here, whatever the LeRobot environment.
    graph = build_graph('eval', {'base_policy': 'scripted'}, config_dir)
    assert all(node.program == '' for node in graph)


def test_record_adds_a_recorder_that_episodes_wait_for(config_dir, tmp_path):
    nodes = build_graph('train', {'record': 'true', 'run_dir': str(tmp_path / 'r'),
                                  'namespace': 'robot1', 'record_topics': 'transitions, '
                                  'camera/.*/image_raw', 'bag_storage': 'sqlite3'}, config_dir)
    by_name = {n.executable: n for n in nodes}
    recorder = by_name['recorder']
    assert recorder.namespace == '/robot1' and recorder.stop_last
    assert recorder.parameters['bag_path'] == str(tmp_path / 'r' / 'bag')
    assert recorder.parameters['storage'] == 'sqlite3'
    assert recorder.parameters['topics'] == ['transitions', 'camera/.*/image_raw']
    assert recorder.parameters['append'] is False
    info = json.loads(recorder.parameters['run_info'])
    assert info['base_policy'] == 'bc' and info['task'] == 'pick-place-v3'
    assert info['launch_arguments']['record'] == 'true'
    assert by_name['episode_manager'].parameters['wait_for_recorder'] is True
    assert by_name['learner_node'].parameters['run_dir'] == str(tmp_path / 'r')
    evaluation = {n.executable: n for n in build_graph('eval', {'record': 'true'}, config_dir)}
    assert evaluation['recorder'].parameters['bag_path'].endswith('-eval/bag')
    assert 'recorder' not in _executables(build_graph('eval', {}, config_dir))
    resumed = build_graph('train', {'record': 'true', 'resume': 'true',
                                    'run_dir': str(tmp_path / 'r')}, config_dir)
    assert {n.executable: n for n in resumed}['recorder'].parameters['append'] is True


def test_ros2_bag_record_is_refused_without_a_distribution(config_dir, monkeypatch):
    monkeypatch.setattr('shutil.which', lambda name: None)
    with pytest.raises(GraphError, match='record_with:=ros2bag needs the ros2 command'):
        build_graph('eval', {'record': 'true', 'record_with': 'ros2bag'}, config_dir)
    monkeypatch.setattr('shutil.which', lambda name: '/opt/ros/jazzy/bin/ros2')
    nodes = build_graph('eval', {'record': 'true', 'record_with': 'ros2bag',
                                 'namespace': 'robot3'}, config_dir)
    command = nodes[-1].command
    assert command[:3] == ('ros2', 'bag', 'record') and '-e' in command
    pattern = command[command.index('-e') + 1]
    assert '/robot3/transitions' in pattern and '/robot3/camera/.*/image_raw' in pattern


@pytest.mark.parametrize('distribution, storage', [('humble', 'sqlite3'), ('jazzy', 'mcap'),
                                                   ('kilted', 'mcap'), (None, 'mcap')])
def test_the_bag_storage_is_the_one_the_distributions_ros2_bag_reads(
        config_dir, monkeypatch, distribution, storage):
    if distribution is None:  # the PyPI wheels: no distribution sourced
        monkeypatch.delenv('ROS_DISTRO', raising=False)
    else:
        monkeypatch.setenv('ROS_DISTRO', distribution)
    recorder = build_graph('eval', {'record': 'true'}, config_dir)[-1]
    assert recorder.parameters['storage'] == storage
    chosen = build_graph('eval', {'record': 'true', 'bag_storage': 'mcap'}, config_dir)[-1]
    assert chosen.parameters['storage'] == 'mcap'  # the argument wins
    monkeypatch.setattr('shutil.which', lambda name: f'/opt/ros/{distribution}/bin/ros2')
    command = build_graph('eval', {'record': 'true', 'record_with': 'ros2bag'},
                          config_dir)[-1].command
    assert command[command.index('-s') + 1] == storage


def test_remappings_reach_every_node_and_the_recorder_records_the_real_names(config_dir):
    nodes = build_graph('eval', {'remap': 'ee_pose:=/franka/current_pose, '
                                          'joint_states:=/franka/joint_states',
                                 'record': 'true'}, config_dir)
    assert all(node.remappings == (('ee_pose', '/franka/current_pose'),
                                   ('joint_states', '/franka/joint_states')) for node in nodes)
    topics = {n.executable: n.parameters for n in nodes}['recorder']['topics']
    assert '/franka/current_pose' in topics and 'ee_pose' not in topics
    assert 'transitions' in topics
    command = node_command(nodes[0], '/bin/true', None)
    assert command[-4:] == ['-r', 'ee_pose:=/franka/current_pose', '-r',
                            'joint_states:=/franka/joint_states']
    with pytest.raises(GraphError, match="remap item 'ee_pose' is not of the form from:=to"):
        build_graph('eval', {'remap': 'ee_pose'}, config_dir)


def test_a_spacemouse_through_spacenavd_is_an_optional_node(config_dir):
    nodes = build_graph('eval', {'cell': 'franka', 'spacemouse': 'spacenavd'}, config_dir)
    spacenav = next(n for n in nodes if n.executable == 'spacemouse')
    assert spacenav.name == 'spacenav' and not spacenav.required
    assert 'spacemouse' not in _executables(build_graph('eval', {}, config_dir))
    with_tf = build_graph('eval', {'cell': 'franka', 'ee_pose': 'tf'}, config_dir)
    assert 'ee_pose' in _executables(with_tf)


def test_base_policy_config_reaches_the_base_policy_node_as_json(config_dir):
    nodes = build_graph('eval', {'base_policy': 'openpi',
                                 'base_policy_config': '{"port": 8001, "action_dim": 4}'},
                        config_dir)
    base = {n.executable: n.parameters for n in nodes}['base_policy_node']
    assert base['base_policy.kind'] == 'openpi'
    assert json.loads(base['base_policy.config_json']) == {'port': 8001, 'action_dim': 4}
    assert 'base_policy.checkpoint' not in base  # a server needs no local checkpoint
    with pytest.raises(GraphError, match='base_policy_config is not a JSON object'):
        build_graph('eval', {'base_policy_config': '{port: 8001'}, config_dir)


def test_offline_bags_reach_the_learner_as_absolute_paths(config_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nodes = build_graph('train', {'offline_bags': '[runs/a, /data/b/bag]',
                                  'demonstrations': ''}, config_dir)
    learner = {n.executable: n.parameters for n in nodes}['learner_node']
    assert learner['offline_bags'] == [str(tmp_path / 'runs' / 'a'), '/data/b/bag']
    assert 'demonstrations' not in learner
    nodes = build_graph('train', {'demonstrations': 'demos.npz'}, config_dir)
    learner = {n.executable: n.parameters for n in nodes}['learner_node']
    assert learner['demonstrations'] == [str(tmp_path / 'demos.npz')]
    # the base policy that relabels them is the base policy node's
    assert learner['base_policy.kind'] == 'bc' and learner['base_policy.task'] == 'pick-place-v3'
    assert learner['base_policy.checkpoint'].endswith('base_policies/pick-place-v3')


def test_a_built_base_policys_own_demonstrations_reach_the_learner_by_default(
        config_dir, tmp_path):
    folder = tmp_path / 'home' / 'base_policies' / 'pick-place-v3'
    demonstrations = str(folder / 'demonstrations.npz')

    def learner(**values):
        nodes = build_graph('train', values, config_dir)
        return {n.executable: n.parameters for n in nodes}['learner_node']

    # Not built yet: the launcher builds it, with its demonstrations, before the graph starts.
    assert learner()['demonstrations'] == [demonstrations]
    assert learner()['base_policy.checkpoint'] == str(folder)
    folder.mkdir(parents=True)
    (folder / 'config.json').write_text('{}')
    # Built before base policies kept their demonstrations: none to preload.
    assert 'demonstrations' not in learner()
    (folder / 'demonstrations.npz').write_bytes(b'')
    assert learner()['demonstrations'] == [demonstrations]
    assert 'demonstrations' not in learner(demonstrations='')
    # Several tasks, one relabelling base policy: none.
    assert 'demonstrations' not in learner(tasks='pick-place-v3,push-v3', robots='2')


PIXEL_LEARNER = """
/**/learner:
  ros__parameters:
    camera_inputs: ['image/camera/corner/image_raw', 'image/camera/gripperPOV/image_raw']
    image_size: [64, 64]
"""


def test_a_pixel_learner_preloads_the_base_policys_demonstrations_with_its_cameras(
        config_dir, tmp_path):
    (tmp_path / 'cells' / 'sim_pixels.yaml').write_text(SIM_PROFILE + PIXEL_LEARNER)
    folder = tmp_path / 'home' / 'base_policies' / 'pick-place-v3'
    pixels = str(folder / 'demonstrations-corner-gripperPOV-64px.npz')

    def graph(**values):
        nodes = build_graph('train', dict(values, cell='sim_pixels'), config_dir)
        return nodes, {n.executable: n.parameters for n in nodes}['learner_node']

    # Recorded from the base policy's own (built first) before the graph starts.
    nodes, learner = graph()
    assert learner['demonstrations'] == [pixels]
    assert demonstrations_to_record(nodes) == [
        (str(folder / 'demonstrations.npz'), pixels, ('corner', 'gripperPOV'), 64)]
    folder.mkdir(parents=True)
    (folder / 'config.json').write_text('{}')
    assert graph()[1]['demonstrations'] == [pixels]  # built already: still recorded once
    (folder / 'demonstrations-corner-gripperPOV-64px.npz').write_bytes(b'')
    nodes, learner = graph()
    assert learner['demonstrations'] == [pixels] and demonstrations_to_record(nodes) == []
    assert demonstrations_to_record(graph(demonstrations='mine.npz')[0]) == []
    # The state cell's learner: the base policy's demonstrations as they are.
    state_nodes = build_graph('train', {}, config_dir)
    assert demonstrations_to_record(state_nodes) == []
    # Cameras a simulated cell does not publish: none to preload.
    (tmp_path / 'cells' / 'sim_pixels.yaml').write_text(SIM_PROFILE + PIXEL_LEARNER.replace(
        'image/camera/corner/image_raw', 'image/front'))
    assert 'demonstrations' not in graph()[1]


def test_eval_graph_has_no_learner_and_no_exploration(config_dir):
    nodes = build_graph('eval', {'episodes': '20'}, config_dir)
    assert 'learner_node' not in _executables(nodes)
    assert 'simulated_operator' not in _executables(nodes)
    by_name = {n.executable: n.parameters for n in nodes}
    assert by_name['residual_policy_node']['exploration_std'] == 0.0
    assert by_name['episode_manager']['initial_mode'] == 'eval'
    assert by_name['episode_manager']['episodes'] == 20
    assisted = {n.executable: n.parameters
                for n in build_graph('eval', {'operator': 'true'}, config_dir)}
    assert 'simulated_operator' in assisted
    assert assisted['episode_manager']['initial_mode'] == 'train'


def test_arguments_override_the_profile(config_dir):
    nodes = {n.executable: n.parameters for n in build_graph(
        'train', {'task': 'PandaPickCube', 'base_policy': 'scripted', 'clock': 'realtime',
                  'seed': '7'}, config_dir)}
    assert nodes['sim_cell'] == {'seed': 7, 'task': 'PandaPickCube', 'clock_mode': 'realtime'}
    assert nodes['simulated_operator']['task'] == 'PandaPickCube'
    base = nodes['base_policy_node']
    assert base['base_policy.kind'] == 'scripted' and 'base_policy.checkpoint' not in base
    assert (base['trigger'], base['observation_sync']) == ('timer', 'latest')
    assert nodes['residual_policy_node']['trigger'] == 'timer'


def test_a_real_cell_runs_no_simulator_and_no_simulated_person(config_dir):
    nodes = build_graph('train', {'cell': 'franka'}, config_dir)
    assert 'sim_cell' not in _executables(nodes)
    assert 'simulated_operator' not in _executables(nodes)
    with pytest.raises(GraphError, match='operator:=true needs a simulated cell'):
        build_graph('train', {'cell': 'franka', 'operator': 'true'}, config_dir)


def test_params_file_is_applied_after_the_profile(config_dir, tmp_path):
    extra = tmp_path / 'extra.yaml'
    extra.write_text('{}')
    nodes = build_graph('train', {'params_file': str(extra)}, config_dir)
    assert nodes[0].parameter_files[-1] == str(extra)
    with pytest.raises(GraphError, match='no such file'):
        build_graph('train', {'params_file': str(tmp_path / 'nope.yaml')}, config_dir)


def test_bad_seed_is_refused(config_dir):
    with pytest.raises(GraphError, match='seed:=x is not an integer'):
        build_graph('train', {'seed': 'x'}, config_dir)


def test_inline_parameters_use_the_fully_qualified_node_name(config_dir, tmp_path):
    spec = build_graph('train', {'namespace': 'robot1'}, config_dir)[0]
    path = write_inline_parameters(spec, str(tmp_path))
    # rcl applies the node's own section after the profile's "/**" and "/**/name" sections
    assert yaml.safe_load(open(path)) == {'/robot1/sim_cell': {'ros__parameters': {
        'seed': 0, 'task': 'pick-place-v3'}}}


def test_missing_base_policy_is_reported_for_building(config_dir, tmp_path):
    nodes = build_graph('eval', {}, config_dir)
    assert base_policies_to_build(nodes) == [(
        'pick-place-v3', str(tmp_path / 'home' / 'base_policies' / 'pick-place-v3'), 'bc')]
    assert base_policies_to_build(build_graph('eval', {'base_policy': 'scripted'},
                                              config_dir)) == []
    built = tmp_path / 'home' / 'base_policies' / 'pick-place-v3'
    built.mkdir(parents=True)
    (built / 'config.json').write_text('{}')
    assert base_policies_to_build(nodes) == []
    two_tasks = build_graph('train', {'tasks': 'pick-place-v3,push-v3'}, config_dir)
    assert base_policies_to_build(two_tasks) == [(
        'push-v3', str(tmp_path / 'home' / 'base_policies' / 'push-v3'), 'bc')]


def test_several_robots_share_one_learner(config_dir, tmp_path):
    nodes = build_graph('train', {'robots': '2', 'run_dir': str(tmp_path / 'r')}, config_dir)
    by_namespace = {}
    for node in nodes:
        by_namespace.setdefault(node.namespace, []).append(node.executable)
    assert by_namespace['/robot1'] == by_namespace['/robot2'] == [
        'sim_cell', 'base_policy_node', 'residual_policy_node', 'intervention_arbiter',
        'episode_manager', 'simulated_operator']
    assert by_namespace['/'] == ['learner_node']
    learner = nodes[-1]
    assert learner.parameters['cells'] == ['robot1', 'robot2']
    managers = [n for n in nodes if n.executable == 'episode_manager']
    assert [m.parameters['robot_id'] for m in managers] == ['robot1', 'robot2']
    assert [m.parameters['seed'] for m in managers] == [0, 1000]  # different episodes
    residual = next(n for n in nodes if n.full_name == '/robot2/residual_policy')
    assert ('policy_weights', '/policy_weights') in residual.remappings
    assert ('learner_status', '/learner_status') in residual.remappings
    tasks = build_graph('train', {'tasks': 'pick-place-v3, push-v3', 'namespace': 'lab'},
                        config_dir)
    sims = {n.namespace: n.parameters for n in tasks if n.executable == 'sim_cell'}
    assert sims['/lab/robot1']['task'] == 'pick-place-v3'
    assert sims['/lab/robot2']['task'] == 'push-v3'
    bases = {n.namespace: n.parameters for n in tasks if n.executable == 'base_policy_node'}
    assert bases['/lab/robot2']['base_policy.checkpoint'].endswith('base_policies/push-v3')
    # One actor for both tasks: it reads the instruction, wherever it runs.
    for node in tasks:
        if node.executable in ('base_policy_node', 'residual_policy_node', 'learner_node'):
            assert node.parameters['policy_inputs'] == ['task_state', 'instruction']
    assert all('policy_inputs' not in n.parameters for n in nodes)  # one task: as profiled
    recorded = build_graph('train', {'robots': '2', 'record': 'true',
                                     'run_dir': str(tmp_path / 'r')}, config_dir)
    recorder = next(n for n in recorded if n.executable == 'recorder')
    assert 'robot2/transitions' in recorder.parameters['topics']
    assert 'robot1/executed_action' in recorder.parameters['required_topics']
    assert recorder.namespace == '/'
    with pytest.raises(GraphError, match='robots:=zero is not a positive integer'):
        build_graph('train', {'robots': 'zero'}, config_dir)


def test_dual_actor_mode_steers_a_flow_base_policy_in_every_cell(config_dir, tmp_path):
    nodes = build_graph('train', {'robots': '2', 'actor_mode': 'dual',
                                  'run_dir': str(tmp_path / 'r')}, config_dir)
    flow = str(tmp_path / 'home' / 'base_policies' / 'pick-place-v3-flow')
    for node in nodes:
        if node.executable in ('base_policy_node', 'residual_policy_node', 'learner_node'):
            assert node.parameters['actor_mode'] == 'dual', node.full_name
        if node.executable == 'base_policy_node':
            assert node.parameters['base_policy.kind'] == 'flow_bc'
            assert node.parameters['base_policy.checkpoint'] == flow
            assert ('latent_weights', '/latent_weights') in node.remappings
    assert base_policies_to_build(nodes) == [('pick-place-v3', flow, 'flow')]
    # A base policy the user names stays theirs (and its node refuses if it has no latent).
    named = build_graph('train', {'actor_mode': 'latent', 'base_policy': 'bc'}, config_dir)
    base = next(n for n in named if n.executable == 'base_policy_node')
    assert base.parameters['base_policy.kind'] == 'bc'
    assert base.parameters['actor_mode'] == 'latent'
    residual_only = build_graph('train', {}, config_dir)
    assert all('actor_mode' not in n.parameters for n in residual_only)
    with pytest.raises(GraphError, match='actor_mode'):
        build_graph('train', {'actor_mode': 'both'}, config_dir)


def test_the_learner_can_run_on_another_machine(config_dir, tmp_path):
    cells = build_graph('train', {'robots': '2', 'learner': 'false'}, config_dir)
    assert 'learner_node' not in [n.executable for n in cells]
    managers = [n for n in cells if n.executable == 'episode_manager']
    assert len(managers) == 2 and all(m.parameters['wait_for_learner'] for m in managers)
    learner = build_graph('train', {'robots': '2', 'learner_only': 'true',
                                    'run_dir': str(tmp_path / 'r')}, config_dir)
    assert [n.executable for n in learner] == ['learner_node']
    assert learner[0].parameters['cells'] == ['robot1', 'robot2']
    with pytest.raises(GraphError, match='leaves nothing to run'):
        build_graph('train', {'learner_only': 'true', 'learner': 'false'}, config_dir)


def test_node_command_carries_names_parameters_and_remaps(config_dir, monkeypatch):
    monkeypatch.delenv('ROS_SECURITY_ENABLE', raising=False)
    spec = build_graph('train', {'namespace': 'robot1', 'log_level': 'debug'}, config_dir)[0]
    spec = type(spec)(**{**spec.__dict__, 'remappings': (('cmd', '/servo/delta_twist'),)})
    command = node_command(spec, '/x/lib/hilresrl_sim/sim_cell', '/tmp/p.yaml')
    assert command[:2] == ['/x/lib/hilresrl_sim/sim_cell', '--ros-args']
    text = ' '.join(command)
    assert '-r __node:=sim_cell' in text
    assert '-r __ns:=/robot1' in text
    assert '--log-level debug' in text
    assert f'--params-file {spec.parameter_files[0]} --params-file /tmp/p.yaml' in text
    assert text.endswith('-r cmd:=/servo/delta_twist')
    monkeypatch.setenv('ROS_SECURITY_ENABLE', 'true')  # SROS2: the node's enclave of the policy
    command = node_command(spec, '/x/lib/hilresrl_sim/sim_cell', None)
    assert command[-2:] == ['--enclave', '/hilresrl/sim_cell']


@pytest.mark.parametrize('clock, lockstep', [('lockstep', True), ('realtime', False)])
def test_the_clock_sets_how_every_policy_node_and_the_manager_step(
        config_dir, clock, lockstep):
    nodes = {n.executable: n.parameters for n in build_graph(
        'train', {'clock': clock, 'summary_file': 'summary.json'}, config_dir)}
    sync = 'exact' if lockstep else 'latest'
    trigger = 'observation' if lockstep else 'timer'
    assert nodes['sim_cell']['clock_mode'] == clock
    base, residual = nodes['base_policy_node'], nodes['residual_policy_node']
    assert (base['trigger'], base['observation_sync']) == (trigger, sync)
    assert (residual['trigger'], residual['observation_sync'], residual['wait_for_chunk']) == (
        trigger, sync, lockstep)
    assert nodes['episode_manager']['observation_sync'] == sync
    assert os.path.isabs(nodes['episode_manager']['summary_file'])
    profile_clock = {n.executable: n.parameters for n in build_graph('train', {}, config_dir)}
    assert 'clock_mode' not in profile_clock['sim_cell']
    assert not {'trigger', 'observation_sync', 'wait_for_chunk'} & (
        set(profile_clock['residual_policy_node']) | set(profile_clock['episode_manager']))


def test_residual_in_arbiter_runs_both_nodes_in_one_process_under_their_own_names(
        config_dir, tmp_path, monkeypatch):
    monkeypatch.delenv('ROS_SECURITY_ENABLE', raising=False)
    apart = build_graph('train', {'robots': '2', 'clock': 'realtime',
                                  'run_dir': str(tmp_path / 'r')}, config_dir)
    nodes = build_graph('train', {'robots': '2', 'clock': 'realtime', 'record': 'true',
                                  'residual_in_arbiter': 'true', 'run_dir': str(tmp_path / 'r')},
                        config_dir)
    assert resolve_arguments('eval', {})['residual_in_arbiter'] == 'false'  # two processes
    assert 'residual_in_arbiter' not in _executables(apart)
    assert _executables(nodes)[:5] == ['sim_cell', 'base_policy_node', 'residual_in_arbiter',
                                       'episode_manager', 'simulated_operator']
    assert 'residual_policy_node' not in _executables(nodes)
    assert 'intervention_arbiter' not in _executables(nodes)
    hosts = [node for node in nodes if node.hosted]
    assert [(host.package, host.namespace) for host in hosts] == [
        ('hilresrl', '/robot1'), ('hilresrl', '/robot2')]
    separate = {node.full_name: node for node in apart}
    for host in hosts:
        residual, arbiter = host.hosted
        assert (residual.name, arbiter.name) == ('residual_policy', 'intervention_arbiter')
        for node in host.hosted:  # each exactly as it is in a process of its own
            assert node == separate[node.full_name]
        assert ('policy_weights', '/policy_weights') in host.remappings
        assert host.parameter_files == residual.parameter_files
    assert hosts[1].hosted[0].parameters['trigger'] == 'timer'

    # One command line: no node renamed to the process, each node's own parameter section.
    host = hosts[1]
    path = write_inline_parameters(host, str(tmp_path))
    assert yaml.safe_load(open(path)) == {'/robot2/residual_policy': {
        'ros__parameters': dict(host.hosted[0].parameters)}}
    command = ' '.join(node_command(host, '/x/lib/hilresrl/residual_in_arbiter', path))
    assert '__node' not in command and '-r __ns:=/robot2' in command
    assert f'--params-file {path}' in command
    monkeypatch.setenv('ROS_SECURITY_ENABLE', 'true')  # SROS2: the process's enclave
    assert node_command(host, '/x', None)[-2:] == ['--enclave', '/hilresrl/residual_in_arbiter']
    # What produced the run names every node, hosted ones too.
    recorder = next(n for n in nodes if n.executable == 'recorder')
    info = json.loads(recorder.parameters['run_info'])
    assert info['node_parameters']['/robot2/residual_policy'] == host.hosted[0].parameters
    assert '/robot1/intervention_arbiter' in info['node_parameters']
