"""The declared node graph: arguments, validation, profiles and the commands it makes."""

from hilresrl.graph import (arguments, build_graph, cell_profile, GraphError,
                            normalize_namespace, parse_assignments, resolve_arguments)
from hilresrl.process_launcher import node_command
import pytest


@pytest.fixture
def config_dir(tmp_path):
    (tmp_path / 'cells').mkdir()
    (tmp_path / 'cells' / 'sim.yaml').write_text('/**:\n  ros__parameters: {}\n')
    (tmp_path / 'cells' / 'franka.yaml').write_text('/**:\n  ros__parameters: {}\n')
    return str(tmp_path)


def test_defaults_fill_every_argument():
    values = resolve_arguments('train', {})
    assert values == {argument.name: argument.default for argument in arguments('train')}
    assert values['cell'] == 'sim'


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


def test_train_graph_runs_the_cell_and_the_learner(config_dir):
    nodes = build_graph('train', {'namespace': 'robot2', 'robot_id': 'r2'}, config_dir)
    assert [(n.package, n.executable) for n in nodes] == [
        ('hilresrl_teleop', 'episode_manager'), ('hilresrl_learner', 'learner_node')]
    assert {n.namespace for n in nodes} == {'/robot2'}
    assert nodes[0].parameters == {'robot_id': 'r2'}
    assert nodes[0].full_name == '/robot2/episode_manager'
    assert all(n.parameter_files[0].endswith('cells/sim.yaml') for n in nodes)


def test_eval_graph_has_no_learner(config_dir):
    nodes = build_graph('eval', {}, config_dir)
    assert 'learner_node' not in [n.executable for n in nodes]


def test_params_file_is_applied_after_the_profile(config_dir, tmp_path):
    extra = tmp_path / 'extra.yaml'
    extra.write_text('{}')
    nodes = build_graph('train', {'params_file': str(extra)}, config_dir)
    assert nodes[0].parameter_files[-1] == str(extra)
    with pytest.raises(GraphError, match='no such file'):
        build_graph('train', {'params_file': str(tmp_path / 'nope.yaml')}, config_dir)


def test_node_command_carries_names_parameters_and_remaps(config_dir):
    spec = build_graph('train', {'namespace': 'robot1', 'log_level': 'debug'}, config_dir)[0]
    spec = type(spec)(**{**spec.__dict__, 'remappings': (('cmd', '/servo/delta_twist'),)})
    command = node_command(spec, '/x/lib/hilresrl_teleop/episode_manager', '/tmp/p.yaml')
    assert command[:2] == ['/x/lib/hilresrl_teleop/episode_manager', '--ros-args']
    text = ' '.join(command)
    assert '-r __node:=episode_manager' in text
    assert '-r __ns:=/robot1' in text
    assert '--log-level debug' in text
    assert f'--params-file {spec.parameter_files[0]} --params-file /tmp/p.yaml' in text
    assert text.endswith('-r cmd:=/servo/delta_twist')
