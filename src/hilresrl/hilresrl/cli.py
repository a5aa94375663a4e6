"""
The ``hilresrl`` command line: start the suite's node graphs where ``ros2 launch`` is missing.

``hilresrl launch train [name:=value ...]`` takes the arguments of train.launch.py;
``hilresrl launch eval --show-args`` lists the arguments of a job. Commands that join the ROS
graph keep DDS discovery on this machine unless the user chose otherwise (hilresrl.discovery).
"""

import argparse
import os
import sys
from typing import List, Optional

from .discovery import apply_localhost_defaults
from .graph import (arguments, base_policies_to_build, build_graph, GraphError, JOBS,
                    parse_assignments)
from .process_launcher import GraphProcesses


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
    commands.add_parser(
        'base-policy', add_help=False,
        help='build the default base policy of a simulated task (BC from noisy expert demos); '
             'see hilresrl base-policy --help')
    commands.add_parser(
        'demos', add_help=False,
        help='collect noisy scripted demonstrations of a simulated task; see hilresrl demos '
             '--help')
    commands.add_parser(
        'replay', add_help=False,
        help='publish a recorded bag back onto its topics with its timing; see hilresrl '
             'replay --help')
    commands.add_parser(
        'export', add_help=False,
        help='write the transitions of a recorded run as npz or a LeRobotDataset; see '
             'hilresrl export --help')
    commands.add_parser(
        'serve-policy', add_help=False,
        help='serve a base policy over the openpi websocket protocol (as a pi0 server would); '
             'see hilresrl serve-policy --help')
    commands.add_parser(
        'bag-info', add_help=False,
        help='print the topics, counts and any damage of a bag (as ros2 bag info)')
    commands.add_parser(
        'say', add_help=False,
        help='send a refinement command ("move left 2 cm") to a cell\'s refinement actor and '
             'transitions; see hilresrl say --help')
    return parser


def _show_arguments(job: str) -> int:
    print(f"Arguments of '{job}' (name:=value):")
    for argument in arguments(job):
        choices = f' (one of: {", ".join(argument.choices)})' if argument.choices else ''
        print(f'    {argument.name}:\n        {argument.description}{choices}\n'
              f"        default: '{argument.default}'")
    return 0


def launch(job: str, assignments: List[str], show_args: bool = False) -> int:
    """Start the graph of a job and supervise it until it stops; return the exit status."""
    if show_args:
        return _show_arguments(job)
    nodes = build_graph(job, parse_assignments(assignments))
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
    return GraphProcesses(nodes).run()


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the hilresrl command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['base-policy']:
        from hilresrl_sim.base_policy_builder import main as build_main
        return build_main(argv[1:])
    if argv[:1] == ['demos']:
        from hilresrl_sim.demos import main as demos_main
        return demos_main(argv[1:])
    if argv[:1] in (['replay'], ['say']):
        apply_localhost_defaults(os.environ)  # they join the graph, as launch's nodes do
    if argv[:1] == ['replay']:
        from hilresrl_learner.bag_player_node import main as replay_main
        return replay_main(argv[1:])
    if argv[:1] == ['export']:
        from hilresrl_learner.export import main as export_main
        return export_main(argv[1:])
    if argv[:1] == ['serve-policy']:
        from hilresrl_policy.policy_server import main as serve_main
        return serve_main(argv[1:])
    if argv[:1] == ['say']:
        from hilresrl_teleop.say_node import main as say_main
        return say_main(argv[1:])
    if argv[:1] == ['bag-info']:
        from hilresrl_learner.bag import main as info_main
        return info_main(argv[1:])
    options = _parser().parse_args(argv)
    try:
        if options.command == 'launch':
            return launch(options.job, options.assignments, options.show_args)
    except GraphError as error:
        print(f'hilresrl: {error}', file=sys.stderr)
        return 2
    return 2


if __name__ == '__main__':
    sys.exit(main())
