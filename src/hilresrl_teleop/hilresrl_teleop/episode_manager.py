"""
episode_manager: starts and ends the episodes of one cell and publishes what happens.

Services start_episode, end_episode and set_mode; topics episode_events (every start, end and
mode change) and mode (latched). The episode rules live in episodes.py.
"""

from hilresrl_msgs.msg import EpisodeEvent, EpisodeOutcome
from hilresrl_msgs.msg import Mode as ModeMsg
from hilresrl_msgs.srv import EndEpisode, SetMode, StartEpisode
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from .episodes import EpisodeError, EpisodeSummary, EpisodeTracker, Mode, Outcome

EVENTS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                        reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


class EpisodeManagerNode(Node):
    """Episode boundaries, mode and outcome of one cell."""

    def __init__(self, **kwargs):
        super().__init__('episode_manager', **kwargs)
        self.robot_id: str = self.declare_parameter(
            'robot_id', 'robot1', ParameterDescriptor(
                description='Identifier of this cell in episode events and transitions',
                read_only=True)).value
        initial_mode: str = self.declare_parameter(
            'initial_mode', 'train', ParameterDescriptor(
                description='Mode at start-up: train, eval or pause', read_only=True)).value
        try:
            self._episodes = EpisodeTracker(Mode[initial_mode.upper()])
        except KeyError:
            raise ValueError(f'initial_mode must be train, eval or pause, not {initial_mode!r}')

        self._events = self.create_publisher(EpisodeEvent, 'episode_events', EVENTS_QOS)
        self._mode = self.create_publisher(ModeMsg, 'mode', LATCHED_QOS)
        self.create_service(StartEpisode, 'start_episode', self._on_start)
        self.create_service(EndEpisode, 'end_episode', self._on_end)
        self.create_service(SetMode, 'set_mode', self._on_set_mode)
        self._mode.publish(ModeMsg(value=int(self._episodes.mode)))
        self.get_logger().info(f'cell {self.robot_id}: mode {self._episodes.mode.name}')

    def _on_start(self, request: StartEpisode.Request, response: StartEpisode.Response):
        try:
            episode_id = self._episodes.start(Mode(request.mode.value))
        except (EpisodeError, ValueError) as error:
            response.success, response.message = False, str(error)
            return response
        response.success, response.episode_id = True, episode_id
        self._publish_event(EpisodeEvent.EPISODE_START, detail=request.instruction)
        self.get_logger().info(
            f'episode {episode_id} started ({self._episodes.episode_mode.name})')
        return response

    def _on_end(self, request: EndEpisode.Request, response: EndEpisode.Response):
        try:
            summary = self._episodes.end(Outcome(request.outcome.value))
        except (EpisodeError, ValueError) as error:
            response.success, response.message = False, str(error)
            return response
        response.success = True
        response.episode_id = summary.episode_id
        response.steps = summary.steps
        response.episode_return = summary.episode_return
        self._publish_event(EpisodeEvent.EPISODE_END, summary=summary, detail=request.reason)
        self.get_logger().info(f'episode {summary.episode_id} ended: {summary.outcome.name} '
                               f'after {summary.steps} steps')
        return response

    def _on_set_mode(self, request: SetMode.Request, response: SetMode.Response):
        try:
            mode = Mode(request.mode.value)
        except ValueError:
            response.success, response.message = False, f'unknown mode {request.mode.value}'
            return response
        if mode == Mode.PAUSE and self._episodes.running:
            summary = self._episodes.end(Outcome.ABORT)
            self._publish_event(EpisodeEvent.EPISODE_END, summary=summary, detail='paused')
        previous = self._episodes.set_mode(mode)
        response.success = True
        response.previous_mode.value = int(previous)
        self._mode.publish(ModeMsg(value=int(mode)))
        self._publish_event(EpisodeEvent.MODE_CHANGE, detail=f'{previous.name} -> {mode.name}')
        self.get_logger().info(f'mode {previous.name} -> {mode.name}')
        return response

    def _publish_event(self, event: int, summary: EpisodeSummary = None, detail: str = ''):
        message = EpisodeEvent(robot_id=self.robot_id, event=event, detail=detail)
        message.header.stamp = self.get_clock().now().to_msg()
        message.episode_id = self._episodes.episode_id
        message.mode.value = int(self._episodes.episode_mode if self._episodes.running
                                 else self._episodes.mode)
        message.steps = self._episodes.steps
        message.episode_return = self._episodes.episode_return
        message.intervention_steps = self._episodes.intervention_steps
        if summary is not None:
            message.mode.value = int(summary.mode)
            message.outcome = EpisodeOutcome(value=int(summary.outcome))
        self._events.publish(message)


def main(args=None):
    """Run the episode manager until shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        node = EpisodeManagerNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
