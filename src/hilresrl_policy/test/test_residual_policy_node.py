"""residual_policy_node over DDS: composition, weight swaps between steps, refused weights."""

from hilresrl_common.conversions import float32_field, ns_to_stamp
from hilresrl_common.node_runner import ConfigurationError
from hilresrl_common.qos import COMMAND_QOS, EVENTS_QOS, LATCHED_QOS
from hilresrl_msgs.msg import (ActionChunk, EpisodeEvent, Mode, PolicyWeights, ProposedAction,
                               StateVector)
from hilresrl_policy.residual import ResidualActor, ResidualConfig, serialize_actor
from hilresrl_policy.residual_policy_node import ResidualPolicyNode
import numpy as np
import pytest
from rclpy.parameter import Parameter
import torch

CONFIG = ResidualConfig(obs_dim=5, action_dim=3, hidden_sizes=(16, 16))
SCALE = [0.5, 0.5, 1.0]


@pytest.fixture
def residual(ros_context, probe):
    node = ResidualPolicyNode(context=ros_context, parameter_overrides=[
        Parameter('action_dim', value=3), Parameter('hidden_sizes', value=[16, 16]),
        Parameter('residual_scale', value=SCALE), Parameter('exploration_std', value=0.0),
        Parameter('observation_sources', value=['task_state']),
        Parameter('policy_inputs', value=['task_state'])])
    probe.executor.add_node(node)
    yield node
    probe.executor.remove_node(node)
    node.destroy_node()


class Cell:
    """The probe's side: publishes observations and chunks, collects proposals."""

    def __init__(self, probe):
        self.probe = probe
        self.proposals = []
        self.states = probe.node.create_publisher(StateVector, 'task_state', 10)
        self.chunks = probe.node.create_publisher(ActionChunk, 'base_action_chunk', COMMAND_QOS)
        self.weights = probe.node.create_publisher(PolicyWeights, 'policy_weights', LATCHED_QOS)
        self.mode = probe.node.create_publisher(Mode, 'mode', LATCHED_QOS)
        probe.node.create_subscription(ProposedAction, 'proposed_action', self.proposals.append,
                                       COMMAND_QOS)
        probe.wait_for(lambda: self.states.get_subscription_count() == 1
                       and self.chunks.get_subscription_count() == 1, message='the node')

    def publish(self, k: int, state: np.ndarray, base: np.ndarray) -> None:
        """Publish step k's base chunk and state (stamped alike), without waiting."""
        stamp = ns_to_stamp(1_000_000_000 + k * 100_000_000)
        chunk = ActionChunk(action_dim=3, horizon=1, step_period_s=0.1, chunk_id=k,
                            source_model='test', data=float32_field(base))
        chunk.header.stamp = stamp
        self.chunks.publish(chunk)
        message = StateVector(data=float32_field(state))
        message.header.stamp = stamp
        self.states.publish(message)

    def step(self, k: int, state: np.ndarray, base: np.ndarray) -> ProposedAction:
        count = len(self.proposals)
        self.publish(k, state, base)
        self.probe.wait_for(lambda: len(self.proposals) > count, message=f'proposal {k}')
        return self.proposals[-1]

    def send_weights(self, version: int, blob: bytes, sha256: str, architecture: str,
                     run_id: str = 'run-a'):
        self.weights.publish(PolicyWeights(version=version, format='safetensors', blob=blob,
                                           sha256=sha256, architecture=architecture,
                                           learner_run_id=run_id))

    def send_actor(self, version: int, actor: ResidualActor, run_id: str = 'run-a'):
        weights = serialize_actor(actor)
        self.send_weights(version, weights.blob, weights.sha256, weights.architecture, run_id)


def test_untrained_residual_proposes_the_base_action(residual, probe):
    cell = Cell(probe)
    base = np.array([0.2, -0.4, 1.0], dtype=np.float32)
    proposal = cell.step(1, np.ones(5, dtype=np.float32), base)
    assert proposal.weights_version == 0
    assert np.asarray(proposal.residual).tolist() == [0.0, 0.0, 0.0]
    assert np.asarray(proposal.composed_action).tolist() == pytest.approx(base.tolist())
    assert np.asarray(proposal.base_action).tolist() == pytest.approx(base.tolist())
    assert proposal.base_chunk_id == 1 and proposal.header.stamp.sec == 1


def test_new_weights_apply_from_the_next_step_and_bad_ones_are_refused(residual, probe):
    cell = Cell(probe)
    state, base = np.linspace(-1, 1, 5).astype(np.float32), np.zeros(3, dtype=np.float32)
    cell.step(1, state, base)
    torch.manual_seed(3)
    trained = ResidualActor(CONFIG)
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.normal_(0.0, 0.3)
    weights = serialize_actor(trained)
    cell.send_weights(1, weights.blob, weights.sha256, weights.architecture)
    probe.wait_for(lambda: residual.weights_version == 1, message='weights version 1')

    proposal = cell.step(2, state, base)
    expected = trained(torch.from_numpy(state)[None], torch.from_numpy(base)[None])[0]
    assert proposal.weights_version == 1
    assert np.asarray(proposal.residual).tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    composed = np.clip(base + np.array(SCALE) * expected.detach().numpy(), -1, 1)
    assert np.asarray(proposal.composed_action).tolist() == pytest.approx(composed.tolist(),
                                                                          abs=1e-6)

    corrupt = bytearray(weights.blob)
    corrupt[100] ^= 0x01
    cell.send_weights(2, bytes(corrupt), weights.sha256, weights.architecture)
    probe.wait_for(lambda: residual.refused_weights == 1, message='corrupt weights refused')
    other = serialize_actor(ResidualActor(ResidualConfig(obs_dim=6, action_dim=3,
                                                         hidden_sizes=(16, 16))))
    cell.send_weights(3, other.blob, other.sha256, other.architecture)
    probe.wait_for(lambda: residual.refused_weights == 2, message='mismatched weights refused')
    for k in (3, 4, 5):
        assert cell.step(k, state, base).weights_version == 1


def test_one_actor_for_several_tasks_reads_the_task_instruction(ros_context, probe):
    from hilresrl_common.instruction_features import INSTRUCTION_FEATURE_SIZE
    from std_msgs.msg import String
    node = ResidualPolicyNode(context=ros_context, parameter_overrides=[
        Parameter('action_dim', value=3), Parameter('hidden_sizes', value=[16, 16]),
        Parameter('residual_scale', value=SCALE), Parameter('exploration_std', value=0.0),
        Parameter('observation_sources', value=['task_state']),
        Parameter('policy_inputs', value=['task_state', 'instruction'])])
    probe.executor.add_node(node)
    try:
        cell = Cell(probe)
        instructions = probe.node.create_publisher(String, 'task_instruction', LATCHED_QOS)
        torch.manual_seed(3)
        actor = ResidualActor(ResidualConfig(obs_dim=5 + INSTRUCTION_FEATURE_SIZE, action_dim=3,
                                             hidden_sizes=(16, 16)))
        torch.nn.init.normal_(actor.net[-1].weight)  # not the zero start: it reads its inputs
        weights = serialize_actor(actor)
        state, base = np.ones(5, np.float32), np.zeros(3, np.float32)
        cell.step(1, state, base)  # the actor's size comes with the first observation
        cell.send_weights(1, weights.blob, weights.sha256, weights.architecture)
        probe.wait_for(lambda: node.weights_version == 1, message='weights for state + task')
        residuals = {}
        for k, text in enumerate(['pick up the puck and place it', 'push the puck to the goal',
                                  'pick up the puck and place it'], start=2):
            instructions.publish(String(data=text))
            probe.wait_for(lambda: node._instruction == text, message=text)
            residuals.setdefault(text, []).append(np.asarray(cell.step(k, state, base).residual))
        pick, push = residuals.values()
        assert np.array_equal(pick[0], pick[1])  # the same task, the same residual
        assert not np.allclose(pick[0], push[0], atol=1e-4)
    finally:
        probe.executor.remove_node(node)
        node.destroy_node()


def _actor(seed: int) -> ResidualActor:
    torch.manual_seed(seed)
    actor = ResidualActor(CONFIG)
    with torch.no_grad():
        for parameter in actor.parameters():
            parameter.normal_(0.0, 0.3)
    return actor


def _node(ros_context, probe, *overrides):
    node = ResidualPolicyNode(context=ros_context, parameter_overrides=[
        Parameter('action_dim', value=3), Parameter('hidden_sizes', value=[16, 16]),
        Parameter('residual_scale', value=SCALE), Parameter('exploration_std', value=0.0),
        Parameter('observation_sources', value=['task_state']),
        Parameter('policy_inputs', value=['task_state']), *overrides])
    probe.executor.add_node(node)
    return node


def _drop(probe, node):
    probe.executor.remove_node(node)
    node.destroy_node()


STATE, BASE = np.linspace(-1, 1, 5).astype(np.float32), np.zeros(3, dtype=np.float32)


def test_nan_weights_are_refused_and_the_old_ones_keep_acting(residual, probe):
    cell = Cell(probe)
    cell.step(1, STATE, BASE)
    cell.send_actor(1, _actor(1))
    probe.wait_for(lambda: residual.weights_version == 1, message='weights version 1')
    poisoned = _actor(2)
    with torch.no_grad():
        poisoned.net[0].weight[0, 0] = float('nan')
    cell.send_actor(2, poisoned)  # a valid hash and architecture: only the values are wrong
    probe.wait_for(lambda: residual.refused_weights == 1, message='NaN weights refused')
    for k in (2, 3):
        proposal = cell.step(k, STATE, BASE)
        assert proposal.weights_version == 1
        assert np.all(np.isfinite(np.asarray(proposal.composed_action)))


def test_versions_are_ordered_within_a_learner_run(residual, probe):
    cell = Cell(probe)
    cell.step(1, STATE, BASE)
    cell.send_actor(1, _actor(1), run_id='')  # no run id: an unknown run
    probe.wait_for(lambda: residual.refused_weights == 1, message='weights without a run')
    assert cell.step(2, STATE, BASE).weights_version == 0
    cell.send_actor(10**9, _actor(2), run_id='stray')  # a stray message with a huge version
    probe.wait_for(lambda: residual.weights_version == 10**9, message='the stray weights')
    for version in (1, 2):  # the real learner's run: a new ordering, not locked out
        cell.send_actor(version, _actor(2 + version), run_id='learner')
        probe.wait_for(lambda: residual.weights_version == version,
                       message=f'the learner version {version}')
        assert cell.step(2 + version, STATE, BASE).weights_version == version
    cell.send_actor(10**9 + 1, _actor(9), run_id='stray')  # the replaced run is stale
    probe.wait_for(lambda: residual.refused_weights == 2, message='the stale run refused')
    cell.send_actor(2, _actor(9), run_id='learner')  # not newer within the run
    probe.wait_for(lambda: residual.refused_weights == 3, message='an old version refused')
    assert cell.step(5, STATE, BASE).weights_version == 2


def test_a_pinned_learner_run_refuses_every_other_run(ros_context, probe):
    node = _node(ros_context, probe, Parameter('learner_run_id', value='learner'))
    try:
        cell = Cell(probe)
        cell.step(1, STATE, BASE)
        cell.send_actor(5, _actor(1), run_id='foreign')
        probe.wait_for(lambda: node.refused_weights == 1, message='the foreign run refused')
        assert cell.step(2, STATE, BASE).weights_version == 0
        cell.send_actor(1, _actor(2), run_id='learner')
        probe.wait_for(lambda: node.weights_version == 1, message='the pinned run')
        assert cell.step(3, STATE, BASE).weights_version == 1
    finally:
        _drop(probe, node)


def test_weights_over_the_size_limit_are_refused_before_decoding(ros_context, probe,
                                                                 monkeypatch):
    import hashlib
    from hilresrl_policy import residual_policy_node
    from safetensors.torch import save as save_tensors
    from rclpy.serialization import deserialize_message
    decoded = [0]

    def counting(data, message_type):
        decoded.append(len(data))
        return deserialize_message(data, message_type)

    monkeypatch.setattr(residual_policy_node, 'deserialize_message', counting, raising=False)
    node = _node(ros_context, probe, Parameter('max_weights_bytes', value=100_000))
    try:
        cell = Cell(probe)
        cell.step(1, STATE, BASE)
        cell.send_actor(1, _actor(1))
        probe.wait_for(lambda: node.weights_version == 1, message='weights version 1')
        # Valid weights, padded past the limit (a blob anyone could send in any size).
        actor = _actor(2)
        blob = save_tensors({name: tensor.contiguous() for name, tensor in
                             actor.state_dict().items()}, metadata={'pad': 'x' * 300_000})
        cell.send_weights(2, blob, hashlib.sha256(blob).hexdigest(), CONFIG.to_json())
        probe.wait_for(lambda: node.refused_weights == 1, message='the large blob refused')
        assert max(decoded) < 100_000  # never decoded
        assert cell.step(2, STATE, BASE).weights_version == 1
    finally:
        _drop(probe, node)


def test_a_base_chunk_with_non_finite_values_is_refused(residual, probe):
    cell = Cell(probe)
    cell.step(1, STATE, BASE)
    stamp = ns_to_stamp(1_000_000_000 + 2 * 100_000_000)
    bad = ActionChunk(action_dim=3, horizon=1, step_period_s=0.1, chunk_id=2,
                      source_model='test', data=float32_field([float('inf'), 0.0, 0.0]))
    bad.header.stamp = stamp
    cell.chunks.publish(bad)
    probe.wait_for(lambda: residual.refused_chunks == 1, message='the infinite chunk refused')
    message = StateVector(data=float32_field(STATE))
    message.header.stamp = stamp
    cell.states.publish(message)  # waits for a usable chunk: none proposed from the bad one
    good = ActionChunk(action_dim=3, horizon=1, step_period_s=0.1, chunk_id=3,
                       source_model='test', data=float32_field([0.25, 0.0, 0.0]))
    good.header.stamp = stamp
    cell.chunks.publish(good)
    probe.wait_for(lambda: len(cell.proposals) == 2, message='the proposal')
    proposal = cell.proposals[-1]
    assert proposal.base_chunk_id == 3
    assert np.asarray(proposal.composed_action).tolist() == pytest.approx([0.25, 0.0, 0.0])


def test_weights_trained_under_another_residual_scale_are_refused(residual, probe):
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    rosout_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                            reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
    logs = []
    probe.node.create_subscription(
        Log, '/rosout', lambda line: logs.append(line) if line.name == 'residual_policy' else None,
        rosout_qos)
    cell = Cell(probe)
    cell.step(1, STATE, BASE)

    def actor(seed, scale):
        torch.manual_seed(seed)
        trained = ResidualActor(ResidualConfig(5, 3, (16, 16), residual_scale=scale))
        with torch.no_grad():
            for parameter in trained.parameters():
                parameter.normal_(0.0, 0.3)
        return trained

    ours = actor(1, SCALE)  # the learner's, under the node's own scale
    cell.send_actor(1, ours)
    probe.wait_for(lambda: residual.weights_version == 1, message='weights version 1')
    cell.send_actor(2, actor(2, [0.3, 0.3, 0.3]))
    probe.wait_for(lambda: residual.refused_weights == 1, message='the other scale refused')
    probe.wait_for(lambda: any('weights version 2' in line.msg and 'residual_scale' in line.msg
                               for line in logs), message='the refusal in /rosout')
    refusal = next(line for line in logs if 'weights version 2' in line.msg)
    assert refusal.level == Log.ERROR and 'keeping version 1' in refusal.msg
    proposal = cell.step(2, STATE, BASE)
    expected = ours(torch.from_numpy(STATE)[None], torch.from_numpy(BASE)[None])[0]
    assert proposal.weights_version == 1
    assert np.asarray(proposal.residual).tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert np.asarray(proposal.residual_scale).tolist() == pytest.approx(SCALE)
    # Weights of a learner that does not send its scale (an older one) are still taken.
    cell.send_actor(3, _actor(3))
    probe.wait_for(lambda: residual.weights_version == 3, message='weights without a scale')
    assert cell.step(3, STATE, BASE).weights_version == 3
    assert residual.refused_weights == 1


def test_a_new_episode_never_moves_with_the_last_episodes_plan(residual, probe):
    cell = Cell(probe)
    events = probe.node.create_publisher(EpisodeEvent, 'episode_events', EVENTS_QOS)
    probe.wait_for(lambda: events.get_subscription_count() == 1, message='the event subscriber')
    # The last episode's plan: 20 rows of 0.1 s from t = 1.0 s, so it would still cover 1.5 s.
    old = ActionChunk(action_dim=3, horizon=20, step_period_s=0.1, chunk_id=7,
                      source_model='test', data=float32_field(np.tile([0.9, 0.9, 1.0], 20)))
    old.header.stamp = ns_to_stamp(1_000_000_000)
    cell.chunks.publish(old)
    probe.wait_for(lambda: residual._chunks.chunk is not None, message='the old plan')
    start = EpisodeEvent(event=EpisodeEvent.EPISODE_START)
    start.header.stamp = ns_to_stamp(1_500_000_000)  # the new episode's first observation
    events.publish(start)
    probe.wait_for(lambda: residual._chunks.chunk is None, message='the old plan dropped')
    first = StateVector(data=float32_field(STATE))
    first.header.stamp = ns_to_stamp(1_500_000_000)
    cell.states.publish(first)
    # Nothing is proposed from the old plan: the node waits for one of this episode.
    fresh = ActionChunk(action_dim=3, horizon=1, step_period_s=0.1, chunk_id=8,
                        source_model='test', data=float32_field([0.1, 0.0, 0.0]))
    fresh.header.stamp = ns_to_stamp(1_500_000_000)
    cell.chunks.publish(fresh)
    probe.wait_for(lambda: cell.proposals, message='a proposal')
    assert [proposal.base_chunk_id for proposal in cell.proposals] == [8]
    assert np.asarray(cell.proposals[0].composed_action).tolist() == pytest.approx(
        [0.1, 0.0, 0.0])


IMAGE_CONFIG = ResidualConfig(obs_dim=5, action_dim=3, hidden_sizes=(16, 16),
                              residual_scale=tuple(SCALE), cameras=('image/camera/front',),
                              image_size=(16, 16, 3), image_features=8)


def test_an_actor_with_a_camera_acts_on_its_images_and_refuses_weights_for_other_cameras(
        ros_context, probe):
    from hilresrl_common.conversions import array_to_image
    from hilresrl_policy.image_encoder import encoder_frame
    from sensor_msgs.msg import Image

    node = _node(ros_context, probe,
                 Parameter('observation_sources', value=['task_state', 'camera/front']),
                 Parameter('camera_inputs', value=['image/camera/front']),
                 Parameter('image_size', value=[16, 16]), Parameter('image_features', value=8))
    try:
        cell = Cell(probe)
        images = probe.node.create_publisher(Image, 'camera/front', 10)
        probe.wait_for(lambda: images.get_subscription_count() == 1, message='camera subscriber')
        rng = np.random.default_rng(0)

        def step(k, pixels):
            images.publish(array_to_image(pixels, ns_to_stamp(1_000_000_000 + k * 100_000_000),
                                          'camera'))
            return cell.step(k, STATE, BASE)

        picture = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)  # resized to 16 x 16
        assert np.asarray(step(1, picture).residual).tolist() == [0.0, 0.0, 0.0]
        torch.manual_seed(4)
        trained = ResidualActor(IMAGE_CONFIG)
        with torch.no_grad():
            for parameter in trained.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.3)
        cell.send_actor(1, trained)
        probe.wait_for(lambda: node.weights_version == 1, message='image weights version 1')
        residuals = []
        for k, pixels in ((2, picture), (3, 255 - picture)):
            frame = torch.from_numpy(encoder_frame(pixels, IMAGE_CONFIG.image_inputs))[None]
            with torch.no_grad():
                expected = trained(torch.from_numpy(STATE)[None], torch.from_numpy(BASE)[None],
                                   [frame])[0]
            proposal = step(k, pixels)
            assert proposal.weights_version == 1
            assert np.asarray(proposal.residual).tolist() == pytest.approx(expected.tolist(),
                                                                           abs=1e-5)
            residuals.append(np.asarray(proposal.residual))
        assert not np.allclose(residuals[0], residuals[1])  # what the camera sees matters
        wrist = ResidualActor(ResidualConfig(**{**IMAGE_CONFIG.__dict__,
                                                'cameras': ('image/camera/wrist',)}))
        cell.send_actor(2, wrist)
        probe.wait_for(lambda: node.refused_weights == 1, message='weights for another camera')
        assert step(4, picture).weights_version == 1
    finally:
        _drop(probe, node)


def test_an_actor_seeing_through_the_base_policys_encoder_acts_with_it_and_refuses_another(
        ros_context, probe, tmp_path, seeing_policy_file):
    import dataclasses

    from hilresrl_common.conversions import array_to_image
    from hilresrl_policy.image_encoder import configured_pretrained_encoder, encoder_frame
    from hilresrl_policy.residual import encoder_fields
    from sensor_msgs.msg import Image

    policy = seeing_policy_file(tmp_path / 'policy.pt')
    node = _node(ros_context, probe,
                 Parameter('observation_sources', value=['task_state', 'camera/front']),
                 Parameter('camera_inputs', value=['image/camera/front']),
                 Parameter('image_size', value=[16, 16]), Parameter('image_features', value=8),
                 Parameter('image_encoder', value='base_policy:torch_module'),
                 Parameter('image_encoder_weights', value=str(policy)))
    try:
        cell = Cell(probe)
        images = probe.node.create_publisher(Image, 'camera/front', 10)
        probe.wait_for(lambda: images.get_subscription_count() == 1, message='camera subscriber')

        def step(k, pixels):
            images.publish(array_to_image(pixels, ns_to_stamp(1_000_000_000 + k * 100_000_000),
                                          'camera'))
            return cell.step(k, STATE, BASE)

        def actor_over(path):  # as the learner makes it, over its own copy of the policy
            encoder = configured_pretrained_encoder('base_policy:torch_module', str(path),
                                                    IMAGE_CONFIG.image_inputs, 3)
            config = dataclasses.replace(
                IMAGE_CONFIG, **encoder_fields('base_policy:torch_module', encoder))
            torch.manual_seed(4)
            actor = ResidualActor(config, encoder)
            with torch.no_grad():
                for parameter in actor.parameters():
                    parameter.add_(torch.randn_like(parameter) * 0.3)
            return actor

        picture = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        assert np.asarray(step(1, picture).residual).tolist() == [0.0, 0.0, 0.0]
        trained = actor_over(policy)
        cell.send_actor(1, trained)
        probe.wait_for(lambda: node.weights_version == 1, message='weights over the encoder')
        frame = torch.from_numpy(encoder_frame(picture, IMAGE_CONFIG.image_inputs))[None]
        with torch.no_grad():
            expected = trained(torch.from_numpy(STATE)[None], torch.from_numpy(BASE)[None],
                               [frame])[0]
        proposal = step(2, picture)
        assert proposal.weights_version == 1
        assert np.asarray(proposal.residual).tolist() == pytest.approx(expected.tolist(),
                                                                       abs=1e-5)
        # Weights learnt over another policy's encoder (another checkpoint) are refused.
        cell.send_actor(2, actor_over(seeing_policy_file(tmp_path / 'other.pt', seed=1)))
        probe.wait_for(lambda: node.refused_weights == 1, message='weights over another policy')
        assert step(3, picture).weights_version == 1
    finally:
        _drop(probe, node)


def test_a_pretrained_encoder_without_its_weights_file_stops_the_start(
        ros_context, probe, tmp_path):
    missing = tmp_path / 'resnet18.pth'
    with pytest.raises(ConfigurationError, match='resnet18.pth.*never downloads at run time'):
        _node(ros_context, probe, Parameter('camera_inputs', value=['image/camera/front']),
              Parameter('image_encoder', value='torchvision:resnet18'),
              Parameter('image_encoder_weights', value=str(missing)))


def test_a_silent_camera_stops_the_proposals_and_is_named_on_rosout(ros_context, probe):
    from hilresrl_common.conversions import array_to_image
    from rcl_interfaces.msg import Log
    from sensor_msgs.msg import Image

    node = _node(ros_context, probe,
                 Parameter('observation_sources', value=['task_state', 'camera/front']),
                 Parameter('camera_inputs', value=['image/camera/front']),
                 Parameter('image_size', value=[16, 16]), Parameter('image_features', value=8),
                 Parameter('source_timeout_s', value=0.5))
    logs = []
    probe.node.create_subscription(Log, '/rosout', logs.append, 100)
    try:
        cell = Cell(probe)
        images = probe.node.create_publisher(Image, 'camera/front', 10)
        probe.wait_for(lambda: images.get_subscription_count() == 1, message='camera subscriber')
        picture = np.zeros((16, 16, 3), dtype=np.uint8)

        def publish(k, with_image):
            if with_image:
                images.publish(array_to_image(
                    picture, ns_to_stamp(1_000_000_000 + k * 100_000_000), 'camera'))
            cell.publish(k, STATE, BASE)

        publish(1, True)
        probe.wait_for(lambda: len(cell.proposals) == 1, message='a proposal with the camera')

        def named(text):
            return any(entry.name == 'residual_policy' and text in entry.msg for entry in logs)

        k = 2  # the camera stops; the state goes on
        probe.wait_for(lambda: publish(k, False) or named('camera/front sent nothing'),
                       timeout_s=20.0, message='a warning naming the silent camera')
        assert len(cell.proposals) == 1  # no observation without the camera: no proposal
        count = len(cell.proposals)
        publish(50, True)  # the camera is back
        probe.wait_for(lambda: len(cell.proposals) > count, message='proposals again')
        probe.wait_for(lambda: named('camera/front sending again'), message='recovery logged')
    finally:
        _drop(probe, node)
