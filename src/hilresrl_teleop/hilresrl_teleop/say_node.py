"""
say: a person's refinement command, typed, sent to a cell's refinement_command topic.

``hilresrl say "move left 2 cm"`` (or ``ros2 run hilresrl_teleop say ...``) publishes the text
as a std_msgs/String on ``refinement_command`` (latched, as a voice front end would), so that the
base policy node conditions its refinement actor on it and the episode manager stores it in every
transition from then on. ``hilresrl say --clear`` withdraws it. The command is parsed here first,
with the suite's parser, so that the person learns at once whether the cell will understand it.
"""

import argparse
import sys
import time
from typing import List, Optional, Sequence

from hilresrl_common.corrections import parse_command, ParsedCommand
from hilresrl_common.qos import LATCHED_QOS
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String

TOPIC = 'refinement_command'


class RefinementCommandPublisher(Node):
    """One latched publisher of a refinement command; it waits for listeners and their acks."""

    def __init__(self, **kwargs):
        super().__init__('say', **kwargs)
        self._publisher = self.create_publisher(String, TOPIC, LATCHED_QOS)

    @property
    def topic(self) -> str:
        """Return the resolved topic the command goes to."""
        return self._publisher.topic_name

    def wait_for_listeners(self, timeout_s: float) -> int:
        """Wait up to timeout_s for a subscriber; return how many there are."""
        deadline = time.monotonic() + timeout_s
        while (self._publisher.get_subscription_count() == 0
               and time.monotonic() < deadline):
            time.sleep(0.05)  # discovery runs in the middleware's threads
        return self._publisher.get_subscription_count()

    def say(self, text: str, timeout_s: float) -> bool:
        """Publish the command; return whether every listener acknowledged it in time."""
        self._publisher.publish(String(data=text))
        return self._publisher.wait_for_all_acked(Duration(nanoseconds=int(timeout_s * 1e9)))


def describe(parsed: ParsedCommand) -> str:
    """Return what a parsed command asks for, in the cell's units."""
    parts = []
    for axis, value in zip('xyz', parsed.translation_m):
        if value:
            parts.append(f'{axis} {100 * value:+.1f} cm')
    for axis, value in zip(('roll', 'pitch', 'yaw'), parsed.rotation_rad):
        if value:
            parts.append(f'{axis} {value:+.2f} rad')
    if parsed.gripper:
        parts.append('close the gripper' if parsed.gripper > 0 else 'open the gripper')
    return ', '.join(parts) or 'no motion'


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='hilresrl say', description='Send a refinement command ("move left 2 cm", '
        '"close the gripper") to a cell: its refinement actor is conditioned on it and its '
        'transitions carry it until another command or --clear.')
    parser.add_argument('command', nargs='?', default='', help='the command, in quotes')
    parser.add_argument('--clear', action='store_true', help='withdraw the command in force')
    parser.add_argument('--robot', default='', metavar='NAMESPACE',
                        help='the cell to tell, e.g. robot2 (default: the root namespace)')
    parser.add_argument('--action-names', default='x,y,z,gripper', metavar='A,B,...',
                        help="the cell's action axes, to check the command against (default "
                             'x,y,z,gripper)')
    parser.add_argument('--wait', type=float, default=5.0, metavar='S',
                        help='wait up to S seconds for the cell to listen (default 5)')
    return parser


def main(args: Optional[Sequence[str]] = None) -> int:
    """Entry point of hilresrl say; ROS arguments after --ros-args are passed on."""
    argv: List[str] = list(sys.argv[1:] if args is None else args)
    ros_arguments = argv[argv.index('--ros-args'):] if '--ros-args' in argv else []
    options = _parser().parse_args(argv[:len(argv) - len(ros_arguments)])
    text = '' if options.clear else options.command.strip()
    if not text and not options.clear:
        print('hilresrl say: give a command in quotes, or --clear', file=sys.stderr)
        return 2
    if text:
        try:
            parsed = parse_command(text, [name.strip() for name in
                                          options.action_names.split(',') if name.strip()])
        except ValueError as error:
            print(f'hilresrl say: --action-names: {error}', file=sys.stderr)
            return 2
        if not parsed.understood:
            print(f'hilresrl say: {text!r} is not a command the cell understands (forms: '
                  "'move left 2 cm', 'lower the gripper', 'rotate the wrist clockwise', "
                  "'close the gripper'; clauses joined by 'and')", file=sys.stderr)
            return 2
    namespace = ['-r', f'__ns:=/{options.robot.strip("/")}'] if options.robot else []
    if namespace and not ros_arguments:
        ros_arguments = ['--ros-args']
    rclpy.init(args=['hilresrl_say'] + ros_arguments + namespace,
               signal_handler_options=SignalHandlerOptions.NO)
    node = RefinementCommandPublisher()
    try:
        listeners = node.wait_for_listeners(options.wait)
        if not listeners:
            print(f'hilresrl say: nobody listens on {node.topic} (is the cell running, and '
                  'in this namespace and ROS_DOMAIN_ID?)', file=sys.stderr)
            return 1
        acknowledged = node.say(text, options.wait)
        what = f'{text!r} ({describe(parsed)})' if text else 'the command withdrawn'
        print(f'{what} -> {node.topic}: {listeners} listener(s)'
              + ('' if acknowledged else ', not all acknowledged in time'))
        return 0 if acknowledged else 1
    except KeyboardInterrupt:
        return 130
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
