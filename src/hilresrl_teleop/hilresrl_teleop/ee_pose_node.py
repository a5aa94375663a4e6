"""
ee_pose: publishes the end-effector pose from tf2, for cells whose driver publishes no pose topic.

A UR or any ros2_control arm has the tool pose in tf (robot_state_publisher); this node looks it
up at a fixed rate and publishes geometry_msgs/PoseStamped on ee_pose, which the policies, the
arbiter and the episode manager read. It needs tf2_ros, which a ROS 2 distribution has.
"""

from geometry_msgs.msg import PoseStamped
from hilresrl_common.node_runner import ConfigurationError, run_node
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.parameters import above, Parameter
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time

# As a driver publishes a measurement: the newest counts, a lost one does not matter.
POSE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.BEST_EFFORT)
PARAMETERS = (
    Parameter('command_frame_id', 'base_link', 'Base frame the pose is expressed in'),
    Parameter('tool_frame_id', 'tool0', 'The tool frame'),
    Parameter('pose_rate_hz', 50.0, 'Poses published per second', check=above(0.0)),
)


class EePoseNode(Node):
    """Look up base_frame -> tool_frame in tf2 and publish it as ee_pose."""

    def __init__(self, **kwargs):
        super().__init__('ee_pose', **kwargs)
        values = declare_parameters(self, PARAMETERS)
        self.base_frame: str = values['command_frame_id']
        self.tool_frame: str = values['tool_frame_id']
        try:
            from tf2_ros import Buffer, TransformException, TransformListener
        except ImportError:
            raise ConfigurationError('ee_pose needs tf2_ros, which comes with a ROS 2 '
                                     'distribution (ros-<distro>-tf2-ros); without it, remap '
                                     'ee_pose to a pose topic of your driver') from None
        self._transform_error = TransformException
        self._buffer = Buffer()
        self._listener = TransformListener(self._buffer, self)
        self._publisher = self.create_publisher(PoseStamped, 'ee_pose', POSE_QOS)
        self.create_timer(1.0 / values['pose_rate_hz'], self._on_timer)

    def _on_timer(self) -> None:
        try:
            transform = self._buffer.lookup_transform(self.base_frame, self.tool_frame, Time())
        except self._transform_error as error:
            self.get_logger().warning(f'no {self.base_frame} -> {self.tool_frame} transform: '
                                      f'{error}', throttle_duration_sec=5.0)
            return
        pose = PoseStamped()
        pose.header = transform.header
        translation, rotation = transform.transform.translation, transform.transform.rotation
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (
            translation.x, translation.y, translation.z)
        pose.pose.orientation = rotation
        self._publisher.publish(pose)


def main(args=None):
    """Publish the end-effector pose until shutdown."""
    return run_node(EePoseNode, args)


if __name__ == '__main__':
    main()
