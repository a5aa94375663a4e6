"""
Export the transitions of a recorded run as arrays (npz) or as a LeRobotDataset.

``hilresrl export BAG --format npz|lerobot --out PATH``: every transition of the bag, in order,
with its observation arrays, the camera images it refers to, the base, residual, executed and
human actions, reward and flags; ``--only-interventions`` keeps the steps a person controlled,
the corrections with which to fine-tune the base model itself; ``--corrections`` keeps those too
and words each one as the task instruction plus the command that describes it (talk-and-tweak:
"pick up the cube; move left 2 cm"), the (observation, instruction + command, corrected action)
dataset. The core here works on decoded messages; only main() deserializes with rclpy. LeRobot
is an optional extra, imported lazily.
"""

import argparse
import pathlib
import sys
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from hilresrl_common.corrections import COMMAND_FEATURE_SIZE as COMMAND_FEATURES
import numpy as np

from .bag import BagError, BagReader
from .run_folders import bag_folder, TRANSITION_TYPE

IMAGE_TYPE = 'sensor_msgs/msg/Image'
Decode = Callable[[str, bytes], object]


class ExportError(ValueError):
    """Transitions that cannot be exported as asked; the message says why."""


def _stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def read_transitions(reader: BagReader, decode: Decode, only_interventions: bool = False
                     ) -> Tuple[List[object], Dict[Tuple[str, int], np.ndarray]]:
    """Return the bag's transitions in order, and the images they refer to by (topic, stamp)."""
    # (message conversions need ROS 2's message modules: the LeRobot environment has none, and
    # writes datasets from arrays alone)
    from hilresrl_common.conversions import image_to_array
    topics = reader.topics_of_type(TRANSITION_TYPE)
    if not topics:
        raise ExportError(f'{reader.path} holds no {TRANSITION_TYPE} topic (it has: '
                          f'{", ".join(sorted(reader.topics)) or "nothing"})')
    transitions = [decode(TRANSITION_TYPE, data) for _, _, data in reader.messages(topics)]
    if only_interventions:
        transitions = [t for t in transitions if t.intervened]
    wanted = {(ref.topic, _stamp_ns(ref.stamp)) for t in transitions for ref in t.images}
    images: Dict[Tuple[str, int], np.ndarray] = {}
    image_topics = sorted({topic for topic, _ in wanted} & set(reader.topics))
    for topic, _, data in reader.messages(image_topics):
        message = decode(IMAGE_TYPE, data)
        key = (topic, _stamp_ns(message.header.stamp))
        if key in wanted:
            images[key] = image_to_array(message)
    return transitions, images


def transition_arrays(transitions: List[object],
                      images: Dict[Tuple[str, int], np.ndarray]) -> Dict[str, np.ndarray]:
    """Return the transitions as arrays with the transition on the first axis."""
    if not transitions:
        raise ExportError('no transitions to export')
    count = len(transitions)
    arrays: Dict[str, np.ndarray] = {
        'robot_id': np.array([t.robot_id for t in transitions], dtype=np.str_),
        'episode_id': np.array([t.episode_id for t in transitions], np.int64),
        'step': np.array([t.step for t in transitions], np.int64),
        'sequence': np.array([t.sequence for t in transitions], np.int64),
        'stamp_ns': np.array([_stamp_ns(t.header.stamp) for t in transitions], np.int64),
        'instruction': np.array([t.instruction for t in transitions], dtype=np.str_),
        'reward': np.array([t.reward for t in transitions], np.float32),
        'terminated': np.array([t.terminated for t in transitions], bool),
        'truncated': np.array([t.truncated for t in transitions], bool),
        'evaluation': np.array([t.evaluation for t in transitions], bool),
        'intervened': np.array([t.intervened for t in transitions], bool),
        'weights_version': np.array([t.weights_version for t in transitions], np.int64),
        'correction': np.array([t.correction for t in transitions], dtype=np.str_),
        'refinement_command': np.array([t.refinement_command for t in transitions],
                                       dtype=np.str_),
    }
    arrays['command'] = np.array([command_of(t) for t in transitions], dtype=np.str_)
    arrays['prompt'] = np.array([prompt(t.instruction, command_of(t)) for t in transitions],
                                dtype=np.str_)
    latents = [np.asarray(t.latent, np.float32) for t in transitions]
    latent_dim = max(latent.size for latent in latents)
    if latent_dim:  # NaN where the base policy sampled its own latent
        arrays['latent'] = np.full((count, latent_dim), np.nan, np.float32)
        arrays['latent_condition'] = np.zeros((count, COMMAND_FEATURES), np.float32)
        for index, transition in enumerate(transitions):
            if latents[index].size == latent_dim:
                arrays['latent'][index] = latents[index]
            if len(transition.latent_condition) == COMMAND_FEATURES:
                arrays['latent_condition'][index] = transition.latent_condition
        arrays['latent_weights_version'] = np.array(
            [t.latent_weights_version for t in transitions], np.int64)
    for field in ('base_action', 'residual', 'executed_action', 'residual_scale'):
        arrays[field] = _stack(field, [np.asarray(getattr(t, field), np.float32)
                                       for t in transitions])
    dim = arrays['executed_action'].shape[1]
    human = np.full((count, dim), np.nan, np.float32)  # NaN: nobody acted at that step
    for index, transition in enumerate(transitions):
        if len(transition.human_action) == dim:
            human[index] = transition.human_action
    arrays['human_action'] = human
    for prefix, field in (('observation', 'observation'), ('next_observation',
                                                           'next_observation')):
        names = sorted({item.name for t in transitions for item in getattr(t, field)})
        for name in names:
            rows = []
            for t in transitions:
                values = {item.name: item.data for item in getattr(t, field)}
                if name not in values:
                    raise ExportError(f'transition {t.sequence} of {t.robot_id} has no '
                                      f'{field} {name!r}')
                rows.append(np.asarray(values[name], np.float32))
            arrays[f'{prefix}/{name}'] = _stack(f'{prefix}/{name}', rows)
    for name in sorted({ref.name for t in transitions for ref in t.images}):
        frames = []
        for t in transitions:
            ref = next((ref for ref in t.images if ref.name == name), None)
            key = (ref.topic, _stamp_ns(ref.stamp)) if ref is not None else None
            if key not in images:
                raise ExportError(f'the image {name} of transition {t.sequence} ({key}) is not '
                                  'in the bag: record the camera topics too')
            frames.append(images[key])
        arrays[f'images/{name}'] = _stack(f'images/{name}', frames)
    return arrays


def command_of(transition) -> str:
    """Return the words of a step: its correction when a person made one, else the command."""
    return transition.correction or transition.refinement_command


def prompt(instruction: str, command: str) -> str:
    """Return the instruction and the command as one text ('pick up the cube; move left')."""
    return '; '.join(part for part in (instruction.strip(), command.strip()) if part)


def _stack(name: str, rows: List[np.ndarray]) -> np.ndarray:
    shapes = {row.shape for row in rows}
    if len(shapes) > 1:
        raise ExportError(f'{name} changes shape within the bag ({sorted(shapes)})')
    return np.stack(rows)


def write_npz(arrays: Dict[str, np.ndarray], out: pathlib.Path) -> pathlib.Path:
    """Write the arrays to a compressed npz (no pickled objects: np.load needs no allow)."""
    out = out if out.suffix == '.npz' else out.with_suffix('.npz')
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


def write_lerobot(arrays: Dict[str, np.ndarray], out: pathlib.Path, fps: float,
                  repo_id: str, task_key: str = 'instruction',
                  state: Optional[Sequence[str]] = None) -> pathlib.Path:
    """
    Write the transitions as a LeRobotDataset (v3) in out: one episode per episode.

    ``observation.state`` is the ``observation/<name>`` arrays that ``state`` names joined in
    its order (None: every one, in name order), each value named <name>_<index>; ``action``
    the executed action (the person's where they acted), beside ``base_action``,
    ``human_action`` and ``intervened``; each camera an ``observation.images.<name>`` image.

    Each frame's task is its ``task_key`` array: the instruction, or the prompt (instruction
    and command) for the corrections dataset.
    """
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError as error:
        raise ExportError('--format lerobot needs LeRobot, an optional extra with its own '
                          'Python (3.12) and torch: scripts/setup-lerobot.sh makes that '
                          'environment, where python -m hilresrl_recording.export runs (see '
                          'the README); --format npz needs nothing more') from error
    recorded = sorted(name.split('/', 1)[1] for name in arrays
                      if name.startswith('observation/'))
    state_names = recorded if state is None else list(state)
    missing = [name for name in state_names if name not in recorded]
    if missing or not state_names:
        raise ExportError(f'no observation {", ".join(missing) or "to join"} in the run: it '
                          f'recorded {", ".join(recorded) or "none"}')
    parts = [np.asarray(arrays['observation/' + name], np.float32).reshape(
        len(arrays['executed_action']), -1) for name in state_names]
    state_values = np.concatenate(parts, axis=1)
    value_names = [f'{name}_{index}' for name, part in zip(state_names, parts)
                   for index in range(part.shape[1])]
    dim = arrays['executed_action'].shape[1]
    features = {
        'observation.state': {'dtype': 'float32', 'shape': (state_values.shape[1],),
                              'names': value_names},
        'action': {'dtype': 'float32', 'shape': (dim,), 'names': None},
        'base_action': {'dtype': 'float32', 'shape': (dim,), 'names': None},
        # What the person commanded (0 where nobody did: intervened says where one did).
        'human_action': {'dtype': 'float32', 'shape': (dim,), 'names': None},
        'intervened': {'dtype': 'bool', 'shape': (1,), 'names': None},
        'next.reward': {'dtype': 'float32', 'shape': (1,), 'names': None},
        'next.done': {'dtype': 'bool', 'shape': (1,), 'names': None},
    }
    cameras = sorted(name for name in arrays if name.startswith('images/'))
    for name in cameras:
        features['observation.images.' + name.split('/', 1)[1].replace('/', '_')] = {
            'dtype': 'image', 'shape': arrays[name].shape[1:],
            'names': ['height', 'width', 'channels']}
    dataset = LeRobotDataset.create(repo_id=repo_id, fps=int(round(fps)), features=features,
                                    root=out, use_videos=False)
    episode_keys = list(zip(arrays['robot_id'].tolist(), arrays['episode_id'].tolist()))
    human = np.nan_to_num(arrays['human_action'], nan=0.0) if 'human_action' in arrays else \
        np.zeros_like(arrays['executed_action'])
    for index, key in enumerate(episode_keys):
        frame = {'observation.state': state_values[index],
                 'action': arrays['executed_action'][index],
                 'base_action': arrays['base_action'][index],
                 'human_action': human[index],
                 'intervened': arrays['intervened'][index:index + 1],
                 'next.reward': arrays['reward'][index:index + 1],
                 'next.done': (arrays['terminated'] | arrays['truncated'])[index:index + 1],
                 'task': str(arrays[task_key][index]) or 'task'}
        for name in cameras:
            frame['observation.images.' + name.split('/', 1)[1].replace('/', '_')] = \
                arrays[name][index]
        dataset.add_frame(frame)
        if index + 1 == len(episode_keys) or episode_keys[index + 1] != key:
            dataset.save_episode()
    dataset.finalize()
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='hilresrl export', description='Write the transitions of a recorded run (with '
        'the images they refer to) as arrays or as a LeRobotDataset.')
    parser.add_argument('bag', help='bag folder, .mcap or .db3 file, or run folder; or an npz '
                        'this export wrote, to write as a LeRobotDataset (--format lerobot) '
                        'where LeRobot is installed and ROS 2 is not')
    parser.add_argument('--format', choices=('npz', 'lerobot'), default='npz')
    parser.add_argument('--out', required=True, help='npz file, or LeRobotDataset folder')
    parser.add_argument('--only-interventions', action='store_true',
                        help='only the steps a person controlled')
    parser.add_argument('--corrections', action='store_true',
                        help='the talk-and-tweak dataset: only the steps a person controlled, '
                             'each task worded as instruction + command ("pick up the cube; '
                             'move left 2 cm"); npz has it as prompt in any case')
    parser.add_argument('--fps', type=float, default=10.0,
                        help='control rate, for LeRobot timestamps (default 10)')
    parser.add_argument('--repo-id', default='hilresrl/run', help='LeRobot repository id')
    parser.add_argument('--state', nargs='+', metavar='NAME',
                        help='LeRobot: the observation arrays joined, in this order, into '
                             "observation.state, e.g. the base-policy node's state_keys "
                             '(default: every one the run recorded, in name order)')
    return parser


def exported_arrays(path: pathlib.Path) -> Dict[str, np.ndarray]:
    """Return the arrays of an npz this export wrote (no pickled objects are read)."""
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    missing = [name for name in ('executed_action', 'episode_id', 'robot_id')
               if name not in arrays]
    if missing:
        raise ExportError(f'{path} is not an npz of hilresrl export (no {", ".join(missing)})')
    return arrays


def main(args: Optional[Iterable[str]] = None) -> int:
    """Entry point of hilresrl export."""
    options = _parser().parse_args(None if args is None else list(args))
    if options.state and options.format != 'lerobot':
        print('hilresrl export: --state chooses the state of a LeRobotDataset (--format '
              'lerobot); an npz holds every observation array by its name', file=sys.stderr)
        return 2
    source = pathlib.Path(options.bag).expanduser()
    if source.suffix == '.npz':
        return _from_npz(source, options)
    from rclpy.serialization import deserialize_message

    from .message_definitions import message_class

    def decode(type_name: str, data: bytes):
        return deserialize_message(data, message_class(type_name))

    try:
        reader = BagReader(bag_folder(options.bag))
        transitions, images = read_transitions(
            reader, decode, options.only_interventions or options.corrections)
        arrays = transition_arrays(transitions, images)
        out = pathlib.Path(options.out).expanduser()
        written = (write_npz(arrays, out) if options.format == 'npz'
                   else write_lerobot(arrays, out, options.fps, options.repo_id,
                                      'prompt' if options.corrections else 'instruction',
                                      options.state))
    except (BagError, ExportError, LookupError, OSError, ValueError) as error:
        print(f'hilresrl export: {error}', file=sys.stderr)
        return 2
    for problem in reader.problems:
        print(f'hilresrl export: warning: {problem}', file=sys.stderr)
    episodes = len(set(zip(arrays['robot_id'].tolist(), arrays['episode_id'].tolist())))
    print(f'{len(transitions)} transitions of {episodes} episodes '
          f'({int(arrays["intervened"].sum())} by a person, '
          f'{sum(1 for name in arrays if name.startswith("images/"))} camera(s)) -> {written}')
    return 0


def _from_npz(source: pathlib.Path, options) -> int:
    """Write an exported npz as a LeRobotDataset: where LeRobot is, ROS 2 need not be."""
    try:
        if options.format != 'lerobot':
            raise ExportError(f'{source} is an export already: give --format lerobot to write '
                              'it as a LeRobotDataset')
        if options.only_interventions or options.corrections:
            raise ExportError('--only-interventions and --corrections select transitions from '
                              'a bag: give them when exporting the bag')
        arrays = exported_arrays(source)
        written = write_lerobot(arrays, pathlib.Path(options.out).expanduser(), options.fps,
                                options.repo_id, state=options.state)
    except (ExportError, OSError, ValueError) as error:
        print(f'hilresrl export: {error}', file=sys.stderr)
        return 2
    print(f'{len(arrays["executed_action"])} transitions -> {written}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
