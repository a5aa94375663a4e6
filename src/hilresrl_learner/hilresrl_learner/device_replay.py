"""
Replay on the learner's device: the buffers' arrays mirrored there, batches drawn there.

On a GPU, drawing a batch on the host and copying it over costs more than the update itself.
A DeviceReplay keeps a copy of each ReplayBuffer's arrays in device memory, brought up to date
before each run of updates by copying only the rows that changed since (new steps, and the
steps they were linked to), through pinned memory. Sampling, the n-step look-ahead and the
mix of buffers happen on the device with fixed shapes and no host synchronisation, so that
they can be captured in a CUDA graph together with the update (graphed_updates). The host
buffers stay what the learner stores and restores. Torch only: no ROS.
"""

from typing import Dict, List, Tuple

import torch

from .replay import MixedSampler, ReplayBuffer


class DeviceMirror:
    """One ReplayBuffer's arrays and episode links on a device, updated in batches."""

    def __init__(self, buffer: ReplayBuffer, device: torch.device):
        self.buffer = buffer
        self.device = device
        self.tensors: Dict[str, torch.Tensor] = {}
        # How many steps the mirror holds, on the device, for sampling inside a graph.
        self.size = torch.zeros((), dtype=torch.long, device=device)
        # Bumped when the storage is reallocated: graphs that read the old one are stale.
        self.generation = 0
        self._allocated = 0

    def sync(self) -> None:
        """Copy the rows that changed since the last time (none changed: nothing is copied)."""
        start, stop = self.buffer.take_changed_rows()
        if self._allocated < self.buffer.allocated:
            self._allocate(self.buffer.allocated)
            start = 0  # a fresh storage: everything
        if stop <= start:
            return
        for name, array in self.buffer.arrays(start, stop).items():
            source = torch.from_numpy(array)
            if self.device.type == 'cuda':
                source = source.pin_memory()
            self.tensors[name][start:stop].copy_(source, non_blocking=True)
        self.size.fill_(stop)

    def _allocate(self, rows: int) -> None:
        self.tensors = {name: torch.zeros((rows,) + array.shape[1:],
                                          dtype=torch.from_numpy(array[:0]).dtype,
                                          device=self.device)
                        for name, array in self.buffer.arrays(0, 0).items()}
        self._allocated = rows
        self.generation += 1

    def sample(self, count: int, n_step: int, gamma: float) -> Dict[str, torch.Tensor]:
        """Return ``count`` steps drawn uniformly, with n-step returns, as device tensors."""
        # rand * size, not randint: the size lives on the device, read by a replayed graph.
        indices = (torch.rand(count, device=self.device) * self.size).long()
        indices = torch.minimum(indices, self.size - 1)
        return self.gather(indices, n_step, gamma)

    def gather(self, indices: torch.Tensor, n_step: int, gamma: float
               ) -> Dict[str, torch.Tensor]:
        """Return the steps at ``indices`` with n-step returns (ReplayBuffer.gather's rule)."""
        data = self.tensors
        current = indices
        returns = torch.zeros(len(indices), device=self.device)
        discount = torch.ones(len(indices), device=self.device)
        alive = torch.ones(len(indices), dtype=torch.bool, device=self.device)
        for taken in range(1, n_step + 1):
            returns = returns + torch.where(alive, discount * data['reward'][current], 0.0)
            discount = torch.where(alive, discount * gamma, discount)
            if taken == n_step:
                break
            ended = data['terminated'][current] | data['truncated'][current]
            following = data['next_index'][current]
            alive = alive & ~ended & (following >= 0)
            current = torch.where(alive, following, current)
        terminal = data['terminated'][current]
        return {
            'observation': data['observation'][indices],
            'base_action': data['base_action'][indices],
            'executed_action': data['executed_action'][indices],
            'human_action': data['human_action'][indices],
            'human_axes': data['human_axes'][indices],
            'intervened': data['intervened'][indices],
            'n_step_return': returns,
            'bootstrap_observation': data['next_observation'][current],
            'bootstrap_base_action': data['next_base_action'][current],
            'bootstrap_discount': torch.where(terminal, 0.0, discount)}


class DeviceReplay:
    """The learner's buffers mirrored on a device, sampled at the MixedSampler's shares."""

    def __init__(self, sampler: MixedSampler, device: torch.device):
        self.sampler = sampler
        self.device = torch.device(device)
        self._mirrors: Dict[int, DeviceMirror] = {}

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
        parts = [self._mirror(buffer).sample(count, n_step, gamma) for buffer, count in shares]
        if len(parts) == 1:
            return parts[0]
        return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}

    def _buffers(self) -> List[ReplayBuffer]:
        return [buffer for buffer in (self.sampler.online, self.sampler.intervention,
                                      self.sampler.offline) if buffer is not None]

    def _mirror(self, buffer: ReplayBuffer) -> DeviceMirror:
        if id(buffer) not in self._mirrors:
            self._mirrors[id(buffer)] = DeviceMirror(buffer, self.device)
        return self._mirrors[id(buffer)]
