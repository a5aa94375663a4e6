"""Each command interface against a consumer that subscribes as the real controller does."""

import sys
import types

from geometry_msgs.msg import PoseStamped, TwistStamped
from hilresrl_common.conversions import float32_field, ns_to_stamp
from hilresrl_common.node_runner import ConfigurationError
from hilresrl_common.qos import COMMAND_QOS
from hilresrl_msgs.msg import ProposedAction
from hilresrl_teleop.intervention_arbiter_node import InterventionArbiterNode
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

# joint_trajectory_controller, forward command controllers and MoveIt Servo subscribe with the
# system defaults (reliable, keep last 10); FZI's cartesian controllers with QoS(10): the same.
CONTROLLER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                            reliability=ReliabilityPolicy.RELIABLE)
PERIOD_S = 0.1


@pytest.fixture
def make_arbiter(ros_context, probe):

    def make(**overrides):
        axes = len(overrides.get('action_names', ['x', 'y', 'z', 'gripper']))
        settings = {'control_period_s': PERIOD_S, 'watchdog_timeout_s': 60.0,
                    'linear_speed_scale_mps': 0.1, 'angular_speed_scale_rps': 0.5,
                    'spacemouse.channels': [''] * axes, 'spacemouse.scales': [1.0] * axes,
                    **overrides}
        node = InterventionArbiterNode(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in settings.items()])
        probe.spin(node)
        return node

    return make


class Controller:
    """A consumer of one command topic, and the cell's measured pose and joints."""

    def __init__(self, probe, message_type, topic):
        self.probe = probe
        self.received = []
        probe.node.create_subscription(message_type, topic, self.received.append,
                                       CONTROLLER_QOS)
        self.proposals = probe.node.create_publisher(ProposedAction, 'proposed_action',
                                                     COMMAND_QOS)
        self.poses = probe.node.create_publisher(PoseStamped, 'ee_pose', 10)
        self.joints = probe.node.create_publisher(JointState, 'joint_states', 10)
        probe.wait_for(lambda: self.proposals.get_subscription_count() == 1
                       and probe.node.count_publishers(topic) >= 1, message='the arbiter')

    def pose(self, arbiter, position, quaternion=(0.0, 0.0, 0.0, 1.0), stamp_ns=10**10):
        message = PoseStamped()
        message.header.stamp = ns_to_stamp(stamp_ns)
        message.pose.position.x, message.pose.position.y, message.pose.position.z = position
        (message.pose.orientation.x, message.pose.orientation.y, message.pose.orientation.z,
         message.pose.orientation.w) = quaternion
        self.poses.publish(message)
        self.probe.wait_for(lambda: arbiter.ee_position is not None
                            and np.allclose(arbiter.ee_position, position), message='the pose')

    def joint_state(self, names, positions):
        self.joints.publish(JointState(name=list(names), position=list(positions)))

    def step(self, k, action, count=1):
        before = len(self.received)
        message = ProposedAction(step=k, composed_action=float32_field(action))
        message.header.stamp = ns_to_stamp(k * 10**8)
        self.proposals.publish(message)
        self.probe.wait_for(lambda: len(self.received) >= before + count,
                            message=f'command {k}')
        return self.received[-1]


def test_servo_twist_in_the_tool_frame_carries_its_frame_and_units(make_arbiter, probe):
    make_arbiter(**{'command_interface': 'servo_twist', 'command_frame': 'tool',
                    'tool_frame_id': 'panda_hand',
                    'action_names': ['x', 'y', 'z', 'yaw', 'gripper']})
    controller = Controller(probe, TwistStamped, 'servo/delta_twist_cmds')
    twist = controller.step(1, [0.5, 0.0, -1.0, 1.0, -1.0])
    assert twist.header.frame_id == 'panda_hand'
    assert [twist.twist.linear.x, twist.twist.linear.z] == pytest.approx([0.05, -0.1])  # m/s
    assert twist.twist.angular.z == pytest.approx(0.5)  # rad/s
    for k in range(2, 6):  # one command per control step, no more
        controller.step(k, [0.0] * 5)
    assert len(controller.received) == 5


def test_cartesian_pose_targets_follow_the_measured_pose_inside_the_box(make_arbiter, probe):
    arbiter = make_arbiter(**{'command_interface': 'cartesian_pose',
                              'command_frame_id': 'panda_link0',
                              'action_names': ['x', 'y', 'z', 'yaw', 'gripper'],
                              'safety.workspace_min': [-0.5, -0.5, 0.1],
                              'safety.workspace_max': [0.5, 0.5, 0.6]})
    controller = Controller(probe, PoseStamped, 'target_pose')
    grippers = []
    probe.node.create_subscription(Float64MultiArray, 'gripper/command', grippers.append,
                                   CONTROLLER_QOS)
    controller.pose(arbiter, [0.3, 0.0, 0.4])
    target = controller.step(1, [1.0, -0.5, 0.0, 1.0, 1.0])
    assert target.header.frame_id == 'panda_link0'
    position = [target.pose.position.x, target.pose.position.y, target.pose.position.z]
    assert position == pytest.approx([0.31, -0.005, 0.4])  # 0.1 m/s for one 0.1 s period
    yaw = Rotation.from_quat([target.pose.orientation.x, target.pose.orientation.y,
                              target.pose.orientation.z, target.pose.orientation.w]
                             ).as_euler('xyz')[2]
    assert yaw == pytest.approx(0.05)
    probe.wait_for(lambda: grippers, message='the gripper command')
    assert grippers[-1].data.tolist() == [1.0]
    # at the box's wall, full speed outward: the target stays on the wall
    controller.pose(arbiter, [0.5, 0.0, 0.1])
    target = controller.step(2, [1.0, 0.0, -1.0, 0.0, 1.0])
    assert [target.pose.position.x, target.pose.position.z] == pytest.approx([0.5, 0.1])
    # a proposal newer than the last pose waits for the pose of its own step (lockstep)
    count = len(controller.received)
    message = ProposedAction(step=3, composed_action=float32_field([0.0, 1.0, 0, 0, 1.0]))
    message.header.stamp = ns_to_stamp(2 * 10**10)
    controller.proposals.publish(message)
    probe.wait_for(lambda: arbiter.output._pending is not None, message='the waiting target')
    assert len(controller.received) == count
    controller.pose(arbiter, [0.2, 0.1, 0.3], stamp_ns=2 * 10**10)
    probe.wait_for(lambda: len(controller.received) > count, message='the target')
    target = controller.received[-1]
    assert [target.pose.position.x, target.pose.position.y] == pytest.approx([0.2, 0.11])


def test_joint_trajectory_from_joint_space_actions_and_a_gripper_trajectory(
        make_arbiter, probe):
    arbiter = make_arbiter(**{'command_interface': 'joint_trajectory',
                              'action_names': ['shoulder', 'elbow', 'gripper'],
                              'joint_names': ['shoulder', 'elbow'],
                              'joint_speed_scale_rps': 1.0,
                              'joint_lower': [-3.0, -2.0], 'joint_upper': [3.0, 0.5],
                              'gripper.interface': 'joint_trajectory',
                              'gripper.joint_names': ['finger_joint'],
                              'gripper.open_position': 0.0, 'gripper.closed_position': 0.8})
    controller = Controller(probe, JointTrajectory,
                            'joint_trajectory_controller/joint_trajectory')
    fingers = []
    probe.node.create_subscription(JointTrajectory, 'gripper_controller/joint_trajectory',
                                   fingers.append, CONTROLLER_QOS)
    controller.joint_state(['elbow', 'shoulder', 'finger_joint'], [0.45, 1.0, 0.0])
    probe.wait_for(lambda: arbiter.output._joints.get('elbow') == 0.45, message='joints')
    trajectory = controller.step(1, [-0.5, 1.0, 1.0])
    assert trajectory.joint_names == ['shoulder', 'elbow']
    point = trajectory.points[0]
    assert list(point.positions) == pytest.approx([0.95, 0.5])  # elbow stops at its limit
    assert point.time_from_start.sec == 0 and point.time_from_start.nanosec == 100_000_000
    probe.wait_for(lambda: fingers, message='the gripper trajectory')
    assert fingers[-1].joint_names == ['finger_joint']
    assert list(fingers[-1].points[0].positions) == pytest.approx([0.8])


def test_forward_command_positions(make_arbiter, probe):
    arbiter = make_arbiter(**{'command_interface': 'joint_forward',
                              'action_names': ['j1', 'j2'], 'joint_names': ['j1', 'j2'],
                              'joint_speed_scale_rps': 2.0})
    controller = Controller(probe, Float64MultiArray, 'forward_position_controller/commands')
    controller.joint_state(['j1', 'j2'], [0.0, -1.0])
    probe.wait_for(lambda: arbiter.output._joints.get('j2') == -1.0, message='joints')
    command = controller.step(1, [1.0, -0.25])
    assert command.data.tolist() == pytest.approx([0.2, -1.05])  # 2 rad/s for 0.1 s


def test_joint_targets_from_cartesian_actions_need_inverse_kinematics(ros_context):
    with pytest.raises(ConfigurationError) as error:
        InterventionArbiterNode(context=ros_context, parameter_overrides=[
            Parameter('command_interface', value='joint_trajectory'),
            Parameter('joint_names', value=['j1', 'j2']), Parameter('ik.wait_s', value=0.5)])
    message = str(error.value)
    assert 'moveit_py' in message and 'compute_ik' in message
    assert 'joint-space actions' in message


def test_a_moveit_py_that_cannot_be_set_up_falls_back_to_compute_ik(
        ros_context, probe, monkeypatch):
    # MoveItPy() throws without the robot's MoveIt configuration (Jazzy): the arbiter must not
    # die of it but solve IK through move_group's service. MoveIt is not installed here, so
    # stand-ins take its modules' places: a MoveItPy that throws, and as /compute_ik's type a
    # service type that is installed.
    class ThrowingMoveItPy:
        def __init__(self, **kwargs):
            raise RuntimeError('Failed to load robot_description')

    planning = types.ModuleType('moveit.planning')
    planning.MoveItPy = ThrowingMoveItPy
    robot_state = types.ModuleType('moveit.core.robot_state')
    robot_state.RobotState = object
    services = types.ModuleType('moveit_msgs.srv')
    services.GetPositionIK = Trigger
    for name, module in {'moveit': types.ModuleType('moveit'), 'moveit.planning': planning,
                         'moveit.core': types.ModuleType('moveit.core'),
                         'moveit.core.robot_state': robot_state,
                         'moveit_msgs': types.ModuleType('moveit_msgs'),
                         'moveit_msgs.srv': services}.items():
        monkeypatch.setitem(sys.modules, name, module)
    probe.node.create_service(Trigger, 'compute_ik', lambda request, response: response)
    arbiter = InterventionArbiterNode(context=ros_context, parameter_overrides=[
        Parameter('command_interface', value='joint_trajectory'),
        Parameter('joint_names', value=['j1', 'j2']), Parameter('ik.service', value='compute_ik'),
        Parameter('ik.wait_s', value=30.0)])
    try:
        assert type(arbiter.output._ik).__name__ == '_ComputeIK'
        assert arbiter.output._ik.client.srv_name.endswith('compute_ik')
    finally:
        arbiter.destroy_node()


def _recording_service(calls: list):
    """Return a service callback that notes each request and answers success."""
    def answer(request, response):
        calls.append(request)
        response.success = True
        return response
    return answer


def test_moveit_servo_is_started_and_a_missing_servo_is_refused(make_arbiter, probe,
                                                                ros_context):
    started = []
    probe.node.create_service(Trigger, 'servo_node/start_servo', _recording_service(started))
    make_arbiter(**{'servo.start_service': 'servo_node/start_servo', 'servo.wait_s': 30.0})
    probe.wait_for(lambda: started, message='the start_servo call')
    with pytest.raises(ConfigurationError, match='MoveIt Servo is not there: no '
                                                 'elsewhere/start_servo service'):
        InterventionArbiterNode(context=ros_context, parameter_overrides=[
            Parameter('servo.start_service', value='elsewhere/start_servo'),
            Parameter('servo.wait_s', value=0.5)])


def test_servo_is_started_the_way_the_servo_that_is_there_takes_it(make_arbiter, probe,
                                                                   ros_context):
    # Humble's Servo: <node>/start_servo (std_srvs/Trigger), found and called.
    started = []
    humble = probe.node.create_service(Trigger, 'humble_servo/start_servo',
                                       _recording_service(started))
    make_arbiter(**{'servo.node': 'humble_servo', 'servo.wait_s': 30.0})
    probe.wait_for(lambda: started, message='the start_servo call')
    probe.node.destroy_service(humble)
    # Jazzy's: <node>/pause_servo (std_srvs/SetBool) and <node>/switch_command_type
    # (moveit_msgs, not installed here: a stand-in of another type under that name). Found,
    # and refused naming what is missing, before anything is called.
    unpaused = []
    probe.node.create_service(SetBool, 'jazzy_servo/pause_servo', _recording_service(unpaused))
    probe.node.create_service(Trigger, 'jazzy_servo/switch_command_type',
                              lambda request, response: response)
    with pytest.raises(ConfigurationError, match='jazzy_servo/switch_command_type needs '
                                                 'moveit_msgs'):
        InterventionArbiterNode(context=ros_context, parameter_overrides=[
            Parameter('servo.node', value='jazzy_servo'), Parameter('servo.wait_s', value=30.0)])
    assert not unpaused and not started[1:]
    with pytest.raises(ConfigurationError, match='neither /nowhere/start_servo .Humble. nor '
                                                 '/nowhere/switch_command_type'):
        InterventionArbiterNode(context=ros_context, parameter_overrides=[
            Parameter('servo.node', value='/nowhere'), Parameter('servo.wait_s', value=0.5)])


def test_the_tf_pose_node_names_what_it_needs_where_tf2_is_missing(ros_context):
    try:
        import tf2_ros  # noqa: F401
        pytest.skip('tf2_ros is installed here: the node runs (a ROS 2 distribution)')
    except ImportError:
        pass
    from hilresrl_teleop.ee_pose_node import EePoseNode
    with pytest.raises(ConfigurationError, match='ee_pose needs tf2_ros'):
        EePoseNode(context=ros_context)
