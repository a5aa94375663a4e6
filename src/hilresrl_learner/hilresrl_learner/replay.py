"""
Replay buffers of control steps, with n-step returns and mixed sampling (no ROS).

Steps of one episode are linked as they arrive, so a sample can look ahead n steps for its
return and find the base action the loop used at the state it bootstraps from. Two buffers feed
each batch at a fixed ratio (RLPD's symmetric sampling): everything the robot did, and the steps
a person corrected or demonstrated.
"""

from dataclasses import dataclass
from typing import Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .frame_store import StepFrames

FIELDS = ('observation', 'base_action', 'executed_action', 'human_action', 'human_axes',
          'next_observation', 'next_base_action', 'reward', 'terminated', 'truncated',
          'intervened')


@dataclass
class Batch:
    """A batch for the learner, numpy arrays with the batch on the first axis."""

    observation: np.ndarray        # (B, obs_dim) s_t
    base_action: np.ndarray        # (B, A) base action at s_t
    executed_action: np.ndarray    # (B, A) what the robot did at s_t (human or policy)
    human_action: np.ndarray       # (B, A) the person's action (zeros where not intervened)
    human_axes: np.ndarray         # (B, A) the axes the person took (none where not intervened)
    intervened: np.ndarray         # (B,) the step was under human control
    n_step_return: np.ndarray      # (B,) sum of gamma^k r_t+k over the steps taken
    bootstrap_observation: np.ndarray  # (B, obs_dim) s_t+k, the state to bootstrap from
    bootstrap_base_action: np.ndarray  # (B, A) base action at s_t+k
    bootstrap_discount: np.ndarray  # (B,) gamma^k, or 0 when the look-ahead hit a terminal
    # With cameras: each camera's uint8 frames (B, channels, height, width) at s_t and at the
    # state bootstrapped from; None without.
    frames: Optional[Tuple[np.ndarray, ...]] = None
    bootstrap_frames: Optional[Tuple[np.ndarray, ...]] = None


class ReplayBuffer:
    """Steps in arrival order, linked within episodes, growing as needed."""

    def __init__(self, obs_dim: int, action_dim: int, capacity: int = 1_000_000,
                 initial_size: int = 4096, cameras: Sequence[str] = (),
                 frame_shape: Tuple[int, ...] = ()):
        self.obs_dim, self.action_dim, self.capacity = obs_dim, action_dim, capacity
        # Camera frames of the steps, each stored once (frame_store), beside the arrays.
        self.frames = StepFrames(cameras, frame_shape, capacity) if cameras else None
        self._size = 0
        self._allocated = 0
        self._data: Dict[str, np.ndarray] = {}
        self._next = np.zeros(0, dtype=np.int64)  # index of the next step of the episode, or -1
        self._last_of_episode: Dict[Hashable, Tuple[int, int]] = {}  # episode -> (index, step)
        self._changed_from = 0  # the first row written since take_changed_rows()
        self._grow(initial_size)

    def __len__(self) -> int:
        """Return the number of stored steps."""
        return self._size

    @property
    def allocated(self) -> int:
        """Return the rows the arrays have room for (they grow by doubling)."""
        return self._allocated

    def take_changed_rows(self) -> Tuple[int, int]:
        """Return (start, stop) of the rows written since the last call (a device copy's)."""
        changed = (min(self._changed_from, self._size), self._size)
        self._changed_from = self._size
        return changed

    def arrays(self, start: int, stop: int) -> Dict[str, np.ndarray]:
        """Return rows [start, stop) of every array, the episode links as next_index."""
        rows = {name: self._data[name][start:stop] for name in FIELDS}
        rows['next_index'] = self._next[start:stop]
        return rows

    def observations(self) -> np.ndarray:
        """Return the observations of the stored steps (a view: do not keep it across adds)."""
        return self._data['observation'][:self._size]

    def add(self, episode: Hashable, step: int, observation, base_action, executed_action,
            reward: float, next_observation, terminated: bool, truncated: bool,
            human_action=None, human_axes=None, frames: Optional[Mapping] = None,
            next_frames: Optional[Mapping] = None) -> int:
        """
        Store one step of an episode and link it to the previous one; return its index.

        ``frames``, ``next_frames``: each camera's uint8 frame at s_t and s_t+1 (by camera
        name), for a buffer made with cameras.

        ``human_axes``: the axes of ``human_action`` the person took (None: all of them).
        """
        if self._size == self.capacity:
            raise OverflowError(f'replay buffer full ({self.capacity} steps)')
        if self._size == self._allocated:
            self._grow(min(self.capacity, 2 * self._allocated))
        if self.frames is not None:
            if frames is None or next_frames is None:
                raise ValueError(f'this buffer stores frames of cameras '
                                 f'{", ".join(self.frames.cameras)}: a step needs them')
            self.frames.add(episode, step, frames, next_frames, terminated or truncated)
        index = self._size
        data = self._data
        data['observation'][index] = observation
        data['base_action'][index] = base_action
        data['executed_action'][index] = executed_action
        data['intervened'][index] = human_action is not None
        data['human_action'][index] = 0.0 if human_action is None else human_action
        # Guidance pulls only the axes the person took (older steps: all of a person's).
        data['human_axes'][index] = (False if human_action is None else
                                     True if human_axes is None else human_axes)
        data['next_observation'][index] = next_observation
        # Until the next step arrives, the best guess of the base action at s_t+1 is this one.
        data['next_base_action'][index] = base_action
        data['reward'][index] = reward
        data['terminated'][index] = terminated
        data['truncated'][index] = truncated
        self._next[index] = -1
        previous = self._last_of_episode.get(episode)
        self._changed_from = min(self._changed_from, index)
        if previous is not None and previous[1] == step - 1:
            self._next[previous[0]] = index
            data['next_base_action'][previous[0]] = base_action
            self._changed_from = min(self._changed_from, previous[0])
        self._last_of_episode[episode] = (index, step)
        if terminated or truncated:
            self._last_of_episode.pop(episode, None)
        self._size += 1
        return index

    def sample(self, batch_size: int, rng: np.random.Generator, n_step: int = 1,
               gamma: float = 0.99) -> Batch:
        """Return batch_size steps drawn uniformly, with n-step returns."""
        if self._size == 0:
            raise ValueError('cannot sample an empty replay buffer')
        return self.gather(rng.integers(0, self._size, size=batch_size), n_step, gamma)

    def gather(self, indices: np.ndarray, n_step: int = 1, gamma: float = 0.99) -> Batch:
        """Return the steps at the given indices, with n-step returns."""
        data = self._data
        current = indices.copy()
        returns = np.zeros(len(indices), dtype=np.float32)
        discount = np.ones(len(indices), dtype=np.float32)
        alive = np.ones(len(indices), dtype=bool)  # still looking ahead
        for taken in range(1, n_step + 1):
            returns += np.where(alive, discount * data['reward'][current], 0.0)
            discount = np.where(alive, discount * gamma, discount)
            if taken == n_step:
                break
            ended = data['terminated'][current] | data['truncated'][current]
            following = self._next[current]
            advance = alive & ~ended & (following >= 0)
            alive = advance
            current = np.where(advance, following, current)
        # current is the last step taken; it bootstraps from its own next state unless terminal
        terminal = data['terminated'][current]
        return Batch(
            observation=data['observation'][indices],
            base_action=data['base_action'][indices],
            executed_action=data['executed_action'][indices],
            human_action=data['human_action'][indices],
            human_axes=data['human_axes'][indices],
            intervened=data['intervened'][indices],
            n_step_return=returns,
            bootstrap_observation=data['next_observation'][current],
            bootstrap_base_action=data['next_base_action'][current],
            bootstrap_discount=np.where(terminal, 0.0, discount).astype(np.float32),
            **self._frames_of(indices, current))

    def _frames_of(self, indices: np.ndarray, bootstrap: np.ndarray) -> Dict[str, object]:
        """Return the Batch fields of camera frames (none for a buffer without cameras)."""
        if self.frames is None:
            return {}
        cameras = self.frames.cameras
        at, after = self.frames.frames(indices), self.frames.next_frames(bootstrap)
        return {'frames': tuple(at[camera] for camera in cameras),
                'bootstrap_frames': tuple(after[camera] for camera in cameras)}

    def _grow(self, size: int) -> None:
        shapes = {'observation': (self.obs_dim,), 'next_observation': (self.obs_dim,),
                  'base_action': (self.action_dim,), 'executed_action': (self.action_dim,),
                  'human_action': (self.action_dim,), 'human_axes': (self.action_dim,),
                  'next_base_action': (self.action_dim,), 'reward': (), 'terminated': (),
                  'truncated': (), 'intervened': ()}
        dtypes = {'terminated': bool, 'truncated': bool, 'intervened': bool, 'human_axes': bool}
        for name in FIELDS:
            grown = np.zeros((size,) + shapes[name], dtype=dtypes.get(name, np.float32))
            if name in self._data:
                grown[:self._size] = self._data[name][:self._size]
            self._data[name] = grown
        following = np.full(size, -1, dtype=np.int64)
        following[:self._size] = self._next[:self._size]
        self._next = following
        self._allocated = size


class MixedSampler:
    """
    Draw each batch from the buffers at fixed shares (RLPD's symmetric sampling).

    The intervention buffer (and the offline buffer of recorded runs, when one is mixed in)
    give their share of every batch; the online buffer gives the rest. An empty buffer gives
    nothing, and while the online buffer is empty the others fill the batch.
    """

    def __init__(self, online: ReplayBuffer, intervention: ReplayBuffer,
                 intervention_fraction: float = 0.5, offline: Optional[ReplayBuffer] = None,
                 offline_fraction: float = 0.0):
        for name, value in (('intervention_fraction', intervention_fraction),
                            ('offline_fraction', offline_fraction)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'{name} must be within [0, 1]')
        if intervention_fraction + offline_fraction > 1.0:
            raise ValueError('intervention_fraction + offline_fraction must not exceed 1')
        self.online, self.intervention, self.offline = online, intervention, offline
        self.intervention_fraction = intervention_fraction
        self.offline_fraction = offline_fraction

    def shares(self, batch_size: int) -> List[Tuple[ReplayBuffer, int]]:
        """Return (buffer, samples) for one batch, given what the buffers hold now."""
        shares = [(buffer, int(round(batch_size * fraction)))
                  for buffer, fraction in ((self.intervention, self.intervention_fraction),
                                           (self.offline, self.offline_fraction))
                  if buffer is not None and len(buffer)]
        rest = batch_size - sum(count for _, count in shares)
        if len(self.online):
            shares.insert(0, (self.online, rest))
        elif shares:  # nothing online yet: the last non-empty share takes the rest
            buffer, count = shares[-1]
            shares[-1] = (buffer, count + rest)
        return [(buffer, count) for buffer, count in shares if count > 0]

    def sample(self, batch_size: int, rng: np.random.Generator, n_step: int = 1,
               gamma: float = 0.99) -> Batch:
        """Return a batch drawn from the buffers at their shares."""
        shares = self.shares(batch_size)
        if not shares:
            raise ValueError('cannot sample: every replay buffer is empty')
        return concatenate([buffer.sample(count, rng, n_step, gamma)
                            for buffer, count in shares])


def concatenate(parts) -> Batch:
    """Join batches along the batch axis."""
    if len(parts) == 1:
        return parts[0]
    joined = {}
    for name in Batch.__dataclass_fields__:
        values = [getattr(part, name) for part in parts]
        if values[0] is None:
            joined[name] = None
        elif isinstance(values[0], tuple):  # one array per camera
            joined[name] = tuple(map(np.concatenate, zip(*values)))
        else:
            joined[name] = np.concatenate(values)
    return Batch(**joined)
