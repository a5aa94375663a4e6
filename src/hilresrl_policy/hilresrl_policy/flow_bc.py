"""
Flow-matching behaviour cloning: a generative policy whose action comes from a steerable latent.

A velocity MLP on (x_t, t, task state), trained with the rectified-flow objective and saved as
model.safetensors plus config.json (nothing unpickled); sampling is K Euler steps. No ROS.
"""

from dataclasses import asdict, dataclass, field
import math
import pathlib
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .model_checkpoint import CheckpointFormat, load_model, PathLike, save_model

CHECKPOINT_FORMAT = 'hilresrl-flow'
FORMAT_VERSION = 1
KIND = 'flow_mlp'
DEFAULT_STEPS = 8
# Frequencies of the sinusoidal features of the flow time t: t alone is one input among ~50,
# and the velocity field changes shape along t, so the network gets it in a few forms.
_TIME_FREQUENCIES = (1.0, 2.0, 4.0, 8.0)
# Other checkpoints of the suite, so that a wrong one is named and the way out is given,
# rather than only that it is not ours.
FLOW_FORMAT = CheckpointFormat(
    CHECKPOINT_FORMAT, FORMAT_VERSION, 'flow', 'a flow-matching policy',
    {'hilresrl-bc': ('a behaviour-cloning (regression) checkpoint',
                     "load it with the 'bc' base policy, or build a flow one with "
                     'base_policy_builder --kind flow')})


@dataclass(frozen=True)
class FlowConfig:
    """
    The shape of a flow policy: the state it reads, the action it generates, its size.

    The latent (the noise the action is generated from) has ``action_dim`` values; ``steps``
    is the fixed number of Euler steps from the latent (t = 0) to the action (t = 1).
    """

    state_dim: int = 0
    action_dim: int = 4
    hidden_sizes: Tuple[int, ...] = (256, 256, 256)
    steps: int = DEFAULT_STEPS
    task: str = ''
    kind: str = KIND

    def __post_init__(self):
        # Tuples whatever was passed, so that configs compare equal after a JSON round trip.
        object.__setattr__(self, 'hidden_sizes', tuple(int(size) for size in self.hidden_sizes))
        if self.kind != KIND:
            raise ValueError(f'kind must be {KIND!r}, got {self.kind!r}')
        if self.state_dim < 1 or self.action_dim < 1:
            raise ValueError(f'need state_dim >= 1 and action_dim >= 1, got {self.state_dim} '
                             f'and {self.action_dim}')
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f'hidden_sizes must be positive, got {self.hidden_sizes}')
        if self.steps < 1:
            raise ValueError(f'steps must be at least 1, got {self.steps}')

    @property
    def latent_dim(self) -> int:
        """Return the size of the latent: one value per action axis."""
        return self.action_dim

    def to_dict(self) -> Dict[str, Any]:
        """Return the config as JSON-friendly values."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> 'FlowConfig':
        """Make a config from ``to_dict`` output; unknown keys are an error."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f'unknown flow config keys: {", ".join(sorted(unknown))}')
        return cls(**values)


class FlowPolicy(nn.Module):
    """
    A velocity field v(x_t, t, state) and the sampler that integrates it from a latent.

    The state is normalized with the training data's mean and standard deviation, kept as
    buffers so that they travel with the weights.
    """

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        self.register_buffer('state_mean', torch.zeros(config.state_dim))
        self.register_buffer('state_std', torch.ones(config.state_dim))
        self.register_buffer('time_frequencies',
                             torch.tensor(_TIME_FREQUENCIES, dtype=torch.float32) * math.pi,
                             persistent=False)  # a constant of the code, not a weight
        features = config.action_dim + 1 + 2 * len(_TIME_FREQUENCIES) + config.state_dim
        layers = []
        for hidden in config.hidden_sizes:
            # LayerNorm keeps the raw action and time inputs from being drowned out by the
            # normalized state, and training stable at a high learning rate.
            layers += [nn.Linear(features, hidden), nn.LayerNorm(hidden), nn.SiLU()]
            features = hidden
        layers.append(nn.Linear(features, config.action_dim))
        self.velocity_head = nn.Sequential(*layers)

    def set_normalization(self, states: np.ndarray) -> None:
        """Take the state normalization from training states (N, state_dim)."""
        mean = np.mean(states, axis=0)
        std = np.std(states, axis=0)
        # A value constant in training (padding, a fixed goal) must not be blown up when it
        # moves a little at run time.
        std = np.where(std > 1e-6, std, 1.0)
        self.state_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.state_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Return the velocity (B, A) at points x_t (B, A), times t (B,) and states (B, S)."""
        return self._velocity(x_t, t, (state - self.state_mean) / self.state_std)

    def _velocity(self, x_t: torch.Tensor, t: torch.Tensor,
                  normalized_state: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1, 1)
        angles = t * self.time_frequencies
        inputs = torch.cat([x_t, t, torch.sin(angles), torch.cos(angles), normalized_state],
                           dim=1)
        return self.velocity_head(inputs)

    def sample(self, state: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """
        Return the actions (B, A) generated from latents (B, A) for states (B, S).

        Integrates dx/dt = v(x, t, state) from x = latent at t = 0 to t = 1 with
        ``config.steps`` Euler steps, then clips to [-1, 1]: no randomness, so the same latent
        and state give the same action. Differentiable (no gradient mode is forced).
        """
        if latent.shape != (state.shape[0], self.config.latent_dim):
            raise ValueError(f'latent must be ({state.shape[0]}, {self.config.latent_dim}), '
                             f'got {tuple(latent.shape)}')
        normalized = (state - self.state_mean) / self.state_std
        steps = self.config.steps
        x = latent
        for step in range(steps):
            t = torch.full((len(x),), step / steps, dtype=x.dtype, device=x.device)
            x = x + self._velocity(x, t, normalized) / steps
        return torch.clamp(x, -1.0, 1.0)

    @torch.inference_mode()
    def act(self, state: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """
        Return float32 actions for numpy inputs, one observation or a batch.

        One state (state_dim,) and latent (action_dim,) give (action_dim,); batches (B, ...)
        give (B, action_dim).
        """
        states = np.asarray(state, dtype=np.float32)
        latents = np.asarray(latent, dtype=np.float32)
        single = states.ndim == 1
        states = states.reshape(-1, states.shape[-1])
        latents = latents.reshape(-1, latents.shape[-1])
        if states.shape[1] != self.config.state_dim:
            raise ValueError(f'expected a state of {self.config.state_dim} values, got '
                             f'{states.shape[1]}')
        if latents.shape != (len(states), self.config.latent_dim):
            raise ValueError(f'expected latents ({len(states)}, {self.config.latent_dim}) for '
                             f'{len(states)} states, got {latents.shape}')
        device = self.state_mean.device
        actions = self.sample(torch.from_numpy(states).to(device),
                              torch.from_numpy(latents).to(device))
        actions = actions.cpu().numpy().astype(np.float32)
        return actions[0] if single else actions


@dataclass
class FlowCheckpoint:
    """A loaded checkpoint: the policy, the metadata stored with it and the weights' digest."""

    model: FlowPolicy
    metadata: Dict[str, Any] = field(default_factory=dict)
    sha256: str = ''
    directory: Optional[pathlib.Path] = None


def train_flow(states: np.ndarray, actions: np.ndarray, *,
               hidden_sizes: Sequence[int] = (256, 256, 256), steps: int = DEFAULT_STEPS,
               epochs: int = 100, batch_size: int = 256, learning_rate: float = 1e-3,
               seed: int = 0, task: str = '', device: str = 'cpu',
               num_threads: Optional[int] = 1,
               progress: Optional[Callable[[int, float], None]] = None) -> FlowPolicy:
    """
    Fit a flow policy to (state, action) pairs with the rectified-flow objective, with Adam.

    states: (N, state_dim) float; actions: (N, action_dim) in [-1, 1]. Each batch draws
    x_0 ~ N(0, I) and t ~ U(0, 1) and regresses v(x_t, t, state) on x_1 - x_0 at
    x_t = (1 - t) x_0 + t x_1. The same inputs and seed give the same policy.
    ``num_threads`` limits torch's CPU threads while training (None: leave them);
    ``progress(epoch, mean_loss)`` is called after each epoch. Returned in eval mode.
    """
    actions = np.asarray(actions, dtype=np.float32)
    states = np.asarray(states, dtype=np.float32)
    if actions.ndim != 2 or len(actions) == 0:
        raise ValueError(f'actions must be (N, action_dim) with N > 0, got {actions.shape}')
    if states.ndim != 2 or len(states) != len(actions):
        raise ValueError(f'states must be ({len(actions)}, state_dim), got {states.shape}')
    if epochs < 1 or batch_size < 1:
        raise ValueError(f'epochs and batch_size must be positive, got {epochs}, {batch_size}')
    config = FlowConfig(state_dim=states.shape[1], action_dim=actions.shape[1],
                        hidden_sizes=tuple(hidden_sizes), steps=steps, task=task)
    # The seed alone decides the initial weights, the batches, the noise and the times,
    # whatever else the process does with torch's global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FlowPolicy(config)
    model.set_normalization(states)
    model.to(device)
    threads = torch.get_num_threads()
    if num_threads is not None:
        # As in bc.train_bc: a small network gains nothing from more threads, and OpenMP
        # threads spinning against a busy core slow every step down many times.
        torch.set_num_threads(num_threads)
    try:
        _fit(model, torch.from_numpy(states).to(device), torch.from_numpy(actions).to(device),
             epochs, batch_size, learning_rate, seed, progress)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return model


def _fit(model, states, actions, epochs, batch_size, learning_rate, seed, progress) -> None:
    count, action_dim = actions.shape
    device = actions.device
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    # Drawn on the CPU so that a seed gives the same run on any device.
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(count, generator=generator).to(device)
        total = 0.0
        for start in range(0, count, batch_size):
            batch = order[start:start + batch_size]
            x_1 = actions[batch]
            x_0 = torch.randn(len(batch), action_dim, generator=generator).to(device)
            t = torch.rand(len(batch), generator=generator).to(device)
            x_t = (1.0 - t[:, None]) * x_0 + t[:, None] * x_1
            loss = torch.mean((model(x_t, t, states[batch]) - (x_1 - x_0)) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        if progress is not None:
            progress(epoch, total / count)


def save_flow_checkpoint(directory: PathLike, model: FlowPolicy,
                         metadata: Optional[Dict[str, Any]] = None) -> pathlib.Path:
    """
    Write ``model`` to ``directory`` as model.safetensors and config.json, atomically.

    ``metadata`` (plain JSON) is stored in config.json. An existing directory is replaced only
    if it holds nothing but a checkpoint (see model_checkpoint.save_model).
    """
    return save_model(directory, model, model.config.to_dict(), FLOW_FORMAT, metadata)


def load_flow_checkpoint(directory: PathLike, device: str = 'cpu') -> FlowCheckpoint:
    """
    Read a checkpoint written by ``save_flow_checkpoint``, in eval mode on ``device``.

    Reads JSON and safetensors only. Raises CheckpointError naming the file for a missing or
    corrupt file, a checkpoint of another kind (a BC one, say), or weights that do not match
    config.json.
    """
    loaded = load_model(directory, FLOW_FORMAT,
                        lambda values: FlowPolicy(FlowConfig.from_dict(values)), device)
    return FlowCheckpoint(model=loaded.model, metadata=loaded.metadata, sha256=loaded.sha256,
                          directory=pathlib.Path(directory))
