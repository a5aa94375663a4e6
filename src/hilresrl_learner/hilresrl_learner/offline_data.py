"""
Transitions on disk: the run's own replay bag, recorded runs (bags, run folders), demonstrations.

The replay bag gets every transition the learner took in, and with camera inputs the frames
its steps used (bag_frames), and gives them back on resume. A recorded run is read whole
before any of it is stored (loaded whole or not at all); its held and evaluation steps are
left out, and a malformed step, one taken under another residual scale, or one whose camera
images are not in the bag is counted and skipped. Demonstrations get their observations and
frames from the arrays they hold and their base action relabelled by the base policy. Messages
are decoded by the caller's ``decode`` (the node passes rclpy's deserializer), so no ROS here.
"""

from dataclasses import dataclass, field
import pathlib
from typing import Any, Callable, Dict, Hashable, Iterator, List, Optional, Sequence, Tuple

from hilresrl_common.instruction_features import policy_vector
from hilresrl_policy.image_encoder import encoder_frame, ImageInputs
from hilresrl_recording.bag import BagError, BagReader, BagWriter, qos_profile_dict
from hilresrl_recording.message_definitions import ros2msg_definition, type_hash
from hilresrl_recording.run_folders import bag_folder, RUN_REPLAY, TRANSITION_TYPE
import numpy as np

from .bag_frames import (attach_recorded_frames, BagImages, found_frames, image_topics,
                         IMAGE_TYPE, recorded_frames, source_topics)
from .camera_frames import CameraFrames, frame_refs
from .training import demonstration_records, StepRecord
from .transition_data import ForeignResidualScale

# (transition, episode key) -> the learners' steps of it; ValueError: unfit to learn from
Convert = Callable[[Any, Hashable], Tuple[StepRecord, Any]]


@dataclass
class RecordedRun:
    """The steps of one recorded run, ready for the buffers."""

    path: pathlib.Path
    records: List[Tuple[StepRecord, Any]] = field(default_factory=list)
    skipped: int = 0  # malformed steps left out
    held: int = 0  # held steps left out (recorded, never trained on)
    evaluation: int = 0  # evaluation steps left out (recorded, never trained on)
    foreign_scale: int = 0  # steps taken under another residual scale, left out
    foreign_scale_reason: str = ''  # the first of them: both scales
    no_images: int = 0  # steps whose camera images are not in the bag, left out
    problems: List[str] = field(default_factory=list)

    @property
    def interventions(self) -> int:
        """Return the steps a person controlled."""
        return sum(record.human_action is not None for record, _ in self.records)

    def summary(self) -> str:
        """Return what was loaded and what was left out, in one line."""
        text = (f'{len(self.records)} transitions from {self.path} ({self.interventions} by a '
                'person)')
        if self.problems:
            text += f'; {len(self.problems)} problem(s): ' + '; '.join(self.problems)
        if self.skipped:
            text += f'; {self.skipped} malformed transition(s) left out'
        if self.held:
            text += f'; {self.held} held step(s) left out'
        if self.evaluation:
            text += f'; {self.evaluation} evaluation step(s) left out'
        if self.no_images:
            text += (f'; {self.no_images} step(s) whose camera images are not in the bag left '
                     'out')
        if self.foreign_scale:
            text += (f'; {self.foreign_scale} step(s) of another residual scale left out '
                     f'({self.foreign_scale_reason})')
        return text


def transition_messages(reader: BagReader) -> Iterator[bytes]:
    """Yield the serialized transitions of a bag, in order."""
    for _, _, data in reader.messages(reader.topics_of_type(TRANSITION_TYPE)):
        yield data


def open_replay_bag(run_dir: pathlib.Path, topics: Sequence[str], depth: int,
                    camera_topics: Sequence[str] = ()) -> BagWriter:
    """
    Open a run's replay bag for the transitions of ``topics``: one more file per start.

    ``camera_topics``: the image topics whose frames the steps use (as sensor_msgs/Image).
    """
    bag = BagWriter(run_dir / RUN_REPLAY, 'mcap', append=True)
    for topic in topics:
        bag.add_topic(topic, TRANSITION_TYPE, ros2msg_definition(TRANSITION_TYPE),
                      type_hash(TRANSITION_TYPE), [qos_profile_dict(depth=depth)])
    for topic in camera_topics:
        add_image_topic(bag, topic)
    return bag


def add_image_topic(bag: BagWriter, topic: str) -> None:
    """Declare an image topic of the replay bag (again: nothing happens)."""
    if topic not in bag.topics:
        bag.add_topic(topic, IMAGE_TYPE, ros2msg_definition(IMAGE_TYPE), type_hash(IMAGE_TYPE),
                      [qos_profile_dict(depth=1)])


def replay_run(run_dir: pathlib.Path, decode: Callable[[bytes], Any],
               take: Callable[..., None], between: Callable[[], None] = lambda: None,
               images: Optional[BagImages] = None, window: Optional[CameraFrames] = None
               ) -> Tuple[int, List[str], List[str]]:
    """
    Give every transition of a run's replay bag to ``take``, in order.

    Return how many were taken, why each of the others was skipped (a record that ``decode``
    or ``take`` raised on, written by an older learner: the resume goes on without it), and
    the bag's problems (a record cut off by a kill: it was never counted). BagError: no bag.

    With ``images``, ``take`` gets each transition with a function that returns the frames it
    names (frame_refs' order; ValueError: one is not in the bag): the frames written before
    it, kept in ``window`` (bag_frames.frame_window), which ends holding the newest of them.
    """
    reader = BagReader(run_dir / RUN_REPLAY)
    transitions = reader.topics_of_type(TRANSITION_TYPE)
    images_in_bag = image_topics(reader.topics) if images is not None else {}
    taken, skipped, index, problems = 0, [], -1, []
    for topic, _, data in reader.messages(transitions + list(images_in_bag)):
        if topic in images_in_bag:
            try:
                stamp_ns, frame = images.read(images_in_bag[topic], data)
                window.add(topic, stamp_ns, frame())
            except ValueError as error:
                problems.append(f'{reader.path}: an image of {topic} could not be read: '
                                f'{error}')
            continue
        index += 1
        try:
            transition = decode(data)
            if images is None:
                take(transition)
            else:
                take(transition, lambda: found_frames(
                    window, frame_refs(transition, images.cameras), 'the replay bag (it never '
                    'came while the learner ran)'))
        except Exception as error:  # noqa: B902 (whatever a damaged record raises)
            skipped.append(f'record {index}: {error}')
            continue
        taken += 1
        between()
    return taken, skipped, reader.problems + problems


def read_recorded_run(path: str, source: int, decode: Callable[[bytes], Any],
                      convert: Convert, between: Callable[[], None] = lambda: None,
                      images: Optional[BagImages] = None) -> RecordedRun:
    """
    Return the learnable steps of a recorded run (a bag, bag file or run folder).

    Episodes are keyed ('offline', source, robot, episode), apart from the run's own, which
    restart their ids. With ``images``, each step gets the frames its transition names, read
    from the bag's image topics (or their /compressed ones). BagError or OSError: nothing
    could be read, or the bag lacks an image topic its transitions name.
    """
    reader = BagReader(bag_folder(path))
    if not reader.topics_of_type(TRANSITION_TYPE):
        raise BagError(f'{reader.path}: no {TRANSITION_TYPE} topic (topics: '
                       f'{", ".join(sorted(reader.topics)) or "none"})'
                       + ''.join(f'; {problem}' for problem in reader.problems))
    run = RecordedRun(reader.path, problems=reader.problems)
    named = []  # per step, the images its transition names
    for data in transition_messages(reader):
        transition = decode(data)
        if transition.held:
            run.held += 1
            continue
        if transition.evaluation:
            run.evaluation += 1
            continue
        episode = ('offline', source, transition.robot_id, transition.episode_id)
        try:
            records = convert(transition, episode)
            named.append(frame_refs(transition, images.cameras) if images is not None else [])
            run.records.append(records)
        except ForeignResidualScale as error:
            run.foreign_scale += 1
            run.foreign_scale_reason = run.foreign_scale_reason or str(error)
        except ValueError:
            run.skipped += 1  # a malformed step: the rest of the run is still good
        between()
    if images is not None:
        _read_frames(reader, run, named, images, between)
    return run


def _read_frames(reader: BagReader, run: RecordedRun, named: List[list], images: BagImages,
                 between: Callable[[], None]) -> None:
    in_bag = image_topics(reader.topics)
    sources, missing = source_topics({ref.topic for refs in named for ref in refs}, in_bag)
    if missing:
        raise BagError(f'{reader.path}: no {", ".join(missing)} topic: its transitions name '
                       f'images of it for camera_inputs {list(images.cameras)} (image topics: '
                       f'{", ".join(sorted(in_bag)) or "none"})')
    wanted = {(ref.topic, ref.stamp_ns) for refs in named for ref in refs}
    frames, problems = recorded_frames(reader.messages(list(sources)), in_bag, sources, wanted,
                                       images.read, between)
    run.problems.extend(problems)
    run.records, run.no_images = attach_recorded_frames(run.records, named, images.cameras,
                                                        frames)


def demonstration_steps(path: str, index: int, policy_inputs: Sequence[str],
                        base_policy_config: Dict[str, str],
                        image_inputs: Optional[ImageInputs] = None
                        ) -> Tuple[List[StepRecord], int]:
    """
    Return a demonstration file's steps, relabelled by the base policy, and its episodes.

    Each step's observation is its policy inputs in order, as a live step's is, and with
    ``image_inputs`` its frames are its camera images resized as live images are. The base
    policy gets every array of the step (the task state, what the sensors gave), as the base
    policy node gets a cell's observation, and reads what it reads.
    ValueError: the file cannot be used (what is wrong with it, or with the base policy; a file
    without an array the learner needs is refused, naming it).
    """
    from hilresrl_common.demonstrations import Demonstrations
    try:
        from hilresrl_policy.adapters import BasePolicyError, load_base_policy
    except ImportError as error:
        raise ValueError(str(error)) from error
    cameras = list(image_inputs.cameras) if image_inputs is not None else []
    try:
        demos = Demonstrations.load(path)
        demos.check_inputs(list(policy_inputs) + cameras)
        observations = np.array(
            [policy_vector(demos.step_arrays(step), policy_inputs, demos.instruction)
             for step in range(len(demos))], dtype=np.float32).reshape(len(demos), -1)
        frames = {camera: np.array([encoder_frame(image, image_inputs)
                                    for image in demos.observed[camera]], dtype=np.uint8)
                  for camera in cameras} or None
        base = load_base_policy(base_policy_config['kind'], base_policy_config)
        try:
            base_actions = relabelled_base_actions(demos, base)
        finally:
            base.close()
        records = list(demonstration_records(demos, observations=observations, frames=frames,
                                             base_actions=base_actions))
    except (ImportError, BasePolicyError) as error:
        raise ValueError(str(error)) from error
    for record in records:
        record.episode = ('demonstration', index, record.episode[1])
    return records, demos.episodes


def relabelled_base_actions(demos, base) -> np.ndarray:
    """Return what the base policy does at each demonstration step: (N, action_dim) float32."""
    actions = []
    for step, episode in enumerate(demos.episode_index):
        if step == 0 or demos.episode_index[step - 1] != episode:
            base.reset(demos.instruction)
        actions.append(np.asarray(base.act(demos.step_arrays(step))[0], dtype=np.float32))
    return np.array(actions, dtype=np.float32).reshape(len(demos), -1)
