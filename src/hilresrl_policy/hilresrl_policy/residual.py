"""
The residual actor: observation + base action -> residual in [-1, 1] per axis, and its weights.

Its last layer starts at zero, so training begins exactly at the base policy; how the residual
is composed with the base action is hilresrl_common.residual_contract's. The observation goes
through fixed normalization statistics that the learner may set once (identity until then).
Weights, statistics included, travel as safetensors bytes with a JSON architecture that
carries the residual scale they were trained under, and a receiver refuses any that do not
match its own. A frozen pretrained image encoder is named in the architecture (its name and its
weights file's SHA-256), never sent: each side loads it from its own file.
"""

from dataclasses import asdict, dataclass, field, replace
import hashlib
import json
from typing import Dict, Optional, Sequence, Tuple

from hilresrl_common.residual_contract import (built_in_layers, encoder_name,
                                               pretrained_architecture)
from hilresrl_policy.image_encoder import (FrozenImageEncoder, ImageEncoder, ImageInputs,
                                           PretrainedEncoder)
import numpy as np

from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
import torch
from torch import nn

WEIGHTS_FORMAT = 'safetensors'


class WeightsError(ValueError):
    """Weights that cannot be used; the message says what does not match."""


@dataclass(frozen=True)
class ResidualConfig:
    """
    Shapes of the residual actor and the scale it acts under; equal configs share weights.

    ``residual_scale`` has one value per action axis (residual_contract.residual_scale_vector),
    or none: unknown, as in weights of a learner that did not send it, which any scale accepts.
    """

    obs_dim: int
    action_dim: int
    hidden_sizes: Tuple[int, ...] = (256, 256)
    layer_norm: bool = True
    kind: str = 'residual_mlp'
    residual_scale: Tuple[float, ...] = ()
    # Camera images beside the observation vector (image_encoder): the cameras in order, the
    # (height, width, channels) their frames are resized to, and the encoder's feature count.
    # No cameras: a state-only actor, whose architecture JSON is what it was before images.
    cameras: Tuple[str, ...] = ()
    image_size: Tuple[int, ...] = ()
    image_features: int = 50
    # The image encoder: '' for DrQ-v2's, another built-in one by name (nature), or a frozen
    # pretrained one: its architecture (torchvision:<name>, timm:<name>) and the SHA-256 of the
    # weights file it was loaded from. Unset, the architecture JSON is what it was before
    # pretrained encoders.
    image_encoder: str = ''
    image_encoder_sha256: str = ''

    def __post_init__(self):
        # Tuples of plain numbers whatever was passed, so configs compare equal after JSON.
        object.__setattr__(self, 'hidden_sizes', tuple(int(size) for size in self.hidden_sizes))
        object.__setattr__(self, 'residual_scale',
                           tuple(float(value) for value in self.residual_scale))
        object.__setattr__(self, 'cameras', tuple(str(camera) for camera in self.cameras))
        object.__setattr__(self, 'image_size', tuple(int(size) for size in self.image_size))
        object.__setattr__(self, 'image_encoder', encoder_name(self.image_encoder))
        if self.residual_scale and len(self.residual_scale) != self.action_dim:
            raise ValueError(f'residual_scale has {len(self.residual_scale)} values for '
                             f'{self.action_dim} action axes')
        if self.cameras and len(self.image_size) != 3:
            raise ValueError(f'image_size {list(self.image_size)}: give height, width and '
                             'channels for the cameras')
        if self.image_encoder and not self.cameras:
            raise ValueError(f'image_encoder {self.image_encoder!r} needs cameras')
        if self.pretrained and not self.image_encoder_sha256:
            raise ValueError(f'image_encoder {self.image_encoder!r} needs the SHA-256 of its '
                             'weights file')

    @property
    def pretrained(self) -> bool:
        """Return whether the image encoder is a frozen pretrained network."""
        return bool(pretrained_architecture(self.image_encoder))

    @property
    def image_inputs(self) -> Optional[ImageInputs]:
        """Return the cameras and frame size this actor sees, or None (state only)."""
        if not self.cameras:
            return None
        return ImageInputs(self.cameras, *self.image_size)

    def to_json(self) -> str:
        """Return the config as canonical JSON (the PolicyWeights.architecture field)."""
        values = asdict(self)
        if not self.residual_scale:
            del values['residual_scale']  # unknown: written as before the scale was carried
        if not self.cameras:  # state only: written as before images
            for key in IMAGE_KEYS:
                del values[key]
        if not self.image_encoder:  # DrQ-v2's encoder: written as before pretrained ones
            for key in ENCODER_KEYS:
                del values[key]
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'ResidualConfig':
        """Parse a config written by to_json (without a residual_scale: unknown)."""
        try:
            values = json.loads(text)
            values['hidden_sizes'] = tuple(values['hidden_sizes'])
            return cls(**values)
        except (ValueError, KeyError, TypeError) as error:
            raise WeightsError(f'unreadable architecture {text[:80]!r}: {error}') from error

    def mismatches(self, received: 'ResidualConfig') -> Sequence[str]:
        """Return how ``received`` differs from this config ('key theirs != ours'; none: fits)."""
        if not received.residual_scale or not self.residual_scale:
            received = replace(received, residual_scale=self.residual_scale)
        ours = asdict(self)
        found = [f'{key} {theirs!r} != {ours[key]!r}'
                 for key, theirs in asdict(received).items()
                 if ours[key] != theirs and key not in IMAGE_KEYS[:2] + ENCODER_KEYS]
        # The image inputs in the words of the cameras: which ones, what size.
        if received.image_inputs is None or self.image_inputs is None:
            if (received.image_inputs is None) != (self.image_inputs is None):
                found.append(f'cameras {list(received.cameras)} != {list(self.cameras)}')
        else:
            found += received.image_inputs.differences(self.image_inputs)
            found += received.encoder_differences(self)
        return found

    def encoder_differences(self, other: 'ResidualConfig') -> Sequence[str]:
        """Return how this config's image encoder differs from ``other``'s (theirs != ours)."""
        if self.image_encoder != other.image_encoder:
            return [f'image_encoder {self.image_encoder or "drqv2"!r} != '
                    f'{other.image_encoder or "drqv2"!r}']
        if self.image_encoder_sha256 != other.image_encoder_sha256:
            return [f'image_encoder_weights: a file of SHA-256 {self.image_encoder_sha256[:16]} '
                    f'!= {other.image_encoder_sha256[:16]} (the learner and the residual node '
                    'must load the same weights file)']
        return []


# The ResidualConfig fields of image inputs, and of a pretrained image encoder.
IMAGE_KEYS = ('cameras', 'image_size', 'image_features')
ENCODER_KEYS = ('image_encoder', 'image_encoder_sha256')


def mlp(sizes: Sequence[int], layer_norm: bool) -> nn.Sequential:
    """Return Linear (+LayerNorm) + ReLU layers through the given sizes, ending in a Linear."""
    layers = []
    for index, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(inputs, outputs))
        if index < len(sizes) - 2:
            if layer_norm:
                layers.append(nn.LayerNorm(outputs))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# A dimension that barely varied in the data the statistics came from (a constant, an object
# that stood upright) is divided by this instead (observation units, metres in the simulated
# cells): a later change of it must not become a thousand standard deviations.
STD_FLOOR = 0.05
# Normalized values beyond this many standard deviations are clipped.
NORMALIZED_LIMIT = 10.0


def observation_statistics(observations: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Return the mean and the (floored) standard deviation of observations (N, obs_dim)."""
    observations = np.asarray(observations, dtype=np.float64)
    if observations.ndim != 2 or len(observations) == 0:
        raise ValueError('observation statistics need at least one observation (N, obs_dim)')
    return (observations.mean(axis=0).astype(np.float32),
            np.maximum(observations.std(axis=0), STD_FLOOR).astype(np.float32))


class ObservationNormalizer(nn.Module):
    """
    (observation - mean) / std, clipped: fixed statistics; until they are set, a pass-through.

    Until then nothing is computed and nothing clipped (a 0-255 gripper reading stays 255), so
    a learner without normalization costs the control loop nothing and sees what it always saw.
    """

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer('mean', torch.zeros(obs_dim))
        self.register_buffer('std', torch.ones(obs_dim))
        self.active = False  # statistics set (or loaded): kept as a flag, read on every call

    @property
    def identity(self) -> bool:
        """Return whether no statistics were set."""
        return not self.active

    def set_statistics(self, mean, std) -> None:
        """Take these statistics (arrays of obs_dim values; std positive)."""
        mean = torch.as_tensor(np.asarray(mean), dtype=self.mean.dtype)
        std = torch.as_tensor(np.asarray(std), dtype=self.std.dtype)
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(f'statistics of shape {tuple(mean.shape)}/{tuple(std.shape)} for '
                             f'{self.mean.shape[0]} observation values')
        if not bool((std > 0).all()) or not bool(torch.isfinite(mean).all()):
            raise ValueError('observation statistics must be finite with a positive std')
        self.mean.copy_(mean)
        self.std.copy_(std)
        self.active = True

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        # Loaded statistics are in force unless they are the identity's (fitted ones never are).
        self.active = not bool((self.mean == 0).all() and (self.std == 1).all())

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        """Return the normalized observation (the observation itself, without statistics)."""
        if not self.active:
            return observation
        return ((observation - self.mean) / self.std).clamp(-NORMALIZED_LIMIT, NORMALIZED_LIMIT)


# Tensors of the normalizer in an actor's state: weights written before it existed lack them.
NORMALIZER_TENSORS = ('observation_normalizer.mean', 'observation_normalizer.std')


def with_identity_normalizer(state: Dict[str, torch.Tensor],
                             module: nn.Module) -> Dict[str, torch.Tensor]:
    """
    Return ``state`` with identity statistics added where weights from before them lack them.

    Only when all of a module's normalizer tensors are missing: a partial set stays an error.
    """
    if any(name in state for name in NORMALIZER_TENSORS):
        return state
    own = module.state_dict()
    filled = dict(state)
    for name in NORMALIZER_TENSORS:
        filled[name] = (torch.zeros_like(own[name]) if name.endswith('mean')
                        else torch.ones_like(own[name]))
    return filled


class ResidualActor(nn.Module):
    """
    Observation (+ camera frames) + base action -> residual in [-1, 1] per axis (tanh).

    With cameras in its config, an ImageEncoder turns each step's frames (uint8, one batch per
    camera) into features beside the observation vector; with an image_encoder in its config,
    a FrozenImageEncoder over ``pretrained``, which must be the network and weights file the
    config names (load_pretrained_encoder).
    """

    def __init__(self, config: ResidualConfig, pretrained: Optional[PretrainedEncoder] = None):
        super().__init__()
        self.config = config
        self.observation_normalizer = ObservationNormalizer(config.obs_dim)
        image_inputs = config.image_inputs
        self.encoder = None
        if image_inputs is not None and config.pretrained:
            self.encoder = FrozenImageEncoder(checked_pretrained(config, pretrained),
                                              config.image_features)
        elif image_inputs is not None:
            self.encoder = ImageEncoder(image_inputs, config.image_features,
                                        built_in_layers(config.image_encoder))
        features = config.image_features if image_inputs is not None else 0
        self.net = mlp([config.obs_dim + features + config.action_dim, *config.hidden_sizes,
                        config.action_dim], config.layer_norm)
        last = self.net[-1]
        nn.init.zeros_(last.weight)  # residual 0: composed == base until trained
        nn.init.zeros_(last.bias)

    def inputs(self, observation: torch.Tensor, base_action: torch.Tensor,
               frames: Optional[Sequence[torch.Tensor]] = None,
               image_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Return the network's input: the normalized observation, image features, base action.

        ``image_features``: features already computed (a learner passes its critic's encoder
        output, detached, as DrQ-v2 does); else the actor's encoder computes them from frames.
        """
        parts = [self.observation_normalizer(observation)]
        if self.config.cameras:
            if image_features is None:
                if frames is None or self.encoder is None:
                    raise ValueError(f'this actor sees cameras {list(self.config.cameras)}: '
                                     'give their frames')
                image_features = self.encoder(frames)
            parts.append(image_features)
        return torch.cat(parts + [base_action], dim=-1)

    def forward(self, observation: torch.Tensor, base_action: torch.Tensor,
                frames: Optional[Sequence[torch.Tensor]] = None,
                image_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Return the residual for a batch of observations (and frames) and base actions."""
        return torch.tanh(self.net(self.inputs(observation, base_action, frames,
                                               image_features)))


def encoder_fields(image_encoder: str,
                   pretrained: Optional[PretrainedEncoder]) -> Dict[str, str]:
    """Return the ResidualConfig fields that name the image encoder (a parameter's value)."""
    if pretrained is None:
        return {'image_encoder': encoder_name(image_encoder)}
    return {'image_encoder': pretrained.architecture,
            'image_encoder_sha256': pretrained.weights_sha256}


def checked_pretrained(config: ResidualConfig,
                       pretrained: Optional[PretrainedEncoder]) -> PretrainedEncoder:
    """Return ``pretrained`` if it is the encoder ``config`` names, else raise ValueError."""
    if pretrained is None:
        raise ValueError(f'this actor sees through the pretrained encoder '
                         f'{config.image_encoder}: give it (load_pretrained_encoder)')
    loaded = replace(config, image_encoder=pretrained.architecture,
                     image_encoder_sha256=pretrained.weights_sha256)
    differences = loaded.encoder_differences(config)
    if pretrained.inputs != config.image_inputs:
        differences += pretrained.inputs.differences(config.image_inputs)
    if differences:
        raise ValueError('the pretrained encoder loaded is not the one the actor was made for '
                         '(loaded != wanted): ' + ', '.join(differences))
    return pretrained


class SingleStepActor:
    """
    The actor's forward pass for one observation, in numpy from a copy of its weights.

    For one observation a network this small costs torch more in per-op dispatch than in
    arithmetic; numpy on buffers allocated once computes the same float32 sums several times
    faster (benchmarks/control_latency.py), equal to ResidualActor.forward within rounding
    (test_residual.py). Take the actor's weights again with ``refresh`` after they change.
    """

    def __init__(self, actor: ResidualActor):
        self.refresh(actor)

    def refresh(self, actor: ResidualActor) -> None:
        """Copy the actor's weights, normalization statistics included."""
        if actor.encoder is not None:
            raise TypeError('no numpy forward pass for an actor that sees camera images')

        def array(tensor: torch.Tensor) -> np.ndarray:  # a copy: loading weights writes in place
            return np.array(tensor.detach().cpu().numpy(), dtype=np.float32, order='C')

        layers = []
        for module in actor.net:
            if isinstance(module, nn.Linear):  # x @ W^T + b: W^T kept contiguous for matmul
                layers.append(_NumpyLayer(array(module.weight.T), array(module.bias)))
            elif isinstance(module, nn.LayerNorm):
                layers[-1].norm = (array(module.weight), array(module.bias),
                                   np.float32(module.eps))
            elif isinstance(module, nn.ReLU):
                layers[-1].relu = True
            else:
                raise TypeError(f'no numpy forward pass for {type(module).__name__}')
        self._layers = layers
        normalizer = actor.observation_normalizer
        self._obs_dim = actor.config.obs_dim
        self._normalized = normalizer.active
        self._mean, self._std = array(normalizer.mean), array(normalizer.std)
        self._input = np.empty(actor.config.obs_dim + actor.config.action_dim, np.float32)

    def __call__(self, observation: np.ndarray, base_action: np.ndarray) -> np.ndarray:
        """Return the residual (action_dim,) for one observation (obs_dim,) and base action."""
        values = self._input
        state = values[:self._obs_dim]
        if self._normalized:
            np.subtract(observation, self._mean, out=state)
            np.divide(state, self._std, out=state)
            np.clip(state, -NORMALIZED_LIMIT, NORMALIZED_LIMIT, out=state)
        else:
            state[:] = observation
        values[self._obs_dim:] = base_action
        for layer in self._layers:
            values = layer(values)
        return np.tanh(values)


class _NumpyLayer:
    """One Linear (+LayerNorm) (+ReLU) of SingleStepActor, writing into its own buffer."""

    def __init__(self, weight_t: np.ndarray, bias: np.ndarray):
        self.weight_t, self.bias = weight_t, bias
        self.norm: Optional[Tuple[np.ndarray, np.ndarray, np.float32]] = None
        self.relu = False
        self.out = np.empty(bias.shape, np.float32)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        out = self.out
        np.matmul(values, self.weight_t, out=out)
        np.add(out, self.bias, out=out)
        if self.norm is not None:  # as torch's LayerNorm: biased variance, eps inside the root
            scale, shift, eps = self.norm
            np.subtract(out, np.add.reduce(out) / np.float32(out.size), out=out)
            variance = np.dot(out, out) / np.float32(out.size)
            np.multiply(out, np.float32(1.0) / np.sqrt(variance + eps), out=out)
            np.multiply(out, scale, out=out)
            np.add(out, shift, out=out)
        if self.relu:
            np.maximum(out, np.float32(0.0), out=out)
        return out


@dataclass
class SerializedWeights:
    """The fields of a PolicyWeights message."""

    blob: bytes
    sha256: str
    architecture: str
    format: str = WEIGHTS_FORMAT  # noqa: A003 (the PolicyWeights field it fills)
    metadata: Dict[str, str] = field(default_factory=dict)


def serialize_actor(actor: ResidualActor) -> SerializedWeights:
    """Return an actor's weights as safetensors bytes with their hash and architecture."""
    state = {name: tensor.detach().cpu().contiguous()
             for name, tensor in actor.state_dict().items()}
    blob = save_tensors(state)
    return SerializedWeights(blob, hashlib.sha256(blob).hexdigest(), actor.config.to_json())


def load_actor_weights(actor: ResidualActor, blob: bytes, sha256: str, architecture: str,
                       weights_format: str = WEIGHTS_FORMAT) -> None:
    """
    Load serialized weights into an actor, or raise WeightsError and leave it untouched.

    Weights trained under another residual scale are refused like any other architecture
    mismatch; weights that do not say their scale are taken (see ResidualConfig).
    """
    if weights_format != WEIGHTS_FORMAT:
        raise WeightsError(f'format {weights_format!r} is not {WEIGHTS_FORMAT!r}')
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise WeightsError(f'sha256 mismatch: the blob hashes to {digest[:12]}, the message '
                           f'says {sha256[:12]} (corrupted in transit?)')
    differences = actor.config.mismatches(ResidualConfig.from_json(architecture))
    if differences:
        raise WeightsError('architecture mismatch: ' + ', '.join(differences))
    try:
        state = with_identity_normalizer(load_tensors(bytes(blob)), actor)
    except Exception as error:  # safetensors raises its own error types
        raise WeightsError(f'unreadable safetensors blob: {error}') from error
    expected = actor.state_dict()
    if set(state) != set(expected):
        raise WeightsError(f'tensor names differ: missing {sorted(set(expected) - set(state))}, '
                           f'unexpected {sorted(set(state) - set(expected))}')
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise WeightsError(f'{name}: shape {tuple(tensor.shape)} != '
                               f'{tuple(expected[name].shape)}')
    check_finite(state)
    actor.load_state_dict(state)


def check_finite(tensors: Dict[str, torch.Tensor]) -> None:
    """Raise WeightsError naming the first tensor that holds NaN or infinite values."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise WeightsError(f'{name} holds {bad} NaN or infinite value(s) of '
                               f'{tensor.numel()}')
