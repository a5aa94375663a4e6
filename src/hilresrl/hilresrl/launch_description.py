"""
Turn the declared node graph into a launch description (needs ``launch`` and ``launch_ros``).

The launch files in launch/ are one line each on top of this, so that ``ros2 launch`` and
``hilresrl launch`` start exactly the graph that graph.py declares, with DDS discovery kept on
this machine unless the user chose otherwise (hilresrl.discovery).
"""

import tempfile

from .discovery import localhost_defaults
from .graph import arguments, base_policies_to_build, build_graph, write_inline_parameters


def generate_for(job: str):
    """Return the LaunchDescription of a job: its arguments, then its nodes."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    declared = [DeclareLaunchArgument(argument.name, default_value=argument.default,
                                      description=argument.description,
                                      **({'choices': list(argument.choices)}
                                         if argument.choices else {}))
                for argument in arguments(job)]
    return LaunchDescription(declared + [OpaqueFunction(function=discovery_defaults),
                                         OpaqueFunction(function=_nodes, args=[job])])


def discovery_defaults(context):
    """Return SetEnvironmentVariable actions for the discovery defaults the user has not set."""
    from launch.actions import SetEnvironmentVariable

    # context.environment: the launch's own environment, which every process started inherits.
    return [SetEnvironmentVariable(name, value)
            for name, value in localhost_defaults(context.environment).items()]


def _enclave(spec, context):
    """Return the node's SROS2 enclave argument where security is on (config/sros2)."""
    if context.environment.get('ROS_SECURITY_ENABLE', '').lower() != 'true':
        return []
    return ['--enclave', f'/hilresrl/{spec.name}']


def _nodes(context, job: str):
    from launch.actions import ExecuteProcess, Shutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    values = {argument.name: LaunchConfiguration(argument.name).perform(context)
              for argument in arguments(job)}
    directory = tempfile.mkdtemp(prefix='hilresrl-launch-')
    nodes = build_graph(job, values)
    for task, checkpoint, kind in base_policies_to_build(nodes):  # the sim's, built once
        from hilresrl_sim.base_policy_builder import build_base_policy
        build_base_policy(task, checkpoint, kind=kind)
    actions = []
    ending = {spec.full_name for spec in nodes if spec.ends_run}
    for spec in nodes:
        if spec.required:
            on_exit = Shutdown(reason=f'{spec.full_name} exited')
        elif spec.ends_run:
            on_exit = _end_when_all_ended(ending, spec.full_name)
        else:
            on_exit = None
        if spec.command:  # ros2 bag record
            actions.append(ExecuteProcess(cmd=list(spec.command), name=spec.name,
                                          output='screen', on_exit=on_exit))
            continue
        parameters = list(spec.parameter_files)
        inline = write_inline_parameters(spec, directory)
        if inline:
            parameters.append(inline)
        actions.append(Node(
            package=spec.package, executable=spec.executable, name=spec.name,
            namespace=spec.namespace, parameters=parameters,
            remappings=list(spec.remappings),
            arguments=['--ros-args', '--log-level', spec.log_level, *_enclave(spec, context)],
            output='screen',
            on_exit=on_exit))
    return actions


def _end_when_all_ended(ending: set, name: str):
    """Return an on_exit callback: the run ends once every node marked ends_run has ended."""
    def on_exit(event, context):
        from launch.actions import Shutdown

        ending.discard(name)  # the set is shared by the callbacks of one launch
        if not ending:
            return [Shutdown(reason='every cell has finished')]
        return None
    return on_exit
