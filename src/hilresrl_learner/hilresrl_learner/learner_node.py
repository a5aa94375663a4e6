"""
learner_node: learns the residual policy from every cell's transitions and broadcasts it.

The ROS side of the learner: transitions in (reliable, deep queue, written to the run's replay
bag before they count), episode events in (evaluation rounds by their round id), weights out on
the latched policy_weights (and latent_weights) topics, learner_status, the services, and the
timers that run broadcasts, checkpoints and the end of the run (never a subscription: no file
I/O there but the replay bag's; with camera inputs a step goes there once its images are here,
after the frames it is the first to use). The updates run in a thread of their own
(update_thread), and whatever else touches the learners takes its turn with them. The work is
done by the package's cores: parameters (learner_parameters), intake, actor_learners,
weights_channel, evaluation_rounds, offline_data and bag_frames (resume, recorded runs,
demonstrations), run_progress and run_folder.
"""

import time
from typing import Callable, Optional, Tuple

from hilresrl_common.conversions import (array_to_image, ns_to_stamp, parse_source,
                                         source_arrays, SOURCE_KINDS, stamp_to_ns)
from hilresrl_common.node_runner import ConfigurationError, run_node
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.qos import EVENTS_QOS, LATCHED_QOS, TRANSITIONS_QOS
from hilresrl_msgs.msg import (EpisodeEvent, EpisodeOutcome, LearnerStatus, PolicyWeights,
                               Transition)
from hilresrl_msgs.srv import LoadBag, LoadCheckpoint, SaveCheckpoint
from hilresrl_policy.image_encoder import encoder_frame, ImageInputs
from hilresrl_recording.bag import BagError, BagWriter
import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
import torch

from .actor_learners import ActorLearners
from .bag_frames import BagImages, frame_window, frames_to_write
from .camera_frames import (attach_frames, camera_image_topic, camera_topic, CameraFrames,
                            frame_refs)
from .checkpoint import CheckpointError, load_checkpoint
from .evaluation_rounds import describe, EvaluationRounds
from .intake import Intake
from .learner_parameters import camera_inputs, deprecation_warnings, PARAMETERS
from .offline_data import (add_image_topic, demonstration_steps, open_replay_bag,
                           read_recorded_run, replay_run)
from .run_folder import checkpoint_refusal, choose_run_folder, learner_run_id, write_summary
from .run_progress import RunProgress, tensorboard_writer
from .update_thread import UpdateThread
from .weights_channel import WeightsChannel


# Cameras publish best effort as often as reliable; a best-effort reader takes both, and
# nothing repairs what it misses: deep enough for a learner held up for a few seconds (100
# images: 3 s of a 30 Hz camera).
CAMERA_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                        reliability=ReliabilityPolicy.BEST_EFFORT)


def _decode(data: bytes) -> Transition:
    return deserialize_message(data, Transition)


class LearnerNode(Node):
    """Transitions in, residual weights out, with checkpoints and progress."""

    def __init__(self, **kwargs):
        super().__init__('learner', **kwargs)
        values = declare_parameters(self, PARAMETERS)
        for warning in deprecation_warnings(values):
            self.get_logger().warning(warning)
        self.resume: bool = values['resume']
        self.actor_mode: str = values['actor_mode']
        self.camera_inputs = camera_inputs(values)
        if self.camera_inputs:
            self._check_camera_run(values)
        # One learner for several cells: their transitions and episode events come from their
        # namespaces (relative to its own); the weights go out on this node's topic.
        self._prefixes = [f'{cell.strip("/")}/' if cell.strip('/') else ''
                          for cell in values['cells'] or ['']]
        self.max_env_steps: int = values['max_env_steps']
        self.checkpoint_period_s: float = values['checkpoint_period_s']
        self.status_period_s: float = values['status_period_s']
        self.checkpoint_allow_dirs = values['checkpoint_allow_dirs']
        self.load_bag_max_warmup_updates: int = values['load_bag_max_warmup_updates']
        self.drain_on_stop_s: float = values['drain_on_stop_s']
        self.demonstration_base_policy = {key: values[f'base_policy.{key}']
                                          for key in ('kind', 'checkpoint', 'task')}
        if values['device'].startswith('cuda') and not torch.cuda.is_available():
            raise ConfigurationError(f'device {values["device"]!r}: no CUDA device here')
        torch.set_num_threads(values['torch_threads'])
        torch.set_float32_matmul_precision(values['matmul_precision'])
        try:
            self.run_dir = choose_run_folder(values['run_dir'], self.resume)
            self.learners = ActorLearners(values, self.run_dir, self.get_logger().info,
                                          self.get_logger().warning)
        except ValueError as error:
            raise ConfigurationError(str(error)) from error

        run_id = learner_run_id(self.run_dir)
        self.weights, self.latent_weights = (
            WeightsChannel(folder, run_id, values['weights_period_updates'],
                           values['weights_period_s'])
            for folder in (self.run_dir, self.learners.latent_dir))
        self.rounds = EvaluationRounds(values['eval_episodes'], values['target_success'],
                                       values['target_window_episodes'])
        self.progress = RunProgress(
            self.run_dir, values['success_window'], values['progress_period_s'],
            tensorboard_writer(self.run_dir, self.get_logger().warning)
            if values['tensorboard'] else None)
        self.intake = Intake(self.learners, self.progress, self.get_logger(),
                             self.camera_inputs)
        # Camera images: transitions name them (topic and stamp); this node reads the topics.
        self._image_inputs: Optional[ImageInputs] = None
        self._camera_frames: Optional[CameraFrames] = None
        self._bag_images: Optional[BagImages] = None
        self._frames_on_disk = frame_window()  # the frames the replay bag holds already
        if self.camera_inputs:
            if not values['device'].startswith('cuda'):
                self.get_logger().warning(
                    'camera_inputs on the CPU: an update of the image encoder takes seconds '
                    '(two 150 s runs of sim_pixels on 2 cores did 9 and 3 updates) and holds up '
                    'this node meanwhile; learn from images on a GPU (device cuda, '
                    'learner_device:=cuda)')
            self._image_inputs = ImageInputs(self.camera_inputs, *values['image_size'])
            self._camera_frames = CameraFrames(wait_s=values['image_wait_s'])
            self._bag_images = BagImages(self.camera_inputs, self._read_image)
        # Each camera of each cell is read raw and compressed until the transitions say which
        # its images were read from; then from that topic alone (a cell that publishes both
        # sends this machine one stream, and nothing is decoded twice).
        self._camera_readers = {}  # resolved topic -> [topic, kind, subscription, camera]
        self._camera_read_from = {}  # (cell prefix, camera input) -> the resolved topic named
        self._pending_rounds = []  # ended in a callback; drawn on the next tick
        self._end_reason = ''  # the run is over: the next tick finishes it
        self._target_round = None  # the evaluation round that reached the target
        self.finished, self.outcome, self._draining = False, '', False
        self._last_checkpoint_s = time.monotonic()
        self._status_sent_s = 0.0
        self.updates = UpdateThread(self._train_round)

        self._status = self.create_publisher(LearnerStatus, 'learner_status', LATCHED_QOS)
        self._weights_out = {self.weights: self.create_publisher(
            PolicyWeights, 'policy_weights', LATCHED_QOS)}
        if self.actor_mode != 'residual':
            self._weights_out[self.latent_weights] = self.create_publisher(
                PolicyWeights, 'latent_weights', LATCHED_QOS)
        self._loading = True  # the episode manager holds the robot until this is over
        self._offline_sources = []
        self._log: Optional[BagWriter] = None
        self._publish_status()
        if self.resume:
            self._restore()
        loaded = [self._load_offline(path, 0).transitions for path in values['offline_bags']]
        loaded += [self._load_demonstrations(index, path)
                   for index, path in enumerate(values['demonstrations'])]
        # A resumed run did its warm-up before: its checkpoint holds the result.
        if any(loaded) and not self.learners.residual.offline_updates:
            self.learners.offline_updates_left = values['offline_warmup_updates']
        self._loading = False
        try:
            self._log = open_replay_bag(
                self.run_dir, [self.resolve_topic_name(prefix + 'transitions')
                               for prefix in self._prefixes], TRANSITIONS_QOS.depth,
                [self.resolve_topic_name(parse_source(prefix + camera_topic(camera))[0])
                 for prefix in self._prefixes for camera in self.camera_inputs])
        except (BagError, OSError) as error:
            raise ConfigurationError(f'cannot write the replay bag in {self.run_dir}: '
                                     f'{error}') from error
        for prefix in self._prefixes:
            topic = self.resolve_topic_name(prefix + 'transitions')
            self.create_subscription(
                Transition, prefix + 'transitions',
                lambda data, topic=topic: self._on_transition(data, topic),
                TRANSITIONS_QOS, raw=True)
            self.create_subscription(EpisodeEvent, prefix + 'episode_events',
                                     self._on_episode_event, EVENTS_QOS)
            for camera in self.camera_inputs:
                self._subscribe_camera(prefix, camera)
        self.create_service(SaveCheckpoint, 'save_checkpoint', self._on_save)
        self.create_service(LoadCheckpoint, 'load_checkpoint', self._on_load)
        self.create_service(LoadBag, 'load_bag', self._on_load_bag)
        self.create_timer(0.01, self._on_update_tick)
        self.create_timer(self.status_period_s, self._on_status_timer)
        resumed = ' (resumed)' if self.resume else ''
        self.get_logger().info(f'run folder {self.run_dir}{resumed}')
        self._publish_status()
        self.updates.start()

    def on_stop_requested(self) -> None:
        """Stop updating once asked to stop: the drain's time goes to storing transitions."""
        self._draining = True
        self.updates.stop(timeout_s=0.0)

    # --- data in (no file I/O here but the replay bag's) ----------------------------------
    def _on_transition(self, data: bytes, topic: str) -> None:
        transition = _decode(data)
        record, records = self.intake.check(transition)
        if record and records is not None and self._camera_frames is not None:
            self._wait_for_images(transition, records, topic, data)  # logged with its frames
        elif record:
            # On disk (handed to the system) before it counts.
            self._log.write(topic, self.get_clock().now().nanoseconds, data)
            self._log.flush(metadata=False)
            if records is not None:
                with self.updates.turn():
                    self.intake.store(transition, records)
                self.updates.wake()
        self._status_if_due()

    # --- camera images --------------------------------------------------------------------
    def _check_camera_run(self, values) -> None:
        if self.actor_mode != 'residual':
            raise ConfigurationError(f'camera_inputs with actor_mode {self.actor_mode}: only '
                                     'the residual actor learns from images yet')

    def _subscribe_camera(self, prefix: str, camera: str) -> None:
        """Read a camera input's images raw (Image) and from <topic>/compressed (PNG, JPEG)."""
        topic, kind = parse_source(prefix + camera_topic(camera))
        transports = [(topic, kind)]
        if kind == 'image' and camera.startswith('image/'):  # depth: compressedDepth, not here
            transports.append((f'{topic}/compressed', 'compressed_image'))
        for read_from, read_kind in transports:
            resolved = self.resolve_topic_name(read_from)
            self._camera_readers[resolved] = [read_from, read_kind, None, (prefix, camera)]
            self._read_camera_topic(resolved, True)

    def _read_camera_topic(self, resolved: str, read: bool) -> None:
        """Subscribe to one of a camera's topics (raw or compressed), or stop reading it."""
        topic, kind, subscription, _ = self._camera_readers[resolved]
        if read and subscription is None:
            subscription = self.create_subscription(
                SOURCE_KINDS[kind], topic,
                lambda message: self._on_image(resolved, kind, message), CAMERA_QOS)
        elif not read and subscription is not None:
            self.destroy_subscription(subscription)
            subscription = None
        self._camera_readers[resolved][2] = subscription

    def _on_image(self, topic: str, kind: str, message) -> None:
        if self._camera_read_from.get(self._camera_readers[topic][3], topic) != topic:
            return  # one on its way as the transitions named the camera's other topic
        camera = camera_image_topic(topic)  # frames kept under the raw topic, either way
        try:
            pixels = next(iter(source_arrays(topic, kind, message).values()))
            frame = encoder_frame(pixels, self._image_inputs)
        except ValueError as error:
            self.get_logger().error(f'{topic}: image left out: {error}',
                                    throttle_duration_sec=10.0)
            return
        self._camera_frames.add(camera, stamp_to_ns(message.header.stamp), frame)
        if self._camera_frames.waiting:
            self._store_complete_steps()

    def _read_image(self, type_name: str, data: bytes) -> Tuple[int, Callable[[], np.ndarray]]:
        """Return a bag's image's stamp, and a function returning it as the encoder takes it."""
        kind = 'compressed_image' if type_name.endswith('/CompressedImage') else 'image'
        try:
            message = deserialize_message(data, SOURCE_KINDS[kind])
        except Exception as error:  # noqa: B902 (whatever damaged bytes raise)
            raise ValueError(f'not a {type_name}: {error}') from error

        def frame() -> np.ndarray:
            pixels = next(iter(source_arrays('bag', kind, message).values()))
            return encoder_frame(pixels, self._image_inputs)
        return stamp_to_ns(message.header.stamp), frame

    def _wait_for_images(self, transition, records, topic: str, data: bytes) -> None:
        try:
            refs = frame_refs(transition, self.camera_inputs)
        except ValueError as error:
            # Refused before the replay bag, as the intake refuses: a resume never meets it.
            self.intake.malformed += 1
            self.get_logger().error(f'transition {transition.sequence} from '
                                    f'{transition.robot_id} refused: {error}',
                                    throttle_duration_sec=5.0)
            return
        for ref in refs:
            self._read_camera_as_named(ref.read_from, transition.robot_id)
        self._camera_frames.wait(time.monotonic(), (transition, records, topic, data, refs),
                                 refs)
        self._store_complete_steps()

    def _read_camera_as_named(self, read_from: str, robot_id: str) -> None:
        """Read a camera from the topic a transition names (raw or compressed) alone."""
        reader = self._camera_readers.get(read_from)
        if reader is None:
            self.get_logger().warning(
                f"{robot_id}'s transitions name images read from {read_from}, which this "
                f'learner does not read (it reads {", ".join(sorted(self._camera_readers))}): '
                'check camera_inputs, cells and the remaps', throttle_duration_sec=10.0)
            return
        camera = reader[3]
        if self._camera_read_from.get(camera) == read_from:
            return
        self._camera_read_from[camera] = read_from
        for resolved, (*_, of_camera) in self._camera_readers.items():
            if of_camera == camera:
                self._read_camera_topic(resolved, resolved == read_from)
        self.get_logger().info(f'{camera[1]} of {robot_id or "the cell"}: images from '
                               f'{read_from} alone, as its transitions name them')

    def _store_complete_steps(self) -> None:
        complete, expired = self._camera_frames.ready(time.monotonic())
        if not complete and not expired:
            return
        now_ns = self.get_clock().now().nanoseconds
        # On disk before it counts: each step's new frames, then its record. One whose images
        # never came is recorded too (never learned from; a resume skips it, saying why).
        for (transition, records, topic, data, refs), frames in complete:
            for ref, frame in frames_to_write(self._frames_on_disk, refs, frames):
                add_image_topic(self._log, ref.topic)
                self._log.write(ref.topic, now_ns, _frame_message(frame, ref.stamp_ns))
            self._log.write(topic, now_ns, data)
            attach_frames(records[0], self.camera_inputs, frames)
        for _, _, topic, data, _ in expired:
            self._log.write(topic, now_ns, data)
        self._log.flush(metadata=False)
        for (transition, records, *_), _ in complete:
            with self.updates.turn():
                self.intake.store(transition, records)
        if complete:
            self.updates.wake()
        if expired:
            self.get_logger().warning(
                f'{len(expired)} transition(s) left out: their camera images did not come '
                f'within image_wait_s ({self._camera_frames.expired} in all)',
                throttle_duration_sec=5.0)

    def _log_waiting_steps(self) -> None:
        """Record the steps still waiting for images on the way out: they were acknowledged."""
        if self._camera_frames is None or not self._camera_frames.waiting:
            return
        self._store_complete_steps()
        waiting = self._camera_frames.take_waiting()
        now_ns = self.get_clock().now().nanoseconds
        for _, _, topic, data, _ in waiting:
            self._log.write(topic, now_ns, data)
        if waiting:
            self.get_logger().warning(f'{len(waiting)} transition(s) recorded but not learned '
                                      'from: their camera images had not come at the stop')

    def _on_episode_event(self, event: EpisodeEvent) -> None:
        if event.event != EpisodeEvent.EPISODE_END or event.outcome.value == EpisodeOutcome.ABORT:
            return
        success = event.outcome.value == EpisodeOutcome.SUCCESS
        if event.mode.value != event.mode.EVAL:
            self.progress.train_success.add(success)
            return
        learner = self.learners.residual
        record = self.rounds.add(success, event.robot_id, event.eval_round,
                                 event.eval_round_episodes, learner.env_steps if learner else 0,
                                 learner.updates if learner else 0, self.progress.wall_s,
                                 self.progress.train_intervention_steps)
        if record is not None:
            self._pending_rounds.append(record)
            if not self._end_reason:
                self._end_reason = self.rounds.target_reached()
                self._target_round = record if self._end_reason else None

    # --- learning (in the update thread) ---------------------------------------------------
    def _train_round(self) -> bool:
        if self.finished or self._draining or self._end_reason:
            return False
        return self.learners.train_round()

    # --- timers: broadcasts, checkpoints, the callbacks' file work -------------------------
    def _settle(self) -> None:
        """Draw the evaluation rounds that ended, and end the run when it is over."""
        while self._pending_rounds:
            record = self._pending_rounds.pop(0)
            self.progress.add_round(record)
            self.get_logger().info(describe(record))
        learner, budget = self.learners.residual, self.max_env_steps
        if budget and learner and learner.env_steps >= budget and not self._end_reason:
            self._end_reason = f'step budget of {budget} training transitions reached'
        if self._end_reason and not self.finished:
            self._finish(self._end_reason)

    def _on_update_tick(self) -> None:
        if self.updates.error is not None:
            raise RuntimeError('the updates failed') from self.updates.error
        self._settle()
        if self.finished or self._draining:
            return
        for channel, learner in self._channels():
            if channel.due(learner):
                self._broadcast(channel, learner)
        if time.monotonic() - self._last_checkpoint_s >= self.checkpoint_period_s:
            self._checkpoint()

    def _channels(self):
        return ((self.weights, self.learners.residual),
                (self.latent_weights, self.learners.latent))

    def _broadcast(self, channel: WeightsChannel, learner) -> None:
        with self.updates.turn():
            message = PolicyWeights(**channel.take(learner))
        message.header.stamp = self.get_clock().now().to_msg()
        self._weights_out[channel].publish(message)

    def _checkpoint(self):
        self._last_checkpoint_s = time.monotonic()
        with self.updates.turn():
            return self.learners.save({'weights_version': self.weights.version,
                                       **self.rounds.state()}, self.latent_weights.version)

    # --- resume and recorded runs ---------------------------------------------------------
    def _restore(self) -> None:
        try:
            records, skipped, problems = replay_run(
                self.run_dir, _decode, self.intake.take_again, self._status_if_due,
                self._bag_images, self._frames_on_disk)
        except BagError as error:
            raise ConfigurationError(f'cannot resume: {error}') from error
        if skipped:
            self.intake.malformed += len(skipped)
            self.get_logger().warning(
                f'resume: {len(skipped)} record(s) of the replay bag could not be learned from '
                f'and were skipped: {"; ".join(skipped[:20])}'
                f'{"; ..." if len(skipped) > 20 else ""}')
        for problem in problems:
            self.get_logger().warning(problem)
        if self._camera_frames is not None:
            # The first steps after the restart may name images that came before it.
            for topic, stamp_ns, frame in self._frames_on_disk.kept():
                self._camera_frames.add(topic, stamp_ns, frame)
        self.progress.start_period()  # the person's share over time: from here on
        try:
            checkpoint, counters, latent_counters = self.learners.restore()
        except CheckpointError as error:
            raise ConfigurationError(f'cannot resume: {error}') from error
        self.weights.restored(counters.get('weights_version', 0))
        self.latent_weights.restored(latent_counters.get('weights_version', 0))
        self.rounds.restore(counters)
        updates = self.learners.residual.updates if self.learners.residual else 0
        self.get_logger().info(
            f'resumed: {records} logged transitions back in the buffers, {updates} updates '
            f'from {checkpoint.name if checkpoint else "no checkpoint"}, weights version '
            f'{self.weights.version}')
        for channel, learner in self._channels():
            if learner is not None and learner.agent.actor_updates:
                self._broadcast(channel, learner)

    def _load_offline(self, path: str, warmup_updates: int) -> LoadBag.Response:
        """Put the transitions of a recorded run into the buffers; never fail the run."""
        response = LoadBag.Response()
        try:
            run = read_recorded_run(path, len(self._offline_sources), _decode,
                                    self.learners.records, self._status_if_due,
                                    self._bag_images)
        except (BagError, OSError) as error:
            response.success, response.message = False, str(error)
            self.get_logger().error(f'offline data not loaded: {error}')
            return response
        self._offline_sources.append(str(run.path))
        with self.updates.turn():
            for records in run.records:
                self.learners.add(*records, offline=True)
        for problem in run.problems:
            self.get_logger().warning(problem)
        capped = ''
        if warmup_updates > self.load_bag_max_warmup_updates:
            capped = (f'; warm-up capped at {self.load_bag_max_warmup_updates} updates '
                      f'(load_bag_max_warmup_updates), not {warmup_updates}')
            warmup_updates = self.load_bag_max_warmup_updates
        if run.records and warmup_updates:
            with self.updates.turn():
                self.learners.offline_updates_left += warmup_updates
        response.success, response.message = True, run.summary() + capped
        response.transitions, response.intervention_transitions = (len(run.records),
                                                                   run.interventions)
        left = self.learners.offline_updates_left
        self.get_logger().info('offline data: ' + response.message + (
            f'; {left} warm-up updates before the robot moves' if left else ''))
        return response

    def _load_demonstrations(self, index: int, path: str) -> int:
        """Put a demonstration file into the intervention buffer; return its steps (0: none)."""
        try:
            records, episodes = demonstration_steps(path, index, self.learners.policy_inputs,
                                                    self.demonstration_base_policy,
                                                    self._image_inputs)
        except ValueError as error:
            self.get_logger().error(f'demonstrations {path} not loaded: {error}')
            return 0
        with self.updates.turn():
            self.learners.add_demonstrations(records)
        self.get_logger().info(
            f'demonstrations: {len(records)} steps of {episodes} episodes from {path}, base '
            f'action relabelled by {self.demonstration_base_policy["kind"]}')
        return len(records)

    # --- services -------------------------------------------------------------------------
    def _on_save(self, request: SaveCheckpoint.Request, response: SaveCheckpoint.Response):
        if self.learners.residual is None:
            response.success, response.message = False, 'no data yet: nothing to save'
            return response
        response.success, response.path = True, str(self._checkpoint())
        response.weights_version = self.weights.version
        response.updates = self.learners.residual.updates
        return response

    def _on_load_bag(self, request: LoadBag.Request, response: LoadBag.Response):
        result = self._load_offline(request.path, request.warmup_updates)
        self._publish_status()
        return result

    def _on_load(self, request: LoadCheckpoint.Request, response: LoadCheckpoint.Response):
        learner = self.learners.residual
        refusal = ('no data yet: the networks are not built' if learner is None else
                   checkpoint_refusal(request.path, self.run_dir, self.checkpoint_allow_dirs))
        if refusal:
            if learner is not None:
                self.get_logger().error(f'load_checkpoint refused: {refusal}')
            response.success, response.message = False, refusal
            return response
        try:
            with self.updates.turn():
                load_checkpoint(request.path, learner.agent, learner.rng)
        except CheckpointError as error:
            response.success, response.message = False, str(error)
            return response
        self._broadcast(self.weights, learner)
        response.success = True
        response.weights_version, response.updates = self.weights.version, learner.updates
        return response

    # --- progress -------------------------------------------------------------------------
    def _on_status_timer(self) -> None:
        if self._camera_frames is not None and self._camera_frames.waiting:
            self._store_complete_steps()  # and let the ones whose images never came go
        self._settle()
        if self.progress.period_over(self.learners.paced_updates()) and self.learners.residual:
            with self.updates.turn():
                report = self.progress.report(self.learners, self.rounds, self.weights.version,
                                              self.latent_weights.version)
            self.get_logger().info(report)
        if self._log is not None:
            self._log.flush()  # metadata.yaml: the replay bag's counts, once a period
        self._publish_status()

    def _status_if_due(self) -> None:
        """Publish the status when a period has passed, from inside long work too."""
        # An evaluation round not drawn yet waits for the timers: status and curve agree.
        if time.monotonic() - self._status_sent_s >= self.status_period_s and \
                not self._pending_rounds:
            self._publish_status()

    def _publish_status(self) -> None:
        self._status_sent_s = time.monotonic()
        with self.updates.turn():  # the losses: not while an update writes them
            fields = self.progress.status_fields(self.learners, self.rounds)
        status = LearnerStatus(
            state=self._state(), weights_version=self.weights.version,
            transitions_lost=self.intake.sequences.total_lost, actor_mode=self.actor_mode,
            latent_weights_version=self.latent_weights.version, **fields)
        status.header.stamp = self.get_clock().now().to_msg()
        self._status.publish(status)

    def _state(self) -> str:
        learner = self.learners.primary
        if self.finished:
            return LearnerStatus.STATE_FINISHED
        if self._loading:
            return LearnerStatus.STATE_LOADING
        if self.learners.offline_updates_left:
            return LearnerStatus.STATE_OFFLINE_WARMUP
        if learner is None or learner.updates == 0:
            return LearnerStatus.STATE_WAITING_FOR_DATA
        if learner.agent.actor_updates == 0:
            return LearnerStatus.STATE_WARMUP
        return LearnerStatus.STATE_TRAINING

    # --- the end --------------------------------------------------------------------------
    def _finish(self, reason: str) -> None:
        self.finished, self.outcome = True, reason
        path = self._checkpoint()
        self.progress.curve.write_png()
        summary = self.progress.summary(reason, self.learners, self.rounds,
                                        self.weights.version, self.latent_weights.version, path,
                                        self._target_round)
        write_summary(self.run_dir, summary)
        self.get_logger().info(f'run finished: {reason}; {summary["env_steps"]} steps, '
                               f'{summary["wall_s"]:.0f} s; curve and summary in '
                               f'{self.run_dir}')

    def destroy_node(self):
        """Checkpoint, close the log and the event files, then destroy the node."""
        if getattr(self, 'updates', None) is not None:
            self.updates.stop()  # the round under way ends before the checkpoint
        learners = getattr(self, 'learners', None)
        unfinished = learners is not None and not self.finished and learners.residual is not None
        if unfinished:
            self._checkpoint()
        if getattr(self, 'progress', None) is not None:
            self.progress.close(draw=unfinished)
        if getattr(self, '_log', None) is not None:
            self._log_waiting_steps()
            self._log.close()
        return super().destroy_node()


def _frame_message(frame: np.ndarray, stamp_ns: int) -> bytes:
    """Return a frame as the encoder takes it (channels first) as a serialized rgb8 Image."""
    return serialize_message(array_to_image(frame.transpose(1, 2, 0), ns_to_stamp(stamp_ns),
                                            ''))


def main(args=None):
    """Run the learner until shutdown (or until the run is finished)."""
    return run_node(LearnerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
