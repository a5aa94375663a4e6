"""
learner_node: takes in the transitions of every cell and reports the learner's progress.

Subscribes to transitions (reliable, deep queue) and episode_events; checks sequence numbers per
robot and reports every gap; publishes learner_status (latched) every status period.
"""

from hilresrl_msgs.msg import EpisodeEvent, EpisodeOutcome, LearnerStatus, Transition
from hilresrl_policy.node_runner import run_node
from hilresrl_policy.qos import EVENTS_QOS, LATCHED_QOS, TRANSITIONS_QOS
from hilresrl_policy.success_statistics import SuccessWindow
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from .sequence_tracker import SequenceTracker


class LearnerNode(Node):
    """Transition intake with gap detection, episode statistics and the status topic."""

    def __init__(self, **kwargs):
        super().__init__('learner', **kwargs)
        status_period_s: float = self.declare_parameter(
            'status_period_s', 1.0, ParameterDescriptor(
                description='Seconds between learner_status messages', read_only=True)).value
        success_window: int = self.declare_parameter(
            'success_window', 20, ParameterDescriptor(
                description='Episodes over which training and evaluation success rates are '
                            'computed', read_only=True)).value

        self._sequences = SequenceTracker()
        self._train_success = SuccessWindow(success_window)
        self._eval_success = SuccessWindow(success_window)
        self._train_steps = 0
        self._train_intervention_steps = 0

        self._status = self.create_publisher(LearnerStatus, 'learner_status', LATCHED_QOS)
        self.create_subscription(Transition, 'transitions', self._on_transition,
                                 TRANSITIONS_QOS)
        self.create_subscription(EpisodeEvent, 'episode_events', self._on_episode_event,
                                 EVENTS_QOS)
        self.create_timer(status_period_s, self._publish_status)
        self._publish_status()

    def _on_transition(self, transition: Transition) -> None:
        check = self._sequences.observe(transition.robot_id, transition.sequence)
        if check.lost:
            self.get_logger().warning(
                f'{check.lost} transition(s) from {transition.robot_id} lost before sequence '
                f'{transition.sequence} ({self._sequences.lost[transition.robot_id]} in all)')
        elif check.duplicate:
            self.get_logger().warning(
                f'transition {transition.sequence} from {transition.robot_id} arrived again '
                'or out of order; ignored')
            return
        elif check.restarted:
            self.get_logger().info(f'{transition.robot_id} restarted its sequence numbers')
        if not transition.evaluation:
            self._train_steps += 1
            self._train_intervention_steps += int(transition.intervened)

    def _on_episode_event(self, event: EpisodeEvent) -> None:
        if event.event != EpisodeEvent.EPISODE_END or event.outcome.value == EpisodeOutcome.ABORT:
            return
        success = event.outcome.value == EpisodeOutcome.SUCCESS
        if event.mode.value == event.mode.EVAL:
            self._eval_success.add(success)
        else:
            self._train_success.add(success)

    def _publish_status(self) -> None:
        env_steps = self._sequences.total_received
        status = LearnerStatus(state='receiving' if env_steps else 'waiting_for_data')
        status.header.stamp = self.get_clock().now().to_msg()
        status.env_steps = env_steps
        status.transitions_lost = self._sequences.total_lost
        status.train_episodes = self._train_success.episodes
        status.train_success_rate = self._train_success.rate
        status.intervention_rate = (self._train_intervention_steps / self._train_steps
                                    if self._train_steps else 0.0)
        status.eval_episodes = self._eval_success.episodes
        status.eval_success_rate = self._eval_success.rate
        status.eval_success_ci_low, status.eval_success_ci_high = self._eval_success.interval
        self._status.publish(status)


def main(args=None):
    """Run the learner until shutdown."""
    return run_node(LearnerNode, args)


if __name__ == '__main__':
    main()
