"""
Camera frames of replayed steps, each stored once as uint8 and referred to by index.

A step's next observation is the following step's observation: with images that frame would be
stored twice, and frames are most of a replay's memory (two 128x128 cameras: 98 KB per step).
StepFrames keeps, per camera, one array of frames and per step the index of its frame and of
its next frame; a step that follows the last one of its episode reuses that step's next frame
when it is the same image. No ROS, no torch.
"""

from typing import Dict, Hashable, Mapping, Sequence, Tuple

import numpy as np


class FrameStore:
    """Frames of one camera in arrival order, growing by doubling up to a capacity."""

    def __init__(self, shape: Tuple[int, ...], capacity: int = 2_000_000,
                 initial_size: int = 1024):
        self.shape, self.capacity = tuple(shape), capacity
        self._frames = np.zeros((min(initial_size, capacity),) + self.shape, dtype=np.uint8)
        self._size = 0

    def __len__(self) -> int:
        """Return the number of frames stored."""
        return self._size

    @property
    def nbytes(self) -> int:
        """Return the bytes the stored frames take."""
        return self._size * int(np.prod(self.shape))

    def check(self, frame: np.ndarray, camera: str = 'this camera') -> None:
        """Raise ValueError unless ``frame`` is a uint8 array of this store's shape."""
        frame = np.asarray(frame)
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(f'a frame of shape {frame.shape} and type {frame.dtype}; '
                             f'{camera} stores uint8 frames of shape {self.shape}')

    def add(self, frame: np.ndarray) -> int:
        """Store a frame (uint8, this store's shape); return its index."""
        frame = np.asarray(frame)
        self.check(frame)
        if self._size == self.capacity:
            raise OverflowError(f'frame store full ({self.capacity} frames)')
        if self._size == len(self._frames):
            grown = np.zeros((min(self.capacity, 2 * len(self._frames)),) + self.shape,
                             dtype=np.uint8)
            grown[:self._size] = self._frames[:self._size]
            self._frames = grown
        self._frames[self._size] = frame
        self._size += 1
        return self._size - 1

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Return the frames at ``indices`` (a copy), shape (len(indices),) + shape."""
        return self._frames[np.asarray(indices)]

    def between(self, start: int, stop: int) -> np.ndarray:
        """Return the frames stored at ``start`` to ``stop`` (a view, for a device mirror)."""
        return self._frames[start:stop]


class StepFrames:
    """Per step of a replay buffer, each camera's frame and next frame, stored once."""

    def __init__(self, cameras: Sequence[str], shape: Tuple[int, ...],
                 capacity: int = 1_000_000):
        self.cameras = tuple(cameras)
        # Up to two frames per step (an episode's last step brings its final frame too).
        self.stores = {camera: FrameStore(shape, 2 * capacity) for camera in self.cameras}
        self._frame = {camera: np.zeros(0, dtype=np.int64) for camera in self.cameras}
        self._next_frame = {camera: np.zeros(0, dtype=np.int64) for camera in self.cameras}
        self._size = 0
        # episode -> (step, next frame index per camera) of its last stored step
        self._last_of_episode: Dict[Hashable, Tuple[int, Dict[str, int]]] = {}

    def __len__(self) -> int:
        """Return the number of steps."""
        return self._size

    @property
    def nbytes(self) -> int:
        """Return the bytes the stored frames and their indices take."""
        return sum(store.nbytes for store in self.stores.values()) + 16 * self._size * len(
            self.cameras)

    def add(self, episode: Hashable, step: int, frames: Mapping[str, np.ndarray],
            next_frames: Mapping[str, np.ndarray], ended: bool) -> int:
        """
        Store the frames of step ``step`` of ``episode``; return the step's index.

        Steps are indexed in the order they are added, as ReplayBuffer.add indexes them.
        """
        missing = [camera for camera in self.cameras
                   if camera not in frames or camera not in next_frames]
        if missing:
            raise ValueError(f'no frame from camera(s) {", ".join(missing)}')
        for camera in self.cameras:  # all checked before any is stored
            for frame in (frames[camera], next_frames[camera]):
                self.stores[camera].check(frame, camera)
        if self._size == len(self._frame[self.cameras[0]]):
            self._grow(max(1024, 2 * self._size))
        previous = self._last_of_episode.get(episode)
        follows = previous is not None and previous[0] == step - 1
        next_indices = {}
        for camera in self.cameras:
            store = self.stores[camera]
            frame = np.asarray(frames[camera])
            if follows and np.array_equal(store.get(previous[1][camera]), frame):
                frame_index = previous[1][camera]  # the previous step's next frame: shared
            else:
                frame_index = store.add(frame)
            self._frame[camera][self._size] = frame_index
            next_indices[camera] = store.add(np.asarray(next_frames[camera]))
            self._next_frame[camera][self._size] = next_indices[camera]
        self._last_of_episode[episode] = (step, next_indices)
        if ended:
            self._last_of_episode.pop(episode, None)
        self._size += 1
        return self._size - 1

    def frames(self, indices: np.ndarray) -> Dict[str, np.ndarray]:
        """Return each camera's frames of the steps at ``indices``."""
        return {camera: self.stores[camera].get(self._frame[camera][indices])
                for camera in self.cameras}

    def next_frames(self, indices: np.ndarray) -> Dict[str, np.ndarray]:
        """Return each camera's next frames of the steps at ``indices`` (bootstrap states)."""
        return {camera: self.stores[camera].get(self._next_frame[camera][indices])
                for camera in self.cameras}

    def frame_indices(self, start: int, stop: int) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """Return per camera the frame and next frame indices of steps ``start`` to ``stop``."""
        return {camera: (self._frame[camera][start:stop], self._next_frame[camera][start:stop])
                for camera in self.cameras}

    def _grow(self, size: int) -> None:
        for table in (self._frame, self._next_frame):
            for camera in self.cameras:
                grown = np.zeros(size, dtype=np.int64)
                grown[:self._size] = table[camera][:self._size]
                table[camera] = grown
