"""
The hilresrl node graph, declared once in plain Python (no ``launch`` import).

Two consumers turn it into running nodes: the launch files in launch/ (launch_ros ``Node``
actions, which ``hilresrl launch`` runs too where launch_ros is importable) and hilresrl's own
process launcher (processes started with ``--ros-args``, for machines without launch). Both take
the same arguments, so a graph is the same whichever starts it.
"""

from dataclasses import dataclass, field
import json
import os
import re
import shutil
from typing import Dict, List, Mapping, Optional, Tuple

from hilresrl_common.home import (base_policy_demonstrations, base_policy_folder,
                                  new_run_folder, newest_run, runs_folder)
import yaml

from .base_policy_environment import AUTO, base_policy_program

JOBS = ('train', 'eval')
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
BOOLEANS = ('true', 'false')
RECORDERS = ('recorder', 'ros2bag')
ACTOR_MODES = ('residual', 'latent', 'dual')
# Base-policy adapters that the suite builds for a simulated cell (adapter: builder --kind).
BUILT_BASE_POLICIES = {'bc': 'bc', 'flow_bc': 'flow'}
AUTO_DEMONSTRATIONS = 'auto'
# The process of residual_in_arbiter:=true (hilresrl.residual_in_arbiter), also its enclave.
RESIDUAL_IN_ARBITER = 'residual_in_arbiter'
BAG_STORAGES = ('mcap', 'sqlite3')


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
    # A plain process instead of a package executable (ros2 bag record): its command line.
    command: Tuple[str, ...] = ()
    # The node's program outside this workspace (the base-policy node of the LeRobot
    # environment), started as the executable would be, with the node's --ros-args.
    program: str = ''
    # Stopped only once the others have stopped (a recorder takes in their last messages).
    stop_last: bool = False
    # With several robots a cell's node may stop alone (the others go on training); the graph
    # ends when every node marked ends_run has ended (each cell's episode manager).
    ends_run: bool = False
    # A process of several nodes (residual_in_arbiter:=true): the nodes it runs, each under its
    # own name with its own parameters. ``name`` then names the process (its output, its SROS2
    # enclave), and no node is renamed to it.
    hosted: Tuple['NodeSpec', ...] = ()

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
    Argument('remap', '',
             'Topic remappings for every node, comma-separated from:=to, e.g. '
             "'ee_pose:=/franka/current_pose,joint_states:=/franka/joint_states'"),
    Argument('task', '',
             'Simulated task, e.g. pick-place-v3, peg-insert-side-v3, PandaPickCube (empty: the '
             "cell profile's)"),
    Argument('base_policy', '',
             'Base-policy adapter: bc, scripted, or any registered in hilresrl.base_policies '
             "(empty: the cell profile's)"),
    Argument('base_policy_config', '',
             'Further settings of the base-policy adapter as a JSON object, e.g. '
             '{"host": "gpu-box", "port": 8000, "action_dim": 4} for openpi (empty: the cell '
             "profile's)"),
    Argument('actor_mode', 'residual',
             'What learns: residual (a residual on the base action), latent (a refinement '
             "actor that chooses a generative base policy's latent, conditioned on spoken "
             'refinement commands) or dual (both: the residual on top of the steered base). '
             'latent and dual need a base policy with a latent: in simulated cells, the '
             'default becomes a flow-matching BC policy (flow_bc)', choices=ACTOR_MODES),
    Argument('base_policy_environment', AUTO,
             "Where the base-policy node runs: auto (in LeRobot's environment for "
             'base_policy:=lerobot where LeRobot is not in this one: $HILRESRL_LEROBOT_VENV, else '
             '.venv-lerobot beside the workspace, made by scripts/setup-lerobot.sh; elsewhere '
             'here), this (here), or the folder of an environment made as that script makes '
             'one'),
    Argument('base_checkpoint', '',
             'Checkpoint directory of the base policy (empty with bc in a simulated cell: '
             '$HILRESRL_HOME/base_policies/<task>, built on first use)'),
    Argument('operator', 'auto', 'Run the simulated operator, who intervenes through the '
             'SpaceMouse topics (auto: in simulated cells; a real cell has a real person)',
             choices=('auto',) + BOOLEANS, jobs=('train',)),
    Argument('operator', 'false', 'Run the simulated operator; with true, episodes allow '
             'interventions and report the intervention rate (simulated cells only)',
             choices=BOOLEANS, jobs=('eval',)),
    Argument('spacemouse', 'none', "Read a SpaceMouse through spacenavd with the suite's "
             'spacenav node (none: the ROS spacenav driver or nothing publishes spacenav/*)',
             choices=('none', 'spacenavd')),
    Argument('ee_pose', 'topic', 'Where the end-effector pose comes from: a topic of the driver '
             '(remap ee_pose to it), or tf (the ee_pose node looks up command_frame_id -> '
             'tool_frame_id; needs tf2_ros)', choices=('topic', 'tf')),
    Argument('episodes', '50', 'Episodes to run, then print the success rate and exit',
             jobs=('eval',)),
    Argument('episodes', '0', 'Episodes to run before stopping (0: until Ctrl-C)',
             jobs=('train',)),
    Argument('run_dir', '', 'Folder of the training run: checkpoints, replay bag, recording, '
             'curves (empty: $HILRESRL_HOME/runs/<date-time>; with resume, the newest run '
             'there)', jobs=('train',)),
    Argument('run_dir', '', 'Folder for the recording of this evaluation (empty: '
             '$HILRESRL_HOME/runs/<date-time>-eval)', jobs=('eval',)),
    Argument('resume', 'false', 'Continue the run in run_dir (or the newest run): its '
             'checkpoint, every logged transition and its counters', choices=BOOLEANS,
             jobs=('train',)),
    Argument('learner', 'true', 'Run the learner in this graph; false: the cells train with a '
             'learner started elsewhere on the same ROS_DOMAIN_ID (another machine: '
             'hilresrl launch train learner_only:=true there)', choices=BOOLEANS,
             jobs=('train',)),
    Argument('learner_only', 'false', 'Run the learner alone, for cells that run elsewhere '
             '(with robots:=N it learns from robot1..robotN)', choices=BOOLEANS,
             jobs=('train',)),
    Argument('learner_device', '', 'Torch device of the learner, e.g. cuda (empty: as the '
             'cell profile says, else cpu)', jobs=('train',)),
    Argument('offline_bags', '', 'Recorded runs to learn from before and while the robot '
             'trains: bag or run folders, comma-separated', jobs=('train',)),
    Argument('demonstrations', AUTO_DEMONSTRATIONS, 'Demonstration files (hilresrl demos '
             '--out) for the intervention buffer, comma-separated; the base policy relabels '
             f'their base action. {AUTO_DEMONSTRATIONS}: the ones a built base policy was '
             "trained on (demonstrations.npz in its folder), if it has them; '': none",
             jobs=('train',)),
    Argument('record', 'false', 'Record the run to a rosbag2 bag in run_dir/bag (transitions, '
             'proposals, commands, interventions, events, observations, images)',
             choices=BOOLEANS),
    Argument('record_with', 'recorder', "What records: the suite's recorder (anywhere) or "
             "ros2 bag record (a ROS 2 distribution's)", choices=RECORDERS),
    Argument('record_topics', '', 'Topics to record, comma-separated names or regular '
             "expressions relative to the namespace (empty: the suite's default set)"),
    Argument('bag_storage', '', 'Storage of the bag: mcap (Jazzy and later, Foxglove) or '
             "sqlite3 (Humble); empty: the one ROS_DISTRO's own ros2 bag reads",
             choices=('',) + BAG_STORAGES),
    Argument('clock', '', "Simulated cell's clock: lockstep (as fast as the loop) or realtime "
             "(empty: the cell profile's)", choices=('', 'lockstep', 'realtime')),
    Argument('robots', '1', 'Cells of this graph, each in its own namespace (robot1, robot2, '
             '...) with one learner for all (simulated cells: one simulator each)'),
    Argument('tasks', '', 'A task per cell, comma-separated (multi-task training: one '
             'residual for all, told apart by the task instruction); sets robots to at least '
             'their number'),
    Argument('seed', '0', 'Seed of the first episode reset (and of exploration noise)'),
    Argument('summary_file', '', 'Write the final episode summary to this JSON file'),
    Argument('residual_in_arbiter', 'false', 'Run the residual policy in the intervention '
             "arbiter's process: its proposals reach the arbiter without a DDS hop (the faster "
             'control path; proposed_action is still published); false: each in a process of its '
             'own', choices=BOOLEANS),
    Argument('log_level', 'info', 'Log level of every node', choices=LOG_LEVELS),
)


def write_inline_parameters(spec: NodeSpec, directory: str) -> Optional[str]:
    """
    Write a node's inline parameters to a parameter file in directory; return its path.

    The section is the node's fully qualified name: rcl applies it after every wildcard
    section ("/**", "/**/name") of the profile, so launch arguments win over the profile. A
    process of several nodes gets one file with a section for each.
    """
    sections = {node.full_name: {'ros__parameters': dict(node.parameters)}
                for node in (spec,) + spec.hosted if node.parameters}
    if not sections:
        return None
    path = os.path.join(directory, spec.full_name.strip('/').replace('/', '__') + '.yaml')
    with open(path, 'w') as stream:
        yaml.safe_dump(sections, stream)
    return path


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


def load_profile(path: str) -> dict:
    """Read a ROS parameter file as a dictionary (an empty file is an empty profile)."""
    with open(path) as stream:
        try:
            return yaml.safe_load(stream) or {}
        except yaml.YAMLError as error:
            raise GraphError(f'{path} is not valid YAML: {error}') from error


def profile_parameter(profile: dict, node: str, name: str, default=None):
    """Return a node's parameter from a parameter file (its own section, then /**)."""
    for section in (f'/**/{node}', node, f'/{node}', '/**'):
        parameters = (profile.get(section) or {}).get('ros__parameters') or {}
        if name in parameters:
            return parameters[name]
    return default


def is_simulated(profile: dict) -> bool:
    """Return whether a cell profile configures the simulated cell (hilresrl_sim)."""
    return any(section.rsplit('/', 1)[-1] == 'sim_cell' for section in profile)


def run_folder(job: str, values: Mapping[str, str]) -> str:
    """Return the run folder: as given, the newest run (resume), or a new dated one."""
    if values['run_dir']:
        return os.path.abspath(os.path.expanduser(values['run_dir']))
    if values.get('resume') == 'true':
        newest = newest_run()
        if newest is None:
            raise GraphError(f'resume:=true: no run in {runs_folder()} to continue')
        return str(newest)
    return str(new_run_folder(evaluation=job == 'eval'))


def parse_remappings(value: str) -> Tuple[Tuple[str, str], ...]:
    """Return the remappings of a remap argument ('a:=b,c:=d'); refuse a malformed one."""
    remappings = []
    for item in split_list(value):
        source, separator, target = item.partition(':=')
        if not separator or not source.strip() or not target.strip():
            raise GraphError(f'remap item {item!r} is not of the form from:=to')
        remappings.append((source.strip(), target.strip()))
    return tuple(remappings)


def split_list(value: str) -> List[str]:
    """Return the items of a comma-separated launch argument (also '[a, b]')."""
    return [item.strip() for item in value.strip().strip('[]').split(',') if item.strip()]


def recording_nodes(job: str, values: Mapping[str, str], run_dir: str,
                    common: Mapping[str, object], run_info: Mapping[str, object],
                    robots: int = 1) -> List[NodeSpec]:
    """Return the node (or ros2 bag process) that records the run into run_dir/bag."""
    from hilresrl_recording.bag import storage_for_distribution
    from hilresrl_recording.topic_selection import DEFAULT_REQUIRED_TOPICS, DEFAULT_TOPICS
    bag_path = os.path.join(run_dir, 'bag')
    # The launch's environment decides, as it does for the nodes (ros2 bag of Humble: sqlite3).
    storage = values['bag_storage'] or storage_for_distribution(os.environ.get('ROS_DISTRO', ''))
    topics = split_list(values['record_topics'])
    remapped = dict(common['remappings'])
    if remapped:  # a remapped topic is recorded under the name it really has
        topics = [remapped.get(topic, topic) for topic in topics or DEFAULT_TOPICS]
    if robots > 1:  # every cell's topics, and the one learner's
        chosen = topics or list(DEFAULT_TOPICS)
        topics = [topic if topic.startswith('/') else f'robot{index + 1}/{topic}'
                  for index in range(robots) for topic in chosen]
        topics += ['policy_weights', 'learner_status']
    if values['record_with'] == 'ros2bag':
        if shutil.which('ros2') is None:
            raise GraphError('record_with:=ros2bag needs the ros2 command of a sourced ROS 2 '
                             'distribution; record_with:=recorder works everywhere')
        namespace = str(common['namespace']).rstrip('/')
        names = [topic if topic.startswith('/') else f'{namespace}/{topic}'
                 for topic in topics or DEFAULT_TOPICS]
        command = ('ros2', 'bag', 'record', '-o', bag_path, '-s', storage,
                   '-e', '^(' + '|'.join(names) + ')$')
        return [NodeSpec('rosbag2', 'ros2 bag record', 'ros2_bag_record', command=command,
                         stop_last=True, **common)]
    parameters = {'bag_path': bag_path, 'storage': storage,
                  'append': job == 'train' and values.get('resume') == 'true',
                  'run_info': json.dumps(run_info, sort_keys=True)}
    if topics:
        parameters['topics'] = topics
    if robots > 1:
        parameters['required_topics'] = [f'robot{index + 1}/{topic}' for index in range(robots)
                                         for topic in DEFAULT_REQUIRED_TOPICS]
    return [NodeSpec('hilresrl_recording', 'recorder', 'recorder', parameters=parameters,
                     stop_last=True, **common)]


def base_policy_settings(values: Mapping[str, str], profile: dict) -> Tuple[str, str, str]:
    """Return (adapter kind, checkpoint directory, task) after arguments and profile."""
    kind = values['base_policy'] or profile_parameter(profile, 'base_policy',
                                                      'base_policy.kind', 'bc')
    task = values['task'] or profile_parameter(profile, 'sim_cell', 'task', '')
    checkpoint = values['base_checkpoint'] or profile_parameter(
        profile, 'base_policy', 'base_policy.checkpoint', '')
    if (values.get('actor_mode', 'residual') != 'residual' and not values['base_policy']
            and kind == 'bc' and is_simulated(profile)):
        # A latent to steer: the sim's own generative base policy, from the same data.
        kind, checkpoint = 'flow_bc', values['base_checkpoint']
    if not checkpoint and kind in BUILT_BASE_POLICIES and is_simulated(profile) and task:
        checkpoint = default_base_checkpoint(kind, task)
    return kind, checkpoint, task


def default_base_checkpoint(kind: str, task: str) -> str:
    """Return where a simulated cell's base policy of adapter ``kind`` is built on first use."""
    return str(base_policy_folder(task, BUILT_BASE_POLICIES[kind]))


@dataclass(frozen=True)
class GraphSettings:
    """What every node of a graph is made from: the job's arguments and the merged profile."""

    job: str
    values: Mapping[str, str]
    parameter_files: Tuple[str, ...]
    profile: dict
    # namespace, parameter files, remappings and log level of every node
    common: Mapping[str, object]
    base_policy: str  # the adapter kind
    checkpoint: str
    task: str
    seed: int
    operator: bool
    run_dir: str
    robots: int
    tasks: List[str]

    @property
    def simulated(self) -> bool:
        """Return whether the cell profile configures the simulated cell."""
        return is_simulated(self.profile)

    @property
    def actor_mode(self) -> str:
        """Return what learns: residual, latent or dual."""
        return self.values['actor_mode']

    @property
    def record(self) -> bool:
        """Return whether the run is recorded."""
        return self.values['record'] == 'true'

    @property
    def lockstep(self) -> Optional[bool]:
        """Return True for clock:=lockstep, False for realtime, None for the profile's."""
        return {'lockstep': True, 'realtime': False}.get(self.values['clock'])

    @property
    def timing(self) -> Dict[str, object]:
        """Return how the policy nodes are triggered and observe under clock:= (else {})."""
        if self.lockstep is None:
            return {}
        return {'trigger': 'observation' if self.lockstep else 'timer',
                'observation_sync': 'exact' if self.lockstep else 'latest'}

    @property
    def policy_inputs(self) -> Optional[List[str]]:
        """Return the actors' inputs with several tasks (the instruction tells them apart)."""
        if len(set(self.tasks)) <= 1:
            return None
        inputs = list(profile_parameter(self.profile, 'residual_policy', 'policy_inputs',
                                        ['task_state']))
        return inputs + ([] if 'instruction' in inputs else ['instruction'])


def graph_settings(job: str, values: Mapping[str, str], config_dir: str) -> GraphSettings:
    """Return the settings of a graph after checking every argument that needs the profile."""
    parameter_files = _parameter_files(values, config_dir)
    profile = _merged_profile(parameter_files)
    simulated = is_simulated(profile)
    operator = values['operator'] == 'true' or (values['operator'] == 'auto' and simulated)
    if operator and not simulated:
        raise GraphError('operator:=true needs a simulated cell (a real cell has a real '
                         'person at the SpaceMouse)')
    common = {'namespace': normalize_namespace(values['namespace']),
              'parameter_files': tuple(parameter_files),
              'remappings': parse_remappings(values['remap']),
              'log_level': values['log_level']}
    kind, checkpoint, task = base_policy_settings(values, profile)
    if not values['seed'].lstrip('-').isdigit():
        raise GraphError(f'seed:={values["seed"]} is not an integer')
    if values['base_policy_config']:
        try:
            json.loads(values['base_policy_config'])
        except ValueError as error:
            raise GraphError(f'base_policy_config is not a JSON object: {error}') from error
    run_dir = run_folder(job, values) if job == 'train' or values['record'] == 'true' else ''
    return GraphSettings(job, values, tuple(parameter_files), profile, common, kind, checkpoint,
                         task, int(values['seed']), operator, run_dir, cell_count(values),
                         split_list(values['tasks']) or [task])


def _parameter_files(values: Mapping[str, str], config_dir: str) -> List[str]:
    """Return the cell profile, then the params_file that overrides it."""
    parameter_files = [cell_profile(values['cell'], config_dir)]
    if values['params_file']:
        if not os.path.isfile(values['params_file']):
            raise GraphError(f'params_file:={values["params_file"]}: no such file')
        parameter_files.append(os.path.abspath(values['params_file']))
    return parameter_files


def _merged_profile(parameter_files: List[str]) -> dict:
    """Return the parameter files' sections merged, later files winning."""
    profile: dict = {}
    for path in parameter_files:
        for section, content in load_profile(path).items():
            parameters = (content or {}).get('ros__parameters', {}) if isinstance(
                content, dict) else {}
            merged = profile.setdefault(section, {'ros__parameters': {}})
            merged['ros__parameters'].update(parameters)
    return profile


def build_graph(job: str, given: Mapping[str, str],
                config_dir: Optional[str] = None) -> List[NodeSpec]:
    """Return the nodes of a job ('train' or 'eval') for the given launch arguments."""
    values = resolve_arguments(job, given)
    settings = graph_settings(job, values, config_dir or config_directory())
    learner_only = job == 'train' and values['learner_only'] == 'true'
    with_learner = job == 'train' and (values['learner'] == 'true' or learner_only)
    if learner_only and values['learner'] == 'false':
        raise GraphError('learner_only:=true with learner:=false leaves nothing to run')
    nodes = []
    for index in range(0 if learner_only else settings.robots):
        nodes += cell_nodes(settings, index)
    if with_learner:
        nodes.append(learner_node(settings))
    if settings.record:
        nodes += recording_nodes(job, values, settings.run_dir, settings.common,
                                 run_info(settings, nodes), settings.robots)
    return nodes


def cell_nodes(settings: GraphSettings, index: int) -> List[NodeSpec]:
    """
    Return the nodes of cell ``index``: simulator, policies, arbiter, episodes, devices, operator.

    One cell per robot: its own namespace, robot id, seeds and (with tasks:=) task; every cell
    takes the one learner's weights and status from the learner's namespace.
    """
    cell = _cell_placement(settings, index)
    cell_task = settings.tasks[index % len(settings.tasks)]
    cell_seed = settings.seed + 1000 * index
    nodes = []
    if settings.simulated:
        nodes.append(NodeSpec('hilresrl_sim', 'sim_cell', 'sim_cell',
                              parameters=_sim_parameters(settings, cell_task, cell_seed),
                              **cell))
    base, residual = policy_nodes(settings, cell, cell_task, cell_seed)
    arbiter = NodeSpec('hilresrl_teleop', 'intervention_arbiter', 'intervention_arbiter', **cell)
    nodes.append(base)
    if settings.values['residual_in_arbiter'] == 'true':
        nodes.append(NodeSpec('hilresrl', RESIDUAL_IN_ARBITER, RESIDUAL_IN_ARBITER,
                              hosted=(residual, arbiter), **cell))
    else:
        nodes += [residual, arbiter]
    nodes.append(episode_manager_node(settings, cell, index, cell_seed))
    nodes += device_nodes(settings, cell)
    if settings.operator:
        operator_parameters = {'seed': cell_seed}
        if cell_task:
            operator_parameters['task'] = cell_task
        nodes.append(NodeSpec('hilresrl_sim', 'simulated_operator', 'simulated_operator',
                              parameters=operator_parameters, **cell))
    return nodes


def _cell_placement(settings: GraphSettings, index: int) -> Dict[str, object]:
    """Return the namespace, remappings and the rest that every node of a cell shares."""
    cell = dict(settings.common, required=settings.robots == 1)
    if settings.robots > 1:
        root = str(settings.common['namespace']).rstrip('/')
        cell['namespace'] = f'{root}/robot{index + 1}'
        cell['remappings'] = settings.common['remappings'] + (
            ('policy_weights', f'{root}/policy_weights'),
            ('latent_weights', f'{root}/latent_weights'),
            ('learner_status', f'{root}/learner_status'),
            ('recorder_status', f'{root}/recorder_status'))
    return cell


def _sim_parameters(settings: GraphSettings, cell_task: str, cell_seed: int) -> dict:
    parameters = {'seed': cell_seed}
    if cell_task:
        parameters['task'] = cell_task
    if settings.lockstep is not None:
        parameters['clock_mode'] = settings.values['clock']
    return parameters


def policy_nodes(settings: GraphSettings, cell: Mapping[str, object], cell_task: str,
                 cell_seed: int) -> List[NodeSpec]:
    """Return a cell's base policy and residual policy nodes."""
    try:
        program = base_policy_program(settings.base_policy,
                                      settings.values['base_policy_environment'])
    except ValueError as error:
        raise GraphError(str(error)) from error
    return [NodeSpec('hilresrl_policy', 'base_policy_node', 'base_policy',
                     parameters=_base_policy_parameters(settings, cell_task, cell_seed),
                     program=program, **cell),
            NodeSpec('hilresrl_policy', 'residual_policy_node', 'residual_policy',
                     parameters=_residual_parameters(settings, cell_seed), **cell)]


def _base_policy_parameters(settings: GraphSettings, cell_task: str, cell_seed: int) -> dict:
    parameters = dict(settings.timing, **{'base_policy.kind': settings.base_policy,
                                          'seed': cell_seed})
    if settings.actor_mode != 'residual':
        parameters['actor_mode'] = settings.actor_mode
    if settings.values['base_policy_config']:
        parameters['base_policy.config_json'] = settings.values['base_policy_config']
    checkpoint = settings.checkpoint
    if (cell_task != settings.task and settings.base_policy in BUILT_BASE_POLICIES
            and settings.simulated and not settings.values['base_checkpoint']):
        checkpoint = default_base_checkpoint(settings.base_policy, cell_task)
    if checkpoint:
        parameters['base_policy.checkpoint'] = checkpoint
    if cell_task:
        parameters['base_policy.task'] = cell_task
    if settings.policy_inputs:
        parameters['policy_inputs'] = settings.policy_inputs
    return parameters


def _residual_parameters(settings: GraphSettings, cell_seed: int) -> dict:
    parameters = dict(settings.timing, seed=cell_seed)
    if settings.lockstep is not None:
        parameters['wait_for_chunk'] = settings.lockstep
    if settings.actor_mode != 'residual':
        parameters['actor_mode'] = settings.actor_mode
    if settings.job == 'eval':
        parameters['exploration_std'] = 0.0  # evaluation: no exploration
    if settings.policy_inputs:
        parameters['policy_inputs'] = settings.policy_inputs
    return parameters


def device_nodes(settings: GraphSettings, cell: Mapping[str, object]) -> List[NodeSpec]:
    """Return a cell's ee_pose node (ee_pose:=tf) and SpaceMouse node (spacemouse:=spacenavd)."""
    nodes = []
    if settings.values['ee_pose'] == 'tf':
        nodes.append(NodeSpec('hilresrl_teleop', 'ee_pose', 'ee_pose', **cell))
    if settings.values['spacemouse'] == 'spacenavd':
        # Not required: without a device it says so and the cell runs policy-only.
        nodes.append(NodeSpec('hilresrl_teleop', 'spacemouse', 'spacenav',
                              **dict(cell, required=False)))
    return nodes


def episode_manager_node(settings: GraphSettings, cell: Mapping[str, object], index: int,
                         cell_seed: int) -> NodeSpec:
    """Return a cell's episode manager; with several robots each may end alone."""
    values = settings.values
    robot_id = values['robot_id'] if settings.robots == 1 else f'robot{index + 1}'
    parameters = {'robot_id': robot_id, 'seed': cell_seed,
                  'episodes': int(values['episodes'] or 0)}
    if settings.lockstep is not None:
        parameters['observation_sync'] = settings.timing['observation_sync']
    if values['summary_file']:
        parameters['summary_file'] = os.path.abspath(values['summary_file'])
    if settings.job == 'eval':
        # With the operator, interventions are allowed (assisted episodes, reported with their
        # intervention rate), else none.
        parameters['initial_mode'] = 'train' if settings.operator else 'eval'
    else:
        parameters['wait_for_learner'] = True  # no step before the learner listens
    if settings.record:
        parameters['wait_for_recorder'] = True  # no step goes unrecorded
    return NodeSpec('hilresrl_episodes', 'episode_manager', 'episode_manager',
                    parameters=parameters, ends_run=settings.robots > 1, **cell)


def learner_node(settings: GraphSettings) -> NodeSpec:
    """Return the one learner of the graph, in the graph's own namespace."""
    values = settings.values
    parameters = {'resume': values['resume'] == 'true', 'seed': settings.seed,
                  'run_dir': settings.run_dir}
    if settings.actor_mode != 'residual':
        parameters['actor_mode'] = settings.actor_mode
    if values['learner_device']:
        parameters['device'] = values['learner_device']
    if settings.robots > 1:
        parameters['cells'] = [f'robot{index + 1}' for index in range(settings.robots)]
    if settings.policy_inputs:
        parameters['policy_inputs'] = settings.policy_inputs
    offline_bags = _absolute_paths(values['offline_bags'])
    if offline_bags:
        parameters['offline_bags'] = offline_bags
    demonstrations = (base_policy_demonstrations_of(settings)
                      if values['demonstrations'] == AUTO_DEMONSTRATIONS
                      else _absolute_paths(values['demonstrations']))
    if demonstrations:
        parameters.update({'demonstrations': demonstrations,
                           'base_policy.kind': settings.base_policy,
                           'base_policy.checkpoint': settings.checkpoint,
                           'base_policy.task': settings.task})
    return NodeSpec('hilresrl_learner', 'learner_node', 'learner', parameters=parameters,
                    **settings.common)


def base_policy_demonstrations_of(settings: GraphSettings) -> List[str]:
    """
    Return the demonstrations the graph's base policy was trained on, as a one-path list.

    Those of a base policy the suite builds (hilresrl_sim.base_policy_builder), whether built
    already or about to be built before the graph starts; none for any other base policy, for
    one built before base policies kept their demonstrations, or for cells of several tasks
    (the learner relabels demonstrations with one base policy).
    """
    if (not settings.checkpoint or settings.base_policy not in BUILT_BASE_POLICIES
            or len(set(settings.tasks)) > 1):
        return []
    pixels = learner_simulated_cameras(settings.profile)
    if pixels is None:
        return []
    folder = os.path.abspath(os.path.expanduser(settings.checkpoint))
    demonstrations = base_policy_demonstrations(folder, *pixels)
    built = os.path.isfile(os.path.join(folder, 'config.json'))
    # A pixel learner's are recorded from the base policy's before the graph starts.
    to_be_built = settings.simulated and (not built or bool(pixels[0]))
    return [str(demonstrations)] if demonstrations.is_file() or to_be_built else []


def learner_simulated_cameras(profile: dict) -> Optional[Tuple[Tuple[str, ...], int]]:
    """
    Return the simulator cameras the learner's camera_inputs name, and their image size.

    ((), 0): no camera inputs. None: inputs a simulated cell does not publish as
    camera/<camera>/image_raw, or frames that are not square (the simulator renders square).
    """
    inputs = [name for name in profile_parameter(profile, 'learner', 'camera_inputs', [])
              or [] if name]
    if not inputs:
        return (), 0
    cameras = [re.fullmatch(r'image/camera/([^/]+)/image_raw', name) for name in inputs]
    height, width = profile_parameter(profile, 'learner', 'image_size', [128, 128])
    if not all(cameras) or height != width:
        return None
    return tuple(match.group(1) for match in cameras), int(height)


def demonstrations_to_record(nodes: List[NodeSpec]) -> List[Tuple[str, str, Tuple[str, ...],
                                                                  int]]:
    """
    Return what a pixel learner's demonstrations are recorded from, if they are not yet.

    (the base policy's demonstrations, the file to write, simulator cameras, image size),
    after base_policies_to_build has built the base policy (hilresrl_sim.demos
    record_with_sensors records them).
    """
    if not any(node.executable == 'sim_cell' for node in nodes):
        return []
    missing = []
    for node in nodes:
        checkpoint = node.parameters.get('base_policy.checkpoint', '')
        if node.executable != 'learner_node' or not checkpoint:
            continue
        pixels = learner_simulated_cameras(_merged_profile(list(node.parameter_files)))
        if not pixels or not pixels[0]:
            continue
        wanted = str(base_policy_demonstrations(checkpoint, *pixels))
        if wanted in node.parameters.get('demonstrations', []) and not os.path.isfile(wanted):
            missing.append((str(base_policy_demonstrations(checkpoint)), wanted, *pixels))
    return missing


def _absolute_paths(value: str) -> List[str]:
    return [os.path.abspath(os.path.expanduser(path)) for path in split_list(value)]


def run_info(settings: GraphSettings, nodes: List[NodeSpec]) -> Dict[str, object]:
    """
    Return what produced the run, kept with its bag.

    The launch, the profile's parameters and each node's overrides (the recorder adds the base
    policy's hashes and the weights).
    """
    values = settings.values
    return {'job': settings.job, 'cell': values['cell'], 'task': settings.task,
            'robot_id': values['robot_id'], 'base_policy': settings.base_policy,
            'base_checkpoint': settings.checkpoint, 'launch_arguments': dict(values),
            'parameter_files': list(settings.parameter_files), 'profile': settings.profile,
            'node_parameters': {node.full_name: dict(node.parameters)
                                for spec in nodes for node in spec.hosted or (spec,)}}


def base_policies_to_build(nodes: List[NodeSpec]) -> List[Tuple[str, str, str]]:
    """
    Return (task, checkpoint, builder kind) of each simulated cell's base policy not built yet.

    The builder kind is base_policy_builder's --kind: bc, or flow for the flow_bc adapter.
    """
    if not any(node.executable == 'sim_cell' for node in nodes):
        return []
    missing = []
    for node in nodes:
        kind = node.parameters.get('base_policy.kind')
        if node.executable == 'base_policy_node' and kind in BUILT_BASE_POLICIES:
            checkpoint = node.parameters.get('base_policy.checkpoint', '')
            task = node.parameters.get('base_policy.task', '')
            entry = (task, checkpoint, BUILT_BASE_POLICIES[kind])
            if checkpoint and task and not os.path.isfile(os.path.join(
                    checkpoint, 'config.json')) and entry not in missing:
                missing.append(entry)
    return missing


def cell_count(values: Mapping[str, str]) -> int:
    """Return the number of cells: robots:=N, else one per task of tasks:=a,b."""
    text = values['robots'].strip()
    if not text.isdigit() or int(text) < 1:
        raise GraphError(f'robots:={text} is not a positive integer')
    return max(int(text), len(split_list(values['tasks'])))


def _check_job(job: str) -> None:
    if job not in JOBS:
        raise GraphError(f'unknown job \'{job}\'; jobs: {", ".join(JOBS)}')
