"""
Updates on a GPU in runs captured as CUDA graphs: sampling, critic, actor and targets at once.

An update of these small networks is a few hundred kernel launches of microseconds each, so
eager PyTorch is bound by the host, not the GPU. A run of ``updates_per_graph`` updates, each
drawing its batch on the device (device_replay) and stepping the critic, the actor when due
and the target networks, is captured once as a CUDA graph and then replayed with one call. A
graph is kept per plan (the buffers' shares and storage, which actor steps fall in the run, the
tensors it reads); when any of them changes a new one is captured, which happens a handful of
times in a run (a buffer's first step, a storage doubling, the end of the warm-up, a restored
checkpoint). Losses are read from the graph's outputs only when asked for. Torch only: no ROS.
"""

from typing import Dict, List, Tuple

import torch

from .device_replay import DeviceReplay


class GraphedUpdates:
    """Run a learner's updates on a CUDA device, in captured runs where it can."""

    def __init__(self, agent, replay: DeviceReplay, updates_per_graph: int = 8,
                 max_graphs: int = 16):
        if updates_per_graph < 0:
            raise ValueError('updates_per_graph must not be negative (0: no graphs)')
        self.agent = agent
        self.replay = replay
        self.updates_per_graph = updates_per_graph
        self.max_graphs = max_graphs
        self._graphs: Dict[Tuple, Tuple[torch.cuda.CUDAGraph, Dict[str, torch.Tensor]]] = {}
        self.captures = 0  # graphs captured so far (for tests and the benchmark)
        self._rehearsed = None  # the last setting run eagerly before its first capture

    def run(self, updates: int) -> Dict[str, torch.Tensor]:
        """Do ``updates`` updates; return the latest metrics as device tensors."""
        agent, config = self.agent, self.agent.config
        self.replay.sync()
        metrics: Dict[str, torch.Tensor] = {}
        done = 0
        setting = None  # what the graphs of this call read: the same for all of them
        while self.updates_per_graph and updates - done >= self.updates_per_graph:
            if not agent.ready_for_capture():  # optimiser state made, compiled code compiled
                metrics.update(agent.update_tensors(self._sample()))
                done += 1
                continue
            if setting is None:
                setting = (self.replay.plan(config.batch_size), self._storage())
            pattern = self._actor_steps(self.updates_per_graph)
            key = (setting, pattern)
            if key not in self._graphs and setting != self._rehearsed:
                # New shapes or tensors: whatever they make torch.compile compile again is
                # compiled in eager updates first, never inside a capture.
                for actor_step in pattern:
                    metrics.update(agent.update_tensors(self._sample(), actor_step=actor_step))
                done += len(pattern)
                self._rehearsed = setting
                continue
            if key not in self._graphs:
                if len(self._graphs) >= self.max_graphs:
                    self._graphs.clear()  # plans of the past: their memory goes back
                self._graphs[key] = self._capture(pattern)
            graph, outputs = self._graphs[key]
            graph.replay()
            agent.updates += len(pattern)
            agent.actor_updates += sum(pattern)
            metrics.update(outputs)
            done += len(pattern)
        for _ in range(updates - done):  # the rest, and everything before graphs can be made
            metrics.update(agent.update_tensors(self._sample()))
        return metrics

    def __getstate__(self) -> dict:
        """Return the state to pickle: captured graphs cannot be, and are captured again."""
        state = dict(self.__dict__)
        state['_graphs'], state['_rehearsed'] = {}, None
        return state

    def _sample(self) -> Dict[str, torch.Tensor]:
        config = self.agent.config
        return self.replay.sample(config.batch_size, config.n_step, config.gamma)

    def _actor_steps(self, count: int) -> Tuple[bool, ...]:
        """Return, for the next ``count`` updates, which of them step the actor."""
        return tuple(self.agent.actor_step_due(self.agent.updates + offset + 1)
                     for offset in range(count))

    def _storage(self) -> Tuple[int, ...]:
        """Return the addresses of what a graph reads and writes besides the replay."""
        agent = self.agent
        tensors: List[torch.Tensor] = []
        for module in (agent.actor, agent.critic, agent.actor_target, agent.critic_target):
            tensors += list(module.parameters()) + list(module.buffers())
        for optimizer in (agent.actor_optimizer, agent.critic_optimizer):
            for state in optimizer.state.values():
                tensors += [value for value in state.values() if torch.is_tensor(value)]
        return tuple(tensor.data_ptr() for tensor in tensors)

    def _capture(self, pattern: Tuple[bool, ...]):
        """Capture a run of updates with this pattern of actor steps; return graph, outputs."""
        agent = self.agent
        updates, actor_updates = agent.updates, agent.actor_updates
        torch.cuda.synchronize(self.replay.device)
        graph = torch.cuda.CUDAGraph()
        outputs: Dict[str, torch.Tensor] = {}
        with torch.cuda.graph(graph):
            for actor_step in pattern:
                outputs.update(agent.update_tensors(self._sample(), actor_step=actor_step))
        # Capturing ran nothing: the counters stay where they were.
        agent.updates, agent.actor_updates = updates, actor_updates
        self.captures += 1
        return graph, outputs
