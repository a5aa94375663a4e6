"""
Replay on the learner's device: the buffers' arrays mirrored there, batches drawn there.

On a GPU, drawing a batch on the host and copying it over costs more than the update itself.
A DeviceReplay keeps a copy of each ReplayBuffer's arrays in device memory (packed in two
matrices per buffer, so that a batch is a few gathers), brought up to date
before each run of updates by copying only the rows that changed since (new steps, and the
steps they were linked to), through pinned memory. Sampling, the n-step look-ahead and the
mix of buffers happen on the device with fixed shapes and no host synchronisation, so that
they can be captured in a CUDA graph together with the update (graphed_updates). Camera frames
are mirrored too (uint8, each once, as the buffer's frame stores hold them) and gathered by the
frame indices the links carry. The host buffers stay what the learner stores and restores.
Torch only: no ROS.
"""

from typing import Dict, List, Tuple

import numpy as np
import torch

from .replay import MixedSampler, ReplayBuffer


# A step's fields in one float row, the bootstrap's last so that they are one slice; a batch is
# then one gather per set of indices instead of one per field (kernel launches bound a GPU
# update of these small networks). Flags travel as 0.0 and 1.0.
ROW_FIELDS = ('observation', 'base_action', 'executed_action', 'human_action', 'human_axes',
              'intervened', 'next_observation', 'next_base_action')
BOOTSTRAP_FIELDS = ('next_observation', 'next_base_action')
# What the n-step look-ahead reads, in float64 so that row numbers stay exact: the reward, the
# terminal flag, and the row the look-ahead goes on to (-1 where the episode ends there or its
# next step has not arrived).
LINK_FIELDS = ('reward', 'terminated', 'continue_to')


def gather_rows(rows: torch.Tensor, links: torch.Tensor, indices: torch.Tensor,
                bootstrap_start: int, n_step: int, gamma: float,
                frames: Tuple[torch.Tensor, ...] = ()) -> Tuple[torch.Tensor, ...]:
    """
    Return (rows, bootstrap rows, n-step returns, bootstrap discounts) for ``indices``.

    The n-step look-ahead of ReplayBuffer.gather: rewards summed while the episode goes on
    (continue_to >= 0), then the state of the last step taken, unless it was terminal. A pure
    function of tensors, so that torch.compile can fuse it into a few kernels. With cameras,
    ``frames`` holds each camera's frames (uint8, one row per stored frame) and the result
    goes on with each camera's frames of the steps, then each one's bootstrap frames (the next
    frame of the last step taken), by the frame indices in ``links`` after LINK_FIELDS.
    """
    current = indices
    returns = torch.zeros(len(indices), dtype=torch.float64, device=rows.device)
    discount = torch.ones(len(indices), dtype=torch.float64, device=rows.device)
    alive = torch.ones(len(indices), dtype=torch.bool, device=rows.device)
    for taken in range(1, n_step + 1):
        link = links[current]
        returns = returns + torch.where(alive, discount * link[:, 0], 0.0)
        discount = torch.where(alive, discount * gamma, discount)
        if taken == n_step:
            break
        alive = alive & (link[:, 2] >= 0)
        current = torch.where(alive, link[:, 2].long(), current)
    terminal = link[:, 1] > 0  # of the last step taken: the last row looked up
    packed = (rows[indices], rows[:, bootstrap_start:][current], returns.float(),
              torch.where(terminal, 0.0, discount).float())
    if not frames:
        return packed
    first = len(LINK_FIELDS)  # then per camera: frame index, next frame index
    at = tuple(store[links[indices, first + 2 * camera].long()]
               for camera, store in enumerate(frames))
    after = tuple(store[links[current, first + 2 * camera + 1].long()]
                  for camera, store in enumerate(frames))
    return packed + at + after


def draw_rows(uniform: torch.Tensor, shares: Tuple[tuple, ...], bootstrap_start: int,
              n_step: int, gamma: float) -> Tuple[torch.Tensor, ...]:
    """
    Return a packed batch drawn from several mirrors: (rows, links, size, count) per share.

    ``uniform`` holds one number in [0, 1) per sample, the shares' in order; a share's samples
    are uniform over its mirror's ``size`` steps. A share of a mirror with cameras has its
    frames fifth (gather_rows' ``frames``).
    """
    parts, start = [], 0
    for rows, links, size, count, *frames in shares:
        indices = torch.minimum((uniform[start:start + count] * size).long(), size - 1)
        parts.append(gather_rows(rows, links, indices, bootstrap_start, n_step, gamma,
                                 frames[0] if frames else ()))
        start += count
    return parts[0] if len(parts) == 1 else tuple(map(torch.cat, zip(*parts)))


class DeviceMirror:
    """One ReplayBuffer's steps on a device, packed in two matrices, updated in batches."""

    def __init__(self, buffer: ReplayBuffer, device: torch.device):
        self.buffer = buffer
        self.device = device
        self.rows = torch.zeros(0, 0, device=device)
        self.links = torch.zeros(0, len(LINK_FIELDS), dtype=torch.float64, device=device)
        # Column slices of rows and links by field name (views).
        self.tensors: Dict[str, torch.Tensor] = {}
        self._columns: Dict[str, slice] = {}
        self._bootstrap = slice(0, 0)
        # How many steps the mirror holds, on the device, for sampling inside a graph.
        self.size = torch.zeros((), dtype=torch.long, device=device)
        # Bumped when the storage is reallocated: graphs that read the old one are stale.
        self.generation = 0
        self._allocated = 0
        # gather_rows, or the same through torch.compile (DeviceReplay's compile_gather).
        self.gather_function = gather_rows
        # With cameras: each camera's frames, copied as they are stored (uint8), in order.
        self.cameras = buffer.frames.cameras if buffer.frames is not None else ()
        self.frames: Tuple[torch.Tensor, ...] = ()
        self._frames_copied = [0] * len(self.cameras)

    def sync(self) -> None:
        """Copy the rows that changed since the last time (none changed: nothing is copied)."""
        start, stop = self.buffer.take_changed_rows()
        if self._allocated < self.buffer.allocated:
            self._allocate(self.buffer.allocated)
            start = 0  # a fresh storage: everything
        if stop <= start:
            return
        arrays = self.buffer.arrays(start, stop)
        rows = np.concatenate([arrays[name].reshape(stop - start, -1).astype(np.float32)
                               for name in ROW_FIELDS], axis=1)
        ended = arrays['terminated'] | arrays['truncated']
        columns = [arrays['reward'], arrays['terminated'],
                   np.where(ended, -1, arrays['next_index'])]
        if self.cameras:
            self._copy_frames()
            indices = self.buffer.frames.frame_indices(start, stop)
            for camera in self.cameras:
                columns += indices[camera]
        links = np.stack(columns, axis=1).astype(np.float64)
        for target, source in ((self.rows, rows), (self.links, links)):
            source = torch.from_numpy(source)
            if self.device.type == 'cuda':
                source = source.pin_memory()
            target[start:stop].copy_(source, non_blocking=True)
        self.size.fill_(stop)

    def _copy_frames(self) -> None:
        """Copy the frames stored since the last time (growing each camera's storage)."""
        frames = list(self.frames) or [None] * len(self.cameras)
        for camera, name in enumerate(self.cameras):
            store = self.buffer.frames.stores[name]
            start, stop = self._frames_copied[camera], len(store)
            if frames[camera] is None or len(frames[camera]) < stop:
                grown = torch.zeros((max(1024, 2 * stop),) + store.shape, dtype=torch.uint8,
                                    device=self.device)
                if frames[camera] is not None:
                    grown[:start] = frames[camera][:start]
                frames[camera] = grown
                self.generation += 1  # graphs that gather from the old storage are stale
            if stop > start:
                source = torch.from_numpy(store.between(start, stop))
                if self.device.type == 'cuda':
                    source = source.pin_memory()
                frames[camera][start:stop].copy_(source, non_blocking=True)
            self._frames_copied[camera] = stop
        self.frames = tuple(frames)

    def _allocate(self, rows: int) -> None:
        empty = self.buffer.arrays(0, 0)
        widths = {name: int(np.prod(empty[name].shape[1:], dtype=int)) for name in ROW_FIELDS}
        self.rows = torch.zeros(rows, sum(widths.values()), device=self.device)
        self.links = torch.zeros(rows, len(LINK_FIELDS) + 2 * len(self.cameras),
                                 dtype=torch.float64, device=self.device)
        self.tensors, offset = {}, 0
        for name in ROW_FIELDS:
            self._columns[name] = slice(offset, offset + widths[name])
            self.tensors[name] = self.rows[:, offset] if not empty[name].shape[1:] else \
                self.rows[:, offset:offset + widths[name]]
            offset += widths[name]
        for column, name in enumerate(LINK_FIELDS):
            self.tensors[name] = self.links[:, column]
        self._bootstrap = slice(self._columns[BOOTSTRAP_FIELDS[0]].start, offset)
        self._allocated = rows
        self.generation += 1

    @property
    def bootstrap_start(self) -> int:
        """Return the first column of the bootstrap fields in ``rows``."""
        return self._bootstrap.start

    def sample(self, count: int, n_step: int, gamma: float) -> Dict[str, torch.Tensor]:
        """Return ``count`` steps drawn uniformly, with n-step returns, as device tensors."""
        # rand * size, not randint: the size lives on the device, read by a replayed graph.
        return self.unpack(draw_rows(torch.rand(count, device=self.device),
                                     (self.share(count),), self.bootstrap_start, n_step,
                                     gamma))

    def share(self, count: int) -> tuple:
        """Return what draw_rows takes of this mirror for ``count`` samples."""
        if self.cameras:
            return self.rows, self.links, self.size, count, self.frames
        return self.rows, self.links, self.size, count

    def gather(self, indices: torch.Tensor, n_step: int, gamma: float
               ) -> Dict[str, torch.Tensor]:
        """Return the steps at ``indices`` with n-step returns (ReplayBuffer.gather's rule)."""
        return self.unpack(self.gather_packed(indices, n_step, gamma))

    def gather_packed(self, indices: torch.Tensor, n_step: int, gamma: float
                      ) -> Tuple[torch.Tensor, ...]:
        """Return (rows, bootstrap rows, n-step returns, bootstrap discounts) for ``indices``."""
        if n_step < 1:
            raise ValueError('n_step must be at least 1')
        return self.gather_function(self.rows, self.links, indices, self._bootstrap.start,
                                    n_step, gamma, self.frames)

    def unpack(self, packed: Tuple[torch.Tensor, ...]) -> Dict[str, torch.Tensor]:
        """Return a packed batch as the learner's fields by name (views, no copies)."""
        rows, bootstrap, returns, discount = packed[:4]
        columns = self._columns
        fields = {name: rows[:, columns[name]] for name in ROW_FIELDS[:6]}
        fields['intervened'] = fields['intervened'][:, 0]
        offset = columns[BOOTSTRAP_FIELDS[0]].start
        bootstrap_columns = {name: slice(columns[name].start - offset,
                                         columns[name].stop - offset)
                             for name in BOOTSTRAP_FIELDS}
        fields.update(
            n_step_return=returns,
            bootstrap_observation=bootstrap[:, bootstrap_columns['next_observation']],
            bootstrap_base_action=bootstrap[:, bootstrap_columns['next_base_action']],
            bootstrap_discount=discount)
        if self.cameras:
            cameras = len(self.cameras)
            fields['frames'] = list(packed[4:4 + cameras])
            fields['bootstrap_frames'] = list(packed[4 + cameras:])
        return fields


class DeviceReplay:
    """The learner's buffers mirrored on a device, sampled at the MixedSampler's shares."""

    def __init__(self, sampler: MixedSampler, device: torch.device,
                 compile_gather: bool = False):
        self.sampler = sampler
        self.device = torch.device(device)
        self._mirrors: Dict[int, DeviceMirror] = {}
        # The look-ahead, gathers and joining of the shares fused by torch.compile: a few
        # kernels instead of dozens per batch.
        self._draw_function = torch.compile(draw_rows) if compile_gather else draw_rows

    def sync(self) -> None:
        """Bring every buffer's mirror up to date."""
        for buffer in self._buffers():
            self._mirror(buffer).sync()

    def plan(self, batch_size: int) -> Tuple[Tuple[int, int, int], ...]:
        """
        Return what a batch draws now: (buffer id, samples, storage generation) per share.

        While it stays the same, a graph captured for it stays valid.
        """
        return tuple((id(buffer), count, self._mirror(buffer).generation)
                     for buffer, count in self.sampler.shares(batch_size))

    def sample(self, batch_size: int, n_step: int, gamma: float) -> Dict[str, torch.Tensor]:
        """Return a batch at the buffers' shares, drawn on the device (sync first)."""
        shares = self.sampler.shares(batch_size)
        if not shares:
            raise ValueError('cannot sample: every replay buffer is empty')
        mirrors = [self._mirror(buffer) for buffer, _ in shares]
        # One draw for the whole batch, outside torch.compile: a CUDA graph replays it anew.
        uniform = torch.rand(batch_size, device=self.device)
        packed = self._draw_function(
            uniform, tuple(mirror.share(count) for mirror, (_, count) in zip(mirrors, shares)),
            mirrors[0].bootstrap_start, n_step, gamma)
        return mirrors[0].unpack(packed)

    def _buffers(self) -> List[ReplayBuffer]:
        return [buffer for buffer in (self.sampler.online, self.sampler.intervention,
                                      self.sampler.offline) if buffer is not None]

    def _mirror(self, buffer: ReplayBuffer) -> DeviceMirror:
        if id(buffer) not in self._mirrors:
            self._mirrors[id(buffer)] = DeviceMirror(buffer, self.device)
        return self._mirrors[id(buffer)]
