"""The arbiter's parameter table and the core settings it makes: plain values, no ROS graph."""

import subprocess
import sys

from hilresrl_common.parameters import defaults
from hilresrl_teleop.arbiter_parameters import arbiter_settings, PARAMETERS
import pytest


def test_every_parameter_is_declared_once_and_described():
    names = [parameter.name for parameter in PARAMETERS]
    assert len(names) == len(set(names)) == 42
    assert all(parameter.description and parameter.read_only for parameter in PARAMETERS)


def test_the_defaults_make_a_servo_twist_cell_without_box_rate_limit_or_joint_limits():
    settings = arbiter_settings({})
    assert settings.action_names == ('x', 'y', 'z', 'gripper')
    assert settings.command.interface == 'servo_twist' and settings.command.joint_names == []
    assert settings.command.joint_lower is settings.command.joint_upper is None
    assert settings.command.workspace_min is settings.command.workspace_max is None
    limits = settings.safety
    assert limits.workspace_min is limits.workspace_max is limits.max_action_change is None
    assert limits.max_abs_action == 1.0 and limits.gripper_axis == 3
    assert limits.translation_axes == (0, 1, 2)
    assert limits.translation_step_m == pytest.approx(0.1 * 0.1)  # 0.1 m/s for 0.1 s
    assert settings.spacemouse.channels == ('linear.x', 'linear.y', 'linear.z', '')
    assert settings.spacemouse.gripper_axis == 3 and settings.spacemouse.takeover_button == -1
    assert (settings.watchdog_timeout_s, settings.device_timeout_s) == (0.5, 0.5)
    twist = settings.twist.to_twist([1.0, 0.0, -1.0, 1.0])
    assert twist.linear.tolist() == [0.1, 0.0, -0.1] and twist.gripper == 1.0


def test_the_defaults_read_without_ros_are_the_declared_ones():
    values = defaults(PARAMETERS)
    assert values['quiet_period_s'] == 0.5 and values['safety.action_bound'] == 1.0
    assert values['safety.workspace_min'] is None and values['safety.max_action_change'] is None
    assert arbiter_settings(values) == arbiter_settings({})


def test_the_table_needs_neither_rclpy_nor_messages():
    # What a headless benchmark imports to read the defaults.
    code = ('import sys, hilresrl_teleop.arbiter_parameters; '
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('rclpy', 'hilresrl_msgs', 'geometry_msgs', 'std_msgs', 'torch')))")
    imported = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                              check=True, timeout=120)
    assert imported.stdout.strip() == '[]'


def test_a_given_workspace_box_and_rate_limit_reach_the_safety_filter_and_the_targets():
    settings = arbiter_settings({'safety.workspace_min': [-0.5, 0.2, 0.0],
                                 'safety.workspace_max': [0.5, 0.8, 0.6],
                                 'safety.max_action_change': [0.5],
                                 'safety.max_abs_action': [1.0, 1.0, 0.5, 1.0]})
    assert settings.safety.workspace_min == (-0.5, 0.2, 0.0)
    assert settings.safety.workspace_max == (0.5, 0.8, 0.6)
    assert settings.command.workspace_max == (0.5, 0.8, 0.6)  # pose targets stay inside too
    assert settings.safety.max_action_change == 0.5
    assert settings.safety.max_abs_action == (1.0, 1.0, 0.5, 1.0)


def test_one_zero_still_means_not_set_as_the_cell_profiles_say_it():
    settings = arbiter_settings({'safety.max_action_change': [0.0],  # config/cells/sim.yaml
                                 'safety.workspace_min': [0.0], 'safety.workspace_max': [0.0],
                                 'joint_lower': [0.0], 'joint_upper': [0.0]})
    assert settings.safety.max_action_change is None
    assert settings.safety.workspace_min is settings.safety.workspace_max is None
    assert settings.command.joint_lower is settings.command.joint_upper is None


def test_an_empty_channel_keeps_its_axis():
    settings = arbiter_settings({'spacemouse.channels': ['', 'linear.y', 'linear.x', '']})
    assert settings.spacemouse.channels == ('', 'linear.y', 'linear.x', '')
    one_axis = arbiter_settings({'action_names': ['gripper'], 'spacemouse.channels': [''],
                                 'spacemouse.scales': [1.0]})
    assert one_axis.spacemouse.channels == ('',) and one_axis.safety.translation_axes is None


def test_joint_space_actions_have_no_cartesian_axes():
    settings = arbiter_settings({'action_names': ['j1', 'j2'], 'joint_names': ['j1', 'j2'],
                                 'command_interface': 'joint_forward',
                                 'spacemouse.channels': ['', ''],
                                 'spacemouse.scales': [1.0, 1.0],
                                 'joint_lower': [-1.0, -2.0], 'joint_upper': [1.0, 2.0]})
    assert settings.safety.translation_axes is None and settings.safety.gripper_axis is None
    assert settings.command.joint_lower == (-1.0, -2.0)
    with pytest.raises(ValueError, match='the workspace box needs x, y, z action axes'):
        arbiter_settings({'action_names': ['j1', 'j2'], 'joint_names': ['j1', 'j2'],
                          'spacemouse.channels': ['', ''], 'spacemouse.scales': [1.0, 1.0],
                          'safety.workspace_min': [0.0, 0.0, 0.0]})


@pytest.mark.parametrize('name, value, reason', [
    ('control_period_s', -0.1, 'control_period_s=-0.1: must be above 0'),
    ('linear_speed_scale_mps', 0.0, 'linear_speed_scale_mps=0.0: must be above 0'),
    ('safety.action_bound', 0.0, 'safety.action_bound=0.0: must be above 0'),
    ('safety.max_abs_action', [1.0, -1.0], 'safety.max_abs_action=[1.0, -1.0]: must be above'),
    ('safety.max_action_change', [-0.5], 'safety.max_action_change=[-0.5]: must be at least'),
    ('watchdog_timeout_s', float('nan'), 'watchdog_timeout_s=nan: must be at least 0'),
    ('command_interface', 'velocity', "command_interface='velocity': must be one of servo_twist"),
    ('command_frame', 'world', "command_frame='world': must be one of base, tool"),
    ('gripper.interface', 'serial', "gripper.interface='serial': must be one of"),
    ('observation_reliability', 'best-effort', 'must be one of reliable, best_effort'),
    ('action_names', ['x', 'x'], 'each must be one of'),
    ('spacemouse.deadband', 1.0, 'deadband must be in [0, 1)'),
    ('spacemouse.channels', ['linear.w', '', '', ''], "unknown channel 'linear.w'"),
])
def test_a_bad_value_is_refused_naming_it(name, value, reason):
    with pytest.raises(ValueError) as refused:
        arbiter_settings({name: value})
    assert reason in str(refused.value)


def test_every_refused_value_is_named_at_once():
    with pytest.raises(ValueError) as refused:
        arbiter_settings({'control_period_s': 0.0, 'quiet_period_s': -1.0})
    assert 'control_period_s=0.0' in str(refused.value)
    assert 'quiet_period_s=-1.0' in str(refused.value)


def test_a_joint_trajectory_gripper_needs_its_joints():
    with pytest.raises(ValueError, match='needs gripper.joint_names'):
        arbiter_settings({'gripper.interface': 'joint_trajectory'})
