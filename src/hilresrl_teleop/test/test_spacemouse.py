"""SpaceMouse mapping into the action space (core, no ROS)."""

from hilresrl_teleop.spacemouse import (DeviceReading, MAX_BUTTONS, SpaceMouseConfig,
                                        SpaceMouseMapper)
import numpy as np
import pytest

ZERO = (0.0, 0.0, 0.0)


def mapper(**config) -> SpaceMouseMapper:
    return SpaceMouseMapper(SpaceMouseConfig(**config), 4)


def test_deadband_reads_zero_and_inactive():
    device = mapper(deadband=0.1)
    device.update_twist((0.1, -0.1, 0.05), (0.9, 0.9, 0.9))
    reading = device.reading()
    assert reading.action.tolist() == [0.0, 0.0, 0.0, -1.0]
    assert reading.active_axes.tolist() == [False, False, False, False]
    assert not reading.any_active


def test_rescaling_is_continuous_at_the_deadband_edge():
    device = mapper(deadband=0.2)
    device.update_twist((0.2 + 1e-9, 0.6, -1.0), ZERO)
    reading = device.reading()
    assert reading.action[0] == pytest.approx(1e-9 / 0.8, abs=1e-15)
    assert reading.action[1:3].tolist() == pytest.approx([0.5, -1.0])
    assert reading.active_axes.tolist() == [True, True, True, False]
    assert reading.any_active


def test_scale_sign_clipping_and_channel_mapping():
    device = mapper(deadband=0.0, channels=('angular.z', 'linear.x', '', ''),
                    scales=(-2.0, 0.5, 1.0, 1.0))
    device.update_twist((0.8, 0.0, 0.9), (0.0, 0.0, 0.3))
    reading = device.reading()
    assert reading.action.tolist() == pytest.approx([-0.6, 0.4, 0.0, -1.0])
    device.update_twist(ZERO, (0.0, 0.0, -0.7))
    assert device.reading().action[0] == 1.0  # 1.4 clipped
    assert device.reading().active_axes.tolist() == [True, False, False, False]


def test_gripper_toggles_on_the_rising_edge_only():
    device = mapper()
    device.set_gripper_state(0.7)
    assert device.reading().action[3] == 1.0
    device.update_buttons([1, 0])
    reading = device.reading()
    assert (reading.action[3], reading.gripper_toggled) == (-1.0, True)
    assert reading.active_axes.tolist() == [False, False, False, True]
    assert reading.button_held
    device.update_buttons([1, 0])  # still held: no new edge
    reading = device.reading()
    assert (reading.action[3], reading.gripper_toggled) == (-1.0, False)
    assert not reading.any_active
    device.update_buttons([0, 0])
    device.update_buttons([1, 0])
    assert device.reading().action[3] == 1.0


def test_a_press_between_two_readings_is_not_lost():
    device = mapper()
    device.update_buttons([1, 1])
    device.update_buttons([0, 0])
    reading = device.reading()
    assert reading.gripper_toggled and reading.success_pressed
    assert not reading.button_held


def test_success_press_is_reported_by_one_reading():
    device = mapper()
    device.update_buttons([0, 1])
    assert device.reading().success_pressed
    assert not device.reading().success_pressed
    device.update_buttons([0, 1])
    assert not device.reading().success_pressed


def test_takeover_is_reported_while_held():
    device = mapper(takeover_button=2)
    device.update_buttons([0, 0, 1])
    assert device.reading().takeover_held and device.reading().takeover_held
    device.update_buttons([0, 0, 0])
    assert not device.reading().takeover_held
    assert not mapper().reading().takeover_held  # no takeover button by default


def test_clear_releases_without_a_new_press_on_return():
    device = mapper()
    device.update_twist((0.5, 0.0, 0.0), ZERO)
    device.update_buttons([1, 0])
    device.reading()
    device.clear()
    reading = device.reading()
    assert not reading.any_active and not reading.button_held
    device.update_buttons([1, 0])  # the button was down all along
    assert not device.reading().gripper_toggled


def test_inverse_mapping_round_trip():
    device = mapper(deadband=0.15, channels=('linear.y', 'angular.x', 'linear.z', ''),
                    scales=(-1.0, 0.5, 2.0, 1.0))
    for action in ([0.3, -0.2, 0.9, 0.0], [-1.0, 0.5, -0.01, 0.0], [1e-6, -1e-6, 1e-6, 0.0]):
        linear, angular = device.channels_for_action(action)
        device.update_twist(linear, angular)
        reading = device.reading()
        assert reading.action[:3] == pytest.approx(action[:3], abs=1e-12)
        assert reading.active_axes.tolist() == [True, True, True, False]
    linear, angular = device.channels_for_action([0.0, 0.0, 0.0, 1.0])
    assert linear.tolist() == [0.0, 0.0, 0.0] and angular.tolist() == [0.0, 0.0, 0.0]


def test_idle_reading():
    reading = DeviceReading.idle(4)
    assert reading.action.tolist() == [0.0] * 4 and not reading.any_active
    assert not (reading.takeover_held or reading.gripper_toggled or reading.button_held)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="unknown channel 'linear.w'"):
        SpaceMouseConfig(channels=('linear.w', '', '', ''))
    with pytest.raises(ValueError, match='at most one action axis'):
        SpaceMouseConfig(channels=('linear.x', 'linear.x', '', ''))
    with pytest.raises(ValueError, match='4 channels configured for an action of 7 axes'):
        SpaceMouseMapper(SpaceMouseConfig(), 7)
    with pytest.raises(ValueError, match='driven by the gripper button'):
        mapper(channels=('linear.x', 'linear.y', 'linear.z', 'angular.z'))
    device = mapper()
    with pytest.raises(ValueError, match='non-finite'):
        device.update_twist((np.nan, 0.0, 0.0), ZERO)


def test_absurd_device_input_is_refused_and_changes_nothing():
    device = mapper()
    device.update_twist((0.55, 0, 0), ZERO)
    for linear in ((np.nan, 0, 0), (np.inf, 0, 0), (1e6, 0, 0)):
        with pytest.raises(ValueError):
            device.update_twist(linear, ZERO)
    with pytest.raises(ValueError, match='buttons'):
        device.update_buttons([1] * (MAX_BUTTONS + 1))
    assert device.reading().action[0] == pytest.approx(0.5)
    assert not device.reading().gripper_toggled
