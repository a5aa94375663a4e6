"""
Transitions on disk: the run's own replay bag, recorded runs (bags, run folders), demonstrations.

The replay bag gets every transition the learner took in, and gives them back on resume. A
recorded run is read whole before any of it is stored (loaded whole or not at all); its held
and evaluation steps are left out, and a malformed step or one taken under another residual
scale is counted and skipped. Demonstrations get their base action relabelled by the base
policy. Messages are decoded by the caller's ``decode`` (the node passes rclpy's
deserializer), so no ROS here.
"""

from dataclasses import dataclass, field
import pathlib
from typing import Any, Callable, Dict, Hashable, Iterator, List, Sequence, Tuple

from hilresrl_recording.bag import BagError, BagReader, BagWriter, qos_profile_dict
from hilresrl_recording.message_definitions import ros2msg_definition, type_hash
from hilresrl_recording.run_folders import bag_folder, RUN_REPLAY, TRANSITION_TYPE

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
        if self.foreign_scale:
            text += (f'; {self.foreign_scale} step(s) of another residual scale left out '
                     f'({self.foreign_scale_reason})')
        return text


def transition_messages(reader: BagReader) -> Iterator[bytes]:
    """Yield the serialized transitions of a bag, in order."""
    for _, _, data in reader.messages(reader.topics_of_type(TRANSITION_TYPE)):
        yield data


def open_replay_bag(run_dir: pathlib.Path, topics: Sequence[str], depth: int) -> BagWriter:
    """Open a run's replay bag for the transitions of ``topics``: one more file per start."""
    bag = BagWriter(run_dir / RUN_REPLAY, 'mcap', append=True)
    for topic in topics:
        bag.add_topic(topic, TRANSITION_TYPE, ros2msg_definition(TRANSITION_TYPE),
                      type_hash(TRANSITION_TYPE), [qos_profile_dict(depth=depth)])
    return bag


def replay_run(run_dir: pathlib.Path, decode: Callable[[bytes], Any],
               take: Callable[[Any], None], between: Callable[[], None] = lambda: None
               ) -> Tuple[int, List[str], List[str]]:
    """
    Give every transition of a run's replay bag to ``take``, in order.

    Return how many were taken, why each of the others was skipped (a record that ``decode``
    or ``take`` raised on, written by an older learner: the resume goes on without it), and
    the bag's problems (a record cut off by a kill: it was never counted). BagError: no bag.
    """
    reader = BagReader(run_dir / RUN_REPLAY)
    taken, skipped = 0, []
    for index, data in enumerate(transition_messages(reader)):
        try:
            take(decode(data))
        except Exception as error:  # noqa: B902 (whatever a damaged record raises)
            skipped.append(f'record {index}: {error}')
            continue
        taken += 1
        between()
    return taken, skipped, reader.problems


def read_recorded_run(path: str, source: int, decode: Callable[[bytes], Any],
                      convert: Convert, between: Callable[[], None] = lambda: None
                      ) -> RecordedRun:
    """
    Return the learnable steps of a recorded run (a bag, bag file or run folder).

    Episodes are keyed ('offline', source, robot, episode), apart from the run's own, which
    restart their ids. BagError or OSError: nothing could be read.
    """
    reader = BagReader(bag_folder(path))
    if not reader.topics_of_type(TRANSITION_TYPE):
        raise BagError(f'{reader.path}: no {TRANSITION_TYPE} topic (topics: '
                       f'{", ".join(sorted(reader.topics)) or "none"})'
                       + ''.join(f'; {problem}' for problem in reader.problems))
    run = RecordedRun(reader.path, problems=reader.problems)
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
            run.records.append(convert(transition, episode))
        except ForeignResidualScale as error:
            run.foreign_scale += 1
            run.foreign_scale_reason = run.foreign_scale_reason or str(error)
        except ValueError:
            run.skipped += 1  # a malformed step: the rest of the run is still good
        between()
    return run


def demonstration_steps(path: str, index: int, policy_inputs: Sequence[str],
                        base_policy_config: Dict[str, str]) -> Tuple[List[StepRecord], int]:
    """
    Return a demonstration file's steps, relabelled by the base policy, and its episodes.

    ValueError: the file cannot be used (what is wrong with it, or with the base policy).
    """
    from hilresrl_common.demonstrations import Demonstrations
    try:
        from hilresrl_policy.adapters import BasePolicyError, load_base_policy
    except ImportError as error:
        raise ValueError(str(error)) from error
    try:
        demos = Demonstrations.load(path)
        if list(policy_inputs) != ['task_state']:
            raise ValueError(f'demonstrations hold the task state alone; the actor reads '
                             f'{", ".join(policy_inputs)}')
        base = load_base_policy(base_policy_config['kind'], base_policy_config)
        try:
            records = list(demonstration_records(
                demos, base_policy=lambda state: base.act({'task_state': state})[0]))
        finally:
            base.close()
    except (ImportError, BasePolicyError) as error:
        raise ValueError(str(error)) from error
    for record in records:
        record.episode = ('demonstration', index, record.episode[1])
    return records, demos.episodes
