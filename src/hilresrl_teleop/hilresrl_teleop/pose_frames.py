"""
The end-effector pose in the commands' frame: checked, or moved there by a transform (no ROS).

The workspace box and the Cartesian commands are in ``command_frame_id``; a driver may publish
the pose in another frame (ur_robot_driver's tcp_pose_broadcaster: ``base``, which is
``base_link`` turned by pi about z). Taken as it is, such a pose mirrors x and y in the box, so
the arbiter checks the frame and, where the two differ, moves the pose through a transform.
Poses are [x, y, z, qx, qy, qz, qw]; quaternions x, y, z, w as ROS writes them.
"""

from typing import Sequence

import numpy as np


def same_frame(pose_frame: str, command_frame: str) -> bool:
    """Return whether a pose stamped pose_frame is in command_frame (unstamped: taken as is)."""
    return not pose_frame or pose_frame.lstrip('/') == command_frame.lstrip('/')


def quaternion_multiply(first: Sequence[float], second: Sequence[float]) -> np.ndarray:
    """Return the rotation first * second (second applied first), x, y, z, w."""
    x1, y1, z1, w1 = first
    x2, y2, z2, w2 = second
    return np.array([w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                     w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
                     w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2])


def rotate(rotation: Sequence[float], vector: Sequence[float]) -> np.ndarray:
    """Return vector turned by the unit quaternion rotation."""
    turned = quaternion_multiply(quaternion_multiply(rotation, [*vector, 0.0]),
                                 [-rotation[0], -rotation[1], -rotation[2], rotation[3]])
    return turned[:3]


def pose_in_frame(pose: Sequence[float], translation: Sequence[float],
                  rotation: Sequence[float]) -> np.ndarray:
    """
    Return a pose expressed in the target frame of a transform.

    translation and rotation are the source frame's origin and orientation in the target frame
    (tf2's lookup_transform(target, source)).
    """
    pose = np.asarray(pose, dtype=np.float64)
    rotation = np.asarray(rotation, dtype=np.float64) / np.linalg.norm(rotation)
    position = rotate(rotation, pose[:3]) + np.asarray(translation, dtype=np.float64)
    orientation = quaternion_multiply(rotation, pose[3:])
    return np.concatenate([position, orientation / np.linalg.norm(orientation)])
