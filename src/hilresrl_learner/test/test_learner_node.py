"""learner_node over DDS: intake and gaps, weights to the residual node, kill and resume."""

import json
import math
import os
import shutil
import sys

from hilresrl_common.conversions import (float32_field, from_named_arrays, ns_to_stamp,
                                         to_named_arrays)
from hilresrl_common.node_runner import ConfigurationError
from hilresrl_common.qos import COMMAND_QOS, LATCHED_QOS, TRANSITIONS_QOS
from hilresrl_learner.camera_frames import FrameRef
from hilresrl_learner.checkpoint import save_checkpoint
from hilresrl_learner.learner_node import LearnerNode
from hilresrl_msgs.msg import (ActionChunk, EpisodeEvent, EpisodeOutcome, ImageRef,
                               LearnerStatus, Mode, PolicyWeights, ProposedAction, StateVector,
                               Transition)
from hilresrl_msgs.srv import LoadBag, LoadCheckpoint
from hilresrl_policy.image_encoder import encoder_frame, ImageInputs
from hilresrl_policy.residual_policy_node import ResidualPolicyNode
from hilresrl_recording.bag import BagReader, BagWriter
from hilresrl_recording.message_definitions import ros2msg_definition
from hilresrl_recording.run_folders import TRANSITION_TYPE
import numpy as np
import pytest
from rclpy.duration import Duration
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

OBS_DIM, ACTION_DIM = 3, 2
SMALL_NETWORKS = {'hidden_sizes': [16], 'critic.hidden_sizes': [16], 'batch_size': 16,
                  'action_dim': ACTION_DIM, 'residual_scale': [0.5], 'policy_inputs':
                  ['task_state'], 'tensorboard': False, 'min_steps': 32,
                  'warmup_updates': 10, 'status_period_s': 0.2, 'progress_period_s': 1.0}


def _transition(sequence: int, episode_length: int = 20, robot: str = 'r1') -> Transition:
    """Return transition number `sequence` of a stream of fixed-length episodes."""
    episode, step = divmod(sequence - 1, episode_length)
    rng = np.random.default_rng(sequence)
    last = step == episode_length - 1
    message = Transition(robot_id=robot, episode_id=episode + 1, step=step, sequence=sequence,
                         observation=to_named_arrays({'task_state': rng.normal(size=OBS_DIM)}),
                         next_observation=to_named_arrays({'task_state':
                                                           rng.normal(size=OBS_DIM)}),
                         base_action=float32_field(rng.uniform(-1, 1, ACTION_DIM)),
                         executed_action=float32_field(rng.uniform(-1, 1, ACTION_DIM)),
                         reward=float(last and episode % 2 == 0), terminated=last,
                         intervened=sequence % 5 == 0)
    if message.intervened:
        message.human_action = message.executed_action
    message.header.stamp = ns_to_stamp(sequence * 100_000_000)
    return message


def _learner(context, run_dir, **overrides) -> LearnerNode:
    values = dict(SMALL_NETWORKS, run_dir=str(run_dir), **overrides)
    return LearnerNode(context=context, parameter_overrides=[
        Parameter(name, value=value) for name, value in values.items()])


class Cell:
    """The probe's side of the learner: transitions and episode events out, status in."""

    def __init__(self, probe):
        self.probe = probe
        self.statuses = []
        probe.node.create_subscription(LearnerStatus, 'learner_status', self.statuses.append,
                                       LATCHED_QOS)
        self.transitions = probe.node.create_publisher(Transition, 'transitions',
                                                       TRANSITIONS_QOS)
        self.events = probe.node.create_publisher(EpisodeEvent, 'episode_events', 10)

    def wait_for_learner(self, timeout_s: float = 60.0) -> None:
        self.probe.wait_for(lambda: self.transitions.get_subscription_count() == 1
                            and self.events.get_subscription_count() >= 1, timeout_s,
                            'the learner')

    def transition_readers(self) -> set:
        """Return the endpoint ids of the subscriptions matched to the transitions."""
        return {bytes(info.endpoint_gid) for info in
                self.probe.node.get_subscriptions_info_by_topic(self.transitions.topic_name)}

    def status(self, predicate, message: str, timeout_s: float = 60.0,
               learner=None) -> LearnerStatus:
        """Wait for a status that ``predicate`` accepts; on a timeout, say what was seen."""
        try:
            self.probe.wait_for(lambda: self.statuses and predicate(self.statuses[-1]),
                                timeout_s, message)
        except pytest.fail.Exception:
            last = self.statuses[-1] if self.statuses else 'none'
            output = f"\nthe learner's output:\n{learner.output}" if learner else ''
            pytest.fail(f'timed out after {timeout_s:.0f} s waiting for {message}; the last '
                        f'status: {last}{output}')
        return self.statuses[-1]

    def send(self, sequences) -> None:
        for sequence in sequences:
            self.transitions.publish(_transition(sequence))

    def episode_end(self, outcome: int, mode: int, eval_round: int = 0,
                    round_episodes: int = 0) -> None:
        event = EpisodeEvent(event=EpisodeEvent.EPISODE_END, robot_id='r1',
                             eval_round=eval_round, eval_round_episodes=round_episodes)
        event.outcome.value, event.mode.value = outcome, mode
        self.events.publish(event)


@pytest.fixture
def in_process_learner(ros_context, probe, tmp_path):

    def start(**overrides) -> LearnerNode:
        node = _learner(ros_context, tmp_path / 'run', **overrides)
        probe.spin(node)
        return node

    return start


def test_gaps_outcomes_and_evaluation_rounds_reach_the_status(in_process_learner, probe,
                                                              tmp_path):
    in_process_learner(eval_episodes=2, target_success=0.0)
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.status(lambda s: s.state == 'waiting_for_data', 'the first status')

    cell.send([1, 2, 5, 6])  # 3 and 4 are lost on the way
    for outcome, mode in ((EpisodeOutcome.SUCCESS, Mode.TRAIN), (EpisodeOutcome.FAILURE,
                          Mode.TRAIN), (EpisodeOutcome.SUCCESS, Mode.EVAL),
                          (EpisodeOutcome.FAILURE, Mode.EVAL)):
        cell.episode_end(outcome, mode)

    status = cell.status(lambda s: s.env_steps == 4 and s.eval_episodes == 2,
                         'all data in the status')
    assert status.transitions_lost == 2
    assert (status.train_episodes, status.train_success_rate) == (2, 0.5)
    assert status.intervention_rate == pytest.approx(0.25)  # sequence 5
    assert status.eval_success_rate == 0.5
    assert status.eval_success_ci_low < 0.5 < status.eval_success_ci_high
    assert status.online_buffer_size == 4 and status.intervention_buffer_size == 1
    curve = [json.loads(line) for line in
             (tmp_path / 'run' / 'curve.jsonl').read_text().splitlines()]
    assert [(r['kind'], r['success_rate']) for r in curve if r['kind'] == 'eval'] == [
        ('eval', 0.5)]


def test_the_learner_takes_the_matrix_product_precision_it_is_given(in_process_learner):
    import torch

    assert torch.get_float32_matmul_precision() == 'highest'  # torch's default, and ours
    try:
        in_process_learner(matmul_precision='high')
        assert torch.get_float32_matmul_precision() == 'high'  # TF32 on an NVIDIA GPU
    finally:
        torch.set_float32_matmul_precision('highest')


def test_an_evaluation_round_is_counted_by_its_round_id(in_process_learner, probe, tmp_path):
    in_process_learner(eval_episodes=2, target_success=0.0)  # the round says 3 episodes
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send([1, 2])
    S, F = EpisodeOutcome.SUCCESS, EpisodeOutcome.FAILURE
    for outcome in (S, EpisodeOutcome.ABORT, F):  # an aborted episode does not count
        cell.episode_end(outcome, Mode.EVAL, eval_round=4, round_episodes=3)
    status = cell.status(lambda s: s.eval_episodes == 2, 'two episodes of round 4')
    assert math.isnan(status.eval_success_rate)  # not over after eval_episodes
    cell.episode_end(S, Mode.EVAL, eval_round=4, round_episodes=3)
    status = cell.status(lambda s: s.eval_episodes == 3, 'round 4 over')
    assert status.eval_success_rate == pytest.approx(2 / 3)
    probe.wait_for(lambda: (tmp_path / 'run' / 'curve.jsonl').exists(), message='the curve')
    curve = [json.loads(line) for line in
             (tmp_path / 'run' / 'curve.jsonl').read_text().splitlines()]
    assert [(r['round'], r['robot_id'], r['episodes']) for r in curve if r['kind'] == 'eval'] == [
        (4, 'r1', 3)]


def test_a_bad_configuration_stops_the_learner_at_start_up(launch_process, ros_context,
                                                           tmp_path):
    # Before any data: the residual scale has 3 values for 2 action axes.
    with pytest.raises(ConfigurationError, match='residual_scale has 3 values; give 1 or 2'):
        _learner(ros_context, tmp_path / 'run', residual_scale=[0.5, 0.5, 0.5])
    learner = _learner_process(launch_process, tmp_path / 'run', resume=False,
                               actor_mode='both', **{'critic.heads': 1})
    assert learner.wait(60) == 1, learner.output
    assert "actor_mode='both': must be one of residual, latent, dual" in learner.output
    assert 'critic.heads=1: must be at least 2' in learner.output


def test_the_run_ends_when_two_rounds_together_reach_the_target(in_process_learner, probe,
                                                                tmp_path):
    learner = in_process_learner(eval_episodes=2, target_success=0.95,
                                 target_window_episodes=4)
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send([1, 2])
    S, F = EpisodeOutcome.SUCCESS, EpisodeOutcome.FAILURE
    # a perfect first round alone is not enough, nor a window with a failure in it
    for round_, outcomes in enumerate(((S, S), (S, F), (S, S)), start=1):
        for outcome in outcomes:
            cell.episode_end(outcome, Mode.EVAL)
        cell.status(lambda s: s.eval_episodes == 2 * round_, f'evaluation round {round_}')
        assert not learner.finished
    for outcome in (S, S):
        cell.episode_end(outcome, Mode.EVAL)
    status = cell.status(lambda s: s.state == 'finished', 'the end of the run')
    assert status.eval_episodes == 8 and status.eval_success_rate == 1.0
    summary = json.loads((tmp_path / 'run' / 'summary.json').read_text())
    assert summary['reason'].startswith('evaluation success 4/4 = 100.0%')
    assert len(summary['eval_rounds']) == 4
    assert (tmp_path / 'run' / 'learning_curve.png').stat().st_size > 0


def test_the_residual_node_adopts_each_broadcast_version(in_process_learner, ros_context,
                                                         probe):
    learner = in_process_learner(weights_period_updates=20, weights_period_s=0.5,
                                 warmup_updates=5)
    residual = ResidualPolicyNode(context=ros_context, parameter_overrides=[
        Parameter('action_dim', value=ACTION_DIM), Parameter('hidden_sizes', value=[16]),
        Parameter('residual_scale', value=[0.5]), Parameter('exploration_std', value=0.0),
        Parameter('observation_sources', value=['task_state']),
        Parameter('policy_inputs', value=['task_state'])])
    probe.executor.add_node(residual)
    try:
        cell = Cell(probe)
        cell.wait_for_learner()
        proposals, broadcasts = [], []
        probe.node.create_subscription(PolicyWeights, 'policy_weights', broadcasts.append,
                                       LATCHED_QOS)
        probe.node.create_subscription(ProposedAction, 'proposed_action', proposals.append,
                                       COMMAND_QOS)
        states = probe.node.create_publisher(StateVector, 'task_state', 10)
        chunks = probe.node.create_publisher(ActionChunk, 'base_action_chunk', COMMAND_QOS)
        probe.wait_for(lambda: states.get_subscription_count() == 1, message='residual node')

        def control_step(k: int) -> ProposedAction:
            stamp = ns_to_stamp(k * 10**9)
            chunk = ActionChunk(action_dim=ACTION_DIM, horizon=1, step_period_s=0.1,
                                chunk_id=k, source_model='test', data=float32_field([0.1, -0.1]))
            chunk.header.stamp = stamp
            chunks.publish(chunk)
            state = StateVector(data=float32_field([0.3, -0.2, 0.5]))
            state.header.stamp = stamp
            count = len(proposals)
            states.publish(state)
            probe.wait_for(lambda: len(proposals) > count, message=f'proposal {k}')
            return proposals[-1]

        assert control_step(1).weights_version == 0  # the zero-initialised actor
        cell.send(range(1, 201))
        status = cell.status(lambda s: s.updates == 200, 'all updates done')
        assert status.state == 'training'
        # every 20 updates, and after half a second the rest: the last version has them all
        probe.wait_for(lambda: broadcasts and broadcasts[-1].learner_updates == 200,
                       message='weights of all 200 updates')
        versions = [message.version for message in broadcasts]
        assert len(versions) >= 3 and versions == sorted(set(versions))
        # every broadcast names the run that produced it (one id per run folder)
        run_id = (learner.run_dir / 'learner_run_id').read_text()
        assert len(run_id) == 32 and {m.learner_run_id for m in broadcasts} == {run_id}
        assert learner.weights.version == versions[-1]
        probe.wait_for(lambda: residual.weights_version == learner.weights.version,
                       message='the residual node on the newest weights')
        proposal = control_step(2)
        assert proposal.weights_version == learner.weights.version
        # the learner's actor and the residual node's copy compute the same residual
        expected = learner.learners.residual.residual(np.array([0.3, -0.2, 0.5], np.float32),
                                                      np.array([0.1, -0.1], np.float32))
        assert np.asarray(proposal.residual) == pytest.approx(expected, abs=1e-5)
        assert np.abs(expected).max() > 0.0  # trained past the zero-initialised output
    finally:
        probe.executor.remove_node(residual)
        residual.destroy_node()


CAMERA = 'image/camera/front/image_raw'  # as the residual node's camera_inputs name it


def _camera_image(sequence: int) -> Image:
    """Return the image of observation ``sequence``: 32 x 32, every pixel ``sequence``."""
    image = Image(height=32, width=32, encoding='rgb8', step=96,
                  data=bytes([sequence % 256]) * (32 * 32 * 3))
    image.header.stamp = ns_to_stamp(sequence * 100_000_000)
    return image


def _naming_images(transition: Transition, topic='/camera/front/image_raw') -> Transition:
    """Let a transition name its observations' images, as the episode manager does."""
    def ref(sequence):
        return ImageRef(name='camera/front/image_raw', topic=topic,
                        stamp=ns_to_stamp(sequence * 100_000_000), height=32, width=32,
                        encoding='rgb8')
    transition.images, transition.next_images = [ref(transition.sequence)], [
        ref(transition.sequence + 1)]
    return transition


def test_the_learner_learns_from_the_camera_images_that_transitions_name(in_process_learner,
                                                                         probe):
    learner = in_process_learner(camera_inputs=[CAMERA], image_size=[16, 16], image_features=8,
                                 image_wait_s=0.5, weights_period_updates=20)
    cell = Cell(probe)
    cell.wait_for_learner()
    camera = probe.node.create_publisher(Image, 'camera/front/image_raw', 10)
    probe.wait_for(lambda: camera.get_subscription_count() == 1, message='the camera reader')

    def send_image(sequence):  # one at a time, as a camera sends them
        camera.publish(_camera_image(sequence))
        probe.wait_for(lambda: learner._camera_frames.frame(FrameRef(
            CAMERA, '/camera/front/image_raw', sequence * 100_000_000)) is not None, 10.0,
            f'image {sequence} at the learner')

    for sequence in range(1, 42):  # steps 1-40: their images first
        send_image(sequence)
    for sequence in range(1, 41):
        cell.transitions.publish(_naming_images(_transition(sequence)))
    for sequence in range(41, 61):  # steps 41-60: the transition before its next image
        cell.transitions.publish(_naming_images(_transition(sequence)))
        send_image(sequence + 1)
    cell.transitions.publish(_naming_images(_transition(61)))  # image 62 never comes
    status = cell.status(lambda s: s.env_steps == 60 and s.updates > 0, 'updates on 60 steps')
    assert status.transitions_lost == 0
    probe.wait_for(lambda: learner._camera_frames.expired == 1, 10.0,
                   'the step whose image never came, left out')
    assert cell.status(lambda s: True, 'a status').env_steps == 60

    residual = learner.learners.residual
    assert residual.config.cameras == (CAMERA,) and residual.config.image_size == (16, 16, 3)
    rows = np.arange(len(residual.online))
    at = residual.online.frames.frames(rows)[CAMERA]
    after = residual.online.frames.next_frames(rows)[CAMERA]
    assert at.shape == after.shape == (60, 3, 16, 16) and at.dtype == np.uint8
    # Each stored frame is its step's image, resized (every pixel the step's number), and the
    # next frame is the next step's.
    assert sorted(at[:, 0, 0, 0]) == list(range(1, 61))
    assert np.array_equal(at, np.broadcast_to(at[:, :1, :1, :1], at.shape))
    assert np.array_equal(after[:, 0, 0, 0], at[:, 0, 0, 0] + 1)

    # The weights carry the encoder, and a residual node that sees the same camera takes them.
    residual_node = ResidualPolicyNode(context=probe.node.context, parameter_overrides=[
        Parameter('action_dim', value=ACTION_DIM), Parameter('hidden_sizes', value=[16]),
        Parameter('residual_scale', value=[0.5]), Parameter('camera_inputs', value=[CAMERA]),
        Parameter('image_size', value=[16, 16]), Parameter('image_features', value=8),
        Parameter('observation_sources', value=['task_state', 'camera/front/image_raw']),
        Parameter('policy_inputs', value=['task_state'])])
    probe.spin(residual_node)
    probe.wait_for(lambda: learner.weights.version > 0, 30.0, 'a broadcast')
    proposals = []
    probe.node.create_subscription(ProposedAction, 'proposed_action', proposals.append,
                                   COMMAND_QOS)
    states = probe.node.create_publisher(StateVector, 'task_state', 10)
    chunks = probe.node.create_publisher(ActionChunk, 'base_action_chunk', COMMAND_QOS)
    probe.wait_for(lambda: states.get_subscription_count() == 1 and
                   chunks.get_subscription_count() == 1, message='the residual node')

    def control_step(sequence: int) -> ProposedAction:
        chunk = ActionChunk(action_dim=ACTION_DIM, horizon=1, step_period_s=0.1,
                            chunk_id=sequence, source_model='test',
                            data=float32_field([0.1, -0.1]))
        state = StateVector(data=float32_field([0.3, -0.2, 0.5]))
        chunk.header.stamp = state.header.stamp = _camera_image(sequence).header.stamp
        count = len(proposals)
        chunks.publish(chunk)
        camera.publish(_camera_image(sequence))
        states.publish(state)
        probe.wait_for(lambda: len(proposals) > count, 30.0, f'proposal {sequence}')
        return proposals[-1]

    control_step(70)  # the camera's actor is made at the first observation
    probe.wait_for(lambda: residual_node.weights_version == learner.weights.version, 30.0,
                   "the residual node on the learner's weights")
    assert control_step(71).weights_version == learner.weights.version > 0


def test_a_transition_naming_no_image_of_a_camera_input_is_refused(in_process_learner, probe):
    learner = in_process_learner(camera_inputs=[CAMERA], image_size=[16, 16])
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send([1])  # names no image
    probe.wait_for(lambda: learner.intake.malformed == 1, 10.0, 'the refusal')
    assert learner.learners.residual is None or len(learner.learners.residual.online) == 0


def test_camera_inputs_refuse_what_cannot_carry_images_yet(ros_context, tmp_path):
    with pytest.raises(ConfigurationError, match='camera_inputs with actor_mode dual'):
        _learner(ros_context, tmp_path / 'run', camera_inputs=[CAMERA], actor_mode='dual')
    with pytest.raises(ConfigurationError, match=r'image_size=\[8, 8\]: must be at least 15'):
        _learner(ros_context, tmp_path / 'run', camera_inputs=[CAMERA], image_size=[8, 8])


CAMERA_RUN = {'camera_inputs': [CAMERA], 'image_size': [16, 16], 'image_features': 8,
              'image_wait_s': 1.0, 'min_steps': 1000}  # no updates: the buffers are the point


def _pattern(sequence: int) -> np.ndarray:
    """Return the pixels of image ``sequence``: 32 x 32 x 3, drawn from the sequence."""
    return np.random.default_rng(1000 + sequence).integers(0, 256, (32, 32, 3), np.uint8)


def _patterned_image(sequence: int) -> Image:
    image = Image(height=32, width=32, encoding='rgb8', step=96,
                  data=_pattern(sequence).tobytes())
    image.header.stamp = ns_to_stamp(sequence * 100_000_000)
    return image


def _resized(sequences) -> np.ndarray:
    """Return the frames of images ``sequences`` as a 16 x 16 learner stores them."""
    inputs = ImageInputs((CAMERA,), 16, 16)
    return np.stack([encoder_frame(_pattern(sequence), inputs) for sequence in sequences])


def _buffer_frames(buffer):
    rows = np.arange(len(buffer))
    return (buffer.observations().copy(), buffer.frames.frames(rows)[CAMERA],
            buffer.frames.next_frames(rows)[CAMERA])


def _replay_bag_order(run_dir):
    """Return the replay bag's records in order: ('image', stamp) or ('step', transition)."""
    reader = BagReader(run_dir / 'replay')
    order = []
    for topic, _, data in reader.messages():
        if reader.topics[topic].type_name == 'sensor_msgs/msg/Image':
            image = deserialize_message(data, Image)
            assert (image.height, image.width, image.encoding) == (16, 16, 'rgb8')
            order.append(('image', image.header.stamp.sec * 10**9 + image.header.stamp.nanosec))
        else:
            order.append(('step', deserialize_message(data, Transition)))
    return order


def _check_each_frame_written_once_before_its_steps(run_dir, left_out=()):
    """Check the replay bag; return the stamps of its frames and the sequences of its steps."""
    order = _replay_bag_order(run_dir)
    written = [stamp for kind, stamp in order if kind == 'image']
    assert len(written) == len(set(written)), 'a frame written twice'
    for position, (kind, transition) in enumerate(order):
        if kind == 'step' and not transition.held and transition.sequence not in left_out:
            before = {stamp for kind, stamp in order[:position] if kind == 'image'}
            named = {ref.stamp.sec * 10**9 + ref.stamp.nanosec
                     for ref in list(transition.images) + list(transition.next_images)}
            assert named <= before, f'step {transition.sequence} before its frames'
    return written, [t.sequence for kind, t in order if kind == 'step']


def test_a_resumed_learner_gets_back_the_frames_its_steps_used(ros_context, probe, tmp_path,
                                                               in_process_learner):
    run_dir = tmp_path / 'run'
    first = _learner(ros_context, run_dir, **CAMERA_RUN)
    probe.executor.add_node(first)
    cell = Cell(probe)
    cell.wait_for_learner()
    camera = probe.node.create_publisher(Image, 'camera/front/image_raw', 10)

    def send_image(learner, sequence):  # one at a time, as a camera sends them
        camera.publish(_patterned_image(sequence))
        probe.wait_for(lambda: learner._camera_frames.frame(FrameRef(
            CAMERA, '/camera/front/image_raw', sequence * 100_000_000)) is not None, 10.0,
            f'image {sequence} at the learner')

    def send_step(sequence, held=False):
        message = _naming_images(_transition(sequence))
        message.held = held
        cell.transitions.publish(message)

    probe.wait_for(lambda: camera.get_subscription_count() == 1, message='the camera reader')
    for sequence in range(1, 42):  # steps 1-40 (two episodes): their images first
        send_image(first, sequence)
    for sequence in range(1, 41):
        send_step(sequence, held=sequence == 7)  # recorded, never learned from
    for sequence in range(41, 46):  # steps 41-45: each before its next image
        send_step(sequence)
        send_image(first, sequence + 1)
    before = cell.status(lambda s: s.env_steps == 44, '44 steps with their frames')
    assert (before.online_buffer_size, before.intervention_buffer_size) == (44, 9)
    online, intervention = (_buffer_frames(buffer) for buffer in (
        first.learners.residual.online, first.learners.residual.intervention))
    written, steps = _check_each_frame_written_once_before_its_steps(run_dir)
    assert sorted(written) == [sequence * 100_000_000 for sequence in range(1, 47)]
    assert steps == list(range(1, 46))
    probe.executor.remove_node(first)
    first.destroy_node()

    cell.statuses.clear()
    second = in_process_learner(resume=True, **CAMERA_RUN)
    resumed = cell.status(lambda s: s.env_steps == 44, 'the resumed buffers')
    assert (resumed.online_buffer_size, resumed.intervention_buffer_size) == (44, 9)
    for buffer, (observations, frames, next_frames) in (
            (second.learners.residual.online, online),
            (second.learners.residual.intervention, intervention)):
        again = _buffer_frames(buffer)
        assert np.array_equal(again[0], observations)  # the same steps, in the same order
        assert np.array_equal(again[1], frames) and np.array_equal(again[2], next_frames)
    # stored once per step as before: frames shared between a step and the next
    assert len(second.learners.residual.online.frames.stores[CAMERA]) == len(
        first.learners.residual.online.frames.stores[CAMERA])
    assert second.intake.malformed == 0

    # Going on: step 46's first image was written before the restart, and is not again; the
    # image after step 50 never comes: that step is recorded, never learned from.
    cell.wait_for_learner()
    probe.wait_for(lambda: camera.get_subscription_count() == 1, message='the camera reader')
    for sequence in range(46, 51):
        send_image(second, sequence + 1)
        send_step(sequence)
    send_step(51)
    cell.status(lambda s: s.env_steps == 49, 'the steps after the restart')
    probe.wait_for(lambda: second._camera_frames.expired == 1, 10.0, 'step 51 left out')
    cell.status(lambda s: s.env_steps == 49, 'no more')
    # every step's frames are its images, resized, before the restart and after it
    _, frames, next_frames = _buffer_frames(second.learners.residual.online)
    sequences = [sequence for sequence in range(1, 51) if sequence != 7]
    assert np.array_equal(frames, _resized(sequences))
    assert np.array_equal(next_frames, _resized([sequence + 1 for sequence in sequences]))
    written, steps = _check_each_frame_written_once_before_its_steps(run_dir, left_out={51})
    assert sorted(written) == [sequence * 100_000_000 for sequence in range(1, 52)]
    assert steps == list(range(1, 52))  # step 51 too: recorded when its wait ended

    # A resume over it says why it is left out.
    probe.executor.remove_node(second)
    probe._spun.remove(second)
    second.destroy_node()
    cell.statuses.clear()
    third = in_process_learner(resume=True, **CAMERA_RUN)
    cell.status(lambda s: s.env_steps == 49, 'the buffers resumed again')
    assert np.array_equal(_buffer_frames(third.learners.residual.online)[1], frames)
    assert third.intake.malformed == 1


def _png_image(pixels: np.ndarray, sequence: int):
    """Return ``pixels`` as the PNG CompressedImage of observation ``sequence``."""
    import io
    from PIL import Image as PilImage
    from sensor_msgs.msg import CompressedImage
    png = io.BytesIO()
    PilImage.fromarray(pixels).save(png, format='PNG')
    image = CompressedImage(format='png', data=png.getvalue())
    image.header.stamp = ns_to_stamp(sequence * 100_000_000)
    return image


def test_the_learner_takes_a_compressed_camera_as_the_transitions_name_it(
        ros_context, probe, tmp_path, in_process_learner):
    from sensor_msgs.msg import CompressedImage
    compressed_topic = '/camera/front/image_raw/compressed'  # as the episode manager names it
    run_dir = tmp_path / 'run'
    learner = _learner(ros_context, run_dir, **CAMERA_RUN)
    probe.executor.add_node(learner)
    cell = Cell(probe)
    cell.wait_for_learner()
    raw = probe.node.create_publisher(Image, 'camera/front/image_raw', 10)
    compressed = probe.node.create_publisher(CompressedImage,
                                             'camera/front/image_raw/compressed', 10)
    probe.wait_for(lambda: raw.get_subscription_count() == 1
                   and compressed.get_subscription_count() == 1, message='the camera readers')

    def frame(sequence):  # kept under the camera's raw topic, however it came
        return learner._camera_frames.frame(FrameRef(CAMERA, '/camera/front/image_raw',
                                                     sequence * 100_000_000))

    def send_png(sequence):  # one at a time, as a camera sends them
        compressed.publish(_png_image(_pattern(sequence), sequence))
        probe.wait_for(lambda: frame(sequence) is not None, 10.0,
                       f'image {sequence} at the learner')

    for sequence in range(1, 22):  # steps 1-20 (the cell publishes compressed images only)
        send_png(sequence)
    for sequence in range(1, 21):
        cell.transitions.publish(_naming_images(_transition(sequence), compressed_topic))
    cell.status(lambda s: s.env_steps == 20, '20 steps with their compressed images')
    # A cell that publishes both (image_transport): the learner reads the topic the transitions
    # name alone, and takes its images, not the raw image of the same stamp (another picture).
    probe.wait_for(lambda: raw.get_subscription_count() == 0, 10.0, 'the raw topic let go')
    assert compressed.get_subscription_count() == 1
    send_png(22)
    other = _patterned_image(500)
    other.header.stamp = ns_to_stamp(22 * 100_000_000)
    raw.publish(other)
    send_png(23)  # after the raw image 22, which is left alone
    cell.transitions.publish(_naming_images(_transition(21), compressed_topic))
    cell.status(lambda s: s.env_steps == 21, 'step 21')
    _, frames, next_frames = _buffer_frames(learner.learners.residual.online)
    assert np.array_equal(frames, _resized(range(1, 22)))  # PNG: lossless, the very pixels
    assert np.array_equal(next_frames, _resized(range(2, 23)))
    assert learner._camera_read_from == {('', CAMERA): compressed_topic}

    # The replay bag holds the frames decoded, as Images of the camera's raw topic, once each,
    # and a resume gets them back.
    probe.executor.remove_node(learner)
    learner.destroy_node()
    assert {name: topic.type_name for name, topic in BagReader(run_dir / 'replay').topics.items()
            if topic.type_name.startswith('sensor_msgs')} == {
        '/camera/front/image_raw': 'sensor_msgs/msg/Image'}
    written, steps = _check_each_frame_written_once_before_its_steps(run_dir)
    assert sorted(written) == [sequence * 100_000_000 for sequence in range(1, 23)]
    cell.statuses.clear()
    second = in_process_learner(resume=True, **CAMERA_RUN)
    cell.status(lambda s: s.env_steps == 21, 'the resumed buffers')
    again = _buffer_frames(second.learners.residual.online)
    assert np.array_equal(again[1], frames) and np.array_equal(again[2], next_frames)
    assert second.intake.malformed == 0

    # A recorded run whose transitions name the /compressed topic, which the bag has.
    recorded = _camera_bag(tmp_path / 'recorded', range(11, 21), compressed=True,
                           named=ROBOT9_CAMERA + '/compressed')
    response = probe.call(LoadBag, 'load_bag', LoadBag.Request(path=str(recorded)))
    assert response.success and response.transitions == 10, response.message
    _, frames, next_frames = _buffer_frames(second.learners.residual.online)
    assert np.array_equal(frames[-10:], _resized(range(11, 21)))
    assert np.array_equal(next_frames[-10:], _resized(range(12, 22)))
    # A cell that goes back to raw images: the learner follows its transitions.
    cell.wait_for_learner()
    probe.wait_for(lambda: raw.get_subscription_count() == 1
                   and compressed.get_subscription_count() == 1, message='both read again')
    cell.transitions.publish(_naming_images(_transition(22)))
    probe.wait_for(lambda: compressed.get_subscription_count() == 0, 10.0,
                   'the compressed topic let go')
    assert raw.get_subscription_count() == 1


def _learner_process(launch_process, run_dir, resume: bool, env=None, **extra):
    overrides = dict(SMALL_NETWORKS, run_dir=str(run_dir), resume=resume,
                     checkpoint_period_s=1.0, weights_period_updates=20, **extra)
    command = [sys.executable, '-m', 'hilresrl_learner.learner_node', '--ros-args']
    for name, value in overrides.items():
        command += ['-p', f'{name}:={json.dumps(value)}']
    return launch_process(command, env=dict(os.environ, **(env or {})))


def test_a_killed_learner_resumes_with_every_acknowledged_transition(launch_process, probe,
                                                                     tmp_path):
    run_dir = tmp_path / 'run'
    first = _learner_process(launch_process, run_dir, resume=False)
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send(range(1, 301))
    before = cell.status(lambda s: s.env_steps == 300 and s.updates >= 100,
                         'all 300 transitions in and training under way')
    assert before.transitions_lost == 0
    probe.wait_for(lambda: any((run_dir / 'checkpoints').glob('update-*')),
                   message='a checkpoint')
    cell.send(range(301, 341))  # in flight while the learner dies
    # A killed reader stays matched until its lease runs out: the restarted learner is the
    # reader that was not there before.
    killed_readers = cell.transition_readers()
    first.kill()  # SIGKILL: no chance to clean up

    checkpointed = json.loads(max((run_dir / 'checkpoints').glob('update-*'))
                              .joinpath('state.json').read_text())['updates']
    cell.statuses.clear()
    second = _learner_process(launch_process, run_dir, resume=True)
    probe.wait_for(lambda: cell.transition_readers() - killed_readers, 60,
                   'the restarted learner')
    resumed = cell.status(lambda s: s.env_steps >= 300, 'the resumed status', learner=second)
    restored = resumed.env_steps
    # Everything acknowledged before the kill is back; what was in flight is there or not.
    assert 300 <= restored <= 340
    assert resumed.updates >= checkpointed
    assert resumed.weights_version >= before.weights_version

    # The cell's sender starts over too, in a participant of its own: a Fast DDS publisher
    # that lived through its subscriber's SIGKILL can go on writing into the killed process's
    # shared-memory port, and the restarted learner then never hears it (eProsima/Fast-DDS
    # issues 2811 and 5053; it happened here about once in 15 runs; the README's resume
    # section says what a user does about it).
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(os.environ['ROS_DOMAIN_ID']))
    try:
        sender = rclpy.create_node('cell_after_the_restart', context=context)
        transitions = sender.create_publisher(Transition, 'transitions', TRANSITIONS_QOS)
        probe.wait_for(lambda: transitions.get_subscription_count() == 1, 60,
                       'the restarted learner, from a new participant')
        for sequence in range(341, 441):
            transitions.publish(_transition(sequence))
        after = cell.status(
            lambda s: s.env_steps == restored + 100 and s.updates > resumed.updates,
            'training going on after the restart', learner=second)
    finally:
        context.try_shutdown()
    # The sequence check carries on too: the only gap is what never reached the log.
    assert after.transitions_lost == 340 - restored
    assert second.process.poll() is None


def test_a_step_still_waiting_for_its_images_at_the_stop_is_recorded(ros_context, probe,
                                                                     tmp_path):
    learner = _learner(ros_context, tmp_path / 'run', **dict(CAMERA_RUN, image_wait_s=60.0))
    probe.executor.add_node(learner)
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send([1])  # names no image: refused before the replay bag
    cell.transitions.publish(_naming_images(_transition(2)))  # its images never come
    probe.wait_for(lambda: learner._camera_frames.waiting == 1, 10.0, 'step 2 waiting')
    assert learner.intake.malformed == 1
    probe.executor.remove_node(learner)
    learner.destroy_node()
    assert [t.sequence for t in _replay_bag_transitions(tmp_path / 'run')] == [2]


def test_a_killed_image_learner_resumes_with_the_frames_of_every_step_it_counted(
        launch_process, probe, tmp_path, in_process_learner):
    first = _learner_process(launch_process, tmp_path / 'run', resume=False,
                             **dict(CAMERA_RUN, image_wait_s=30.0))
    cell = Cell(probe)
    cell.wait_for_learner()
    camera = probe.node.create_publisher(Image, 'camera/front/image_raw', 10)
    probe.wait_for(lambda: camera.get_subscription_count() == 1, 60, 'the camera reader')
    for sequence in range(1, 31):  # each step counted before the next is sent
        images = [_patterned_image(sequence), _patterned_image(sequence + 1)]

        def counted(status, sequence=sequence, images=images):
            # The learner reads cameras best effort, and its side of the match may lag ours
            # under load: an image it missed comes again (same stamp) until the step counts.
            for image in images:
                camera.publish(image)
            return status.env_steps == sequence

        for image in images:
            camera.publish(image)
        cell.transitions.publish(_naming_images(_transition(sequence)))
        cell.status(counted, f'step {sequence} counted', learner=first)
    first.kill()  # SIGKILL: no chance to close the replay bag

    cell.statuses.clear()
    second = in_process_learner(resume=True, **CAMERA_RUN)
    cell.status(lambda s: s.env_steps == 30, 'the 30 counted steps back')
    _, frames, next_frames = _buffer_frames(second.learners.residual.online)
    assert np.array_equal(frames, _resized(range(1, 31)))
    assert np.array_equal(next_frames, _resized(range(2, 32)))
    assert second.intake.malformed == 0


def test_the_status_keeps_its_period_while_updates_run_long(launch_process, probe, tmp_path):
    import time
    received = []  # (receive time, status): every one, in order
    probe.node.create_subscription(
        LearnerStatus, 'learner_status', lambda status: received.append((time.monotonic(),
                                                                         status)),
        QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE))
    # Updates always due (20 per transition): they run in their own thread, and the status
    # must not wait for them.
    _learner_process(launch_process, tmp_path / 'run', resume=False, update_to_data=20.0,
                     status_period_s=0.25)
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send(range(1, 301))
    probe.wait_for(lambda: received and received[-1][1].updates >= 2000, 120,
                   '2,000 updates')
    training = [when for when, status in received if status.updates > 0]
    assert received[-1][1].update_to_data_target == 20.0  # what the cells pace themselves by
    assert len(training) >= 5
    assert max(np.diff(training)) < 2.0, np.diff(training)


def _bag_of_transitions(path, sequences, storage='mcap', topic='/robot9/transitions',
                        change=lambda message: None):
    """Write transitions ``sequences`` to a bag, each first passed to ``change``."""
    bag = BagWriter(path, storage)
    bag.add_topic(topic, TRANSITION_TYPE, ros2msg_definition(TRANSITION_TYPE))
    for sequence in sequences:
        message = _transition(sequence)
        change(message)
        bag.write(topic, sequence * 10**8, serialize_message(message))
    bag.close()
    return path


def test_recorded_runs_fill_the_buffers_and_warm_up_before_the_robot_moves(
        in_process_learner, probe, tmp_path):
    mcap_bag = _bag_of_transitions(tmp_path / 'jazzy', range(1, 101))  # 20 by a person
    humble_bag = _bag_of_transitions(tmp_path / 'humble', range(1, 41), 'sqlite3')  # 8
    damaged = tmp_path / 'damaged' / 'damaged_0.mcap'
    damaged.parent.mkdir()
    damaged.write_bytes(b'\x89MCAP0\r\n\x01' + b'\xff' * 64)
    every_status = []  # all of them, in order: subscribed before the learner starts
    probe.node.create_subscription(LearnerStatus, 'learner_status', every_status.append,
                                   QoSProfile(history=HistoryPolicy.KEEP_ALL,
                                              reliability=ReliabilityPolicy.RELIABLE))
    learner = in_process_learner(offline_bags=[str(mcap_bag), str(humble_bag),
                                               str(tmp_path / 'missing'), str(damaged.parent)],
                                 offline_fraction=0.25, offline_warmup_updates=60)
    cell = Cell(probe)
    cell.wait_for_learner()
    status = cell.status(lambda s: s.updates == 60 and s.state == 'training',
                         'the end of the warm-up')
    # What the episode manager sees: loading, then warm-up, and only then may the robot move.
    # (This subscription is another reader of the same statuses: it may be a message behind.)
    probe.wait_for(lambda: any(s.state == 'training' for s in every_status), 30,
                   'the training status on the keep-all subscription')
    states = [s.state for s in every_status]
    assert states[0] == 'loading' and 'training' in states
    assert all(s.updates == 0 for s in every_status if s.state == 'loading')
    assert all(s.env_steps == 0 for s in every_status)
    # every recorded step, routed: all to the offline buffer, a person's also to interventions
    assert (status.offline_buffer_size, status.intervention_buffer_size,
            status.online_buffer_size) == (140, 28, 0)
    assert status.updates == 60 and status.env_steps == 0
    assert learner.learners.residual.offline_updates == 60

    cell.send(range(1, 41))  # the robot's own steps: their updates on top of the warm-up
    status = cell.status(lambda s: s.env_steps == 40 and s.updates == 100,
                         'updates for the robot steps')
    assert status.online_buffer_size == 40 and status.intervention_buffer_size == 36

    # during training, through the service: a run folder's replay bag
    _bag_of_transitions(tmp_path / 'run7' / 'replay', range(1, 11))
    response = probe.call(LoadBag, 'load_bag', LoadBag.Request(path=str(tmp_path / 'run7')))
    assert response.success and (response.transitions, response.intervention_transitions) == (
        10, 2)
    refused = probe.call(LoadBag, 'load_bag', LoadBag.Request(path=str(damaged.parent)))
    assert not refused.success and str(damaged) in refused.message
    assert 'at byte' in refused.message
    status = cell.status(lambda s: s.offline_buffer_size == 150, 'the loaded run')
    assert status.state == 'training'


ROBOT9_CAMERA = '/robot9/camera/front/image_raw'


def _camera_bag(path, sequences, missing_images=(), compressed=False, named=ROBOT9_CAMERA):
    """
    Write a recorded run with a camera: transitions naming its images, and the images.

    As a recorder takes them in: an observation's image before its transition, the next
    one's after it. Step 7 is held. ``compressed``: the images as PNG on <topic>/compressed.
    ``named``: the topic the transitions say the images were read from.
    """
    import io
    from PIL import Image as PilImage
    from sensor_msgs.msg import CompressedImage
    image_type = 'sensor_msgs/msg/' + ('CompressedImage' if compressed else 'Image')
    image_topic = ROBOT9_CAMERA + ('/compressed' if compressed else '')
    bag = BagWriter(path, 'mcap')
    bag.add_topic('/robot9/transitions', TRANSITION_TYPE, ros2msg_definition(TRANSITION_TYPE))
    bag.add_topic(image_topic, image_type, ros2msg_definition(image_type))

    def write_image(sequence):
        if sequence in missing_images:
            return
        image = _patterned_image(sequence)
        if compressed:
            png = io.BytesIO()
            PilImage.fromarray(_pattern(sequence)).save(png, format='PNG')
            image = CompressedImage(header=image.header, format='png', data=png.getvalue())
        bag.write(image_topic, sequence * 10**8, serialize_message(image))

    write_image(sequences[0])
    for sequence in sequences:
        message = _naming_images(_transition(sequence), named)
        message.held = sequence == 7
        bag.write('/robot9/transitions', sequence * 10**8 + 1, serialize_message(message))
        write_image(sequence + 1)
    bag.close()
    return path


def test_recorded_runs_load_with_the_camera_images_their_steps_name(in_process_learner, probe,
                                                                    tmp_path):
    recorded = _camera_bag(tmp_path / 'recorded', range(1, 41), missing_images={30})
    learner = in_process_learner(offline_bags=[str(recorded)], **CAMERA_RUN)
    cell = Cell(probe)
    cell.wait_for_learner()
    # step 7 was held; steps 29 and 30 lack image 30
    status = cell.status(lambda s: s.online_buffer_size == 37, 'the recorded steps')
    assert status.env_steps == 0 and status.intervention_buffer_size == 7  # 5, 10, .. 40: not 30
    sequences = [sequence for sequence in range(1, 41) if sequence not in (7, 29, 30)]
    _, frames, next_frames = _buffer_frames(learner.learners.residual.online)
    assert np.array_equal(frames, _resized(sequences))
    assert np.array_equal(next_frames, _resized([sequence + 1 for sequence in sequences]))

    response = probe.call(LoadBag, 'load_bag', LoadBag.Request(path=str(recorded)))
    assert response.success and response.transitions == 37, response.message
    assert '2 step(s) whose camera images are not in the bag left out' in response.message
    # the images on the /compressed topic alone (PNG: lossless)
    compressed = _camera_bag(tmp_path / 'compressed', range(11, 21), compressed=True)
    response = probe.call(LoadBag, 'load_bag', LoadBag.Request(path=str(compressed)))
    assert response.success and response.transitions == 10, response.message
    _, frames, next_frames = _buffer_frames(learner.learners.residual.online)
    assert np.array_equal(frames[-10:], _resized(range(11, 21)))
    assert np.array_equal(next_frames[-10:], _resized(range(12, 22)))
    # a bag without the camera's topic is refused, naming it
    no_images = _bag_of_transitions(tmp_path / 'no_images', range(1, 11),
                                    change=lambda message: _naming_images(message,
                                                                          ROBOT9_CAMERA))
    refused = probe.call(LoadBag, 'load_bag', LoadBag.Request(path=str(no_images)))
    assert not refused.success
    assert f'no {ROBOT9_CAMERA} topic: its transitions name images of it' in refused.message
    assert cell.status(lambda s: s.online_buffer_size == 84, 'both loaded').env_steps == 0


def _base_policy_checkpoint(path) -> None:
    """Save a small BC base policy of the test's state and action sizes at ``path``."""
    from hilresrl_policy.bc import BCConfig, BCNetwork, save_checkpoint
    network = BCNetwork(BCConfig(state_dim=OBS_DIM, action_dim=ACTION_DIM, hidden_sizes=(8,),
                                 task='test'))
    network.set_normalization(np.random.default_rng(0).normal(size=(10, OBS_DIM)))
    save_checkpoint(path, network)


def test_demonstrations_fill_the_intervention_buffer_relabelled_by_the_base_policy(
        in_process_learner, probe, tmp_path):
    from hilresrl_common.demonstrations import Demonstrations
    _base_policy_checkpoint(tmp_path / 'base')
    rng = np.random.default_rng(1)
    Demonstrations(observations=rng.normal(size=(30, OBS_DIM)),
                   actions=rng.uniform(-1, 1, (30, ACTION_DIM)),
                   expert_actions=rng.uniform(-1, 1, (30, ACTION_DIM)),
                   episode_index=np.repeat([0, 1, 2], 10),
                   episode_success=[True, False, True]).save(tmp_path / 'demos.npz')
    learner = in_process_learner(demonstrations=[str(tmp_path / 'demos.npz'),
                                                 str(tmp_path / 'missing.npz')],
                                 **{'base_policy.kind': 'bc',
                                    'base_policy.checkpoint': str(tmp_path / 'base')})
    cell = Cell(probe)
    cell.wait_for_learner()
    # the failed episode's last step has no next state: left out
    status = cell.status(lambda s: s.intervention_buffer_size == 29, 'the demonstrations')
    assert status.online_buffer_size == 0 and status.env_steps == 0
    batch = learner.learners.residual.intervention.gather(np.arange(29))
    assert batch.intervened.all()
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    base = BCPolicy(str(tmp_path / 'base'))
    expected = np.stack([base.act({'task_state': o})[0] for o in batch.observation])
    assert np.allclose(batch.base_action, expected, atol=1e-6)  # relabelled, not recorded
    one_step = learner.learners.residual.intervention.gather(np.arange(29), n_step=1)
    assert one_step.n_step_return.sum() == 2.0  # the two successful episodes' last steps
    assert (one_step.bootstrap_discount == 0).sum() == 2


def test_demonstrations_with_images_fill_the_buffer_with_their_frames(
        in_process_learner, probe, tmp_path):
    from hilresrl_common.demonstrations import Demonstrations
    _base_policy_checkpoint(tmp_path / 'base')
    rng = np.random.default_rng(2)
    steps = 12
    images = np.stack([_pattern(sequence) for sequence in range(steps)])
    demos = Demonstrations(
        observations=rng.normal(size=(steps, OBS_DIM)),
        actions=rng.uniform(-1, 1, (steps, ACTION_DIM)),
        expert_actions=rng.uniform(-1, 1, (steps, ACTION_DIM)),
        episode_index=np.repeat([0, 1], 6), episode_success=[True, False],
        observed={'ee_pose': rng.normal(size=(steps, 7)), 'wrench': rng.normal(size=(steps, 6)),
                  CAMERA: images})
    demos.save(tmp_path / 'pixels.npz')
    # the task state alone: refused (the actor reads the pose and the wrench, and the camera)
    Demonstrations(demos.observations, demos.actions, demos.expert_actions,
                   demos.episode_index, demos.episode_success).save(tmp_path / 'state.npz')
    learner = in_process_learner(
        demonstrations=[str(tmp_path / 'state.npz'), str(tmp_path / 'pixels.npz')],
        policy_inputs=['wrench', 'ee_pose'],
        **CAMERA_RUN, **{'base_policy.kind': 'bc', 'base_policy.checkpoint':
                         str(tmp_path / 'base')})
    cell = Cell(probe)
    cell.wait_for_learner()
    # the failed episode's last step has no next state: left out
    status = cell.status(lambda s: s.intervention_buffer_size == 11, 'the demonstrations')
    assert status.online_buffer_size == 0 and status.env_steps == 0
    buffer = learner.learners.residual.intervention
    kept = np.r_[0:6, 6:11]
    observations, frames, next_frames = _buffer_frames(buffer)
    # the actor's inputs in policy_inputs' order, as a live step's
    assert np.array_equal(observations, np.concatenate(
        [demos.observed['wrench'], demos.observed['ee_pose']], axis=1)[kept])
    assert np.array_equal(frames, _resized(kept))
    # each step's next frame is the next step's; a successful episode's last step its own
    assert np.array_equal(next_frames, _resized(np.r_[1:6, 5, 7:12]))
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    base = BCPolicy(str(tmp_path / 'base'))
    expected = np.stack([base.act({'task_state': state})[0]
                         for state in demos.observations[kept]])
    batch = buffer.gather(np.arange(11))
    assert np.allclose(batch.base_action, expected, atol=1e-6)  # relabelled from the state


def _steered_transition(sequence: int, latent_dim: int = ACTION_DIM) -> Transition:
    """Return a transition whose base action came from a latent the refinement actor chose."""
    message = _transition(sequence)
    rng = np.random.default_rng(10_000 + sequence)
    if not message.intervened:
        message.latent = float32_field(rng.uniform(-1.5, 1.5, latent_dim))
        message.latent_condition = float32_field(np.r_[rng.uniform(-1, 1, 7), 1.0])
        message.refinement_command = 'move left'
    return message


def test_dual_mode_learns_and_broadcasts_the_refinement_actor_too(
        in_process_learner, probe, tmp_path):
    from hilresrl_policy.residual import ResidualConfig
    learner = in_process_learner(actor_mode='dual', weights_period_updates=20)
    cell = Cell(probe)
    latent_weights, residual_weights = [], []
    probe.node.create_subscription(PolicyWeights, 'latent_weights', latent_weights.append,
                                   LATCHED_QOS)
    probe.node.create_subscription(PolicyWeights, 'policy_weights', residual_weights.append,
                                   LATCHED_QOS)
    cell.wait_for_learner()
    for sequence in range(1, 201):
        cell.transitions.publish(_steered_transition(sequence))
    status = cell.status(lambda s: s.env_steps == 200 and s.latent_weights_version >= 1
                         and s.weights_version >= 1, 'both actors broadcast')
    assert status.actor_mode == 'dual'
    # Steps under a person's control (every fifth) are not the refinement actor's.
    assert learner.learners.latent.env_steps == 160
    assert status.latent_updates > 0 and learner.learners.residual.updates > 0
    # The cells pace themselves by the slower of the two.
    assert status.updates <= status.latent_updates
    assert status.updates <= learner.learners.residual.updates
    probe.wait_for(lambda: latent_weights and residual_weights, message='both weights')
    architecture = ResidualConfig.from_json(latent_weights[-1].architecture)
    assert (architecture.obs_dim, architecture.action_dim) == (OBS_DIM + 8, ACTION_DIM)
    assert ResidualConfig.from_json(residual_weights[-1].architecture).obs_dim == OBS_DIM
    learner._checkpoint()
    assert (tmp_path / 'run' / 'latent' / 'checkpoints' / 'latest').exists()
    assert (tmp_path / 'run' / 'latent' / 'weights_version').read_text() == str(
        status.latent_weights_version)


def test_latent_mode_trains_the_refinement_actor_alone(in_process_learner, probe):
    learner = in_process_learner(actor_mode='latent', weights_period_updates=20)
    cell = Cell(probe)
    cell.wait_for_learner()
    for sequence in range(1, 201):  # a sampler's noise of 6 values (latent.dim: as received)
        cell.transitions.publish(_steered_transition(sequence, latent_dim=6))
    status = cell.status(lambda s: s.env_steps == 200 and s.latent_weights_version >= 1,
                         'the refinement actor broadcast')
    assert learner.learners.latent_dim == 6 and learner.learners.latent.config.action_dim == 6
    assert status.state == 'training' and status.actor_mode == 'latent'
    assert status.weights_version == 0 and learner.learners.residual.updates == 0  # no residual
    # The cells pace themselves by the refinement actor, which keeps its ratio to every
    # transition although it learns from the four in five that nobody corrected.
    status = cell.status(lambda s: s.latent_updates >= 160, 'the ratio to all transitions')
    assert learner.learners.latent.env_steps == 160
    assert status.updates == status.latent_updates


# --- faults: what the learner is fed ------------------------------------------------------
def _replay_bag_transitions(run_dir):
    reader = BagReader(run_dir / 'replay')
    return [deserialize_message(data, Transition)
            for _, _, data in reader.messages(reader.topics_of_type(TRANSITION_TYPE))]


def test_held_steps_are_recorded_but_never_reach_the_buffers(in_process_learner, probe):
    learner = in_process_learner()
    cell = Cell(probe)
    cell.wait_for_learner()
    for sequence in range(1, 41):
        message = _transition(sequence)
        message.held = 20 < sequence <= 30
        message.hold_reason = 'e-stop' if message.held else ''
        cell.transitions.publish(message)
    status = cell.status(lambda s: s.env_steps == 30, '30 trained-on steps')
    cell.status(lambda s: s.updates >= 30, 'updates on them')
    status = cell.statuses[-1]
    assert status.env_steps == 30 and status.online_buffer_size == 30
    # sequences 5, 10, ..., 40 were by a person; 25 and 30 were held
    assert status.intervention_buffer_size == 6
    assert status.intervention_rate == pytest.approx(6 / 30)
    assert learner.intake.held_steps == 10 and learner.intake.malformed == 0


def test_a_malformed_transition_is_refused_and_a_resume_over_one_succeeds(
        in_process_learner, probe, tmp_path):
    learner = in_process_learner()
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send(range(1, 6))
    no_state = _transition(6)
    no_state.observation = to_named_arrays({'gripper': np.zeros(1)})  # no task_state
    cell.transitions.publish(no_state)
    short = _transition(7)
    short.base_action = float32_field([0.1])  # one value, not two
    cell.transitions.publish(short)
    infinite = _transition(8)
    infinite.reward = float('inf')
    cell.transitions.publish(infinite)
    cell.send(range(9, 41))
    status = cell.status(lambda s: s.env_steps == 37 and s.updates >= 37,
                         'the learner going on after three bad transitions')
    assert status.state in ('warmup', 'training') and learner.intake.malformed == 3
    # none of them reached the replay bag: a resume never meets them
    in_bag = [t.sequence for t in _replay_bag_transitions(tmp_path / 'run')]
    assert in_bag == [s for s in range(1, 41) if s not in (6, 7, 8)]


def test_a_resume_skips_a_bad_record_of_an_older_replay_bag(in_process_learner, probe,
                                                            tmp_path):
    # A replay bag as the learner wrote it before it checked transitions: one without
    # task_state among good ones.
    replay = BagWriter(tmp_path / 'run' / 'replay', 'mcap')
    replay.add_topic('/transitions', TRANSITION_TYPE, ros2msg_definition(TRANSITION_TYPE))
    for sequence in range(1, 51):
        message = _transition(sequence)
        if sequence == 17:
            message.observation = to_named_arrays({'gripper': np.zeros(1)})
        replay.write('/transitions', sequence * 10**8, serialize_message(message))
    replay.close()
    learner = in_process_learner(resume=True)
    cell = Cell(probe)
    cell.wait_for_learner()
    status = cell.status(lambda s: s.env_steps == 49, 'the resumed buffers')
    assert status.online_buffer_size == 49 and learner.intake.malformed == 1
    cell.send(range(51, 61))
    cell.status(lambda s: s.env_steps == 59 and s.transitions_lost == 0, 'training going on')


def test_transitions_published_before_ctrl_c_are_all_in_the_replay_bag(launch_process, probe,
                                                                       tmp_path):
    run_dir = tmp_path / 'run'
    # A learner that lags: many updates per transition leave a backlog.
    # The executor of Humble and Jazzy, which takes one message per turn: the EventsExecutor
    # happened to empty its queue on the way out, but nothing promises it.
    learner = _learner_process(launch_process, run_dir, resume=False, update_to_data=20.0,
                               batch_size=256,
                               env={'HILRESRL_EXECUTOR': 'single'})
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send(range(1, 101))
    cell.status(lambda s: s.env_steps == 100 and s.updates > 0, 'the learner busy updating')
    cell.send(range(101, 701))
    # Every one is in the learner's middleware (acknowledged) before Ctrl-C.
    assert cell.transitions.wait_for_all_acked(Duration(seconds=30))
    assert learner.interrupt(60) == 0, learner.output
    stored = [t.sequence for t in _replay_bag_transitions(run_dir)]
    assert stored == list(range(1, 701)), f'{len(stored)} of 700 stored'


def test_a_resume_over_a_dangling_latest_checkpoint_takes_the_newest_readable_one(
        launch_process, probe, tmp_path):
    run_dir = tmp_path / 'run'
    first = _learner_process(launch_process, run_dir, resume=False)
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send(range(1, 301))
    checkpoints = run_dir / 'checkpoints'
    probe.wait_for(lambda: len(list(checkpoints.glob('update-*'))) >= 2, 60,
                   'two checkpoints')
    assert first.interrupt(60) == 0, first.output
    *_, older, newest = sorted(checkpoints.glob('update-*'))
    shutil.rmtree(newest)  # 'latest' now names a checkpoint that is gone
    assert (checkpoints / 'latest').is_symlink() and not (checkpoints / 'latest').exists()
    older_updates = json.loads((older / 'state.json').read_text())['updates']
    assert older_updates > 0

    weights = []
    probe.node.create_subscription(PolicyWeights, 'policy_weights', weights.append, LATCHED_QOS)
    # So few updates per transition that the resumed learner owes none: its only broadcast is
    # what it restored.
    second = _learner_process(launch_process, run_dir, resume=True, update_to_data=0.01)
    # The resumed learner broadcasts what it restored: the older checkpoint, not fresh networks.
    probe.wait_for(lambda: weights, 60, 'the weights of the resumed learner')
    assert weights[0].learner_updates == older_updates, second.output
    assert second.process.poll() is None


def test_a_lost_first_transition_after_a_cell_restart_drops_nothing_else(in_process_learner,
                                                                         probe):
    in_process_learner()
    cell = Cell(probe)
    cell.wait_for_learner()
    for sequence in range(1, 51):
        message = _transition(sequence)
        message.cell_start_id = 'first-start'
        cell.transitions.publish(message)
    cell.status(lambda s: s.env_steps == 50, 'the first start of the cell')
    for sequence in range(2, 101):  # the restarted cell's sequence 1 is lost on the way
        message = _transition(sequence)
        message.cell_start_id = 'second-start'
        cell.transitions.publish(message)
    status = cell.status(lambda s: s.env_steps == 50 + 99, 'all 99 after the restart')
    assert status.transitions_lost == 1 and status.online_buffer_size == 149


def test_load_checkpoint_refuses_paths_outside_the_run_folder(in_process_learner, probe,
                                                              tmp_path):
    learner = in_process_learner()
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send(range(1, 3))
    cell.status(lambda s: s.env_steps == 2, 'the networks built')
    elsewhere = save_checkpoint(tmp_path / 'elsewhere', learner.learners.residual.agent,
                                learner.learners.residual.rng, {'weights_version': 0})
    (tmp_path / 'run' / 'link').symlink_to(elsewhere)
    for path in (elsewhere, tmp_path / 'run' / '..' / 'elsewhere' / 'checkpoints' / 'latest',
                 tmp_path / 'run' / 'link'):
        refused = probe.call(LoadCheckpoint, 'load_checkpoint',
                             LoadCheckpoint.Request(path=str(path)))
        assert not refused.success and 'outside the run folder' in refused.message
    own = learner._checkpoint()
    loaded = probe.call(LoadCheckpoint, 'load_checkpoint', LoadCheckpoint.Request(path=str(own)))
    assert loaded.success, loaded.message


def test_load_checkpoint_allows_the_listed_folders(in_process_learner, probe, tmp_path):
    learner = in_process_learner(checkpoint_allow_dirs=[str(tmp_path / 'shared')])
    cell = Cell(probe)
    cell.wait_for_learner()
    cell.send(range(1, 3))
    cell.status(lambda s: s.env_steps == 2, 'the networks built')
    residual = learner.learners.residual
    shared = save_checkpoint(tmp_path / 'shared', residual.agent, residual.rng,
                             {'weights_version': 0})
    loaded = probe.call(LoadCheckpoint, 'load_checkpoint',
                        LoadCheckpoint.Request(path=str(shared)))
    assert loaded.success, loaded.message


def test_load_bag_warm_up_is_capped(in_process_learner, probe, tmp_path):
    in_process_learner(load_bag_max_warmup_updates=25)
    cell = Cell(probe)
    cell.wait_for_learner()
    bag = _bag_of_transitions(tmp_path / 'recorded', range(1, 41))
    response = probe.call(LoadBag, 'load_bag', LoadBag.Request(path=str(bag),
                                                               warmup_updates=100_000))
    assert response.success and response.transitions == 40
    assert 'capped at 25' in response.message
    status = cell.status(lambda s: s.updates == 25 and s.state != 'offline_warmup',
                         'the capped warm-up done')
    assert status.updates == 25


def _rosout(probe, node_name: str) -> list:
    """Return the list that the log lines of ``node_name`` on /rosout will be appended to."""
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy
    lines = []
    probe.node.create_subscription(
        Log, '/rosout', lambda line: lines.append(line) if line.name == node_name else None,
        QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                   reliability=ReliabilityPolicy.RELIABLE,
                   durability=DurabilityPolicy.TRANSIENT_LOCAL))
    return lines


def test_a_transition_of_another_residual_scale_is_refused_naming_both(in_process_learner,
                                                                       probe, tmp_path):
    logs = _rosout(probe, 'learner')
    learner = in_process_learner()  # residual_scale [0.5]
    cell = Cell(probe)
    cell.wait_for_learner()
    for sequence in range(1, 41):
        message = _transition(sequence)
        # its own scale, as one value or per axis, or none said (an older cell); 12: another
        own = ([0.5], [0.5, 0.5], [])[sequence % 3]
        message.residual_scale = float32_field([0.3] if sequence == 12 else own)
        cell.transitions.publish(message)
    status = cell.status(lambda s: s.env_steps == 39, 'all but the foreign transition')
    probe.wait_for(lambda: any('refused' in line.msg for line in logs), 30,
                   'the refusal in /rosout')
    refusal = next(line for line in logs if 'refused' in line.msg)
    assert refusal.level == 40  # ERROR
    assert 'transition 12 from r1 refused' in refusal.msg
    assert "residual_scale [0.3, 0.3] is not the learner's [0.5, 0.5]" in refusal.msg
    assert learner.intake.malformed == 1 and status.online_buffer_size == 39
    # refused as a malformed transition is: never in the replay bag
    assert 12 not in [t.sequence for t in _replay_bag_transitions(tmp_path / 'run')]


def test_evaluation_steps_are_recorded_but_neither_trained_on_nor_counted(in_process_learner,
                                                                          probe, tmp_path):
    learner = in_process_learner(max_env_steps=30, update_to_data=1.0)
    cell = Cell(probe)
    cell.wait_for_learner()
    for sequence in range(1, 41):
        message = _transition(sequence)
        message.evaluation = 11 <= sequence <= 20  # an evaluation episode (with an
        cell.transitions.publish(message)          # intervention flag at 15 and 20)
    status = cell.status(lambda s: s.state == 'finished', 'the step budget of 30 steps')
    assert status.env_steps == 30 and status.online_buffer_size == 30
    # sequences 5, 10, 25, 30, 35, 40 were by a person in training episodes
    assert status.intervention_buffer_size == 6
    assert status.intervention_rate == pytest.approx(6 / 30)
    assert learner.learners.residual.updates <= 30  # the ratio is to training steps alone
    assert learner.intake.evaluation_steps == 10 and learner.intake.malformed == 0
    online = learner.learners.residual.online.gather(np.arange(30))
    trained_on = {tuple(row) for row in online.observation.round(5).tolist()}
    evaluated = {tuple(np.asarray(from_named_arrays(_transition(sequence).observation)[
        'task_state'], np.float32).round(5).tolist()) for sequence in range(11, 21)}
    assert not trained_on & evaluated
    # recorded as every transition is: the replay bag holds all 40
    in_bag = _replay_bag_transitions(tmp_path / 'run')
    assert [t.sequence for t in in_bag] == list(range(1, 41))
    assert [t.sequence for t in in_bag if t.evaluation] == list(range(11, 21))
    summary = json.loads((tmp_path / 'run' / 'summary.json').read_text())
    assert summary['env_steps'] == 30 and summary['human_steps'] == 6
    assert summary['reason'] == 'step budget of 30 training transitions reached'


def test_a_resume_and_a_recorded_run_leave_out_evaluation_and_foreign_steps(
        in_process_learner, probe, tmp_path):
    def evaluation(message):
        message.evaluation = 21 <= message.sequence <= 30

    def evaluation_and_foreign_scale(message):
        evaluation(message)
        if message.sequence in (41, 42):
            message.residual_scale = float32_field([0.1])

    _bag_of_transitions(tmp_path / 'run' / 'replay', range(1, 51), topic='/transitions',
                        change=evaluation)
    _bag_of_transitions(tmp_path / 'recorded', range(1, 51),
                        change=evaluation_and_foreign_scale)
    learner = in_process_learner(resume=True)
    cell = Cell(probe)
    cell.wait_for_learner()
    status = cell.status(lambda s: s.env_steps == 40, 'the resumed training steps')
    assert status.online_buffer_size == 40 and learner.intake.evaluation_steps == 10
    assert status.intervention_rate == pytest.approx(8 / 40)  # 5, 10, 15, 20, 35, 40, 45, 50

    response = probe.call(LoadBag, 'load_bag', LoadBag.Request(path=str(tmp_path / 'recorded')))
    assert response.success and response.transitions == 38
    assert '10 evaluation step(s) left out' in response.message
    assert ('2 step(s) of another residual scale left out (residual_scale [0.1, 0.1] is not '
            "the learner's [0.5, 0.5]") in response.message
    status = cell.status(lambda s: s.online_buffer_size == 78, 'the recorded run')
    assert status.env_steps == 40
