"""
The demonstrations file format: steps of demonstration episodes as plain arrays in a .npz file.

Written by ``hilresrl demos`` and the base-policy builder, read by the builder and by the learner
(its intervention buffer). Nothing in it is pickled. No ROS here.
"""

from dataclasses import dataclass
import os
import pathlib
from typing import Union
import zipfile

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
