"""The example cell profiles: their graphs, the nodes that take them, the pixel cells over DDS."""

import pathlib

from hilresrl.graph import build_graph, load_profile
from hilresrl_common.conversions import ns_to_stamp
from hilresrl_teleop.intervention_arbiter_node import InterventionArbiterNode
import pytest
from rclpy.parameter import Parameter

CELLS = pathlib.Path(__file__).resolve().parents[3] / 'config' / 'cells'
REAL_CELLS = {'franka_cartesian': ('cartesian_pose', 'openpi'),
              'ur_servo': ('servo_twist', 'torch_module'),
              'joint_trajectory_arm': ('joint_trajectory', 'lerobot')}


def _parameters(profile: dict, node: str):
    values = dict((profile.get('/**') or {}).get('ros__parameters', {}))
    values.update((profile.get(f'/**/{node}') or {}).get('ros__parameters', {}))
    return values


def _camera_topics(sources) -> dict:
    """Return the observation array name of each camera source (image/<topic>) -> its kind."""
    from hilresrl_common.conversions import parse_source
    cameras = {}
    for source in sources:
        topic, kind = parse_source(source)
        if kind == 'compressed_image':  # named as the raw topic it compresses
            cameras[f'image/{topic[:-len("/compressed")]}'
                    if topic.endswith('/compressed') else f'image/{topic}'] = kind
        elif kind == 'image':
            cameras[f'image/{topic}'] = kind
    return cameras


def _node_topics(node) -> set:
    """Return the topics a node subscribes to (resolved names)."""
    return {subscription.topic_name for subscription in node.subscriptions}


@pytest.mark.parametrize('cell', sorted(REAL_CELLS))
def test_a_real_cell_runs_the_policy_nodes_and_no_simulation(cell):
    # (base_policy_environment this: whether a LeRobot environment is at hand is not the point)
    nodes = build_graph('train', {'cell': str(CELLS / f'{cell}.yaml'), 'run_dir': '/tmp/unused',
                                  'base_policy_environment': 'this'})
    executables = [node.executable for node in nodes]
    assert executables == ['base_policy_node', 'residual_policy_node', 'intervention_arbiter',
                           'episode_manager', 'learner_node']
    interface, adapter = REAL_CELLS[cell]
    profile = load_profile(str(CELLS / f'{cell}.yaml'))
    assert _parameters(profile, 'intervention_arbiter')['command_interface'] == interface
    assert nodes[0].parameters['base_policy.kind'] == adapter


@pytest.mark.parametrize('cell', sorted(REAL_CELLS))
def test_the_arbiter_takes_the_cell_profile(cell, ros_context):
    values = _parameters(load_profile(str(CELLS / f'{cell}.yaml')), 'intervention_arbiter')
    values['servo.start_service'] = values['servo.node'] = ''  # no MoveIt Servo in this test
    node = InterventionArbiterNode(context=ros_context, parameter_overrides=[
        Parameter(name, value=value) for name, value in values.items()])
    try:
        assert node.output.settings.interface == REAL_CELLS[cell][0]
        assert len(node.action_names) == values['action_dim']
    finally:
        node.destroy_node()


@pytest.mark.parametrize('cell', ['sim_pixels', 'sim_panda_pixels'])
def test_a_pixel_cell_shows_the_residual_and_learner_no_task_state(cell, ros_context, tmp_path):
    from hilresrl_learner.camera_frames import camera_topic
    from hilresrl_learner.learner_node import LearnerNode
    from hilresrl_policy.residual_policy_node import ResidualPolicyNode
    from hilresrl_sim.tasks import make_task

    profile = load_profile(str(CELLS / f'{cell}.yaml'))
    residual, learner, manager, sim, base = (
        _parameters(profile, node) for node in ('residual_policy', 'learner', 'episode_manager',
                                                'sim_cell', 'base_policy'))
    assert 'task_state' not in residual['observation_sources']
    assert 'task_state' not in residual['policy_inputs'] + learner['policy_inputs']
    assert residual['policy_inputs'] == learner['policy_inputs'] and 'wrench' in \
        residual['policy_inputs'] and sim['publish_wrench']
    assert residual['camera_inputs'] == learner['camera_inputs'] and len(
        residual['camera_inputs']) == 2 and residual['image_size'] == learner['image_size']
    # each camera is rendered by the simulated cell, seen by the residual and named in the
    # transitions; the base policy (a VLA's stand-in) keeps the task state
    for camera in residual['camera_inputs']:
        topic = camera_topic(camera)
        assert topic in residual['observation_sources'] and topic in manager[
            'observation_sources'] and topic.split('/')[1] in sim['cameras']
    assert base['policy_inputs'] == ['task_state']
    make_task(sim['task'], 0, sim['cameras'], 32).close()  # the task has these cameras
    assert [node.executable for node in build_graph('train', {
        'cell': str(CELLS / f'{cell}.yaml'), 'run_dir': str(tmp_path / 'run')})][:2] == [
        'sim_cell', 'base_policy_node']
    # both nodes take the profile's values (the others' in "/**" are not theirs: unused)
    for make, values in ((ResidualPolicyNode, residual),
                         (LearnerNode, dict(learner, run_dir=str(tmp_path / 'run'),
                                            tensorboard=False))):
        node = make(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in values.items()])
        assert list(node.get_parameter('camera_inputs').value) == residual['camera_inputs']
        node.destroy_node()


@pytest.mark.parametrize('cell', sorted(REAL_CELLS))
def test_a_real_cell_shows_the_residual_and_learner_a_front_and_a_wrist_camera(
        cell, ros_context, tmp_path):
    from hilresrl_common.conversions import parse_source
    from hilresrl_episodes.episode_manager_node import EpisodeManagerNode
    from hilresrl_learner.camera_frames import camera_topic
    from hilresrl_learner.learner_node import LearnerNode
    from hilresrl_policy.residual_policy_node import ResidualPolicyNode

    profile = load_profile(str(CELLS / f'{cell}.yaml'))
    residual, learner, manager = (_parameters(profile, node) for node in (
        'residual_policy', 'learner', 'episode_manager'))
    cameras = residual.get('camera_inputs', [])
    topics = [camera_topic(camera) for camera in cameras]
    assert [name for name in ('front', 'wrist') if not any(
        f'/{name}/' in f'/{topic}/' for topic in topics)] == [], f'{cell}: cameras {cameras}'
    # The learner trains the actor the residual node runs: the same cameras, in order, and size.
    assert learner.get('camera_inputs') == cameras
    assert learner.get('image_size') == residual.get('image_size')
    for name in ('image_encoder', 'image_encoder_weights'):  # a pretrained encoder too
        assert learner.get(name, '') == residual.get(name, ''), f'{cell}: {name}'
    # The residual observes each camera (raw or compressed); the episode manager names each
    # one's raw image in the transitions, which is the topic the learner reads.
    assert set(cameras) <= set(_camera_topics(residual['observation_sources']))
    assert dict.fromkeys(cameras, 'image').items() <= _camera_topics(
        manager['observation_sources']).items()
    # The nodes take these values and subscribe to the cameras (the others' in "/**" unused).
    raw = {f'/{topic}' for topic in topics}
    for make, values, expected in (
            (ResidualPolicyNode, residual, {f'/{parse_source(source)[0]}' for source in residual[
                'observation_sources'] if _camera_topics([source])}),
            (EpisodeManagerNode, manager, raw),
            (LearnerNode, dict(learner, run_dir=str(tmp_path / 'run'), tensorboard=False), raw)):
        node = make(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in values.items()])
        try:
            assert len(expected) == len(cameras) and expected <= _node_topics(node), \
                f'{node.get_name()} subscribes to {sorted(_node_topics(node))}'
            if make is not EpisodeManagerNode:
                assert list(node.get_parameter('camera_inputs').value) == cameras
                assert list(node.get_parameter('image_size').value) == residual['image_size']
        finally:
            node.destroy_node()


@pytest.mark.parametrize('cell', ['sim_pixels', 'sim_panda_pixels'])
def test_the_residual_acts_on_the_pixel_cells_images_and_wrench_never_on_its_task_state(
        cell, ros_context, probe):
    from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
    from hilresrl_common.conversions import float32_field, parse_source, source_arrays, \
        stamp_to_ns
    from hilresrl_common.instruction_features import policy_vector
    from hilresrl_common.qos import COMMAND_QOS, LATCHED_QOS
    from hilresrl_msgs.msg import ActionChunk, PolicyWeights, ProposedAction
    from hilresrl_msgs.srv import ResetCell
    from hilresrl_policy.image_encoder import encoder_frame
    from hilresrl_policy.residual import ResidualActor, ResidualConfig, serialize_actor
    from hilresrl_policy.residual_policy_node import ResidualPolicyNode
    from hilresrl_sim.sim_cell_node import SimCellNode
    import numpy as np
    from sensor_msgs.msg import Image, JointState
    import torch

    profile = load_profile(str(CELLS / f'{cell}.yaml'))
    residual, sim = _parameters(profile, 'residual_policy'), _parameters(profile, 'sim_cell')
    sim_node = probe.spin(SimCellNode(context=ros_context, parameter_overrides=[
        Parameter(name, value=value) for name, value in sim.items()]))
    node = probe.spin(ResidualPolicyNode(context=ros_context, parameter_overrides=[
        Parameter(name, value=value) for name, value in dict(residual,
                                                             exploration_std=0.0).items()]))
    # What the probe hears of the cell, by stamp: the residual's sources, never the task state.
    types = {'joint_state': JointState, 'pose': PoseStamped, 'wrench': WrenchStamped,
             'image': Image}
    heard = {}
    for source in residual['observation_sources']:
        topic, kind = parse_source(source)
        probe.node.create_subscription(
            types[kind], topic, lambda message, topic=topic, kind=kind: heard.setdefault(
                stamp_to_ns(message.header.stamp), {}).update(
                    source_arrays(topic, kind, message)), 10)
    proposals = []
    probe.node.create_subscription(ProposedAction, 'proposed_action', proposals.append,
                                   COMMAND_QOS)
    chunks = probe.node.create_publisher(ActionChunk, 'base_action_chunk', COMMAND_QOS)
    weights = probe.node.create_publisher(PolicyWeights, 'policy_weights', LATCHED_QOS)
    twist = probe.node.create_publisher(TwistStamped, 'servo/delta_twist_cmds', COMMAND_QOS)
    topics = [parse_source(source)[0] for source in residual['observation_sources']]
    assert 'wrench' in topics and sum(topic.startswith('camera/') for topic in topics) == 2
    probe.wait_for(lambda: all(sim_node.count_subscribers(topic) == 2 for topic in topics)
                   and chunks.get_subscription_count() == 1
                   and twist.get_subscription_count() == 1, message='the nodes matched')
    assert sim_node.count_publishers('task_state') == 1
    assert sim_node.count_subscribers('task_state') == 0  # published, and nobody listens
    assert '/task_state' not in _node_topics(node)

    base = np.array([0.2, -0.1, 0.3, -1.0], dtype=np.float32)
    stamp_ns = stamp_to_ns(probe.call(ResetCell, 'reset', ResetCell.Request(seed=0))
                           .observation_stamp)

    def propose(stamp_ns: int) -> ProposedAction:
        """Send the base plan for this observation; return the residual's proposal for it."""
        chunk = ActionChunk(action_dim=4, horizon=1, step_period_s=0.1, chunk_id=stamp_ns,
                            source_model='test', data=float32_field(base))
        chunk.header.stamp = ns_to_stamp(stamp_ns)
        chunks.publish(chunk)
        probe.wait_for(lambda: proposals and stamp_to_ns(proposals[-1].header.stamp)
                       == stamp_ns, message=f'the proposal for the observation at {stamp_ns}')
        return proposals[-1]

    assert np.asarray(propose(stamp_ns).residual).tolist() == [0.0] * 4  # zero last layer
    # Trained-like weights for these inputs: the proposals must be what they give on the very
    # images, joint states, pose and wrench of each step.
    probe.wait_for(lambda: len(heard.get(stamp_ns, {})) == len(topics) + 1,
                   message='the first observation')  # joint states give two arrays
    cameras = tuple(residual['camera_inputs'])
    state = policy_vector(heard[stamp_ns], residual['policy_inputs'], '')
    config = ResidualConfig(state.size, 4, tuple(profile['/**']['ros__parameters'][
        'hidden_sizes']), residual_scale=tuple(profile['/**']['ros__parameters'][
            'residual_scale']), cameras=cameras, image_size=(*residual['image_size'], 3),
        image_encoder=residual.get('image_encoder', ''))
    torch.manual_seed(0)
    actor = ResidualActor(config).eval()
    with torch.no_grad():
        for parameter in actor.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    serialized = serialize_actor(actor)
    weights.publish(PolicyWeights(version=1, format='safetensors', blob=serialized.blob,
                                  sha256=serialized.sha256,
                                  architecture=serialized.architecture, learner_run_id='run'))
    probe.wait_for(lambda: node.weights_version == 1, message='the weights in use')

    def expected(arrays, frames=None):
        frames = frames or [torch.from_numpy(encoder_frame(arrays[camera], config.image_inputs))[
            None] for camera in cameras]
        with torch.no_grad():
            return actor(torch.from_numpy(policy_vector(arrays, residual['policy_inputs'], ''))[
                None], torch.from_numpy(base)[None], frames)[0].numpy()

    # Down at full speed: the Panda's gripper meets the cube or the table within a few steps
    # and the wrist wrench reads it; the Sawyer's hand is held above them (no contact there).
    contact = cell == 'sim_panda_pixels'
    for k in range(100 if contact else 3):
        command = TwistStamped()
        command.header.stamp = ns_to_stamp(stamp_ns)
        command.twist.linear.z = -profile['/**']['ros__parameters']['linear_speed_scale_mps']
        twist.publish(command)
        stamp_ns += int(round(1e9 / profile['/**']['ros__parameters']['control_rate_hz']))
        proposal = propose(stamp_ns)
        probe.wait_for(lambda: len(heard.get(stamp_ns, {})) == len(topics) + 1,
                       message=f'observation {k + 1}')
        arrays = heard[stamp_ns]
        assert proposal.weights_version == 1
        np.testing.assert_allclose(proposal.residual, expected(arrays), atol=1e-5)
        if contact and arrays['wrench'][2] > 1.0:
            break
    if contact:  # pushed up, and what the wrist feels matters to the residual
        assert arrays['wrench'][2] > 1.0, f'no contact after {k + 1} steps: {arrays["wrench"]}'
        assert not np.allclose(expected(arrays), expected(dict(arrays, wrench=np.zeros(
            6, np.float32))), atol=1e-4)
    # what the cameras show matters: the same step with the cameras swapped proposes otherwise
    swapped = [torch.from_numpy(encoder_frame(arrays[camera], config.image_inputs))[None]
               for camera in reversed(cameras)]
    assert not np.allclose(expected(arrays), expected(arrays, swapped), atol=1e-3)
