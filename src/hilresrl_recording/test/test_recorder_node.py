"""The recorder over DDS: every message counted and in the bag, a latched one too; SIGKILL."""

import os
import signal
import time

from hilresrl_common.conversions import array_to_image
from hilresrl_common.qos import LATCHED_QOS
from hilresrl_msgs.msg import RecorderStatus, Transition
from hilresrl_recording.bag import BagReader
import numpy as np
import pytest
from rclpy.duration import Duration
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader as RosbagsReader
from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from sensor_msgs.msg import Image
from std_msgs.msg import String
import yaml

# Deep enough to hold everything a test publishes until the recorder acknowledges it.
PUBLISH_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                         reliability=ReliabilityPolicy.RELIABLE)


def _recorder(launch_process, bag_path, *parameters, env=None):
    from ament_index_python.packages import get_package_prefix
    executable = os.path.join(get_package_prefix('hilresrl_recording'), 'lib',
                              'hilresrl_recording', 'recorder')
    arguments = [executable, '--ros-args', '-r', '__ns:=/cell', '-p', f'bag_path:={bag_path}',
                 '-p', 'discovery_period_s:=0.1']
    for parameter in parameters:
        arguments += ['-p', parameter]
    return launch_process(arguments, env=env)


def _latest_status(probe, statuses):
    probe.node.create_subscription(RecorderStatus, '/cell/recorder_status', statuses.append,
                                   LATCHED_QOS)


def _recording_chatter(probe, launch_process, tmp_path, *parameters):
    """Start a recorder of /cell/chatter and a publisher on it; return both, and statuses."""
    recorder = _recorder(launch_process, tmp_path / 'bag', "topics:=['chatter']",
                         "required_topics:=['chatter']", *parameters)
    chatter = probe.node.create_publisher(String, '/cell/chatter', PUBLISH_QOS)
    statuses = []
    _latest_status(probe, statuses)
    probe.wait_for(lambda: statuses and statuses[-1].state == 'recording'
                   and chatter.get_subscription_count() == 1, 60, 'the recorder')
    return recorder, chatter, statuses


def _received(statuses, topic):
    if not statuses or topic not in statuses[-1].topics:
        return 0
    return statuses[-1].received[list(statuses[-1].topics).index(topic)]


def test_every_published_message_is_counted_and_reads_back_with_rosbags(
        probe, launch_process, tmp_path):
    instruction = probe.node.create_publisher(String, '/cell/task_instruction', LATCHED_QOS)
    instruction.publish(String(data='pick up the cube'))  # latched before the recorder starts
    recorder = _recorder(launch_process, tmp_path / 'bag',
                         "topics:=['transitions', 'task_instruction', 'camera/.*/image_raw']",
                         "required_topics:=['transitions']", 'flush_period_s:=0.2')
    statuses = []
    _latest_status(probe, statuses)
    probe.wait_for(lambda: 'recording /cell/task_instruction' in recorder.output, 60,
                   'the recorder to find the latched topic')
    assert probe.node.count_publishers('/cell/recorder_status') == 0  # transitions missing
    transitions = probe.node.create_publisher(Transition, '/cell/transitions', PUBLISH_QOS)
    images = probe.node.create_publisher(Image, '/cell/camera/front/image_raw', PUBLISH_QOS)
    probe.wait_for(lambda: statuses and {'/cell/transitions', '/cell/camera/front/image_raw'}
                   <= set(statuses[-1].topics) and statuses[-1].state == 'recording', 60,
                   'the recorder to record every topic')
    probe.wait_for(lambda: transitions.get_subscription_count() == 1
                   and images.get_subscription_count() == 1, 30, 'the recorder to match')
    rng = np.random.default_rng(0)
    sent_pixels = []
    for sequence in range(1, 301):
        transitions.publish(Transition(robot_id='r1', sequence=sequence,
                                       reward=float(sequence) / 7))
        if sequence % 10 == 0:
            pixels = rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)
            sent_pixels.append(pixels)
            image = array_to_image(pixels, probe.node.get_clock().now().to_msg(), 'front')
            images.publish(image)
    probe.wait_for(lambda: _received(statuses, '/cell/transitions') == 300
                   and _received(statuses, '/cell/camera/front/image_raw') == 30, 60,
                   'the recorder to count every message')
    probe.node.destroy_publisher(transitions)  # the graph's senders go first, as in a launch
    assert recorder.interrupt() == 0, recorder.output
    assert 'bag ' + str(tmp_path / 'bag') + ': 331 messages on 3 topics, 0 lost' in \
        recorder.output

    with RosbagsReader(tmp_path / 'bag') as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts == {'/cell/transitions': 300, '/cell/camera/front/image_raw': 30,
                          '/cell/task_instruction': 1}
        store = get_typestore(Stores.ROS2_KILTED)
        for connection in reader.connections:
            if connection.msgtype.startswith('hilresrl_msgs/'):
                store.register(get_types_from_msg(connection.msgdef.data,
                                                  connection.msgtype))
        latched_durability = [c.ext.offered_qos_profiles[0].durability.name
                              for c in reader.connections
                              if c.topic == '/cell/task_instruction']
        decoded = {}
        for connection, _, raw in reader.messages():
            decoded.setdefault(connection.topic, []).append(
                store.deserialize_cdr(raw, connection.msgtype))
    assert [t.sequence for t in decoded['/cell/transitions']] == list(range(1, 301))
    assert [t.reward for t in decoded['/cell/transitions']] == pytest.approx(
        [np.float32(s / 7) for s in range(1, 301)])
    for image, pixels in zip(decoded['/cell/camera/front/image_raw'], sent_pixels):
        assert np.array_equal(image.data.reshape(16, 24, 3), pixels)
    assert decoded['/cell/task_instruction'][0].data == 'pick up the cube'
    assert latched_durability == ['TRANSIENT_LOCAL']


def test_a_killed_recorder_loses_at_most_its_last_flush_period(probe, launch_process,
                                                               tmp_path):
    recorder, chatter, statuses = _recording_chatter(probe, launch_process, tmp_path,
                                                     'flush_period_s:=0.2')
    for index in range(500):
        chatter.publish(String(data=f'message {index}'))
    probe.wait_for(lambda: _received(statuses, '/cell/chatter') == 500, 60,
                   'a flush of all 500 messages')
    for index in range(500, 520):  # after the flush: these may be lost
        chatter.publish(String(data=f'message {index}'))
    os.killpg(recorder.process.pid, signal.SIGKILL)
    recorder.process.wait(timeout=30)

    reader = BagReader(tmp_path / 'bag')
    data = [message for _, _, message in reader.messages(['/cell/chatter'])]
    assert 500 <= len(data) <= 520
    assert reader.problems and 'bag_0.mcap' in reader.problems[0]  # no footer: cut off
    from rclpy.serialization import deserialize_message
    assert [deserialize_message(raw, String).data for raw in data[:500]] == [
        f'message {index}' for index in range(500)]


def test_recording_is_reported_only_a_settle_period_after_the_last_required_subscription(
        probe, launch_process, tmp_path):
    # Publishers learn of the recorder's subscription through discovery, which it cannot see:
    # the first episode (which waits for 'recording') must leave them that time.
    recorder = _recorder(launch_process, tmp_path / 'bag', "topics:=['chatter']",
                         "required_topics:=['chatter']", 'discovery_settle_s:=5.0')
    statuses = []
    _latest_status(probe, statuses)
    chatter = probe.node.create_publisher(String, '/cell/chatter', PUBLISH_QOS)
    probe.wait_for(lambda: 'recording /cell/chatter' in recorder.output, 60,
                   'the recorder to subscribe')
    subscribed_at = time.monotonic()
    probe.wait_for(lambda: statuses and statuses[-1].state == 'recording', 60,
                   "'recording'")
    assert time.monotonic() - subscribed_at >= 3.0  # 5 s less however late its log reached us
    assert chatter.get_subscription_count() == 1


def test_a_recorder_asked_to_stop_records_until_its_senders_have_gone(
        probe, launch_process, tmp_path):
    # ros2 launch stops every node at once: what the others send on their way out is kept.
    recorder, chatter, _ = _recording_chatter(probe, launch_process, tmp_path,
                                              'discovery_settle_s:=0.0')
    recorder.process.send_signal(signal.SIGINT)
    probe.wait_for(lambda: 'recording on until /cell/chatter have no publisher' in
                   recorder.output, 30, 'the recorder to wait for its sender')
    for index in range(100):
        chatter.publish(String(data=f'message {index}'))
    assert chatter.wait_for_all_acked(Duration(seconds=30))
    probe.node.destroy_publisher(chatter)
    assert recorder.wait(30) == 0, recorder.output
    reader = BagReader(tmp_path / 'bag')
    assert reader.count_messages()['/cell/chatter'] == 100


def test_with_no_storage_chosen_a_humble_recorder_writes_sqlite3(probe, launch_process, tmp_path):
    recorder = _recorder(launch_process, tmp_path / 'bag', "required_topics:=['']",
                         env=dict(os.environ, ROS_DISTRO='humble'))
    probe.wait_for(lambda: 'recording sqlite3 to' in recorder.output, 60, 'the recorder')
    assert recorder.interrupt() == 0, recorder.output
    metadata = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    assert metadata['rosbag2_bagfile_information']['storage_identifier'] == 'sqlite3'
    assert metadata['rosbag2_bagfile_information']['version'] == 5  # as Humble's ros2 bag reads
