"""hilresrl replay over DDS: a bag's messages back on their topics, on time, scaled, offset."""

import time

from hilresrl_common.qos import LATCHED_QOS
from hilresrl_recording.bag import BagWriter, qos_profile_dict
from hilresrl_recording.message_definitions import ros2msg_definition
from hilresrl_recording.playback import PlaybackOptions, schedule, select_topics
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


def _cell_bag(path):
    """Write a run's bag: an observation topic and topics that would act on a live cell."""
    from geometry_msgs.msg import Twist, TwistStamped
    from hilresrl_msgs.msg import PolicyWeights, StateVector
    from std_msgs.msg import Bool
    bag = BagWriter(path)
    topics = {'/cell/task_state': StateVector(data=[0.5]),
              '/cell/servo/delta_twist_cmds': TwistStamped(),
              '/cell/spacenav/twist': Twist(), '/cell/estop': Bool(data=False),
              '/cell/policy_weights': PolicyWeights(version=7, learner_run_id='r')}
    for name, message in topics.items():
        type_name = type(message).__module__.split('.')[0] + '/msg/' + type(message).__name__
        bag.add_topic(name, type_name, ros2msg_definition(type_name), '', [qos_profile_dict()])
    for index in range(5):
        for name, message in topics.items():
            bag.write(name, 10**18 + index * PERIOD_NS, serialize_message(message))
    bag.close()
    return path, {name: type(message) for name, message in topics.items()}


def test_replay_sends_no_command_device_estop_or_weights_topic_by_default(
        probe, launch_process, tmp_path):
    bag, types = _cell_bag(tmp_path / 'bag')
    received = {name: [] for name in types}
    for name, message_type in types.items():
        probe.node.create_subscription(message_type, name, received[name].append, KEEP_ALL)
    player = launch_process(['hilresrl', 'replay', str(bag), *WAIT])
    probe.wait_for(lambda: player.process.poll() is not None, 90, 'the replay')
    assert player.wait() == 0, player.output
    probe.wait_for(lambda: len(received['/cell/task_state']) == 5, 10, 'the observations')
    assert {name: len(messages) for name, messages in received.items()} == {
        '/cell/task_state': 5, '/cell/servo/delta_twist_cmds': 0, '/cell/spacenav/twist': 0,
        '/cell/estop': 0, '/cell/policy_weights': 0}
    assert 'left out: /cell/estop' in player.output


def test_an_acting_topic_plays_only_when_named_exactly_with_a_warning():
    from hilresrl_recording.playback import choose_topics
    types = {'/c/task_state': 'hilresrl_msgs/msg/StateVector',
             '/c/servo/delta_twist_cmds': 'geometry_msgs/msg/TwistStamped',
             '/c/gripper/command': 'std_msgs/msg/Float64MultiArray',
             '/c/target_pose': 'geometry_msgs/msg/PoseStamped',
             '/c/ee_pose': 'geometry_msgs/msg/PoseStamped',
             '/c/transitions': 'hilresrl_msgs/msg/Transition'}
    chosen, left_out, warnings = choose_topics(types, None)
    assert chosen == ['/c/ee_pose', '/c/task_state'] and len(left_out) == 4 and not warnings
    chosen, left_out, warnings = choose_topics(types, ['/c/.*'])
    assert chosen == ['/c/ee_pose', '/c/task_state', '/c/transitions']
    chosen, _, warnings = choose_topics(types, ['/c/target_pose', '/c/task_state'])
    assert chosen == ['/c/target_pose', '/c/task_state']
    assert len(warnings) == 1 and 'target_pose' in warnings[0]
    chosen, _, warnings = choose_topics(types, ['/c/.*'], allow_acting=True)
    assert len(chosen) == 6 and len(warnings) == 3
