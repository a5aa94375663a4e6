"""hilresrl replay over DDS: a bag's messages back on their topics, on time, scaled, offset."""

import time

from hilresrl_learner.bag import BagWriter, qos_profile_dict
from hilresrl_learner.message_definitions import ros2msg_definition
from hilresrl_learner.playback import PlaybackOptions, schedule, select_topics
from hilresrl_policy.qos import LATCHED_QOS
import numpy as np
import pytest
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from std_msgs.msg import String

KEEP_ALL = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
PERIOD_NS = 50_000_000  # the recorded messages are 50 ms apart
# Play once this test's subscribers are matched (discovery is slow on a loaded machine).
WAIT = ('--wait-for-subscribers', '60')


def _bag(path):
    bag = BagWriter(path)
    definition = ros2msg_definition('std_msgs/msg/String')
    bag.add_topic('/cell/chatter', 'std_msgs/msg/String', definition, '',
                  [qos_profile_dict(depth=100)])
    bag.add_topic('/cell/other', 'std_msgs/msg/String', definition, '', [qos_profile_dict()])
    bag.add_topic('/cell/instruction', 'std_msgs/msg/String', definition, '',
                  [qos_profile_dict(depth=1, durability='transient_local')])
    start = 10**18
    bag.write('/cell/instruction', start, serialize_message(String(data='latched')))
    for index in range(20):
        bag.write('/cell/chatter', start + index * PERIOD_NS,
                  serialize_message(String(data=str(index))))
        bag.write('/cell/other', start + index * PERIOD_NS + 1,
                  serialize_message(String(data='other')))
    bag.close()
    return path


def test_schedule_scales_offsets_and_selects():
    messages = [('/a', 10**9 + k * PERIOD_NS, b'') for k in range(5)]
    due = [s for s, _, _ in schedule(messages, 10**9, PlaybackOptions(rate=2.0, start_s=0.1))]
    assert due == pytest.approx([0.0, 0.025, 0.05])  # from the third message on, twice as fast
    assert select_topics(['/x/a', '/x/b', '/y'], ['/x/.*']) == ['/x/a', '/x/b']
    with pytest.raises(ValueError, match='no topic of the bag matches /z'):
        select_topics(['/x/a'], ['/z'])
    with pytest.raises(ValueError, match='rate must be positive'):
        PlaybackOptions(rate=0)


@pytest.mark.parametrize('rate', [1.0, 2.0])
def test_replay_keeps_the_recorded_timing(probe, launch_process, tmp_path, rate):
    bag = _bag(tmp_path / 'bag')
    arrivals = []
    probe.node.create_subscription(String, '/cell/chatter',
                                   lambda m: arrivals.append((time.monotonic(), m.data)),
                                   KEEP_ALL)
    probe.node.create_subscription(String, '/cell/instruction', lambda m: None, LATCHED_QOS)
    player = launch_process(['hilresrl', 'replay', str(bag), '--rate', str(rate), '--topics',
                             '/cell/chatter', '/cell/instruction', *WAIT])
    probe.wait_for(lambda: player.process.poll() is not None, 60, 'the replay')
    assert player.wait() == 0, player.output
    probe.wait_for(lambda: len(arrivals) == 20, 10, 'every message')
    assert [data for _, data in arrivals] == [str(index) for index in range(20)]
    # The mean period (least squares over all arrivals, so that one message the scheduler
    # held up on a busy machine does not decide) is the recorded one, scaled, within 10%.
    period = np.polyfit(np.arange(20), [t for t, _ in arrivals], 1)[0]
    recorded = PERIOD_NS / 1e9 / rate
    assert abs(period - recorded) <= 0.1 * recorded, (period, recorded)
    assert 'done: 21 messages published' in player.output


def test_a_start_offset_skips_the_beginning(probe, launch_process, tmp_path):
    received = []
    probe.node.create_subscription(String, '/cell/chatter', lambda m: received.append(m.data),
                                   KEEP_ALL)
    player = launch_process(['hilresrl', 'replay', str(_bag(tmp_path / 'bag')), '--start',
                             '0.5', '--topics', '/cell/chatter', *WAIT])
    probe.wait_for(lambda: player.process.poll() is not None, 60, 'the replay')
    probe.wait_for(lambda: len(received) == 10, 10, 'the second half')
    assert received == [str(index) for index in range(10, 20)]


def test_loop_plays_again_and_latched_topics_stay_latched(probe, launch_process, tmp_path):
    received, latched = [], []
    probe.node.create_subscription(String, '/cell/chatter', lambda m: received.append(m.data),
                                   KEEP_ALL)
    probe.node.create_subscription(String, '/cell/instruction', lambda m: None, LATCHED_QOS)
    player = launch_process(['hilresrl', 'replay', str(_bag(tmp_path / 'bag')), '--loop',
                             '--topics', '/cell/chatter', '/cell/instruction', *WAIT])
    probe.wait_for(lambda: len(received) >= 25, 60, 'a second round')
    assert received[:25] == [str(index) for index in range(20)] + [str(i) for i in range(5)]
    # a subscriber that comes late still gets the latched message
    probe.node.create_subscription(String, '/cell/instruction', latched.append, LATCHED_QOS)
    probe.wait_for(lambda: latched, 30, 'the latched instruction')
    assert latched[0].data == 'latched'
    assert player.interrupt() == 0, player.output


def test_a_missing_bag_or_topic_is_refused_with_the_reason(tmp_path):
    import subprocess
    result = subprocess.run(['hilresrl', 'replay', str(tmp_path / 'nothing')],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and 'no such bag or run folder' in result.stderr
    _bag(tmp_path / 'bag')
    result = subprocess.run(['hilresrl', 'replay', str(tmp_path / 'bag'), '--topics', '/nope'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and 'no topic of the bag matches /nope' in result.stderr
