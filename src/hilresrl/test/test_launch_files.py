"""The launch files turn the declared graph into launch_ros nodes (where launch is installed)."""

import importlib.util
import pathlib

from hilresrl.graph import arguments, build_graph
import pytest

LAUNCH_DIR = pathlib.Path(__file__).resolve().parents[3] / 'launch'

# launch_ros first: PyPI has an unrelated package named "launch".
launch_ros = pytest.importorskip(
    'launch_ros', reason='the ROS 2 launch system (launch, launch_ros) is not installed here: it '
                         'comes with a ROS 2 distribution, not with the PyPI wheels; test_cli.py '
                         'runs the same graph through hilresrl launch')
launch = pytest.importorskip('launch')


def _load(job: str):
    spec = importlib.util.spec_from_file_location(job, LAUNCH_DIR / f'{job}.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


@pytest.mark.parametrize('job', ['train', 'eval'])
def test_launch_file_declares_the_graph(job):
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    description = _load(job)
    declared = [entity.name for entity in description.entities
                if isinstance(entity, DeclareLaunchArgument)]
    assert declared == [argument.name for argument in arguments(job)]

    context = launch.LaunchContext()
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)
    nodes = [action for entity in description.entities
             if not isinstance(entity, DeclareLaunchArgument)
             for action in (entity.visit(context) or []) if isinstance(action, Node)]
    expected = build_graph(job, {})
    assert [node.node_executable for node in nodes] == [spec.executable for spec in expected]
    assert [node.node_package for node in nodes] == [spec.package for spec in expected]


def test_with_residual_in_arbiter_launch_starts_one_process_whose_nodes_keep_their_names():
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    description = _load('eval')
    context = launch.LaunchContext()
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)
    context.launch_configurations.update({'residual_in_arbiter': 'true',
                                          'base_policy': 'scripted'})
    nodes = [action for entity in description.entities
             if not isinstance(entity, DeclareLaunchArgument)
             for action in (entity.visit(context) or []) if isinstance(action, Node)]
    expected = build_graph('eval', {'residual_in_arbiter': 'true', 'base_policy': 'scripted'})
    assert [(node.node_package, node.node_executable) for node in nodes] == [
        (spec.package, spec.executable) for spec in expected]
    named = {}
    for node in nodes:
        node._perform_substitutions(context)  # what execute() does first: names, namespace
        named[node.node_executable] = node.is_node_name_fully_specified()
    # No __node:= for the process of two nodes: a name would rename both.
    assert named.pop('residual_in_arbiter') is False
    assert all(named.values())
