"""
A LeRobotDataset as demonstrations: the learner's demonstrations file from LeRobot's data.

``hilresrl import-lerobot ROOT --repo-id ID --out demos.npz [--state-name NAME]
[--image KEY=NAME ...]`` (where LeRobot is: in its environment, ``python -m
hilresrl_recording.lerobot_import``). Each frame becomes a demonstration step: its
``observation.state`` under the name the residual node gives that array (``task_state`` by
default: the simulator's state; ``joint_positions``, ``ee_pose``, ... on a real cell), each
camera ``observation.images.<key>`` named as --image says (e.g.
``observation.images.front=image/camera/front/image_raw``) as H x W x 3 uint8, its ``action``
as the executed and expert action, its episode as the dataset's. An episode succeeded where a
frame of it has ``next.success`` or a positive ``next.reward``; a dataset with neither holds
demonstrations, and each episode counts as one that succeeded. The learner loads the file with
``demonstrations:=`` and relabels every step's base action with its frozen base policy, as it
does for any demonstrations file. LeRobot is imported lazily; no ROS here.
"""

import argparse
import pathlib
import sys
from typing import Dict, List, Mapping, Optional

from hilresrl_common.demonstrations import Demonstrations, TASK_STATE
import numpy as np

INSTALL_HINT = ("reading a LeRobotDataset needs LeRobot (pip install 'lerobot[dataset]==0.6.1', "
                'Python 3.12; scripts/setup-lerobot.sh makes that environment)')
STATE_KEY = 'observation.state'


class ImportLeRobotError(ValueError):
    """A dataset that cannot become demonstrations as asked; the message says why."""


def demonstrations_from_lerobot(root: pathlib.Path, repo_id: str,
                                state_name: str = TASK_STATE,
                                image_map: Optional[Mapping[str, str]] = None,
                                instruction: str = '') -> Demonstrations:
    """Return the dataset at ``root`` as demonstrations (see the module's description)."""
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError as error:
        raise ImportLeRobotError(f'{INSTALL_HINT} ({error})') from error
    dataset = LeRobotDataset(repo_id, root=root)
    image_map = dict(image_map or {})
    features = dataset.meta.features
    missing = [key for key in [STATE_KEY, 'action', *image_map] if key not in features]
    if missing:
        raise ImportLeRobotError(f'{root} has no {", ".join(missing)}; it has '
                                 f'{", ".join(sorted(features))}')
    success_key = next((key for key in ('next.success', 'next.reward') if key in features), '')
    states: List[np.ndarray] = []
    actions: List[np.ndarray] = []
    episodes: List[int] = []
    succeeded: List[bool] = []
    images: Dict[str, List[np.ndarray]] = {name: [] for name in image_map.values()}
    tasks = set()
    for index in range(len(dataset)):
        frame = dataset[index]
        states.append(frame[STATE_KEY].numpy().astype(np.float32).ravel())
        actions.append(frame['action'].numpy().astype(np.float32).ravel())
        episodes.append(int(frame['episode_index']))
        succeeded.append(bool(float(frame[success_key]) > 0) if success_key else True)
        tasks.add(str(frame.get('task', '')))
        for key, name in image_map.items():  # 3 x H x W in [0, 1] -> H x W x 3 uint8
            pixels = frame[key].numpy().transpose(1, 2, 0) * 255.0
            images[name].append(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    # Episodes in the dataset's order, numbered from 0 as demonstrations count them.
    numbers = {episode: number for number, episode in enumerate(dict.fromkeys(episodes))}
    episode_index = np.array([numbers[episode] for episode in episodes], np.int64)
    if np.any(np.diff(episode_index) < 0):
        raise ImportLeRobotError(f'{root}: the frames of an episode are not together')
    success = np.zeros(len(numbers), bool)
    for number, ok in zip(episode_index, succeeded):
        success[number] |= ok
    state = np.stack(states)
    observed = {name: np.stack(frames) for name, frames in images.items()}
    if state_name != TASK_STATE:
        observed[state_name] = state
        state = np.zeros((len(state), 0), np.float32)  # no task state: a real cell's data
    action = np.stack(actions)
    return Demonstrations(state, action, action, episode_index, success, task=repo_id,
                          observed=observed,
                          instruction=instruction or (tasks.pop() if len(tasks) == 1 else ''))


def _image_mapping(pairs: List[str]) -> Dict[str, str]:
    mapping = {}
    for pair in pairs:
        key, separator, name = pair.partition('=')
        if not separator or not key or not name:
            raise ImportLeRobotError(f'--image {pair!r}: give KEY=NAME, e.g. '
                                     'observation.images.front=image/camera/front/image_raw')
        mapping[key] = name
    return mapping


def main(argv: Optional[List[str]] = None) -> int:
    """Write a LeRobotDataset's frames as a demonstrations file."""
    parser = argparse.ArgumentParser(
        prog='hilresrl import-lerobot',
        description='Write a LeRobotDataset (e.g. the demonstrations a base policy was trained '
                    'on) as a demonstrations file for the learner (demonstrations:=FILE).')
    parser.add_argument('root', type=pathlib.Path, help='the dataset folder')
    parser.add_argument('--repo-id', required=True, help="the dataset's repo id")
    parser.add_argument('--out', type=pathlib.Path, required=True, help='demonstrations .npz')
    parser.add_argument('--state-name', default=TASK_STATE,
                        help='the name the residual node gives observation.state (default '
                             'task_state; e.g. joint_positions)')
    parser.add_argument('--image', action='append', default=[], metavar='KEY=NAME',
                        help='a camera: its dataset key and the name the residual node gives '
                             'it, e.g. observation.images.front=image/camera/front/image_raw')
    parser.add_argument('--instruction', default='',
                        help="the task's instruction (default: the dataset's one task)")
    options = parser.parse_args(argv)
    try:
        demonstrations = demonstrations_from_lerobot(
            options.root, options.repo_id, options.state_name, _image_mapping(options.image),
            options.instruction)
    except (ImportLeRobotError, FileNotFoundError) as error:
        print(f'hilresrl import-lerobot: {error}', file=sys.stderr)
        return 2
    path = demonstrations.save(options.out)
    print(f'{path}: {len(demonstrations)} steps, {demonstrations.episodes} episodes '
          f'({demonstrations.success_rate:.0%} succeeded), arrays {demonstrations.names}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
