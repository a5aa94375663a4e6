"""
Demonstrations of a simulated task by its scripted expert, with noise on the executed actions.

The noise widens the states the demonstrations visit while the labels stay the expert's clean
actions, so a policy cloned from them learns to recover from its own small errors. No ROS here.
"""

from dataclasses import dataclass
import os
import pathlib
from typing import Callable, Optional, Union
import zipfile

from hilresrl_sim.tasks import make_task
import numpy as np

_FORMAT = 'hilresrl-demonstrations'
_ARRAYS = ('observations', 'actions', 'expert_actions', 'episode_index', 'episode_success')


@dataclass
class Demonstrations:
    """
    Steps of demonstration episodes, episode after episode.

    observations: (N, state_dim) float32, the task state before each step.
    actions: (N, 4) float32, the executed actions: the expert's plus Gaussian noise, clipped.
    expert_actions: (N, 4) float32, the expert's noise-free actions (the training labels).
    episode_index: (N,) int64, the episode of each step, 0 to E - 1 in order.
    episode_success: (E,) bool, whether each episode reached the task's success.
    """

    observations: np.ndarray
    actions: np.ndarray
    expert_actions: np.ndarray
    episode_index: np.ndarray
    episode_success: np.ndarray
    task: str = ''
    noise_std: float = 0.0
    seed: int = 0

    def __post_init__(self):
        self.observations = np.asarray(self.observations, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.expert_actions = np.asarray(self.expert_actions, dtype=np.float32)
        self.episode_index = np.asarray(self.episode_index, dtype=np.int64)
        self.episode_success = np.asarray(self.episode_success, dtype=bool)
        steps = len(self.observations)
        if self.observations.ndim != 2:
            raise ValueError(f'observations must be (N, state_dim), got '
                             f'{self.observations.shape}')
        for name in ('actions', 'expert_actions'):
            shape = getattr(self, name).shape
            if len(shape) != 2 or shape[0] != steps:
                raise ValueError(f'{name} must be ({steps}, action_dim), got {shape}')
        if self.episode_index.shape != (steps,):
            raise ValueError(f'episode_index must be ({steps},), got {self.episode_index.shape}')
        if steps and (np.any(np.diff(self.episode_index) < 0) or self.episode_index[0] < 0
                      or self.episode_index[-1] >= len(self.episode_success)):
            raise ValueError('episode_index must count up from 0 and stay below the number '
                             f'of episodes ({len(self.episode_success)})')

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def episodes(self) -> int:
        """Return the number of episodes."""
        return len(self.episode_success)

    @property
    def success_rate(self) -> float:
        """Return the fraction of episodes that succeeded (NaN without episodes)."""
        return float(np.mean(self.episode_success)) if self.episodes else float('nan')

    def first_episodes(self, count: int) -> 'Demonstrations':
        """Return the first ``count`` episodes (all of them if there are fewer)."""
        keep = self.episode_index < count
        return Demonstrations(
            self.observations[keep], self.actions[keep], self.expert_actions[keep],
            self.episode_index[keep], self.episode_success[:count], self.task,
            self.noise_std, self.seed)

    def save(self, path: Union[str, os.PathLike]) -> pathlib.Path:
        """Write the demonstrations to a .npz file (plain arrays, no pickled objects)."""
        path = pathlib.Path(path)
        if path.suffix != '.npz':
            path = path.with_name(path.name + '.npz')  # as numpy would, but say so
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, format=np.array(_FORMAT), task=np.array(self.task),
            noise_std=np.array(self.noise_std), seed=np.array(self.seed),
            **{name: getattr(self, name) for name in _ARRAYS})
        return path

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> 'Demonstrations':
        """Read demonstrations written by ``save``; never unpickles anything."""
        path = pathlib.Path(path)
        try:
            with np.load(path, allow_pickle=False) as stored:
                if 'format' not in stored or str(stored['format']) != _FORMAT:
                    raise ValueError(f'{path} is not a file of hilresrl demonstrations')
                missing = [name for name in _ARRAYS if name not in stored]
                if missing:
                    raise ValueError(f'{path} lacks {", ".join(missing)}')
                return cls(**{name: stored[name] for name in _ARRAYS},
                           task=str(stored['task']), noise_std=float(stored['noise_std']),
                           seed=int(stored['seed']))
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f'cannot read demonstrations from {path}: {error}') from error


def episode_seed(seed: int, episode: int) -> int:
    """Return the reset seed of demonstration episode ``episode`` of a collection ``seed``."""
    return int(np.random.default_rng([seed, episode]).integers(2 ** 31))


def collect_demonstrations(task_name: str, episodes: int, noise_std: float, seed: int,
                           max_steps: Optional[int] = None,
                           progress: Optional[Callable[[str], None]] = None
                           ) -> Demonstrations:
    """
    Run the scripted expert for ``episodes`` episodes, adding noise to what it executes.

    Each episode starts from its own seed and draws its noise from its own generator, both
    derived from ``seed`` and the episode number: the first K episodes of a collection equal a
    collection of K. An episode ends at success or after ``max_steps`` (default: the task's
    time limit). ``progress`` receives one line per episode.
    """
    if episodes < 0:
        raise ValueError(f'episodes must be at least 0, got {episodes}')
    if noise_std < 0:
        raise ValueError(f'noise_std must be at least 0, got {noise_std}')
    observations, actions, expert_actions, episode_index, episode_success = [], [], [], [], []
    with make_task(task_name, seed=seed) as task:
        limit = task.max_episode_steps if max_steps is None else int(max_steps)
        for episode in range(episodes):
            reset_seed = episode_seed(seed, episode)
            task.reset(seed=reset_seed)
            noise = np.random.default_rng([seed, episode, 1])
            succeeded = False
            steps = 0
            while steps < limit and not succeeded:
                state = task.task_state()
                expert = task.expert_action()
                executed = np.clip(expert + noise.normal(0.0, noise_std, expert.shape),
                                   -1.0, 1.0).astype(np.float32)
                task.step(executed)
                observations.append(state)
                actions.append(executed)
                expert_actions.append(expert)
                episode_index.append(episode)
                steps += 1
                succeeded = task.success()
            episode_success.append(succeeded)
            if progress is not None:
                progress(f'demonstration {episode + 1}/{episodes} (seed {reset_seed}): '
                         f'{"success" if succeeded else "failure"} in {steps} steps')
        state_dim = task.state_dim
        action_dim = task.action_dim
    return Demonstrations(
        np.reshape(np.asarray(observations, dtype=np.float32), (-1, state_dim)),
        np.reshape(np.asarray(actions, dtype=np.float32), (-1, action_dim)),
        np.reshape(np.asarray(expert_actions, dtype=np.float32), (-1, action_dim)),
        np.asarray(episode_index, dtype=np.int64), np.asarray(episode_success, dtype=bool),
        task=task_name, noise_std=float(noise_std), seed=int(seed))


def main(argv=None) -> int:
    """Collect demonstrations from the command line (hilresrl demos --help)."""
    import argparse
    parser = argparse.ArgumentParser(
        prog='hilresrl demos',
        description='Collect demonstrations of a simulated task from its scripted expert, with '
                    'Gaussian noise on the executed actions, into an .npz file.')
    parser.add_argument('--task', default='pick-place-v3', help='task name (default: %(default)s)')
    parser.add_argument('--episodes', type=int, default=10, help='episodes (default: %(default)s)')
    parser.add_argument('--noise', type=float, default=0.3,
                        help='standard deviation of the action noise (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='seed (default: %(default)s)')
    parser.add_argument('--out', required=True, help='.npz file to write')
    options = parser.parse_args(argv)
    demos = collect_demonstrations(
        options.task, options.episodes, options.noise, options.seed,
        progress=lambda line: print(line, flush=True))
    path = demos.save(options.out)
    print(f'{demos.episodes} episodes, {len(demos.actions)} steps, expert success '
          f'{100 * demos.success_rate:.0f}% -> {path}')
    return 0
