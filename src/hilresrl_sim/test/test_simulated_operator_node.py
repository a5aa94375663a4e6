"""simulated_operator over DDS: it acts on a step's task state and progress, as a SpaceMouse."""

from geometry_msgs.msg import Twist
from hilresrl_common.qos import COMMAND_QOS, STEP_QOS
from hilresrl_msgs.msg import StateVector
from hilresrl_sim.experts import make_expert
from hilresrl_sim.simulated_operator_node import SimulatedOperatorNode
from hilresrl_sim.tasks import make_task, PROGRESS_NAMES
import numpy as np
from rclpy.parameter import Parameter


def test_a_stuck_policy_gets_the_experts_hand_once_state_and_progress_pair_up(
        ros_context, probe):
    node = SimulatedOperatorNode(context=ros_context, parameter_overrides=[
        Parameter('task', value='pick-place-v3'), Parameter('operator.stuck_steps', value=2),
        Parameter('operator.reaction_delay_steps', value=0),
        Parameter('operator.noise_std', value=0.0)])
    probe.executor.add_node(node)
    try:
        twists = []
        probe.node.create_subscription(Twist, 'spacenav/twist', twists.append, COMMAND_QOS)
        states = probe.node.create_publisher(StateVector, 'task_state', STEP_QOS)
        progress = probe.node.create_publisher(StateVector, 'task_progress', STEP_QOS)
        probe.wait_for(lambda: states.get_subscription_count() == 1
                       and progress.get_subscription_count() == 1
                       and probe.node.count_publishers('spacenav/twist') == 1,
                       message='the operator')
        with make_task('pick-place-v3', 5) as task:
            state, remaining = task.task_state(), task.progress()
        expert = make_expert('pick-place-v3')(state)

        def publish(stamp_s, with_progress=True):
            message = StateVector(data=state.tolist())
            message.header.stamp.sec = stamp_s
            states.publish(message)
            if with_progress:  # the progress second: the node waits for it
                message = StateVector(names=list(PROGRESS_NAMES), data=remaining.tolist())
                message.header.stamp.sec = stamp_s
                progress.publish(message)

        publish(1, with_progress=False)  # no progress for this step: no answer to it
        for stamp_s in (2, 3, 4):  # the scene stands still: stuck after 2 steps
            publish(stamp_s)
            probe.wait_for(lambda: len(twists) == stamp_s - 1, message=f'step {stamp_s}')
        assert [twist.linear.x for twist in twists[:2]] == [0.0, 0.0]
        hand = twists[2]
        assert np.allclose([hand.linear.x, hand.linear.y, hand.linear.z], expert[:3],
                           atol=0.11)  # the expert's action, as the device channels carry it
        assert np.linalg.norm(expert[:3]) > 0.5 and node.operator.interventions == 1
    finally:
        probe.executor.remove_node(node)
        node.destroy_node()
