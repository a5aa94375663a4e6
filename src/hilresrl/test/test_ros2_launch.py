"""The real launch system and ros2 command line against the suite (where they are installed)."""

import json
import os
import pathlib
import re
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


def test_ros2_launch_runs_a_recorded_eval_to_its_end(launch_process, ros_domain_id, tmp_path):
    from hilresrl_recording.bag import BagReader

    summary_file = tmp_path / 'summary.json'
    launched = launch_process(['ros2', 'launch', 'hilresrl', 'eval.launch.py',
                               'base_policy:=scripted', 'episodes:=2', 'record:=true',
                               f'run_dir:={tmp_path / "run"}', f'summary_file:={summary_file}'])
    assert launched.wait(300) == 0, launched.output
    summary = json.loads(summary_file.read_text())
    assert summary['episodes'] == 2 and summary['modes'] == ['eval']
    # Stopped together with the others by launch, the recorder still has every step.
    published = round(summary['episodes'] * summary['mean_episode_steps'])
    counts = BagReader(tmp_path / 'run' / 'bag').count_messages()
    assert counts['/transitions'] == published, counts
    assert counts['/executed_action'] >= published, counts


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
    # (the learner saves once it has data: asked again until it has)
    saved = _ros2('service', 'call', '/save_checkpoint', 'hilresrl_msgs/srv/SaveCheckpoint',
                  '{path: ""}', until=lambda result: 'success=True' in result.stdout)
    assert 'success=True' in saved.stdout, saved.stdout + saved.stderr
    checkpoint = pathlib.Path(re.search(r"path='([^']+)'", saved.stdout).group(1))
    assert checkpoint.is_dir() and checkpoint.is_relative_to(tmp_path / 'run'), saved.stdout
    assert launched.interrupt(timeout_s=60) == 0, launched.output


STUB_LAUNCH = """
from launch import LaunchDescription
from launch.actions import OpaqueFunction


def _say(context):
    print('STUB {name} ' + repr(sorted(context.launch_configurations.items())), flush=True)


def generate_launch_description():
    return LaunchDescription([OpaqueFunction(function=_say)])
"""
STUB_SPAWNER = '#!/bin/sh\necho "STUB spawner $*"\n'


def _stub_prefix(prefix, launch_files):
    """Make an install prefix with stand-ins for the drivers' launch files and spawner."""
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    for package, name in launch_files:
        (index / package).touch()
        folder = prefix / 'share' / package / 'launch'
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(STUB_LAUNCH.replace('{name}', f'{package}/{name}'))
    (index / 'controller_manager').touch()
    spawner = prefix / 'lib' / 'controller_manager' / 'spawner'
    spawner.parent.mkdir(parents=True)
    spawner.write_text(STUB_SPAWNER)
    spawner.chmod(0o755)


@pytest.mark.parametrize('launch_file, arguments, expected', [
    ('ur_servo_driver.launch.py', ['robot_ip:=192.0.2.1'],
     ['STUB ur_robot_driver/ur_control.launch.py', "('robot_ip', '192.0.2.1')",
      "('initial_joint_controller', 'forward_position_controller')",
      'STUB ur_moveit_config/ur_moveit.launch.py', "('launch_servo', 'true')"]),
    ('franka_cartesian_driver.launch.py', ['robot_ip:=192.0.2.2', 'controller:=my_controller',
                                           'controller_params_file:=/cfg/my_controller.yaml'],
     ['STUB franka_bringup/franka.launch.py', "('load_gripper', 'true')",
      'STUB spawner my_controller --param-file /cfg/my_controller.yaml']),
    ('joint_trajectory_arm_driver.launch.py',
     ['bringup_package:=my_arm_bringup', 'bringup_launch:=my_arm.launch.py'],
     ['STUB my_arm_bringup/my_arm.launch.py', 'STUB spawner arm_controller',
      'STUB spawner hand_controller']),
])
def test_each_cell_driver_launch_file_runs_under_ros2_launch(
        launch_process, ros_domain_id, tmp_path, launch_file, arguments, expected):
    # The drivers (ur_robot_driver, franka_bringup, ros2_control) are not installed here:
    # stand-ins record what the example launch files pass them.
    _stub_prefix(tmp_path, [('ur_robot_driver', 'ur_control.launch.py'),
                            ('ur_moveit_config', 'ur_moveit.launch.py'),
                            ('franka_bringup', 'franka.launch.py'),
                            ('my_arm_bringup', 'my_arm.launch.py')])
    environment = dict(os.environ,
                       AMENT_PREFIX_PATH=f'{tmp_path}:{os.environ["AMENT_PREFIX_PATH"]}')
    launched = launch_process(['ros2', 'launch', 'hilresrl', launch_file, *arguments],
                              env=environment)
    assert launched.wait(120) == 0, launched.output
    for text in expected:
        assert text in launched.output, launched.output
