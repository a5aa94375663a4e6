"""
spacenav: a SpaceMouse read through spacenavd, published as the ROS spacenav driver publishes it.

For cells without the driver (ros-drivers/joystick_drivers, package spacenav): the same node name,
topics (spacenav/twist, spacenav/joy, spacenav/offset, spacenav/rot_offset) and parameters, read
through libspnav or through spacenavd's socket with no library at all. Without the daemon it says
once what to install or start and keeps trying, while the rest of the cell runs policy-only.
"""

import time

from geometry_msgs.msg import Twist, TwistStamped, Vector3
from hilresrl_common.node_runner import ConfigurationError, run_node
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.parameters import above, one_of, Parameter
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Joy

from .spacenav_protocol import (BACKENDS, DEFAULT_SOCKET_PATH, DeviceLink, DeviceOutputs,
                                DeviceState, LinkNotice, MAX_BUTTONS, open_event_source,
                                SpacenavSettings)

# The driver's publishers (rclcpp's depth 10: reliable, keep last). Reliable reaches both the
# arbiter's best-effort DEVICE_QOS and readers that ask for reliable, as the driver does.
DRIVER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE)


# The ROS spacenav driver's parameters, with its defaults and meanings.
PARAMETERS = (
    Parameter('full_scale', 512.0,
              'Raw device value that normalises to 1 (as in the spacenav driver)'),
    *(Parameter(f'linear_scale/{axis}', 1.0,
                f'Factor of twist linear.{axis} (the Joy axes are not scaled)')
      for axis in 'xyz'),
    *(Parameter(f'angular_scale/{axis}', 1.0,
                f'Factor of twist angular.{axis} (the Joy axes are not scaled)')
      for axis in 'xyz'),
    Parameter('static_count_threshold', 30, "Polls of the driver's 1 ms loop (so milliseconds) "
              'without motion before the device counts as static'),
    Parameter('zero_when_static', True, 'Zero the twist when the device is static (else only '
              'the parts within the static deadbands)'),
    Parameter('static_trans_deadband', 0.1, 'When static, zero the translation if every '
              'normalised component is below this'),
    Parameter('static_rot_deadband', 0.1, 'When static, zero the rotation if every normalised '
              'component is below this'),
    Parameter('use_twist_stamped', False, 'Publish geometry_msgs/TwistStamped on '
              'spacenav/twist_stamped instead of Twist on spacenav/twist'),
    Parameter('backend', 'auto', 'How to reach spacenavd: libspnav, socket (its UNIX socket, no '
              'library needed) or auto (libspnav if installed, else socket)',
              check=one_of(BACKENDS)),
    Parameter('socket_path', DEFAULT_SOCKET_PATH, "spacenavd's UNIX socket"),
    Parameter('publish_rate_hz', 100.0, 'Device polls per second: once the device is live the '
              'Joy goes out on every poll, the twist on motion and when static',
              check=above(0.0)),
    Parameter('retry_period_s', 1.0,
              'Seconds between attempts to reach spacenavd while it is absent'),
)


class SpaceMouseNode(Node):
    """spacenavd events -> the spacenav driver's twist, offsets and Joy."""

    def __init__(self, **kwargs):
        super().__init__('spacenav', **kwargs)
        values = declare_parameters(self, PARAMETERS)
        self.use_twist_stamped: bool = values['use_twist_stamped']
        try:
            self.state = DeviceState(SpacenavSettings(
                full_scale=values['full_scale'],
                linear_scale=tuple(values[f'linear_scale/{axis}'] for axis in 'xyz'),
                angular_scale=tuple(values[f'angular_scale/{axis}'] for axis in 'xyz'),
                static_count_threshold=values['static_count_threshold'],
                zero_when_static=values['zero_when_static'],
                static_trans_deadband=values['static_trans_deadband'],
                static_rot_deadband=values['static_rot_deadband']))
            self.link = DeviceLink(lambda: open_event_source(values['backend'],
                                                             values['socket_path']),
                                   values['retry_period_s'])
        except ValueError as error:
            raise ConfigurationError(str(error)) from error

        self._offset_pub = self.create_publisher(Vector3, 'spacenav/offset', DRIVER_QOS)
        self._rot_offset_pub = self.create_publisher(Vector3, 'spacenav/rot_offset', DRIVER_QOS)
        if self.use_twist_stamped:
            self._twist_pub = self.create_publisher(TwistStamped, 'spacenav/twist_stamped',
                                                    DRIVER_QOS)
        else:
            self._twist_pub = self.create_publisher(Twist, 'spacenav/twist', DRIVER_QOS)
        self._joy_pub = self.create_publisher(Joy, 'spacenav/joy', DRIVER_QOS)
        self._last_poll_s = time.monotonic()
        self._ignored_buttons_logged = 0
        self.create_timer(1.0 / values['publish_rate_hz'], self._on_poll)

    def _on_poll(self) -> None:
        was_connected = self.link.connected
        events, notices = self.link.poll()
        for notice in notices:
            self._log(notice)
        now = time.monotonic()
        elapsed_s, self._last_poll_s = now - self._last_poll_s, now
        if not self.link.connected:
            if was_connected:
                # The driver never notices a lost daemon; readers would hold its last deflection.
                self._publish(True, self.state.release())
            return
        for publication in self.state.poll(events, elapsed_s):
            self._publish(publication.twist, publication.outputs)
        if self.state.ignored_buttons != self._ignored_buttons_logged:
            self._ignored_buttons_logged = self.state.ignored_buttons
            self.get_logger().warning(
                f'ignored {self.state.ignored_buttons} button event(s) numbered outside 0-'
                f'{MAX_BUTTONS - 1} so far (a faulty device or daemon?)',
                throttle_duration_sec=5.0)

    def _publish(self, twist: bool, outputs: DeviceOutputs) -> None:
        stamp = self.get_clock().now().to_msg()
        if twist:
            linear = Vector3(x=outputs.linear[0], y=outputs.linear[1], z=outputs.linear[2])
            angular = Vector3(x=outputs.angular[0], y=outputs.angular[1], z=outputs.angular[2])
            self._offset_pub.publish(linear)
            self._rot_offset_pub.publish(angular)
            if self.use_twist_stamped:
                message = TwistStamped(twist=Twist(linear=linear, angular=angular))
                message.header.stamp = stamp
                self._twist_pub.publish(message)
            else:
                self._twist_pub.publish(Twist(linear=linear, angular=angular))
        joy = Joy(axes=outputs.axes, buttons=outputs.buttons)
        joy.header.stamp = stamp
        self._joy_pub.publish(joy)

    def _log(self, notice: LinkNotice) -> None:
        # One call per severity: rclpy refuses two severities from one line of code.
        if notice.level == 'info':
            self.get_logger().info(notice.text)
        elif notice.level == 'warning':
            self.get_logger().warning(notice.text)
        else:
            self.get_logger().error(notice.text)

    def destroy_node(self):
        """Publish a released device (as a lost one), close the connection, destroy the node."""
        if self.link.connected and self.context.ok():
            self._publish(True, self.state.release())
        self.link.close()
        return super().destroy_node()


def main(args=None):
    """Run the spacenav node until shutdown."""
    return run_node(SpaceMouseNode, args)


if __name__ == '__main__':
    main()
