"""Actions to twists and back (core, no ROS)."""

from hilresrl_teleop.command_interface import TwistInterface
import numpy as np
import pytest


def test_translation_and_gripper_axes():
    interface = TwistInterface(['x', 'y', 'z', 'gripper'], linear_speed_scale_mps=0.1)
    twist = interface.to_twist(np.array([1.0, -0.5, 0.25, 1.0]))
    assert twist.linear.tolist() == pytest.approx([0.1, -0.05, 0.025])
    assert twist.angular.tolist() == [0.0, 0.0, 0.0]
    assert twist.gripper == 1.0
    back = interface.to_action(twist.linear, twist.angular, twist.gripper)
    assert back.tolist() == pytest.approx([1.0, -0.5, 0.25, 1.0])


def test_rotation_axes_and_clipping():
    interface = TwistInterface(['x', 'y', 'z', 'roll', 'pitch', 'yaw', 'gripper'], 0.2, 0.5)
    twist = interface.to_twist(np.array([0, 0, 0, 1.0, 0, -1.0, 0]))
    assert twist.angular.tolist() == pytest.approx([0.5, 0.0, -0.5])
    assert interface.to_action((1.0, 0, 0), (0, 0, 0)).tolist()[0] == 1.0  # 5x too fast


def test_unknown_or_repeated_axes_are_refused():
    with pytest.raises(ValueError, match='each must be one of'):
        TwistInterface(['x', 'y', 'q'], 0.1)
    with pytest.raises(ValueError, match='once'):
        TwistInterface(['x', 'x'], 0.1)
    with pytest.raises(ValueError, match='positive'):
        TwistInterface(['x'], 0.0)
