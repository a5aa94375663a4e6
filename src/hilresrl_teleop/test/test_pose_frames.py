"""The pose moved into the commands' frame (no ROS)."""

import math

from hilresrl_teleop.pose_frames import pose_in_frame, same_frame
import numpy as np
import pytest


def test_only_a_different_stamped_frame_needs_a_transform():
    assert same_frame('', 'base_link')  # unstamped: the publisher's word
    assert same_frame('base_link', 'base_link') and same_frame('/base_link', 'base_link')
    assert not same_frame('base', 'base_link')


def test_a_pose_in_urs_base_frame_lands_mirrored_in_base_link():
    # ur_robot_driver: base is base_link turned by pi about z, so x and y change sign.
    half_turn_about_z = [0.0, 0.0, math.sin(math.pi / 2), math.cos(math.pi / 2)]
    pose = pose_in_frame([0.4, 0.1, 0.3, 0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0],
                         half_turn_about_z)
    assert pose[:3] == pytest.approx([-0.4, -0.1, 0.3])
    assert abs(pose[5]) == pytest.approx(1.0)  # the tool turned the same half turn


def test_translation_and_rotation_compose_as_tf2_does():
    quarter_turn_about_z = [0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)]
    pose = pose_in_frame([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], [0.5, 0.0, 1.0],
                         quarter_turn_about_z)
    assert pose[:3] == pytest.approx([0.5, 1.0, 1.0])  # turned onto y, then moved
    assert np.linalg.norm(pose[3:]) == pytest.approx(1.0)
