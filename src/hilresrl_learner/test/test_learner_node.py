"""learner_node over DDS: transition intake, gap reports and episode statistics."""

from hilresrl_learner.learner_node import LearnerNode, TRANSITIONS_QOS
from hilresrl_msgs.msg import EpisodeEvent, EpisodeOutcome, LearnerStatus, Mode, Transition
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture
def learner(ros_context, probe):
    node = LearnerNode(context=ros_context, parameter_overrides=[
        Parameter('status_period_s', value=0.2)])
    probe.executor.add_node(node)
    yield node
    probe.executor.remove_node(node)
    node.destroy_node()


def test_gaps_and_outcomes_reach_the_status(learner, probe):
    statuses = []
    probe.node.create_subscription(LearnerStatus, 'learner_status', statuses.append, LATCHED)
    transitions = probe.node.create_publisher(Transition, 'transitions', TRANSITIONS_QOS)
    events = probe.node.create_publisher(EpisodeEvent, 'episode_events', 10)
    probe.wait_for(lambda: transitions.get_subscription_count() == 1
                   and events.get_subscription_count() == 1, message='the learner')
    probe.wait_for(lambda: statuses and statuses[-1].state == 'waiting_for_data')

    for sequence in (1, 2, 5, 6):  # 3 and 4 never sent
        transitions.publish(Transition(robot_id='r1', sequence=sequence,
                                       intervened=sequence == 6))
    for outcome, mode in ((EpisodeOutcome.SUCCESS, Mode.TRAIN), (EpisodeOutcome.FAILURE,
                          Mode.TRAIN), (EpisodeOutcome.SUCCESS, Mode.EVAL)):
        event = EpisodeEvent(event=EpisodeEvent.EPISODE_END, robot_id='r1')
        event.outcome.value, event.mode.value = outcome, mode
        events.publish(event)

    probe.wait_for(lambda: statuses[-1].env_steps == 4 and statuses[-1].eval_episodes == 1,
                   message='all data in the status')
    status = statuses[-1]
    assert status.state == 'receiving'
    assert status.transitions_lost == 2
    assert (status.train_episodes, status.train_success_rate) == (2, 0.5)
    assert status.intervention_rate == pytest.approx(0.25)
    assert status.eval_success_rate == 1.0 and status.eval_success_ci_high == 1.0
