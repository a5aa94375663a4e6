"""sim_cell over DDS: driver topics, lockstep stepping on stamped commands, resets, cameras."""

from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from hilresrl_common.conversions import image_to_array, source_arrays, stamp_to_ns
from hilresrl_common.qos import COMMAND_QOS, LATCHED_QOS
from hilresrl_msgs.msg import StateVector
from hilresrl_msgs.srv import ResetCell
from hilresrl_sim.sim_cell_node import SimCellNode
from hilresrl_sim.tasks import PROGRESS_NAMES
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String


@pytest.fixture
def make_cell(ros_context, probe):

    def make(**overrides):
        node = SimCellNode(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in overrides.items()])
        probe.spin(node)
        return Driver(probe, node)

    return make


class Driver:
    """The probe's side: what a policy stack sees of the cell and sends to it."""

    def __init__(self, probe, cell):
        self.probe, self.cell = probe, cell
        self.states, self.poses, self.joints, self.successes, self.images = [], [], [], [], []
        self.instructions, self.progress = [], []
        node = probe.node
        node.create_subscription(StateVector, 'task_progress', self.progress.append, 10)
        node.create_subscription(StateVector, 'task_state', self.states.append, 10)
        node.create_subscription(PoseStamped, 'ee_pose', self.poses.append, 10)
        node.create_subscription(JointState, 'joint_states', self.joints.append, 10)
        node.create_subscription(StateVector, 'success', self.successes.append, 10)
        node.create_subscription(Image, 'camera/corner/image_raw', self.images.append, 10)
        node.create_subscription(String, 'task_instruction', self.instructions.append,
                                 LATCHED_QOS)
        self.twist = node.create_publisher(TwistStamped, 'servo/delta_twist_cmds', COMMAND_QOS)
        self.gripper = node.create_publisher(Float64MultiArray, 'gripper/command', COMMAND_QOS)
        probe.wait_for(lambda: self.twist.get_subscription_count() == 1, message='the cell')

    def reset(self, seed: int) -> ResetCell.Response:
        response = self.probe.call(ResetCell, 'reset', ResetCell.Request(seed=seed))
        stamp = stamp_to_ns(response.observation_stamp)
        self.probe.wait_for(lambda: all(topic and stamp_to_ns(topic[-1].header.stamp) == stamp
                                        for topic in (self.states, self.poses)),
                            message='the first observation')
        return response

    def command(self, stamp_ns: int, vx: float = 0.0, gripper: float = None) -> None:
        if gripper is not None:
            self.gripper.publish(Float64MultiArray(data=[gripper]))
        message = TwistStamped()
        message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        message.twist.linear.x = vx
        self.twist.publish(message)


def test_lockstep_steps_once_per_current_command(make_cell):
    driver = make_cell(task='pick-place-v3')
    response = driver.reset(seed=3)
    assert response.success and response.seed == 3 and response.max_episode_steps > 0
    assert 'puck' in response.instruction
    stamp = stamp_to_ns(response.observation_stamp)
    x0 = driver.poses[-1].pose.position.x
    assert len(driver.states[-1].data) == 39 and driver.joints[-1].name

    for k in range(10):  # action +1 on x: 1 cm a step, once the arm is under way
        driver.command(stamp + k * 10**8, vx=0.1)
        driver.probe.wait_for(
            lambda: stamp_to_ns(driver.poses[-1].header.stamp) == stamp + (k + 1) * 10**8
            and stamp_to_ns(driver.states[-1].header.stamp) == stamp + (k + 1) * 10**8,
            message=f'observation {k + 1}')
    # the hand follows its target with a lag: about 6 of the 10 cm after 10 steps from rest
    assert 0.04 < driver.poses[-1].pose.position.x - x0 < 0.11
    assert driver.successes[-1].data.tolist() == [0.0]
    # What remains to do, for the simulated operator, stamped as the state it goes with.
    driver.probe.wait_for(lambda: driver.progress and driver.progress[-1].header.stamp
                          == driver.states[-1].header.stamp, message='the progress')
    assert list(driver.progress[-1].names) == list(PROGRESS_NAMES)
    assert driver.progress[-1].data.tolist() == pytest.approx(
        driver.cell.task.progress().tolist())
    steps = driver.cell.steps
    driver.command(stamp, vx=0.1)  # answers an observation that is no longer current
    driver.probe.wait_for(lambda: driver.cell.stale_commands == 1, message='a stale command')
    assert driver.cell.steps == steps


def test_reset_with_the_same_seed_gives_the_same_scene(make_cell):
    driver = make_cell(task='pick-place-v3')
    first = list(driver.reset(seed=11) and driver.states[-1].data)
    driver.reset(seed=12)
    other = list(driver.states[-1].data)
    driver.reset(seed=11)
    assert list(driver.states[-1].data) == first and other != first
    driver.probe.wait_for(lambda: driver.instructions, message='the latched instruction')


def test_camera_images_are_published(make_cell):
    driver = make_cell(task='pick-place-v3', cameras=['corner'], image_size=64)
    driver.reset(seed=0)
    driver.probe.wait_for(lambda: driver.images, message='an image')
    image = driver.images[-1]
    assert (image.height, image.width, image.encoding) == (64, 64, 'rgb8')
    assert image_to_array(image).shape == (64, 64, 3)
    assert image.header.stamp == driver.states[-1].header.stamp


def test_the_wrist_wrench_is_published_with_each_observation_when_asked(make_cell):
    driver = make_cell(task='PandaPickCube', publish_wrench=True)
    wrenches = []
    driver.probe.node.create_subscription(WrenchStamped, 'wrench', wrenches.append, 10)
    driver.probe.wait_for(lambda: driver.cell.count_publishers('wrench') == 1
                          and driver.cell.count_subscribers('wrench') >= 1, message='wrench')
    driver.reset(seed=0)
    driver.probe.wait_for(lambda: wrenches and wrenches[-1].header.stamp
                          == driver.states[-1].header.stamp, message='a wrench with the state')
    values = source_arrays('wrench', 'wrench', wrenches[-1])['wrench']
    assert values.shape == (6,) and wrenches[-1].header.frame_id == 'world'
    np.testing.assert_allclose(values, driver.cell.task.wrench(), rtol=1e-5, atol=1e-5)
