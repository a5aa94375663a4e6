"""hilresrl launch: real node processes over DDS, started, supervised and stopped by the CLI."""

import os
import signal
import subprocess

from hilresrl_msgs.msg import EpisodeOutcome, LearnerStatus, Mode
from hilresrl_msgs.srv import EndEpisode, StartEpisode
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _hilresrl(*arguments):
    return ['hilresrl', 'launch', *arguments]


def test_unknown_argument_names_the_valid_ones():
    result = subprocess.run(_hilresrl('train', 'celll:=sim'), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert 'unknown argument celll' in result.stderr
    assert 'valid arguments: cell, log_level, namespace, params_file, robot_id' in result.stderr


def test_show_args_lists_arguments_with_defaults():
    result = subprocess.run(_hilresrl('eval', '--show-args'), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert 'cell:' in result.stdout and "default: 'sim'" in result.stdout


def test_launched_nodes_exchange_messages_and_stop_on_ctrl_c(probe, launch_process):
    launched = launch_process(_hilresrl('train', 'namespace:=cell7', 'robot_id:=robot7'))
    statuses = []
    probe.node.create_subscription(LearnerStatus, '/cell7/learner_status', statuses.append,
                                   LATCHED)
    probe.wait_for(lambda: statuses, 60, 'the learner status')

    # episode_manager (one process) publishes the episode's end; the learner (another
    # process) counts it, and says so in its status.
    started = probe.call(StartEpisode, '/cell7/start_episode',
                         StartEpisode.Request(mode=Mode(value=Mode.TRAIN)))
    assert started.success and started.episode_id == 1
    ended = probe.call(EndEpisode, '/cell7/end_episode',
                       EndEpisode.Request(outcome=EpisodeOutcome(value=EpisodeOutcome.SUCCESS)))
    assert ended.success and ended.episode_id == 1
    probe.wait_for(lambda: statuses[-1].train_episodes == 1, 30, 'the episode at the learner')
    assert statuses[-1].train_success_rate == 1.0

    assert launched.interrupt(timeout_s=60) == 0
    output = launched.output
    assert '[episode_manager] ' in output and 'cell robot7: mode TRAIN' in output
    assert 'started /cell7/learner (hilresrl_learner/learner_node' in output
    assert '[hilresrl] all nodes stopped' in output


def test_a_dying_node_stops_the_graph_and_is_named(probe, launch_process):
    launched = launch_process(_hilresrl('train', 'namespace:=cell8'))
    probe.wait_for(lambda: launched.output.count('[hilresrl] started') == 2, 60, 'both nodes')
    learner_pid = int(next(line for line in launched.lines if 'started /cell8/learner' in line)
                      .rsplit('pid ', 1)[1].rstrip(')'))
    os.kill(learner_pid, signal.SIGKILL)
    assert launched.wait(timeout_s=60) == 1
    assert ('node /cell8/learner (hilresrl_learner/learner_node) died (exit code -9)'
            in launched.output)
