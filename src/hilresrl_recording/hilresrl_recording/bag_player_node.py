"""
bag_player: publishes a recorded bag back onto its topics with the original timing.

``hilresrl replay BAG [--rate R] [--topics ...] [--start S] [--loop]`` (or ``ros2 run
hilresrl_learner replay``): each topic gets a publisher of its recorded type and QoS, and every
message goes out, as serialized in the bag, when it is due, so that a node can be debugged
against a recorded run. Works on any rosbag2 bag this suite can read, a damaged one included.
Observation topics only by default: command, device, e-stop and weights topics play only when
named exactly, with a warning (playback.topic_role has the rule).
"""

import argparse
import sys
import time
from typing import List, Optional

from hilresrl_common.node_runner import wait_for_acknowledgements
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from .bag import BagError, BagReader, TopicInfo
from .message_definitions import message_class
from .playback import choose_topics, PlaybackOptions, ROLE_HELP, schedule
from .run_folders import bag_folder

PROGRESS_PERIOD_S = 10.0
ACK_TIMEOUT_S = 10.0


class BagPlayerNode(Node):
    """Publishers for a bag's topics, and the loop that plays its messages on time."""

    def __init__(self, reader: BagReader, topics: List[str], **kwargs):
        super().__init__('bag_player', **kwargs)
        self.reader = reader
        self.topics = topics
        self.published = 0
        self._topic_publishers = {}
        for name in topics:
            info = reader.topics[name]
            self._topic_publishers[name] = self.create_publisher(
                message_class(info.type_name), name, _publisher_qos(info))

    def wait_for_subscribers(self, timeout_s: float) -> List[str]:
        """Wait until every topic has a subscriber (or the timeout); return those without."""
        deadline = time.monotonic() + timeout_s
        while True:  # discovery runs in the middleware's threads: no spinning needed
            lonely = [name for name, publisher in self._topic_publishers.items()
                      if publisher.get_subscription_count() == 0]
            if not lonely or time.monotonic() > deadline:
                return lonely
            time.sleep(0.05)

    def play(self, options: PlaybackOptions) -> None:
        """Publish the bag's messages when they are due; once, or again and again."""
        first_ns = next((stamp for _, stamp, _ in self.reader.messages()), None)
        if first_ns is None:
            self.get_logger().warning(f'{self.reader.path} holds no messages')
            return
        rounds = 0
        while True:
            rounds += 1
            started = time.monotonic()
            last_report = started
            for due_s, topic, data in schedule(self.reader.messages(self.topics), first_ns,
                                               options):
                wait_s = started + due_s - time.monotonic()
                if wait_s > 0:
                    time.sleep(wait_s)
                self._topic_publishers[topic].publish(data)
                self.published += 1
                if time.monotonic() - last_report >= PROGRESS_PERIOD_S:
                    last_report = time.monotonic()
                    self.get_logger().info(f'{self.published} messages, '
                                           f'{options.start_s + due_s * options.rate:.1f} s '
                                           'into the bag')
            for problem in self.reader.problems:
                self.get_logger().warning(problem)
            self.reader.problems.clear()
            if not options.loop:
                break
            self.get_logger().info(f'round {rounds} done ({self.published} messages): again')


def _publisher_qos(info: TopicInfo) -> QoSProfile:
    """Offer what the recorded publishers offered (latched topics stay latched)."""
    offered = info.offered_qos_profiles[0] if info.offered_qos_profiles else {}
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=max(int(offered.get('depth') or 10), 10),
        reliability=(ReliabilityPolicy.BEST_EFFORT
                     if offered.get('reliability') == 'best_effort'
                     else ReliabilityPolicy.RELIABLE),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL
                    if offered.get('durability') == 'transient_local'
                    else DurabilityPolicy.VOLATILE))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='hilresrl replay', description='Publish a recorded bag (or the bag of a run '
        'folder) back onto its topics with the original timing. ' + ROLE_HELP)
    parser.add_argument('bag', help='bag folder, .mcap or .db3 file, or run folder')
    parser.add_argument('--rate', type=float, default=1.0,
                        help='playback speed: 2 plays twice as fast (default 1)')
    parser.add_argument('--topics', nargs='+', metavar='TOPIC',
                        help='only these topics (names or regular expressions); a topic that '
                             'acts on a cell plays only when named exactly')
    parser.add_argument('--allow-command-topics', action='store_true',
                        help='let --topics patterns select command, device, e-stop and '
                             'weights topics too (each played with a warning)')
    parser.add_argument('--start', type=float, default=0.0, metavar='S',
                        help='begin S seconds into the bag')
    parser.add_argument('--loop', action='store_true', help='play again and again')
    parser.add_argument('--wait-for-subscribers', type=float, default=2.0, metavar='S',
                        help='before playing, wait up to S seconds for every topic to have '
                             'a subscriber (default 2; 0: do not wait)')
    return parser


def main(args: Optional[List[str]] = None) -> int:
    """Entry point of hilresrl replay; ROS arguments after --ros-args are passed on."""
    argv = sys.argv[1:] if args is None else list(args)
    ros_arguments = argv[argv.index('--ros-args'):] if '--ros-args' in argv else []
    options = _parser().parse_args(argv[:len(argv) - len(ros_arguments)])
    try:
        playback = PlaybackOptions(options.rate, options.start, options.loop)
        reader = BagReader(bag_folder(options.bag))
        topics, left_out, warnings = choose_topics(
            {name: info.type_name for name, info in reader.topics.items()}, options.topics,
            options.allow_command_topics)
        for topic in topics:
            message_class(reader.topics[topic].type_name)
    except (BagError, ValueError, LookupError) as error:
        print(f'hilresrl replay: {error}', file=sys.stderr)
        return 2
    rclpy.init(args=['hilresrl_replay'] + ros_arguments,
               signal_handler_options=SignalHandlerOptions.NO)
    node = BagPlayerNode(reader, topics)
    try:
        if left_out:
            node.get_logger().info(f'left out: {", ".join(left_out)}')
        for warning in warnings:
            node.get_logger().warning(warning)
        if options.wait_for_subscribers > 0:
            lonely = node.wait_for_subscribers(options.wait_for_subscribers)
            if lonely:
                node.get_logger().info(f'no subscriber yet on {", ".join(lonely)}: playing '
                                       'anyway')
        node.get_logger().info(f'playing {len(topics)} topics of {reader.path} at '
                               f'{playback.rate:g}x')
        node.play(playback)
        # Reliable subscribers must have every message before the publishers go.
        wait_for_acknowledgements(node, ACK_TIMEOUT_S)
        node.get_logger().info(f'done: {node.published} messages published')
    except KeyboardInterrupt:
        node.get_logger().info(f'stopped: {node.published} messages published')
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
