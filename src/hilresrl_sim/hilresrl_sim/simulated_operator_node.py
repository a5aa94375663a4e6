"""
simulated_operator: plays the person at the SpaceMouse, through the same spacenav topics.

It watches the task state, the cell's task_progress and the policy's proposals and, when the
policy is about to fail, publishes the scripted expert's correction as spacenav/twist and
spacenav/joy (the gripper button), exactly what the ROS 2 spacenav driver publishes for a real
person; the arbiter cannot tell the two apart. The person is operator_model's, as in the
headless cell.
"""

from typing import Optional, Tuple

from geometry_msgs.msg import PoseStamped, Twist
from hilresrl_common.conversions import pose_to_array, stamp_to_ns
from hilresrl_common.node_runner import ConfigurationError, run_node
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.qos import COMMAND_QOS, EVENTS_QOS, LATCHED_QOS
from hilresrl_msgs.msg import EpisodeEvent, InterventionState, Mode, ProposedAction, StateVector
from hilresrl_teleop.spacemouse import SpaceMouseConfig, SpaceMouseMapper
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Joy

from .experts import make_expert
from .operator_model import expert_pace, GripperButton, SimulatedOperator
from .simulated_operator_parameters import operator_config, PARAMETERS
from .tasks import make_task


class SimulatedOperatorNode(Node):
    """The scripted expert's corrections, delivered as SpaceMouse input."""

    def __init__(self, **kwargs):
        super().__init__('simulated_operator', **kwargs)

        values = declare_parameters(self, PARAMETERS)
        task = values['task']
        config = operator_config(values)
        channels = values['spacemouse.channels']
        self.gripper_button: int = values['spacemouse.gripper_button']
        self.gripper_axis: int = values['gripper_axis']
        try:
            expert = make_expert(task)
            self.mapper = SpaceMouseMapper(SpaceMouseConfig(
                deadband=values['spacemouse.deadband'], channels=tuple(channels),
                scales=tuple(values['spacemouse.scales']),
                gripper_axis=self.gripper_axis, gripper_button=self.gripper_button),
                len(channels))
            # The person has watched the expert do the task a few times: they know its pace.
            watched = make_task(task, values['seed'])
            try:
                pace = expert_pace(watched, config, values['seed'])
            finally:
                watched.close()
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        self.operator = SimulatedOperator(config, expert, values['seed'], pace)
        self._mode = Mode.TRAIN
        self._last_proposal: Optional[np.ndarray] = None
        self._human_gripper: Optional[float] = None
        self.gripper_button_state = GripperButton()
        self._buttons = max(self.gripper_button + 1, 2)
        self._ee_position = np.zeros(3)
        self._last_stamp_ns = -1
        # The task state and the progress of one step, paired by stamp (either may come first).
        self._state: Optional[Tuple[int, np.ndarray]] = None
        self._progress: Optional[Tuple[int, np.ndarray]] = None

        self._twist_pub = self.create_publisher(Twist, 'spacenav/twist', COMMAND_QOS)
        self._joy_pub = self.create_publisher(Joy, 'spacenav/joy', COMMAND_QOS)
        self.create_subscription(StateVector, 'task_state', self._on_state, COMMAND_QOS)
        self.create_subscription(StateVector, 'task_progress', self._on_progress, COMMAND_QOS)
        self.create_subscription(PoseStamped, 'ee_pose', self._on_ee_pose, COMMAND_QOS)
        self.create_subscription(ProposedAction, 'proposed_action', self._on_proposal,
                                 COMMAND_QOS)
        self.create_subscription(InterventionState, 'intervention_state',
                                 self._on_intervention, COMMAND_QOS)
        self.create_subscription(Mode, 'mode', self._on_mode, LATCHED_QOS)
        self.create_subscription(EpisodeEvent, 'episode_events', self._on_event, EVENTS_QOS)
        late = (f"{config.late_factor:g}x behind the expert's pace" if pace is not None
                else 'never judged by time')
        self.get_logger().info(f'simulated operator for {task}: steps in when the policy is '
                               f'about to fail (stuck {config.stuck_steps} steps, object lost, '
                               f'wrong gripper, {late})')

    def _on_state(self, message: StateVector) -> None:
        # Act on the observation itself, so the hand is on the device before the policy's
        # proposal for this step reaches the arbiter (a person sees the scene, not the topic).
        stamp_ns = stamp_to_ns(message.header.stamp)
        if stamp_ns == self._last_stamp_ns:
            return  # the cell published this step again: the hand already answered it
        if self._mode != Mode.TRAIN:
            self._last_stamp_ns = stamp_ns
            self._publish(None)
            return
        self._state = (stamp_ns, np.asarray(message.data, dtype=np.float32))
        self._act()

    def _on_progress(self, message: StateVector) -> None:
        self._progress = (stamp_to_ns(message.header.stamp),
                          np.asarray(message.data, dtype=np.float32))
        self._act()

    def _act(self) -> None:
        # Once the state and the progress of the same step are both here, and only once.
        if self._state is None or self._progress is None:
            return
        stamp_ns, state = self._state
        if self._progress[0] != stamp_ns or stamp_ns == self._last_stamp_ns:
            return
        self._last_stamp_ns = stamp_ns
        decision = self.operator.step(state, self._last_proposal, self._ee_position,
                                      self._progress[1])
        if decision.triggered and decision.action is not None:
            self.get_logger().info(f'stepping in ({decision.triggered})')
        self._publish(decision.action)

    def _publish(self, action: Optional[np.ndarray]) -> None:
        twist = Twist()
        buttons = [0] * self._buttons
        if action is not None:
            linear, angular = self.mapper.channels_for_action(action)
            twist.linear.x, twist.linear.y, twist.linear.z = (float(v) for v in linear)
            twist.angular.x, twist.angular.y, twist.angular.z = (float(v) for v in angular)
            buttons[self.gripper_button] = int(self._press_gripper(
                self.operator.gripper_range.closed(action[self.gripper_axis])))
        else:
            self.gripper_button_state.release()
        self._twist_pub.publish(twist)
        self._joy_pub.publish(Joy(axes=[float(v) for v in (
            twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.x, twist.angular.y,
            twist.angular.z)], buttons=buttons))

    def _press_gripper(self, wanted_closed: bool) -> bool:
        believed = self._human_gripper
        if believed is None and self._last_proposal is not None:
            believed = float(np.sign(self._last_proposal[self.gripper_axis]))
        return self.gripper_button_state.press(wanted_closed, believed)

    def _on_proposal(self, message: ProposedAction) -> None:
        self._last_proposal = np.asarray(message.composed_action, dtype=np.float32)

    def _on_ee_pose(self, message: PoseStamped) -> None:
        self._ee_position = pose_to_array(message)[:3]

    def _on_intervention(self, message: InterventionState) -> None:
        self._human_gripper = (float(np.sign(message.human_action[self.gripper_axis]))
                               if message.active and len(message.human_action) else None)

    def _on_mode(self, message: Mode) -> None:
        self._mode = message.value

    def _on_event(self, event: EpisodeEvent) -> None:
        if event.event == EpisodeEvent.EPISODE_START:
            self.operator.reset()
            self._last_proposal = None
            self._human_gripper = None


def main(args=None):
    """Run the simulated operator until shutdown."""
    return run_node(SimulatedOperatorNode, args)


if __name__ == '__main__':
    main()
