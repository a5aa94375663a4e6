"""
The demonstrations file format: steps of demonstration episodes as plain arrays in a .npz file.

Written by ``hilresrl demos`` and the base-policy builder, read by the builder and by the learner
(its intervention buffer). Nothing in it is pickled. No ROS here.

Version 1 holds the task state alone. Version 2 may also hold, per step, what a cell's sensors
gave, each under ``observed/<name>`` with the name the residual node gives it (``ee_pose``,
``joint_positions``, ``joint_velocities``, ``wrench``, camera images ``image/<topic>`` as
H x W x 3 uint8), and the task's instruction: what a residual that sees no task state learns
from. A file without a version is version 1 and loads as before.
"""

from dataclasses import dataclass, field
import os
import pathlib
from typing import Dict, List, Mapping, Sequence, Union
import zipfile

from hilresrl_common.instruction_features import INSTRUCTION_INPUT
import numpy as np

_FORMAT = 'hilresrl-demonstrations'
FORMAT_VERSION = 2
_ARRAYS = ('observations', 'actions', 'expert_actions', 'episode_index', 'episode_success')
OBSERVED_PREFIX = 'observed/'  # the npz key of a named per-step array: observed/<name>
TASK_STATE = 'task_state'  # the name of ``observations`` among a step's arrays


@dataclass
class Demonstrations:
    """
    Steps of demonstration episodes, episode after episode.

    observations: (N, state_dim) float32, the task state before each step.
    actions: (N, 4) float32, the executed actions: the expert's plus Gaussian noise, clipped.
    expert_actions: (N, 4) float32, the expert's noise-free actions (the training labels).
    episode_index: (N,) int64, the episode of each step, 0 to E - 1 in order.
    episode_success: (E,) bool, whether each episode reached the task's success.
    observed: name -> (N, ...) array, what the cell's sensors gave before each step, by the
        residual node's names: float32 vectors (N, size), camera images (N, H, W, 3) uint8.
    instruction: the task's instruction ('' where not recorded).
    """

    observations: np.ndarray
    actions: np.ndarray
    expert_actions: np.ndarray
    episode_index: np.ndarray
    episode_success: np.ndarray
    task: str = ''
    noise_std: float = 0.0
    seed: int = 0
    observed: Dict[str, np.ndarray] = field(default_factory=dict)
    instruction: str = ''

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
        self.observed = {str(name): _observed_array(name, values, steps)
                         for name, values in dict(self.observed).items()}

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
            self.noise_std, self.seed,
            {name: values[keep] for name, values in self.observed.items()}, self.instruction)

    @property
    def names(self) -> List[str]:
        """Return the names of a step's arrays: task_state and the observed ones."""
        return [TASK_STATE] + sorted(self.observed)

    def step_arrays(self, index: int) -> Dict[str, np.ndarray]:
        """Return step ``index``'s arrays by name, as a cell's observation names them."""
        arrays = {name: values[index] for name, values in self.observed.items()}
        arrays[TASK_STATE] = self.observations[index]
        return arrays

    def check_inputs(self, inputs: Sequence[str]) -> None:
        """Raise ValueError naming the inputs (policy inputs, cameras) these steps lack."""
        missing = [name for name in inputs if name not in self.names
                   and not (name == INSTRUCTION_INPUT and self.instruction)]
        if missing:
            raise ValueError(
                f'the demonstrations hold no {", ".join(missing)}; they hold '
                f'{", ".join(self.names + ([INSTRUCTION_INPUT] if self.instruction else []))}')

    def save(self, path: Union[str, os.PathLike]) -> pathlib.Path:
        """Write the demonstrations to a .npz file (plain arrays, no pickled objects)."""
        path = pathlib.Path(path)
        if path.suffix != '.npz':
            path = path.with_name(path.name + '.npz')  # as numpy would, but say so
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, format=np.array(_FORMAT), format_version=np.array(FORMAT_VERSION),
            task=np.array(self.task), noise_std=np.array(self.noise_std),
            seed=np.array(self.seed), instruction=np.array(self.instruction),
            **{name: getattr(self, name) for name in _ARRAYS},
            **{OBSERVED_PREFIX + name: values for name, values in self.observed.items()})
        return path

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> 'Demonstrations':
        """Read demonstrations written by ``save``; never unpickles anything."""
        path = pathlib.Path(path)
        try:
            with np.load(path, allow_pickle=False) as stored:
                if 'format' not in stored or str(stored['format']) != _FORMAT:
                    raise ValueError(f'{path} is not a file of hilresrl demonstrations')
                version = int(stored['format_version']) if 'format_version' in stored else 1
                if version > FORMAT_VERSION:
                    raise ValueError(f'{path} is demonstrations format {version}; this '
                                     f'hilresrl reads up to {FORMAT_VERSION}: update it')
                missing = [name for name in _ARRAYS if name not in stored]
                if missing:
                    raise ValueError(f'{path} lacks {", ".join(missing)}')
                observed = {key[len(OBSERVED_PREFIX):]: stored[key] for key in stored.files
                            if key.startswith(OBSERVED_PREFIX)}
                return cls(**{name: stored[name] for name in _ARRAYS},
                           task=str(stored['task']), noise_std=float(stored['noise_std']),
                           seed=int(stored['seed']), observed=observed,
                           instruction=(str(stored['instruction'])
                                        if 'instruction' in stored else ''))
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f'cannot read demonstrations from {path}: {error}') from error


def _observed_array(name: str, values, steps: int) -> np.ndarray:
    """Return an observed array checked: camera images uint8 (N, H, W, 3), else float32."""
    values = np.asarray(values)
    if name == TASK_STATE or not name:
        raise ValueError(f'observed array {name!r}: the task state is observations')
    if name.startswith('image/'):
        if values.dtype != np.uint8 or values.ndim != 4 or values.shape[-1] != 3:
            raise ValueError(f'observed {name} must be ({steps}, height, width, 3) uint8, got '
                             f'{values.dtype} {values.shape}')
    elif values.ndim == 0:
        raise ValueError(f'observed {name} must be ({steps}, ...), got a single value')
    else:
        values = values.astype(np.float32, copy=False)
    if len(values) != steps:
        raise ValueError(f'observed {name} has {len(values)} steps, not {steps}')
    return values


def observed_arrays(steps: Sequence[Mapping[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Return per-step arrays by name (each step names the same ones) stacked, step first."""
    names = sorted(steps[0]) if steps else []
    return {name: np.stack([np.asarray(step[name]) for step in steps]) for name in names}
