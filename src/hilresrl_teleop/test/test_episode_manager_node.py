"""episode_manager over DDS: services, events and the latched mode."""

from hilresrl_msgs.msg import EpisodeEvent, EpisodeOutcome, Mode
from hilresrl_msgs.srv import EndEpisode, SetMode, StartEpisode
from hilresrl_teleop import episodes
from hilresrl_teleop.episode_manager import EpisodeManagerNode
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture
def manager(ros_context, probe):
    node = EpisodeManagerNode(context=ros_context, parameter_overrides=[
        Parameter('robot_id', value='cellA')])
    probe.executor.add_node(node)
    yield node
    probe.executor.remove_node(node)
    node.destroy_node()


def test_core_enums_match_the_messages():
    assert [m.value for m in episodes.Mode] == [Mode.TRAIN, Mode.EVAL, Mode.PAUSE]
    assert [o.value for o in episodes.Outcome] == [
        EpisodeOutcome.NONE, EpisodeOutcome.SUCCESS, EpisodeOutcome.FAILURE,
        EpisodeOutcome.TIMEOUT, EpisodeOutcome.ABORT]


def test_episode_start_and_end_are_published(manager, probe):
    events = []
    probe.node.create_subscription(EpisodeEvent, 'episode_events', events.append, 10)
    probe.wait_for(lambda: probe.node.count_publishers('episode_events') == 1)

    started = probe.call(StartEpisode, 'start_episode',
                         StartEpisode.Request(mode=Mode(value=Mode.EVAL), instruction='pick'))
    assert started.success and started.episode_id == 1
    again = probe.call(StartEpisode, 'start_episode', StartEpisode.Request())
    assert not again.success and 'still running' in again.message
    ended = probe.call(EndEpisode, 'end_episode', EndEpisode.Request(
        outcome=EpisodeOutcome(value=EpisodeOutcome.FAILURE), reason='dropped'))
    assert ended.success and ended.episode_id == 1

    probe.wait_for(lambda: len(events) == 2, message='two episode events')
    start, end = events
    assert (start.event, start.robot_id, start.episode_id, start.mode.value, start.detail) == (
        EpisodeEvent.EPISODE_START, 'cellA', 1, Mode.EVAL, 'pick')
    assert (end.event, end.outcome.value, end.mode.value, end.detail) == (
        EpisodeEvent.EPISODE_END, EpisodeOutcome.FAILURE, Mode.EVAL, 'dropped')


def test_pause_aborts_the_running_episode_and_is_latched(manager, probe):
    probe.call(StartEpisode, 'start_episode', StartEpisode.Request())
    response = probe.call(SetMode, 'set_mode', SetMode.Request(mode=Mode(value=Mode.PAUSE)))
    assert response.success and response.previous_mode.value == Mode.TRAIN
    refused = probe.call(StartEpisode, 'start_episode', StartEpisode.Request())
    assert not refused.success and 'paused' in refused.message

    modes = []  # a late subscriber still gets the mode: the topic is latched
    probe.node.create_subscription(Mode, 'mode', modes.append, LATCHED)
    probe.wait_for(lambda: modes and modes[-1].value == Mode.PAUSE, message='latched mode')
