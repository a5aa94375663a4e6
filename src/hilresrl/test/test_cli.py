"""hilresrl launch: the suite's real node processes over DDS, started, supervised and stopped."""

import io
import json
import os
import pathlib
import re
import signal
import subprocess

from hilresrl import cli
from hilresrl.graph import NodeSpec
from hilresrl.launch_runner import NodeExits
from hilresrl_common.qos import COMMAND_QOS, LATCHED_QOS, TRANSITIONS_QOS
from hilresrl_msgs.msg import (EpisodeEvent, ExecutedAction, LearnerStatus, ProposedAction,
                               RecorderStatus, Transition)
import numpy as np
import pytest
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader as RosbagsReader
from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from std_msgs.msg import Empty, String
import yaml

# The probe keeps every executed action, however far its spinning falls behind the cell.
RECEIVE_ALL_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL,
                             reliability=ReliabilityPolicy.RELIABLE)


def _hilresrl(*arguments):
    return ['hilresrl', 'launch', *arguments]


def _processes(*arguments):
    """Return hilresrl launch under its own process launcher, whose output these tests read."""
    return _hilresrl('--launcher', 'processes', *arguments)


UNDER_LAUNCH = pytest.mark.skipif(
    not cli.launch_system_available(),
    reason='the ROS 2 launch system (launch_ros) is not installed here: hilresrl launch runs '
           'its own process launcher (a ROS 2 distribution has launch; scripts/setup.sh '
           'installs it from ../shared/ros2-tools where that exists)')
# The same graph under each launcher: its own processes, or by default the launch system.
LAUNCHERS = ['processes', pytest.param('launch', marks=UNDER_LAUNCH)]


def _command(launcher, *arguments):
    """Return hilresrl launch under a launcher: processes, or launch (the default here)."""
    return _processes(*arguments) if launcher == 'processes' else _hilresrl(*arguments)


def _under_launch(output):
    """Return whether launch ran the graph: its own lines and process names, not hilresrl's."""
    return ('[INFO] [launch]: ' in output and re.search(r'\[episode_manager-\d+\]', output)
            is not None and '[hilresrl] started ' not in output)


def _pid(launched, launcher, full_name, executable):
    """Return the pid of a node as its launcher said it started it, or None before that."""
    pattern = (rf'\[hilresrl\] started {re.escape(full_name)} \(.*pid (\d+)\)'
               if launcher == 'processes' else
               rf'\[INFO\] \[{re.escape(executable)}-\d+\]: process started with pid \[(\d+)\]')
    found = re.search(pattern, launched.output)
    return int(found.group(1)) if found else None


def _running(text):
    """Return the pids of this machine's processes whose command line holds ``text``."""
    found = []
    for folder in pathlib.Path('/proc').iterdir():
        try:
            if folder.name.isdigit() and text.encode() in (folder / 'cmdline').read_bytes():
                found.append(int(folder.name))
        except OSError:  # it ended meanwhile
            pass
    return found


def _last_command_is_a_stop(probe, twists):
    """Return whether the last twist the robot was sent is a stop (zero linear velocity)."""
    # A stopping arbiter waits for acknowledgements before it exits: what it sent is in the
    # probe's queue; take it until the queue is empty.
    quiet_spins = 0
    while quiet_spins < 3:
        count = len(twists)
        probe.spin_once()
        quiet_spins = quiet_spins + 1 if len(twists) == count else 0
    last = twists[-1].twist
    return (last.linear.x, last.linear.y, last.linear.z) == (0.0, 0.0, 0.0)


def test_unknown_argument_names_the_valid_ones():
    result = subprocess.run(_hilresrl('train', 'celll:=sim'), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert 'unknown argument celll' in result.stderr
    assert 'valid arguments: actor_mode, bag_storage, base_checkpoint, base_policy, ' in \
        result.stderr


def test_show_args_lists_arguments_with_defaults():
    result = subprocess.run(_hilresrl('eval', '--show-args'), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert 'cell:' in result.stdout and "default: 'sim'" in result.stdout
    assert 'episodes:' in result.stdout and "default: '50'" in result.stdout


def test_eval_runs_episodes_and_an_untrained_residual_executes_the_base_action(
        probe, launch_process, tmp_path):
    executed = []
    probe.node.create_subscription(ExecutedAction, '/cell5/executed_action', executed.append,
                                   RECEIVE_ALL_QOS)
    summary_file = tmp_path / 'summary.json'
    # Lockstep episodes end in a second: the first starts only when this probe has seen the
    # arbiter and says so on probe_ready, so that it receives every step.
    params_file = tmp_path / 'wait_for_probe.yaml'
    params_file.write_text('/**/episode_manager:\n  ros__parameters:\n    wait_for_topics: '
                           '[base_action_chunk, proposed_action, executed_action, '
                           'probe_ready]\n')
    launched = launch_process(_processes('eval', 'namespace:=cell5', 'base_policy:=scripted',
                                         'episodes:=2', f'summary_file:={summary_file}',
                                         f'params_file:={params_file}'))
    probe.wait_for(lambda: probe.node.count_publishers('/cell5/executed_action') == 1, 120,
                   'the arbiter')
    probe.node.create_publisher(Empty, '/cell5/probe_ready', COMMAND_QOS)
    probe.wait_for(lambda: launched.process.poll() is not None, 180, 'the two episodes')
    assert launched.wait() == 0, launched.output
    probe.wait_for(lambda: len(executed) >= 40, 10, 'the executed actions')
    steps = [e for e in executed if not e.held]
    assert len(steps) >= 40 and all(e.weights_version == 0 for e in steps)
    for record in steps:  # zero residual, no person: the robot does what the base policy says
        assert np.array_equal(np.asarray(record.executed_action),
                              np.clip(np.asarray(record.base_action), -1.0, 1.0))
        assert not record.intervened and not np.any(np.asarray(record.residual))
    summary = json.loads(summary_file.read_text())
    assert summary['episodes'] == 2 and summary['intervention_rate'] == 0.0
    assert summary['modes'] == ['eval'] and 0.0 <= summary['success_rate'] <= 1.0
    assert 'episode 2/2 eval' in launched.output and '[hilresrl] all nodes stopped' in \
        launched.output


def test_a_recorded_eval_run_holds_every_transition_as_published(
        probe, launch_process, tmp_path):
    from hilresrl_recording.bag import BagReader
    from rclpy.serialization import deserialize_message
    transitions = []
    probe.node.create_subscription(Transition, '/cell6/transitions', transitions.append,
                                   RECEIVE_ALL_QOS)
    ends = []
    probe.node.create_subscription(EpisodeEvent, '/cell6/episode_events',
                                   lambda event: ends.append(event)
                                   if event.event == EpisodeEvent.EPISODE_END else None,
                                   RECEIVE_ALL_QOS)
    params_file = tmp_path / 'wait_for_probe.yaml'
    params_file.write_text('/**/episode_manager:\n  ros__parameters:\n    wait_for_topics: '
                           '[base_action_chunk, proposed_action, executed_action, '
                           'probe_ready]\n')
    summary_file = tmp_path / 'summary.json'
    launched = launch_process(_processes('eval', 'namespace:=cell6', 'base_policy:=scripted',
                                         'episodes:=2', 'record:=true',
                                         f'run_dir:={tmp_path / "run"}',
                                         f'summary_file:={summary_file}',
                                         f'params_file:={params_file}'))
    # A person's command, said before the run (latched, as hilresrl say sends it).
    said = probe.node.create_publisher(String, '/cell6/refinement_command', LATCHED_QOS)
    said.publish(String(data='move left 2 cm'))
    probe.wait_for(lambda: probe.node.count_publishers('/cell6/transitions') == 1, 120,
                   'the episode manager')
    probe.wait_for(lambda: said.get_subscription_count() == 2, 60,
                   'the manager and the recorder on refinement_command')
    recorder_states = []
    probe.node.create_subscription(RecorderStatus, '/cell6/recorder_status',
                                   lambda status: recorder_states.append(status.state),
                                   LATCHED_QOS)
    probe.wait_for(lambda: 'recording' in recorder_states, 60, 'the recorder to record')
    # The recorder is held up (as a loaded machine may hold it) while both episodes run: far
    # more messages come than its DDS queue takes, and what it dropped must be repaired from
    # the publishers' histories when it runs again.
    recorder_pid = int(re.search(r'started /cell6/recorder \(.*pid (\d+)\)',
                                 launched.output).group(1))
    os.kill(recorder_pid, signal.SIGSTOP)
    try:
        probe.node.create_publisher(Empty, '/cell6/probe_ready', COMMAND_QOS)
        probe.wait_for(lambda: len(ends) == 2, 180, 'the two episodes')
    finally:
        os.kill(recorder_pid, signal.SIGCONT)
    probe.wait_for(lambda: launched.process.poll() is not None, 60, 'the run to end')
    assert launched.wait() == 0, launched.output

    reader = BagReader(tmp_path / 'run' / 'bag')
    assert reader.problems == []
    counts = reader.count_messages()
    recorded = {message.sequence: message for message in (
        deserialize_message(data, Transition)
        for _, _, data in reader.messages(['/cell6/transitions']))}
    # Every transition the manager published (its sequence counts them) is in the bag...
    summary = json.loads(summary_file.read_text())
    published = round(summary['episodes'] * summary['mean_episode_steps'])
    assert sorted(recorded) == list(range(1, published + 1)) and published > 20
    # ...with the values a subscriber received (this probe may miss the very first ones on a
    # loaded machine, before discovery has matched it: the recorder was waited for, it not).
    assert len(transitions) >= published - 5
    assert all(recorded[message.sequence] == message for message in transitions)
    with RosbagsReader(tmp_path / 'run' / 'bag') as rosbags_reader:  # an independent reader
        # (a topic subscribed but never published, as correction here, has 0 messages)
        assert {c.topic: c.msgcount for c in rosbags_reader.connections
                if c.msgcount} == {topic: n for topic, n in counts.items() if n}
        connection = next(c for c in rosbags_reader.connections
                          if c.topic == '/cell6/transitions')
        store = get_typestore(Stores.ROS2_KILTED)
        store.register(get_types_from_msg(connection.msgdef.data, connection.msgtype))
        decoded = [store.deserialize_cdr(raw, connection.msgtype)
                   for _, _, raw in rosbags_reader.messages(connections=[connection])]
    assert [(d.sequence, d.episode_id, d.step, d.reward) for d in decoded] == [
        (t.sequence, t.episode_id, t.step, t.reward) for t in recorded.values()]
    assert all(np.array_equal(d.executed_action, np.asarray(t.executed_action, np.float32))
               for d, t in zip(decoded, recorded.values()))
    recorded_events = [deserialize_message(data, EpisodeEvent).event
                       for _, _, data in reader.messages(['/cell6/episode_events'])]
    assert recorded_events.count(EpisodeEvent.EPISODE_START) == 2  # as the manager published
    assert recorded_events.count(EpisodeEvent.EPISODE_END) == 2
    for topic in ('executed_action', 'proposed_action', 'task_state', 'ee_pose',
                  'joint_states', 'base_action_chunk', 'intervention_state'):
        assert counts[f'/cell6/{topic}'] >= published, topic
    assert counts['/cell6/task_instruction'] == 1  # latched before the recorder came
    # The command is in the bag, and in the transitions it was in force for.
    assert counts['/cell6/refinement_command'] == 1
    second = [t for t in recorded.values() if t.episode_id == 2]
    assert second and all(t.refinement_command == 'move left 2 cm' for t in second)
    run_info = yaml.safe_load((tmp_path / 'run' / 'bag' / 'hilresrl_run.yaml').read_text())
    assert run_info['base_policy'] == 'scripted' and run_info['job'] == 'eval'
    assert run_info['received']['/cell6/transitions'] == published
    assert run_info['node_parameters']['/cell6/episode_manager']['episodes'] == 2
    # Held up, the recorder may lose only robot commands, whose publishers keep no backlog on
    # purpose (a controller must never be repaired stale commands; executed_action holds them),
    # and superseded values of the latched mode; it says how many.
    lost = run_info.get('lost', {})
    assert set(lost) <= {'/cell6/servo/delta_twist_cmds', '/cell6/gripper/command',
                         '/cell6/mode'}, lost
    assert f'{sum(lost.values())} lost' in launched.output


def test_train_graph_feeds_the_learner_and_the_operator_steps_in(
        probe, launch_process, tmp_path):
    from hilresrl_policy.bc import BCConfig, BCNetwork, save_checkpoint
    untrained = BCNetwork(BCConfig(state_dim=39, action_dim=4, hidden_sizes=(8,),
                                   task='pick-place-v3'))
    untrained.set_normalization(np.random.default_rng(0).normal(size=(10, 39)))
    save_checkpoint(tmp_path / 'untrained', untrained)

    statuses, transitions = [], []
    probe.node.create_subscription(LearnerStatus, '/cell7/learner_status', statuses.append,
                                   LATCHED_QOS)
    probe.node.create_subscription(Transition, '/cell7/transitions', transitions.append,
                                   TRANSITIONS_QOS)
    launched = launch_process(_processes(
        'train', 'namespace:=cell7', 'robot_id:=robot7', 'base_policy:=bc',
        f'base_checkpoint:={tmp_path / "untrained"}', 'operator:=true'))
    probe.wait_for(lambda: any(t.intervened for t in transitions)
                   or launched.process.poll() is not None, 180,
                   'a transition the simulated operator corrected')
    assert launched.process.poll() is None, launched.output
    # The cell goes on meanwhile: the learner must catch up with this. It counts training
    # steps only: evaluation and held steps are recorded, never learned from.
    seen = sum(1 for t in list(transitions) if not t.evaluation and not t.held)
    probe.wait_for(lambda: statuses and statuses[-1].env_steps >= seen, 30,
                   'the learner to count the transitions')
    corrected = next(t for t in transitions if t.intervened)
    assert corrected.robot_id == 'robot7' and len(corrected.human_action) == 4
    assert np.allclose(corrected.executed_action, corrected.human_action, atol=1e-6)
    assert statuses[-1].transitions_lost == 0
    assert launched.interrupt(timeout_s=60) == 0, launched.output
    assert '[hilresrl] all nodes stopped' in launched.output
    assert '[simulated_operator] ' in launched.output


@pytest.mark.parametrize('launcher', LAUNCHERS)
def test_a_dying_node_stops_the_graph_and_is_named(probe, launch_process, launcher):
    from geometry_msgs.msg import TwistStamped
    twists = []  # the witness: every command the robot was sent
    probe.node.create_subscription(TwistStamped, '/cell8/servo/delta_twist_cmds', twists.append,
                                   RECEIVE_ALL_QOS)
    launched = launch_process(_command(launcher, 'eval', 'namespace:=cell8',
                                       'base_policy:=scripted', 'episodes:=0'))
    probe.wait_for(lambda: _pid(launched, launcher, '/cell8/residual_policy',
                                'residual_policy_node') or launched.process.poll() is not None,
                   60, 'the residual node')
    probe.wait_for(lambda: any(t.twist.linear.x or t.twist.linear.y or t.twist.linear.z
                               for t in twists), 120, 'the robot to move')
    os.kill(_pid(launched, launcher, '/cell8/residual_policy', 'residual_policy_node'),
            signal.SIGKILL)
    assert launched.wait(timeout_s=60) == 1, launched.output
    assert ('[hilresrl] node /cell8/residual_policy (hilresrl_policy/residual_policy_node) died '
            '(exit code -9); stopping the graph') in launched.output
    assert _under_launch(launched.output) == (launcher == 'launch'), launched.output
    # The graph went down with the robot at rest: the arbiter's last command is a stop.
    assert _last_command_is_a_stop(probe, twists), launched.output


@pytest.mark.parametrize('argument,message', [
    ('operator:=maybe', 'operator:=maybe is not one of true, false'),
    ('seed:=one', 'seed:=one is not an integer'),
    ('cell:=ur5', 'cell:=ur5 is not a known cell profile; known: franka_cartesian, '),
])
def test_bad_arguments_are_refused_before_anything_starts(argument, message):
    result = subprocess.run(_hilresrl('eval', argument), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and message in result.stderr


def test_two_robots_train_one_learner_and_one_robot_can_die(probe, launch_process, tmp_path):
    params_file = tmp_path / 'small.yaml'
    params_file.write_text(
        '/**:\n  ros__parameters:\n    hidden_sizes: [32]\n'
        '/**/learner:\n  ros__parameters:\n    critic.hidden_sizes: [32]\n    batch_size: 32\n'
        '    min_steps: 64\n    warmup_updates: 20\n    weights_period_updates: 20\n'
        '    weights_period_s: 1.0\n    status_period_s: 0.5\n    tensorboard: false\n')
    statuses = []
    probe.node.create_subscription(LearnerStatus, '/learner_status', statuses.append,
                                   LATCHED_QOS)
    versions = {'robot1': [], 'robot2': []}
    sequences = {'robot1': [], 'robot2': []}  # (robot_id, sequence) of each robot's transitions
    for robot, seen in versions.items():
        probe.node.create_subscription(
            ProposedAction, f'/{robot}/proposed_action',
            lambda message, seen=seen: seen.append(message.weights_version), COMMAND_QOS)
        probe.node.create_subscription(
            Transition, f'/{robot}/transitions',
            lambda message, robot=robot: sequences[robot].append(
                (message.robot_id, message.sequence)), RECEIVE_ALL_QOS)
    launched = launch_process(_processes('train', 'robots:=2', 'base_policy:=scripted',
                                         f'run_dir:={tmp_path / "run"}',
                                         f'params_file:={params_file}'))
    probe.wait_for(lambda: statuses and statuses[-1].env_steps >= 400
                   and versions['robot1'] and versions['robot1'][-1] >= 1
                   and versions['robot2'] and versions['robot2'][-1] >= 1, 240,
                   'both robots on trained weights')
    assert statuses[-1].transitions_lost == 0, launched.output  # per robot: no gaps
    probe.wait_for(lambda: all(len(seen) >= 100 for seen in sequences.values()), 60,
                   'transitions of both robots')
    for robot, seen in sequences.items():  # both cells send, each with its own sequence
        assert {robot_id for robot_id, _ in seen} == {robot}
        numbers = [sequence for _, sequence in seen]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), robot
    robot1 = [int(line.rsplit('pid ', 1)[1].rstrip(')')) for line in launched.lines
              if 'started /robot1/' in line]
    assert len(robot1) == 6
    for pid in robot1:  # the whole first cell dies at once
        os.kill(pid, signal.SIGKILL)
    probe.wait_for(lambda: 'every cell' in launched.output or
                   launched.output.count('/robot1/') >= 12, 60, 'the launcher to notice')
    killed_at = statuses[-1]
    probe.wait_for(lambda: statuses[-1].env_steps >= killed_at.env_steps + 200
                   and statuses[-1].updates > killed_at.updates, 120,
                   'the second robot training on')
    assert launched.process.poll() is None, launched.output
    assert 'every cell has finished' not in launched.output
    assert launched.interrupt(timeout_s=60) == 0, launched.output


# hilresrl launch under the ROS 2 launch system: the launch files' own description, in-process.

@UNDER_LAUNCH
def test_by_default_an_eval_runs_under_the_launch_system_to_its_end(
        ros_domain_id, launch_process, tmp_path):
    summary_file = tmp_path / 'summary.json'
    launched = launch_process(_hilresrl('eval', 'namespace:=cell10', 'base_policy:=scripted',
                                        'episodes:=2', f'summary_file:={summary_file}'))
    assert launched.wait(300) == 0, launched.output
    assert _under_launch(launched.output), launched.output
    summary = json.loads(summary_file.read_text())
    assert summary['episodes'] == 2 and summary['modes'] == ['eval']
    assert ('[hilresrl] node /cell10/episode_manager (hilresrl_episodes/episode_manager) '
            'finished; stopping the graph') in launched.output
    assert launched.lines[-1] == '[hilresrl] all nodes stopped', launched.output


@UNDER_LAUNCH
def test_under_launch_a_two_robot_eval_ends_when_both_cells_have_finished(
        ros_domain_id, launch_process):
    launched = launch_process(_hilresrl('eval', 'robots:=2', 'base_policy:=scripted',
                                        'episodes:=2'))
    assert launched.wait(300) == 0, launched.output
    assert _under_launch(launched.output), launched.output
    assert launched.output.count('episode 2/2 eval') == 2, launched.output
    assert '[hilresrl] every cell has finished; stopping the graph' in launched.output
    assert launched.lines[-1] == '[hilresrl] all nodes stopped', launched.output


@UNDER_LAUNCH
def test_under_launch_sigterm_stops_the_graph_as_ctrl_c_does(probe, launch_process):
    # Launch itself would end at once and leave the nodes running, the robot still commanded.
    from geometry_msgs.msg import TwistStamped
    twists = []
    probe.node.create_subscription(TwistStamped, '/cell11/servo/delta_twist_cmds',
                                   twists.append, RECEIVE_ALL_QOS)
    launched = launch_process(_hilresrl('eval', 'namespace:=cell11', 'base_policy:=scripted',
                                        'episodes:=0'))
    probe.wait_for(lambda: any(t.twist.linear.x or t.twist.linear.y or t.twist.linear.z
                               for t in twists) or launched.process.poll() is not None, 120,
                   'the robot to move')
    assert launched.process.poll() is None, launched.output
    launched.process.send_signal(signal.SIGTERM)
    assert launched.wait(timeout_s=60) == 0, launched.output
    assert _under_launch(launched.output), launched.output
    assert launched.lines[-1] == '[hilresrl] all nodes stopped', launched.output
    assert _running('__ns:=/cell11') == []
    assert _last_command_is_a_stop(probe, twists), launched.output


def test_launcher_launch_is_refused_where_launch_ros_is_missing(monkeypatch, capsys):
    monkeypatch.setattr(cli, 'launch_system_available', lambda: False)
    assert cli.main(['launch', '--launcher', 'launch', 'eval']) == 2
    assert ('--launcher launch: the ROS 2 launch system is not installed here'
            in capsys.readouterr().err)


@pytest.mark.parametrize('available, launcher, runs', [
    (True, 'auto', 'launch'), (False, 'auto', 'processes'), (True, 'processes', 'processes'),
    (True, 'launch', 'launch')])
def test_each_launcher_runs_where_chosen(available, launcher, runs, monkeypatch):
    ran = []

    class Recording:
        """GraphProcesses standing in."""

        def __init__(self, nodes):
            self.nodes = nodes

        def run(self):
            ran.append(('processes', [node.full_name for node in self.nodes][-1]))
            return 0

    monkeypatch.setattr(cli, 'launch_system_available', lambda: available)
    monkeypatch.setattr(cli, 'apply_localhost_defaults', lambda environment: {})
    monkeypatch.setattr(cli, 'base_policies_to_build', lambda nodes: [])
    monkeypatch.setattr(cli, 'GraphProcesses', Recording)
    monkeypatch.setattr(cli, 'run_under_launch',
                        lambda job, assignments: ran.append(('launch', job, assignments)) or 0)
    assert cli.main(['launch', '--launcher', launcher, 'eval', 'namespace:=cell12']) == 0
    assert ran == [('launch', 'eval', ['namespace:=cell12']) if runs == 'launch' else
                   ('processes', '/cell12/episode_manager')]


def _spec(name, required=True):
    return NodeSpec(package='pkg', executable=f'{name}_node', name=name, namespace='/cell',
                    required=required)


# What the nodes of a launch do, in order: (name, required, exit code), or 'shutdown' (Ctrl-C,
# SIGTERM, the last cell); then launch's own status, the exit status and the lines said.
@pytest.mark.parametrize('happened, launch_status, status, said', [
    (['shutdown', ('a', True, 0), ('b', True, -2), ('c', False, -15)], 0, 0,
     ['all nodes stopped']),
    ([('a', True, 0), ('b', True, 0)], 0, 0,
     ['node /cell/a (pkg/a_node) finished; stopping the graph', 'all nodes stopped']),
    ([('a', True, -9), ('b', True, -2)], 0, 1,
     ['node /cell/a (pkg/a_node) died (exit code -9); stopping the graph',
      'all nodes stopped']),
    ([('a', True, 3), ('b', True, 0)], 0, 3,
     ['node /cell/a (pkg/a_node) died (exit code 3); stopping the graph', 'all nodes stopped']),
    ([('a', True, 0), ('b', True, 1), ('c', False, -9)], 0, 1,
     ['node /cell/a (pkg/a_node) finished; stopping the graph',
      'node /cell/b exited with code 1 while stopping',
      'node /cell/c exited with code -9 while stopping']),
    ([('c', False, 1), 'shutdown', ('a', True, 0)], 0, 0, ['all nodes stopped']),
    (['shutdown', ('a', True, 0)], 1, 1, ['all nodes stopped']),
])
def test_node_exits_give_the_process_launchers_exit_status(happened, launch_status, status,
                                                           said):
    output = io.StringIO()
    exits = NodeExits(output)
    for event in happened:
        if event == 'shutdown':
            exits.shutdown_asked(None, None)
        else:
            exits.node_exited(_spec(event[0], event[1]), event[2])
    assert exits.status(launch_status) == status
    assert output.getvalue().splitlines() == [f'[hilresrl] {line}' for line in said]
