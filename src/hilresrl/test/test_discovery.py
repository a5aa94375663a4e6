"""Every entry point keeps DDS discovery on this machine unless the user chose otherwise."""

import os
import pathlib
import shutil
import subprocess
import sys
import types

from hilresrl import cli, launch_description
from hilresrl.discovery import localhost_defaults
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
VARIABLES = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOCALHOST_ONLY', 'ROS_DISTRO')

# (the user's environment, what the suite's entry points leave there)
CASES = [
    ({}, {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}),
    ({'ROS_DISTRO': 'kilted'}, {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}),
    ({'ROS_DISTRO': 'humble'}, {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
                                'ROS_LOCALHOST_ONLY': '1'}),
    ({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}, {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}),
    ({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SYSTEM_DEFAULT', 'ROS_DISTRO': 'humble'},
     {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SYSTEM_DEFAULT'}),
    ({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST', 'ROS_DISTRO': 'humble'},
     {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST', 'ROS_LOCALHOST_ONLY': '1'}),
    ({'ROS_LOCALHOST_ONLY': '0'}, {'ROS_LOCALHOST_ONLY': '0'}),
    ({'ROS_LOCALHOST_ONLY': '0', 'ROS_DISTRO': 'humble'}, {'ROS_LOCALHOST_ONLY': '0'}),
    ({'ROS_LOCALHOST_ONLY': '1'}, {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
                                   'ROS_LOCALHOST_ONLY': '1'}),
]


def _chosen(user):
    return {name: value for name, value in user.items() if name != 'ROS_DISTRO'}


def _with(user, monkeypatch):
    for name in VARIABLES:
        monkeypatch.setenv(name, 'placeholder')  # so that the test's end restores it
        monkeypatch.delenv(name)
    for name, value in user.items():
        monkeypatch.setenv(name, value)


def _discovery(environment):
    return {name: environment[name] for name in VARIABLES[:2] if name in environment}


@pytest.mark.parametrize('user, expected', CASES)
def test_the_rule(user, expected):
    assert _discovery(dict(user, **localhost_defaults(user))) == expected


@pytest.mark.parametrize('user, expected', CASES)
def test_sourcing_env_sh_keeps_discovery_on_this_machine(user, expected):
    environment = {name: value for name, value in os.environ.items()
                   if name not in VARIABLES}
    environment.update(user)
    script = ('source scripts/env.sh >/dev/null && for v in ROS_AUTOMATIC_DISCOVERY_RANGE '
              'ROS_LOCALHOST_ONLY; do [ -n "${!v+x}" ] && echo "$v=${!v}"; done; true')
    result = subprocess.run([shutil.which('bash'), '-c', script], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    printed = dict(line.split('=', 1) for line in result.stdout.split())
    assert printed == expected


def test_in_env_sh_runs_commands_with_the_same_default():
    environment = {name: value for name, value in os.environ.items()
                   if name not in VARIABLES}
    result = subprocess.run(['scripts/in-env.sh', sys.executable, '-c',
                             'import os; print(os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"])'],
                            cwd=ROOT, env=environment, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'LOCALHOST'


@pytest.mark.parametrize('launcher', ['processes', 'launch'])
@pytest.mark.parametrize('user, expected', CASES[:4] + CASES[6:7])
def test_hilresrl_launch_starts_its_nodes_with_the_default(user, expected, launcher,
                                                           monkeypatch):
    # The graph is read from the installed hilresrl package (its config, through the index).
    pytest.importorskip('ament_index_python', reason='needs ROS 2 (the built workspace)')
    _with(user, monkeypatch)
    seen = {}

    class Recording:
        """GraphProcesses standing in: records the environment its nodes would inherit."""

        def __init__(self, nodes):
            self.nodes = nodes

        def run(self):
            seen.update(os.environ)
            return 0

    def run_under_launch(job, assignments):
        """Stand in for the launch system: record the environment its nodes would inherit."""
        seen.update(os.environ)
        return 0

    monkeypatch.setattr(cli, 'GraphProcesses', Recording)
    monkeypatch.setattr(cli, 'run_under_launch', run_under_launch)
    monkeypatch.setattr(cli, 'launch_system_available', lambda: True)
    monkeypatch.setattr(cli, 'base_policies_to_build', lambda nodes: [])
    assert cli.main(['launch', '--launcher', launcher, 'eval']) == 0
    assert _discovery(seen) == expected


@pytest.mark.parametrize('user, expected', CASES[:4] + CASES[6:7])
def test_the_launch_files_set_the_default_for_their_processes(user, expected, monkeypatch):
    # Through the real launch system where installed (test_launch_files.py); here its one
    # action, SetEnvironmentVariable, stands in: the PyPI wheels have no launch.
    set_here = {}

    class SetEnvironmentVariable:
        def __init__(self, name, value):
            set_here[name] = value

    actions = types.ModuleType('launch.actions')
    actions.SetEnvironmentVariable = SetEnvironmentVariable
    monkeypatch.setitem(sys.modules, 'launch', types.ModuleType('launch'))
    monkeypatch.setitem(sys.modules, 'launch.actions', actions)
    context = types.SimpleNamespace(environment=dict(user))
    assert len(launch_description.discovery_defaults(context)) == len(set_here)
    assert _discovery(dict(user, **set_here)) == expected


@pytest.mark.parametrize('user, expected', CASES[:4] + CASES[6:7])
def test_with_the_real_launch_system_the_environment_is_set_before_the_nodes(
        user, expected, monkeypatch):
    try:  # the repository's launch/ folder is a namespace package by that name: no actions
        from launch import LaunchContext
        from launch.actions import DeclareLaunchArgument, OpaqueFunction
    except ImportError:
        pytest.skip('the ROS 2 launch system is not installed here (it comes with a ROS 2 '
                    'distribution, not with the PyPI wheels)')
    _with(user, monkeypatch)
    description = launch_description.generate_for('eval')
    functions = [entity for entity in description.entities
                 if isinstance(entity, OpaqueFunction)]
    assert not any(isinstance(entity, DeclareLaunchArgument)
                   for entity in description.entities[description.entities.index(
                       functions[0]):])
    context = LaunchContext()
    for action in functions[0].visit(context) or []:  # before the nodes' OpaqueFunction
        action.visit(context)
    assert _discovery(context.environment) == expected
    assert functions[1:] and functions[0] is not functions[-1]
