"""
recorder: writes the run's topics to a rosbag2 bag, with or without ``ros2 bag``.

It finds the topics to record on the graph as they appear (names or regular expressions),
subscribes to each with raw subscriptions (the serialized message is written as it came) and
the QoS its publishers offer, and writes MCAP (message definitions embedded) or sqlite3 with
metadata.yaml. Every ``flush_period_s`` the data goes to disk, so a recorder killed at any
moment loses at most that much. It counts what it receives per topic and what the middleware
reports lost, and publishes both on ``recorder_status``.
"""

import hashlib
import json
import os
import pathlib
import time
from typing import Dict, List, Optional

from hilresrl_common.home import new_bag_folder
from hilresrl_common.node_runner import ConfigurationError, run_node
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.qos import LATCHED_QOS
from hilresrl_msgs.msg import PolicyWeights, RecorderStatus
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
import yaml

from .bag import BagError, BagWriter, qos_profile_dict, storage_for_distribution
from .message_definitions import message_class, ros2msg_definition, type_hash
from .recorder_parameters import PARAMETERS
from .topic_selection import subscription_qos, TopicSelector

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

RUN_INFO_FILE = 'hilresrl_run.yaml'


class RecorderNode(Node):
    """Discover, subscribe, write; flush periodically; report counts."""

    def __init__(self, **kwargs):
        super().__init__('recorder', **kwargs)
        # Stopped last, after the publishers: what reached this process before the stop request
        # is still written (run_node spins this long more).
        self.drain_on_stop_s: float = 0.5

        values = declare_parameters(self, PARAMETERS)
        self.storage: str = values['storage'] or storage_for_distribution(
            os.environ.get('ROS_DISTRO', ''))
        self.required_topics: List[str] = [t for t in values['required_topics'] if t]
        self.flush_period_s: float = values['flush_period_s']
        self.queue_depth: int = values['queue_depth']
        try:
            self.selector = TopicSelector([t for t in values['topics'] if t],
                                          [t for t in values['exclude_topics'] if t],
                                          self.get_namespace())
            self.run_info = json.loads(values['run_info'] or '{}')
        except ValueError as error:
            raise ConfigurationError(str(error)) from error

        self.bag_path = (pathlib.Path(values['bag_path']).expanduser() if values['bag_path']
                         else new_bag_folder())
        try:
            self.bag = BagWriter(self.bag_path, self.storage, values['compression'],
                                 int((values['max_bag_size_mb'] or 0.0) * 1e6),
                                 values['max_bag_duration_s'] or 0.0,
                                 custom_data=self._custom_data(), append=values['append'])
        except (BagError, OSError) as error:
            raise ConfigurationError(f'cannot record to {self.bag_path}: {error}') from error
        self.received: Dict[str, int] = {}
        self.lost: Dict[str, int] = {}
        self.weights_versions: List[int] = []
        self._recorded = {}
        self._unsupported: Dict[str, str] = {}
        self._state = 'waiting_for_topics'
        self._status_pub = None
        self.discovery_settle_s: float = values['discovery_settle_s']
        self.wait_for_senders_on_stop_s: float = values['wait_for_senders_on_stop_s']
        self._required_subscribed_at: Optional[float] = None  # monotonic seconds
        self.run_info['base_checkpoint_sha256'] = _file_hashes(
            self.run_info.get('base_checkpoint', ''))
        self._write_run_info()
        self.create_timer(values['discovery_period_s'], self._discover)
        self.create_timer(self.flush_period_s, self._flush)
        self.get_logger().info(
            f'recording {self.storage} to {self.bag_path} (flush every '
            f'{self.flush_period_s:g} s)')
        self._discover()

    def _custom_data(self) -> Dict[str, str]:
        # metadata.yaml's custom_data holds strings: the run's identity travels in the bag.
        return {'hilresrl.' + key: value if isinstance(value, str) else json.dumps(value)
                for key, value in self.run_info.items()
                if key in ('job', 'cell', 'task', 'robot_id', 'base_policy', 'base_checkpoint')}

    # --- topics --------------------------------------------------------------------------
    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self._recorded or topic in self._unsupported:
                continue
            # Subscribed only once a publisher exists, so that its QoS can be matched (a
            # latched topic must be subscribed transient-local to get its message).
            if not self.selector.matches(topic) or not self.count_publishers(topic):
                continue
            self._subscribe(topic, types[0])
        if self._state != 'waiting_for_topics' or not all(
                self.selector.absolute(name) in self._recorded for name in self.required_topics):
            return
        if self._required_subscribed_at is None:
            self._required_subscribed_at = time.monotonic()
        if time.monotonic() - self._required_subscribed_at >= self.discovery_settle_s:
            self._state = 'recording'
            # Created now, not before: whoever waits for this topic's publisher (the episode
            # manager) starts the first episode only once every required topic is recorded.
            self._status_pub = self.create_publisher(RecorderStatus, 'recorder_status',
                                                     LATCHED_QOS)
            self._publish_status()

    def _subscribe(self, topic: str, type_name: str) -> None:
        try:
            message_type = message_class(type_name)
        except LookupError:
            self._unsupported[topic] = type_name
            self.get_logger().warning(f'not recording {topic}: its type {type_name} is not '
                                      'installed here')
            return
        offered = [_qos_dict(info.qos_profile)
                   for info in self.get_publishers_info_by_topic(topic)]
        choice = subscription_qos(offered, self.queue_depth)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=choice['depth'],
                         reliability=ReliabilityPolicy.RELIABLE
                         if choice['reliability'] == 'reliable'
                         else ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL
                         if choice['durability'] == 'transient_local'
                         else DurabilityPolicy.VOLATILE)
        try:
            definition = ros2msg_definition(type_name)
        except (OSError, LookupError):
            definition = ''  # e.g. an .idl-only type: rosbag2 records those without one too
        self.bag.add_topic(topic, type_name, definition, type_hash(type_name),
                           offered or [qos_profile_dict()])
        self.received.setdefault(topic, 0)
        self.lost.setdefault(topic, 0)
        events = SubscriptionEventCallbacks(
            message_lost=lambda info, topic=topic: self._on_lost(topic, info))
        # (rclpy skips the lost-message event quietly where the middleware lacks it)
        self._recorded[topic] = self.create_subscription(
            message_type, topic, lambda data, topic=topic: self._on_message(topic, data),
            qos, raw=True, event_callbacks=events)
        self.get_logger().info(f'recording {topic} ({type_name}, {choice["reliability"]}, '
                               f'{choice["durability"]})')

    def on_stop_requested(self) -> None:
        """Say what the recorder waits for before it stops (run_node calls this once)."""
        senders = self.senders_remaining()
        if senders and self.wait_for_senders_on_stop_s > 0:
            self.get_logger().info(
                f'stop requested: recording on until {", ".join(senders)} have no publisher '
                f'(at most {self.wait_for_senders_on_stop_s:g} s)')

    def senders_remaining(self) -> List[str]:
        """Return the required topics that still have a publisher."""
        return [topic for topic in (self.selector.absolute(name) for name in self.required_topics)
                if self.count_publishers(topic)]

    # --- data ----------------------------------------------------------------------------
    def _on_message(self, topic: str, data: bytes) -> None:
        self.bag.write(topic, self.get_clock().now().nanoseconds, data)
        self.received[topic] += 1
        if topic.endswith('/policy_weights'):
            version = deserialize_message(data, PolicyWeights).version
            if not self.weights_versions or version != self.weights_versions[-1]:
                self.weights_versions.append(int(version))

    def _on_lost(self, topic: str, info) -> None:
        self.lost[topic] = self.lost.get(topic, 0) + int(info.total_count_change)
        self.get_logger().warning(f'{info.total_count_change} message(s) on {topic} lost by the '
                                  f'middleware ({self.lost[topic]} in all)',
                                  throttle_duration_sec=5.0)

    def _flush(self) -> None:
        try:
            self.bag.flush()
        except (BagError, OSError) as error:
            self.get_logger().error(f'cannot write {self.bag_path}: {error}',
                                    throttle_duration_sec=10.0)
            return
        self._write_run_info()
        self._publish_status()

    def _publish_status(self) -> None:
        if self._status_pub is None:
            return
        topics = sorted(self.received)
        status = RecorderStatus(state=self._state, bag_path=str(self.bag_path),
                                storage=self.storage, topics=topics,
                                received=[self.received[t] for t in topics],
                                lost=[self.lost.get(t, 0) for t in topics],
                                bytes_written=self.bag.bytes_written,
                                files=len(self.bag.files), flush_period_s=self.flush_period_s)
        status.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(status)

    def _write_run_info(self) -> None:
        """Write what produced this bag (launch, base policy, weights versions) beside it."""
        info = dict(self.run_info)
        info.update({'bag': str(self.bag_path), 'storage': self.storage,
                     'weights_versions': sorted(set(self.weights_versions)),
                     'received': dict(sorted(self.received.items())),
                     'lost': {topic: n for topic, n in sorted(self.lost.items()) if n}})
        path = self.bag_path / RUN_INFO_FILE
        temporary = path.with_suffix('.tmp')
        temporary.write_text(yaml.safe_dump(info, sort_keys=False))
        os.replace(temporary, path)

    def destroy_node(self):
        """Close the bag (MCAP summary, metadata.yaml) and report what was recorded."""
        self.bag.close()
        self._state = 'closed'
        self._write_run_info()
        self._publish_status()
        total = sum(self.received.values())
        lost = sum(self.lost.values())
        self.get_logger().info(f'bag {self.bag_path}: {total} messages on '
                               f'{len(self.received)} topics, {lost} lost, '
                               f'{len(self.bag.files)} file(s)')
        return super().destroy_node()


def _file_hashes(folder: str) -> Dict[str, str]:
    """Return the sha256 of every file in a checkpoint folder (which base policy acted)."""
    path = pathlib.Path(folder) if folder else None
    if path is None or not path.is_dir():
        return {}
    return {file.name: hashlib.sha256(file.read_bytes()).hexdigest()
            for file in sorted(path.iterdir()) if file.is_file()}


def _qos_dict(profile) -> dict:
    """Return an rclpy QoSProfile in metadata.yaml's form."""
    def duration(value):
        nanoseconds = value.nanoseconds if isinstance(value, Duration) else 0
        return {'sec': nanoseconds // 10**9, 'nsec': nanoseconds % 10**9}
    return {'history': profile.history.name.lower(), 'depth': int(profile.depth),
            'reliability': profile.reliability.name.lower(),
            'durability': profile.durability.name.lower(),
            'deadline': duration(profile.deadline), 'lifespan': duration(profile.lifespan),
            'liveliness': profile.liveliness.name.lower(),
            'liveliness_lease_duration': duration(profile.liveliness_lease_duration),
            'avoid_ros_namespace_conventions': bool(profile.avoid_ros_namespace_conventions)}


def main(args=None):
    """Record until shutdown, then close the bag."""
    return run_node(RecorderNode, args)


if __name__ == '__main__':
    main()
