"""The real launch system and ros2 command line against the suite (where they are installed)."""

import json
import shutil
import subprocess
import time

from hilresrl_msgs.msg import LearnerStatus
import pytest

# launch_ros first: PyPI has an unrelated package named "launch".
pytest.importorskip('launch_ros', reason='the ROS 2 launch system is not installed here (a ROS 2 '
                                         'distribution has it; scripts/setup.sh installs it from '
                                         '../shared/ros2-tools where that exists)')
if shutil.which('ros2') is None:
    pytest.skip('no ros2 command line here', allow_module_level=True)

# (the ros2 verbs are run without the ros2 daemon: one would outlive the test)


def _ros2(*arguments, until=lambda result: result.returncode == 0, deadline_s=120.0):
    """Run a ros2 verb until its answer holds (a verb's own node discovers the graph anew)."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = subprocess.run(['ros2', *arguments], capture_output=True, text=True,
                                timeout=deadline_s)
        if until(result) or time.monotonic() > deadline:
            return result


def test_ros2_launch_runs_an_eval_to_its_end(launch_process, ros_domain_id, tmp_path):
    summary_file = tmp_path / 'summary.json'
    launched = launch_process(['ros2', 'launch', 'hilresrl', 'eval.launch.py',
                               'base_policy:=scripted', 'episodes:=2',
                               f'summary_file:={summary_file}'])
    assert launched.wait(300) == 0, launched.output
    summary = json.loads(summary_file.read_text())
    assert summary['episodes'] == 2 and summary['modes'] == ['eval']


def test_ros2_launch_ends_a_two_robot_eval_when_both_cells_have_finished(
        launch_process, ros_domain_id, tmp_path):
    # Each cell's episode manager ends its own cell; the run ends with the last of them.
    launched = launch_process(['ros2', 'launch', 'hilresrl', 'eval.launch.py', 'robots:=2',
                               'base_policy:=scripted', 'episodes:=2'])
    assert launched.wait(300) == 0, launched.output
    # (without the launch file's exit handlers the graph runs on with its cells idle, and this
    # wait fails)
    assert launched.output.count('episode 2/2 eval') == 2, launched.output


def test_the_ros2_command_line_answers_from_a_graph_ros2_launch_started(
        probe, launch_process, tmp_path):
    statuses = []
    probe.node.create_subscription(LearnerStatus, '/learner_status', statuses.append, 10)
    launched = launch_process(['ros2', 'launch', 'hilresrl', 'train.launch.py',
                               'base_policy:=scripted', f'run_dir:={tmp_path / "run"}'])
    probe.wait_for(lambda: statuses, 180, 'the learner')
    echoed = _ros2('topic', 'echo', '--once', '--no-daemon', '/learner_status',
                   'hilresrl_msgs/msg/LearnerStatus')
    assert echoed.returncode == 0 and 'env_steps:' in echoed.stdout, echoed.stderr
    scale = _ros2('param', 'get', '--no-daemon', '/residual_policy', 'residual_scale')
    assert scale.returncode == 0 and 'Double values are' in scale.stdout, scale.stderr
    services = _ros2('service', 'list', '--no-daemon',
                     until=lambda result: '/reset' in result.stdout.split())
    assert '/reset' in services.stdout.split(), services.stdout
    assert launched.interrupt(timeout_s=60) == 0, launched.output
    assert (tmp_path / 'run').is_dir()
