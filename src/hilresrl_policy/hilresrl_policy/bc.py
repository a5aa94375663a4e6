"""
Behaviour cloning: a small network that imitates demonstrated actions, and its checkpoints.

An MLP on the task state, or a small CNN on one camera image (and optionally the state). A
checkpoint is model.safetensors plus config.json, read without unpickling anything. No ROS.
"""

from dataclasses import asdict, dataclass, field
import pathlib
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .model_checkpoint import CheckpointFormat, load_model, PathLike, save_model

CHECKPOINT_FORMAT = 'hilresrl-bc'
FORMAT_VERSION = 1
BC_FORMAT = CheckpointFormat(CHECKPOINT_FORMAT, FORMAT_VERSION, 'BC')
KINDS = ('mlp', 'cnn')
IMAGE_PREFIX = 'image/'


@dataclass(frozen=True)
class BCConfig:
    """
    The shape of a BC network: what it reads and how big it is.

    kind 'mlp' reads a state of ``state_dim`` values; kind 'cnn' reads the camera image
    ``image_key`` ('image/<camera>', H x W x 3 uint8 of ``image_shape``) and, when
    ``state_dim`` > 0, the state as well.
    """

    kind: str = 'mlp'
    state_dim: int = 0
    action_dim: int = 4
    hidden_sizes: Tuple[int, ...] = (256, 256)
    image_key: str = ''
    image_shape: Tuple[int, ...] = ()
    conv_channels: Tuple[int, ...] = (16, 32, 32)
    task: str = ''

    def __post_init__(self):
        # Stored as tuples whatever was passed, so that configs compare equal after a round
        # trip through JSON (which has only lists).
        for name in ('hidden_sizes', 'image_shape', 'conv_channels'):
            object.__setattr__(self, name, tuple(int(value) for value in getattr(self, name)))
        if self.kind not in KINDS:
            raise ValueError(f'kind must be one of {", ".join(KINDS)}, got {self.kind!r}')
        if self.action_dim < 1 or self.state_dim < 0:
            raise ValueError(f'need action_dim >= 1 and state_dim >= 0, got {self.action_dim} '
                             f'and {self.state_dim}')
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f'hidden_sizes must be positive, got {self.hidden_sizes}')
        if self.kind == 'mlp' and self.state_dim < 1:
            raise ValueError('an mlp reads a state: state_dim must be at least 1')
        if self.kind == 'cnn':
            if not self.image_key.startswith(IMAGE_PREFIX):
                raise ValueError(f'a cnn reads an image: image_key must be '
                                 f"'{IMAGE_PREFIX}<camera>', got {self.image_key!r}")
            if len(self.image_shape) != 3 or self.image_shape[2] != 3 or min(
                    self.image_shape) < 1:
                raise ValueError(f'image_shape must be (H, W, 3), got {self.image_shape}')
            if not self.conv_channels or min(self.conv_channels) < 1:
                raise ValueError(f'conv_channels must be positive, got {self.conv_channels}')

    def to_dict(self) -> Dict[str, Any]:
        """Return the config as JSON-friendly values."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> 'BCConfig':
        """Make a config from ``to_dict`` output; unknown keys are an error."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f'unknown BC config keys: {", ".join(sorted(unknown))}')
        return cls(**values)


class BCNetwork(nn.Module):
    """
    State and/or image in, action in [-1, 1] out (tanh).

    The state is normalized with the mean and standard deviation of the training data, kept
    as buffers so that they travel with the weights.
    """

    def __init__(self, config: BCConfig):
        super().__init__()
        self.config = config
        self.register_buffer('state_mean', torch.zeros(config.state_dim))
        self.register_buffer('state_std', torch.ones(config.state_dim))
        features = config.state_dim
        self.encoder = None
        if config.kind == 'cnn':
            layers = []
            channels_in = 3
            for index, channels in enumerate(config.conv_channels):
                layers += [nn.Conv2d(channels_in, channels, kernel_size=5 if index == 0 else 3,
                                     stride=2, padding=1), nn.ReLU()]
                channels_in = channels
            # Pool to a fixed 4 x 4 grid: the head does not depend on the image size.
            layers += [nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten()]
            self.encoder = nn.Sequential(*layers)
            features += channels_in * 16
        layers = []
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(features, hidden), nn.ReLU()]
            features = hidden
        layers += [nn.Linear(features, config.action_dim), nn.Tanh()]
        self.head = nn.Sequential(*layers)

    def set_normalization(self, states: np.ndarray) -> None:
        """Take the state normalization from training states (N, state_dim)."""
        mean = np.mean(states, axis=0)
        std = np.std(states, axis=0)
        # A value that never changed in training (padding, a fixed goal) must not be blown
        # up when it changes a little at run time.
        std = np.where(std > 1e-6, std, 1.0)
        self.state_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.state_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, state: Optional[torch.Tensor] = None,
                image: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Map states (B, state_dim) and/or uint8 images (B, H, W, 3) to actions (B, A)."""
        parts = []
        if self.encoder is not None:
            if image is None:
                raise ValueError(f'this network reads the image {self.config.image_key}')
            pixels = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0
            parts.append(self.encoder(pixels))
        if self.config.state_dim:
            if state is None:
                raise ValueError(f'this network reads a state of {self.config.state_dim} values')
            parts.append((state - self.state_mean) / self.state_std)
        return self.head(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))

    @torch.inference_mode()
    def act(self, state: Optional[np.ndarray] = None,
            image: Optional[np.ndarray] = None) -> np.ndarray:
        """
        Return float32 actions for numpy inputs, one observation or a batch.

        One state (state_dim,) and/or one image (H, W, 3) give (action_dim,); batches give
        (B, action_dim).
        """
        device = self.state_mean.device
        single = False
        state_tensor = image_tensor = None
        if self.config.state_dim:
            values = np.asarray(state, dtype=np.float32)
            single = values.ndim == 1
            values = values.reshape(-1, values.shape[-1])
            if values.shape[1] != self.config.state_dim:
                raise ValueError(f'expected a state of {self.config.state_dim} values, got '
                                 f'{values.shape[1]}')
            state_tensor = torch.from_numpy(values).to(device)
        if self.encoder is not None:
            pixels = np.asarray(image)
            if pixels.shape[-3:] != self.config.image_shape or pixels.dtype != np.uint8:
                raise ValueError(f'expected {self.config.image_key} as uint8 '
                                 f'{self.config.image_shape}, got {pixels.dtype} '
                                 f'{pixels.shape}')
            single = pixels.ndim == 3
            image_tensor = torch.from_numpy(
                np.ascontiguousarray(pixels.reshape((-1,) + pixels.shape[-3:]))).to(device)
        actions = self.forward(state_tensor, image_tensor).cpu().numpy().astype(np.float32)
        return actions[0] if single else actions


@dataclass
class BCCheckpoint:
    """A loaded checkpoint: the network, the metadata stored with it and the weights' digest."""

    network: BCNetwork
    metadata: Dict[str, Any] = field(default_factory=dict)
    sha256: str = ''
    directory: Optional[pathlib.Path] = None


def train_bc(states: Optional[np.ndarray], actions: np.ndarray, *, kind: str = 'mlp',
             images: Optional[np.ndarray] = None, image_key: str = '',
             hidden_sizes: Sequence[int] = (256, 256), epochs: int = 100,
             batch_size: int = 256, learning_rate: float = 1e-3, seed: int = 0,
             task: str = '', device: str = 'cpu', num_threads: Optional[int] = 1,
             progress: Optional[Callable[[int, float], None]] = None) -> BCNetwork:
    """
    Fit a BC network to (observation, action) pairs by mean squared error, with Adam.

    states: (N, state_dim) float, or None for a cnn on the image alone.
    actions: (N, action_dim) in [-1, 1], the labels.
    images: (N, H, W, 3) uint8 for kind 'cnn' (its camera is named by ``image_key``).
    The same inputs and seed give the same network. ``num_threads`` limits torch's CPU threads
    while training (None: leave them); ``progress(epoch, mean_loss)`` is called after each
    epoch. The network is returned in eval mode.
    """
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or len(actions) == 0:
        raise ValueError(f'actions must be (N, action_dim) with N > 0, got {actions.shape}')
    count = len(actions)
    state_dim = 0
    if states is not None:
        states = np.asarray(states, dtype=np.float32)
        if states.ndim != 2 or len(states) != count:
            raise ValueError(f'states must be ({count}, state_dim), got {states.shape}')
        state_dim = states.shape[1]
    image_shape: Tuple[int, ...] = ()
    if kind == 'cnn':
        if images is None:
            raise ValueError('a cnn trains on images: pass images (N, H, W, 3) uint8')
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != count:
            raise ValueError(f'images must be ({count}, H, W, 3) uint8, got {images.dtype} '
                             f'{images.shape}')
        image_shape = images.shape[1:]
    if epochs < 1 or batch_size < 1:
        raise ValueError(f'epochs and batch_size must be positive, got {epochs}, {batch_size}')
    config = BCConfig(kind=kind, state_dim=state_dim, action_dim=actions.shape[1],
                      hidden_sizes=tuple(hidden_sizes), image_key=image_key,
                      image_shape=image_shape, task=task)
    # The seed alone decides the initial weights and the batches, whatever else the process
    # does with torch's global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = BCNetwork(config)
    if state_dim:
        network.set_normalization(states)
    network.to(device)
    state_data = torch.from_numpy(states).to(device) if state_dim else None
    image_data = torch.from_numpy(images).to(device) if kind == 'cnn' else None
    targets = torch.from_numpy(actions).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    shuffle = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    if num_threads is not None:
        # Networks this small gain nothing from more threads, and OpenMP threads that spin
        # against a busy core (a simulator, a ROS executor) made a training step a hundred
        # times slower on a 2-core machine (226 ms instead of 2 ms).
        torch.set_num_threads(num_threads)
    try:
        _fit(network, optimizer, state_data, image_data, targets, epochs, batch_size, shuffle,
             progress)
    finally:
        torch.set_num_threads(threads)
    network.eval()
    return network


def _fit(network, optimizer, state_data, image_data, targets, epochs, batch_size, shuffle,
         progress) -> None:
    count = len(targets)
    device = targets.device
    network.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(count, generator=shuffle).to(device)
        total = 0.0
        for start in range(0, count, batch_size):
            batch = order[start:start + batch_size]
            predicted = network(state_data[batch] if state_data is not None else None,
                                image_data[batch] if image_data is not None else None)
            loss = torch.mean((predicted - targets[batch]) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        if progress is not None:
            progress(epoch, total / count)


def save_checkpoint(directory: PathLike, network: BCNetwork,
                    metadata: Optional[Dict[str, Any]] = None) -> pathlib.Path:
    """
    Write ``network`` to ``directory`` as model.safetensors and config.json, atomically.

    ``metadata`` (JSON values: training data, measured success, ...) is stored in config.json.
    An existing directory is replaced only if it holds nothing but a checkpoint (see
    model_checkpoint.save_model).
    """
    return save_model(directory, network, network.config.to_dict(), BC_FORMAT, metadata)


def load_checkpoint(directory: PathLike, device: str = 'cpu') -> BCCheckpoint:
    """
    Read a checkpoint written by ``save_checkpoint``, in eval mode on ``device``.

    Reads JSON and safetensors only (nothing is unpickled). Raises CheckpointError naming the
    file for a missing or corrupt file, or weights that do not match config.json.
    """
    loaded = load_model(directory, BC_FORMAT,
                        lambda values: BCNetwork(BCConfig.from_dict(values)), device)
    return BCCheckpoint(network=loaded.model, metadata=loaded.metadata, sha256=loaded.sha256,
                        directory=pathlib.Path(directory))
