"""The names of Cartesian action axes: translation, rotation and the gripper."""

LINEAR_AXES = ('x', 'y', 'z')
ANGULAR_AXES = ('roll', 'pitch', 'yaw')
GRIPPER_AXIS = 'gripper'
