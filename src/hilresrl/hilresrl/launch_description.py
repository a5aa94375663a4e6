"""
Turn the declared node graph into a launch description (needs ``launch`` and ``launch_ros``).

The launch files in launch/ are one line each on top of this, so that ``ros2 launch`` and
``hilresrl launch`` start exactly the graph that graph.py declares, with DDS discovery kept on
this machine unless the user chose otherwise (hilresrl.discovery).
"""

import tempfile

from .discovery import localhost_defaults
from .graph import (arguments, base_policies_to_build, build_graph, demonstrations_to_record,
                    write_inline_parameters)


def generate_for(job: str, exits=None):
    """
    Return the LaunchDescription of a job: its arguments, then its nodes.

    ``exits``, where given, is told of every node's exit (hilresrl.launch_runner.NodeExits):
    hilresrl launch turns what it hears into its exit status.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    declared = [DeclareLaunchArgument(argument.name, default_value=argument.default,
                                      description=argument.description,
                                      **({'choices': list(argument.choices)}
                                         if argument.choices else {}))
                for argument in arguments(job)]
    return LaunchDescription(declared + [OpaqueFunction(function=discovery_defaults),
                                         OpaqueFunction(function=_nodes, args=[job, exits])])


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


def _nodes(context, job: str, exits=None):
    from launch.actions import ExecuteProcess
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    values = {argument.name: LaunchConfiguration(argument.name).perform(context)
              for argument in arguments(job)}
    directory = tempfile.mkdtemp(prefix='hilresrl-launch-')
    nodes = build_graph(job, values)
    for task, checkpoint, kind in base_policies_to_build(nodes):  # the sim's, built once
        from hilresrl_sim.base_policy_builder import build_base_policy
        build_base_policy(task, checkpoint, kind=kind)
    for given, wanted, cameras, image_size in demonstrations_to_record(nodes):
        from hilresrl_sim.demos import record_with_sensors  # a pixel learner's, once
        record_with_sensors(given, wanted, cameras, image_size)
    actions = []
    ending = {spec.full_name for spec in nodes if spec.ends_run}
    for spec in nodes:
        on_exit = _on_exit(spec, ending, exits)
        if spec.command:  # ros2 bag record
            actions.append(ExecuteProcess(cmd=list(spec.command), name=spec.name,
                                          output='screen', on_exit=on_exit))
            continue
        parameters = list(spec.parameter_files)
        inline = write_inline_parameters(spec, directory)
        if inline:
            parameters.append(inline)
        actions.append(Node(
            # A program of another environment (LeRobot's base-policy node) is run by its path.
            package=None if spec.program else spec.package,
            executable=spec.program or spec.executable,
            # The nodes of a process of several keep their own names.
            name=None if spec.hosted else spec.name,
            namespace=spec.namespace, parameters=parameters,
            remappings=list(spec.remappings),
            arguments=['--ros-args', '--log-level', spec.log_level, *_enclave(spec, context)],
            output='screen',
            on_exit=on_exit))
    return actions


def _on_exit(spec, ending: set, exits):
    """
    Return a node's on_exit callback, or None where it has nothing to do.

    It tells ``exits``; a required node ends the run, and so does the last of the nodes marked
    ends_run to end (``ending``: their names, shared by the callbacks of one launch).
    """
    if exits is None and not spec.required and not spec.ends_run:
        return None

    def on_exit(event, context):
        from launch.actions import Shutdown

        # Once the graph is stopping, a node's exit ends nothing more.
        running = exits is None or not exits.stopping
        if exits is not None:
            exits.node_exited(spec, event.returncode)
        if not running:
            return None
        if spec.required:
            return [Shutdown(reason=f'{spec.full_name} exited')]
        if spec.ends_run:
            ending.discard(spec.full_name)
            if not ending:
                if exits is not None:
                    exits.say('every cell has finished; stopping the graph')
                return [Shutdown(reason='every cell has finished')]
        return None
    return on_exit
