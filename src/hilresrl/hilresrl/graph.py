"""
The hilresrl node graph, declared once in plain Python (no ``launch`` import).

Two consumers turn it into running nodes: the launch files in launch/ (launch_ros ``Node``
actions, for users with a ROS 2 distribution) and ``hilresrl launch`` (processes started with
``--ros-args``). Both take the same arguments, so a graph is the same whichever starts it.
"""

from dataclasses import dataclass, field
import os
import re
from typing import Dict, List, Mapping, Optional, Tuple

JOBS = ('train', 'eval')
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
BOOLEANS = ('true', 'false')


class GraphError(ValueError):
    """Arguments that cannot make a graph; the message says what would be valid."""


@dataclass(frozen=True)
class Argument:
    """A launch argument: ``name:=value`` on the command line, DeclareLaunchArgument in launch."""

    name: str
    default: str
    description: str
    choices: Tuple[str, ...] = ()
    jobs: Tuple[str, ...] = JOBS


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: an installed executable, its name, parameters and remappings."""

    package: str
    executable: str
    name: str
    namespace: str = '/'
    parameter_files: Tuple[str, ...] = ()
    parameters: Mapping[str, object] = field(default_factory=dict)
    remappings: Tuple[Tuple[str, str], ...] = ()
    log_level: str = 'info'
    # A required node that exits takes the whole graph down (launch's on_exit=Shutdown()).
    required: bool = True

    @property
    def full_name(self) -> str:
        """Return the fully qualified node name, e.g. /robot1/episode_manager."""
        return self.namespace.rstrip('/') + '/' + self.name


ARGUMENTS: Tuple[Argument, ...] = (
    Argument('cell', 'sim',
             'Cell profile: a profile name from share/hilresrl/config/cells, or the path of a '
             'ROS parameter file that describes the cell'),
    Argument('namespace', '',
             "Namespace of the cell's nodes and topics, e.g. robot1 (empty: the root)"),
    Argument('robot_id', 'robot1',
             'Identifier of this cell in transitions and episode events'),
    Argument('params_file', '',
             'Extra ROS parameter file, applied after the cell profile so that it overrides it'),
    Argument('log_level', 'info', 'Log level of every node', choices=LOG_LEVELS),
)


def arguments(job: str) -> List[Argument]:
    """Return the arguments a job accepts."""
    _check_job(job)
    return [argument for argument in ARGUMENTS if job in argument.jobs]


def resolve_arguments(job: str, given: Mapping[str, str]) -> Dict[str, str]:
    """Validate ``name:=value`` arguments and fill in the defaults of the others."""
    accepted = {argument.name: argument for argument in arguments(job)}
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise GraphError(
            f'unknown argument{"s" if len(unknown) > 1 else ""} {", ".join(unknown)} for '
            f"'{job}'; valid arguments: {', '.join(sorted(accepted))}")
    values = {name: given.get(name, argument.default) for name, argument in accepted.items()}
    for name, value in values.items():
        choices = accepted[name].choices
        if choices and value not in choices:
            raise GraphError(f'{name}:={value} is not one of {", ".join(choices)}')
    return values


def parse_assignments(tokens: List[str]) -> Dict[str, str]:
    """Parse ``name:=value`` tokens as ros2 launch does; anything else is an error."""
    values: Dict[str, str] = {}
    for token in tokens:
        name, separator, value = token.partition(':=')
        if not separator or not name:
            raise GraphError(f"'{token}' is not an argument of the form name:=value")
        values[name] = value
    return values


def normalize_namespace(namespace: str) -> str:
    """Return '/' or '/a/b' for '', 'a/b', '/a/b/'; refuse names ROS would refuse."""
    stripped = namespace.strip('/')
    if not stripped:
        return '/'
    if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*', stripped):
        raise GraphError(f'namespace:={namespace} is not a valid ROS namespace')
    return '/' + stripped


def config_directory() -> str:
    """Return share/hilresrl/config of the installed hilresrl package."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory('hilresrl'), 'config')
    except (ImportError, LookupError) as error:
        raise GraphError('the hilresrl package is not installed in this environment: build '
                         'the workspace and source it (scripts/setup.sh, then '
                         f'source scripts/env.sh): {error}') from error


def available_cells(config_dir: str) -> List[str]:
    """Return the names of the cell profiles in config_dir/cells."""
    cells = os.path.join(config_dir, 'cells')
    if not os.path.isdir(cells):
        return []
    return sorted(name[:-len('.yaml')] for name in os.listdir(cells) if name.endswith('.yaml'))


def cell_profile(cell: str, config_dir: str) -> str:
    """Return the parameter file of a cell, given its profile name or a path."""
    if os.sep in cell or cell.endswith(('.yaml', '.yml')):
        if not os.path.isfile(cell):
            raise GraphError(f'cell:={cell}: no such parameter file')
        return os.path.abspath(cell)
    path = os.path.join(config_dir, 'cells', cell + '.yaml')
    if not os.path.isfile(path):
        raise GraphError(f'cell:={cell} is not a known cell profile; known: '
                         f'{", ".join(available_cells(config_dir)) or "none"} (or give a path)')
    return path


def build_graph(job: str, given: Mapping[str, str],
                config_dir: Optional[str] = None) -> List[NodeSpec]:
    """Return the nodes of a job ('train' or 'eval') for the given launch arguments."""
    values = resolve_arguments(job, given)
    config_dir = config_dir or config_directory()
    parameter_files = [cell_profile(values['cell'], config_dir)]
    if values['params_file']:
        if not os.path.isfile(values['params_file']):
            raise GraphError(f'params_file:={values["params_file"]}: no such file')
        parameter_files.append(os.path.abspath(values['params_file']))
    common = {'namespace': normalize_namespace(values['namespace']),
              'parameter_files': tuple(parameter_files),
              'log_level': values['log_level']}
    cell_parameters = {'robot_id': values['robot_id']}

    nodes = [
        NodeSpec('hilresrl_teleop', 'episode_manager', 'episode_manager',
                 parameters=cell_parameters, **common),
    ]
    if job == 'train':
        nodes.append(NodeSpec('hilresrl_learner', 'learner_node', 'learner', **common))
    return nodes


def _check_job(job: str) -> None:
    if job not in JOBS:
        raise GraphError(f'unknown job \'{job}\'; jobs: {", ".join(JOBS)}')
