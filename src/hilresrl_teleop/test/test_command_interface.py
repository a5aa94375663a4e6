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


def test_cartesian_targets_integrate_against_the_measured_pose_and_stay_in_the_box():
    from hilresrl_teleop.command_interface import CartesianPoseIntegrator
    from scipy.spatial.transform import Rotation
    interface = TwistInterface(['x', 'y', 'z', 'yaw', 'gripper'], 0.1, 0.5)
    base = CartesianPoseIntegrator(interface, 0.1, 'base', [-1, -1, 0.2], [1, 1, 1])
    quarter_turn = Rotation.from_euler('z', 90, degrees=True).as_quat()
    position, orientation = base.target(np.array([1.0, 0, -0.5, 1.0, 0]), [0.2, 0, 0.5],
                                        quarter_turn)
    assert position.tolist() == pytest.approx([0.21, 0.0, 0.495])  # 0.1 m/s x 0.1 s
    turned = Rotation.from_quat(orientation).as_euler('xyz', degrees=True)
    assert turned[2] == pytest.approx(90 + np.degrees(0.05))  # 0.5 rad/s x 0.1 s about z
    tool = CartesianPoseIntegrator(interface, 0.1, 'tool')
    position, _ = tool.target(np.array([1.0, 0, 0, 0, 0]), [0.2, 0, 0.5], quarter_turn)
    assert position.tolist() == pytest.approx([0.2, 0.01, 0.5])  # tool x is base y here
    low, _ = base.target(np.array([0, 0, -1.0, 0, 0]), [0.0, 0.0, 0.2], [0, 0, 0, 1])
    assert low[2] == pytest.approx(0.2)  # the floor of the box holds
    with pytest.raises(ValueError, match='one of base, tool'):
        CartesianPoseIntegrator(interface, 0.1, 'world')


def test_joint_targets_follow_joint_space_actions_within_the_limits():
    from hilresrl_teleop.command_interface import gripper_position, JointTargetIntegrator
    joints = JointTargetIntegrator(['j1', 'j2', 'gripper'], ['j1', 'j2'], 1.0, 0.1,
                                   lower=[-1.0, -1.0], upper=[1.0, 0.45])
    targets = joints.targets(np.array([0.5, 1.0, 1.0]), {'j2': 0.4, 'j1': 0.0, 'other': 9})
    assert targets.tolist() == pytest.approx([0.05, 0.45])  # j2 stops at its upper limit
    with pytest.raises(ValueError, match='no measured position for joint'):
        joints.targets(np.zeros(3), {'j1': 0.0})
    with pytest.raises(ValueError, match='missing: j3'):
        JointTargetIntegrator(['j1', 'j2'], ['j1', 'j3'], 1.0, 0.1)
    assert gripper_position(-1.0, 0.04, 0.0) == pytest.approx(0.04)  # open
    assert gripper_position(1.0, 0.04, 0.0) == pytest.approx(0.0)  # closed
    assert gripper_position(0.0, 0.04, 0.0) == pytest.approx(0.02)
