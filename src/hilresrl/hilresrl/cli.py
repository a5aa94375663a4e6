"""
The ``hilresrl`` command line: start the suite's node graphs, with or without ``ros2 launch``.

``hilresrl launch train [name:=value ...]`` takes the arguments of train.launch.py and runs it
under the ROS 2 launch system where launch_ros is importable, else under hilresrl's own process
launcher; ``hilresrl launch eval --show-args`` lists the arguments of a job. Commands that join
the ROS graph keep DDS discovery on this machine unless the user chose otherwise
(hilresrl.discovery).
"""

import argparse
from dataclasses import dataclass
import importlib
import os
import sys
from typing import List, Optional

from .discovery import apply_localhost_defaults
from .graph import (arguments, base_policies_to_build, build_graph, demonstrations_to_record,
                    GraphError, JOBS, parse_assignments)
from .launch_runner import run_under_launch
from .process_launcher import GraphProcesses

# Who runs the graph: the ROS 2 launch system, hilresrl's process launcher, or (auto) the first
# where launch_ros is importable, else the second.
LAUNCHERS = ('auto', 'launch', 'processes')


@dataclass(frozen=True)
class Subcommand:
    """A subcommand that hands its arguments to another package's ``main(argv)``."""

    name: str
    module: str
    summary: str  # its line in hilresrl --help
    # It joins the ROS graph, as launch's nodes do: DDS discovery stays on this machine.
    joins_graph: bool = False


# The one list of subcommands besides launch: the parser's help and the dispatch both read it.
SUBCOMMANDS = (
    Subcommand('base-policy', 'hilresrl_sim.base_policy_builder',
               'build the default base policy of a simulated task (BC from noisy expert '
               'demos); see hilresrl base-policy --help'),
    Subcommand('demos', 'hilresrl_sim.demos',
               'collect noisy scripted demonstrations of a simulated task; see hilresrl demos '
               '--help'),
    Subcommand('replay', 'hilresrl_recording.bag_player_node',
               'publish a recorded bag back onto its topics with its timing; see hilresrl '
               'replay --help', joins_graph=True),
    Subcommand('export', 'hilresrl_recording.export',
               'write the transitions of a recorded run as npz or a LeRobotDataset; see '
               'hilresrl export --help'),
    Subcommand('import-lerobot', 'hilresrl_recording.lerobot_import',
               'write a LeRobotDataset as a demonstrations file for the learner, where LeRobot '
               'is installed (its --help says how)'),
    Subcommand('serve-policy', 'hilresrl_policy.policy_server',
               'serve a base policy over the openpi websocket protocol (as a pi0 server '
               'would); see hilresrl serve-policy --help'),
    Subcommand('bag-info', 'hilresrl_recording.bag',
               'print the topics, counts and any damage of a bag (as ros2 bag info)'),
    Subcommand('say', 'hilresrl_teleop.say_node',
               'send a refinement command ("move left 2 cm") to a cell\'s refinement actor and '
               'transitions; see hilresrl say --help', joins_graph=True),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='hilresrl', description='Human-in-the-loop residual RL for ROS 2 robot cells.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    launch = commands.add_parser(
        'launch', help='start the node graph of a job (as ros2 launch hilresrl JOB.launch.py)',
        description='Start the node graph of a job: every node of the suite runs as its own '
                    'process over DDS; Ctrl-C stops them all.')
    launch.add_argument('job', choices=JOBS, help='which graph: train or eval')
    launch.add_argument('assignments', nargs='*', metavar='name:=value',
                        help='launch arguments, as for ros2 launch')
    launch.add_argument('-s', '--show-args', action='store_true',
                        help='list the launch arguments of the job and exit')
    launch.add_argument('--launcher', choices=LAUNCHERS, default='auto',
                        help='run the graph under the ROS 2 launch system (launch) or '
                             "hilresrl's own process launcher (processes); auto, the "
                             'default: launch where launch_ros is importable, else processes')
    for subcommand in SUBCOMMANDS:
        commands.add_parser(subcommand.name, add_help=False, help=subcommand.summary)
    return parser


def _show_arguments(job: str) -> int:
    print(f"Arguments of '{job}' (name:=value):")
    for argument in arguments(job):
        choices = f' (one of: {", ".join(argument.choices)})' if argument.choices else ''
        print(f'    {argument.name}:\n        {argument.description}{choices}\n'
              f"        default: '{argument.default}'")
    return 0


def launch_system_available() -> bool:
    """Return whether the ROS 2 launch system (launch_ros) is importable here."""
    try:  # launch_ros, not launch: PyPI has an unrelated package named "launch"
        import launch_ros  # noqa: F401
    except ImportError:
        return False
    return True


def _chosen_launcher(launcher: str) -> str:
    available = launch_system_available()
    if launcher == 'launch' and not available:
        raise GraphError('--launcher launch: the ROS 2 launch system is not installed here '
                         '(launch_ros cannot be imported; source a ROS 2 distribution, or run '
                         '--launcher processes)')
    if launcher == 'auto':
        return 'launch' if available else 'processes'
    return launcher


def launch(job: str, assignments: List[str], show_args: bool = False,
           launcher: str = 'auto') -> int:
    """Start the graph of a job and supervise it until it stops; return the exit status."""
    if show_args:
        return _show_arguments(job)
    nodes = build_graph(job, parse_assignments(assignments))
    launcher = _chosen_launcher(launcher)
    # Before any process starts: each inherits this environment.
    for name, value in apply_localhost_defaults(os.environ).items():
        print(f'[hilresrl] {name}={value}: DDS discovery stays on this machine (set it, or '
              'ROS_STATIC_PEERS, for a cell across machines)', flush=True)
    for task, checkpoint, kind in base_policies_to_build(nodes):
        what = 'behaviour cloning' if kind == 'bc' else 'flow-matching behaviour cloning'
        print(f'[hilresrl] no base policy for {task} at {checkpoint}: building it once '
              f'({what} from noisy scripted demonstrations)', flush=True)
        from hilresrl_sim.base_policy_builder import build_base_policy
        build_base_policy(task, checkpoint, kind=kind,
                          progress=lambda line: print(f'[base-policy] {line}', flush=True))
    for given, wanted, cameras, image_size in demonstrations_to_record(nodes):
        print(f'[hilresrl] the learner sees cameras {", ".join(cameras)}: recording the base '
              f"policy's demonstrations again with them, once, into {wanted}", flush=True)
        from hilresrl_sim.demos import record_with_sensors
        record_with_sensors(given, wanted, cameras, image_size)
    if launcher == 'launch':  # the launch files' description, in this process
        return run_under_launch(job, assignments)
    return GraphProcesses(nodes).run()


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the hilresrl command."""
    argv = sys.argv[1:] if argv is None else argv
    for subcommand in SUBCOMMANDS:
        if argv[:1] == [subcommand.name]:
            if subcommand.joins_graph:
                apply_localhost_defaults(os.environ)
            return importlib.import_module(subcommand.module).main(argv[1:])
    options = _parser().parse_args(argv)
    try:
        if options.command == 'launch':
            return launch(options.job, options.assignments, options.show_args,
                          options.launcher)
    except GraphError as error:
        print(f'hilresrl: {error}', file=sys.stderr)
        return 2
    return 2


if __name__ == '__main__':
    sys.exit(main())
