"""
Camera images -> features for the residual actor and the critic.

By default DrQ-v2's encoder for each camera (four 3x3 convolutions of 32 channels, the first
with stride 2) and a shared trunk (linear, LayerNorm, tanh), trained from scratch with random
shifts of the images (random_shift); or another built-in stack of convolutions
(IMAGE_ENCODER_LAYOUTS: 'nature', for larger frames); as an option a frozen pretrained network
from a local weights file (load_pretrained_encoder: a torchvision or timm architecture; nothing
is downloaded at run time), or the base policy's own vision encoder (load_base_policy_encoder),
under a small trained projection (FrozenImageEncoder). Frames arrive
as uint8 tensors (batch, channels, height, width), one per camera, in the order of
ImageInputs.cameras. Torch only: no ROS.
"""

from dataclasses import dataclass
import hashlib
import pathlib
from typing import Callable, List, Optional, Sequence, Tuple, Union

from hilresrl_common.residual_contract import (BASE_POLICY_ENCODER, IMAGE_ENCODER_LAYOUTS,
                                               pretrained_architecture, smallest_image_side)
import numpy as np
import torch
from torch import nn

# ImageNet statistics, which torchvision's and timm's pretrained weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageInputs:
    """The cameras a network sees, in order, and the size their frames are resized to."""

    cameras: Tuple[str, ...]
    height: int = 128
    width: int = 128
    channels: int = 3

    def __post_init__(self):
        object.__setattr__(self, 'cameras', tuple(str(camera) for camera in self.cameras))
        if not self.cameras:
            raise ValueError('image inputs need at least one camera')
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f'a camera is listed twice: {list(self.cameras)}')
        if min(self.height, self.width, self.channels) < 1:
            raise ValueError(f'image size {self.height}x{self.width}x{self.channels} is empty')

    def differences(self, other: 'ImageInputs') -> List[str]:
        """Return what differs from ``other``, each as 'what: ours != theirs'."""
        found = []
        if self.cameras != other.cameras:
            found.append(f'cameras: {list(self.cameras)} != {list(other.cameras)}')
        ours = f'{self.height}x{self.width}x{self.channels}'
        theirs = f'{other.height}x{other.width}x{other.channels}'
        if ours != theirs:
            found.append(f'image size (height x width x channels): {ours} != {theirs}')
        return found


def encoder_frame(pixels: np.ndarray, inputs: ImageInputs) -> np.ndarray:
    """
    Return a camera image (height x width x channels uint8, any size) as the encoder takes it.

    Resized to the inputs' size (averaging whole areas when shrinking, so that thin things do
    not flicker in and out; bilinear when enlarging) and laid out channels first: (C, h, w).
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != inputs.channels:
        raise ValueError(f'a camera image of shape {pixels.shape} and type {pixels.dtype}; the '
                         f'encoder takes height x width x {inputs.channels} uint8 images '
                         '(depth images are not encoder inputs yet)')
    if pixels.shape[:2] != (inputs.height, inputs.width):
        from PIL import Image
        # Pillow 9.0 (Ubuntu 22.04) has its filters on Image itself, later ones on Resampling.
        filters = getattr(Image, 'Resampling', Image)
        shrinking = pixels.shape[0] >= inputs.height and pixels.shape[1] >= inputs.width
        image = Image.fromarray(pixels[..., 0] if inputs.channels == 1 else pixels)
        image = image.resize((inputs.width, inputs.height),
                             filters.BOX if shrinking else filters.BILINEAR)
        pixels = np.asarray(image).reshape(inputs.height, inputs.width, inputs.channels)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


DRQV2_LAYERS = IMAGE_ENCODER_LAYOUTS['drqv2']


def check_frame_size(height: int, width: int, layers=DRQV2_LAYERS) -> None:
    """Raise ValueError for a frame size too small for the encoder's convolutions."""
    smallest = smallest_image_side(layers)
    if min(height, width) < smallest:
        raise ValueError(f'image size {height}x{width}: the image encoder takes frames of at '
                         f'least {smallest}x{smallest}')


class StemConvolution(nn.Conv2d):
    """
    A convolution whose kernel is a multiple of its stride, on a GPU as a space-to-depth one.

    On a GPU a convolution over three colour channels falls to cuDNN's slowest kernels (its
    tensor-core ones want channels in multiples of eight: in a profiled image update on an H200
    the plain 8x8 stride-4 stem's kernel took 12% of the GPU time, more than any other
    convolution, and cuDNN padded its input to eight channels first). Laid out as
    stride x stride blocks (pixel_unshuffle: 48 channels for stride 4), the same convolution is
    a (kernel / stride)-wide one with stride 1 over those: the same weights (a Conv2d's, so
    checkpoints do not tell the two apart) and the same outputs within rounding. On a CPU the
    plain convolution.
    """

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return the convolution of (batch, channels, height, width) pixels."""
        if not pixels.is_cuda:
            return super().forward(pixels)
        return space_to_depth_convolution(pixels, self.weight, self.bias, self.stride[0])


def space_to_depth_convolution(pixels: torch.Tensor, weight: torch.Tensor,
                               bias: Optional[torch.Tensor], stride: int) -> torch.Tensor:
    """
    Return conv2d(pixels, weight, bias, stride) computed over stride x stride pixel blocks.

    The kernel's side must be a multiple of the stride. Rows and columns past the last whole
    block are dropped: the strided convolution never reaches them either.
    """
    out_channels, in_channels, kernel, _ = weight.shape
    blocks = kernel // stride
    height, width = pixels.shape[-2:]
    cropped = pixels[..., :height - height % stride, :width - width % stride]
    # Block channel c * stride^2 + i * stride + j holds pixel (i, j) of colour c, as
    # pixel_unshuffle lays it out; the kernel's taps are regrouped the same way.
    regrouped = weight.view(out_channels, in_channels, blocks, stride, blocks, stride)
    regrouped = regrouped.permute(0, 1, 3, 5, 2, 4).reshape(
        out_channels, in_channels * stride * stride, blocks, blocks)
    return nn.functional.conv2d(nn.functional.pixel_unshuffle(cropped, stride), regrouped,
                                bias)


class CameraEncoder(nn.Module):
    """
    One camera's frames (uint8) -> a flat feature map: a stack of convolutions with ReLUs.

    ``layers``: (output channels, kernel, stride) per convolution (IMAGE_ENCODER_LAYOUTS; by
    default DrQ-v2's four). On a GPU the convolutions run on channels-last bfloat16 tensors
    (``gpu_dtype``; float32 parameters, autocast): cuDNN's kernels for this layout and type took
    half the time of NCHW float32 on an H200 (README, image learner), and the critic's
    regression does not need float32 features. On a CPU, float32 as stored. Either way the
    output is float32, flattened in (channels, height, width) order, so weights trained on one
    run on the other.
    """

    def __init__(self, channels: int, height: int, width: int, layers=DRQV2_LAYERS,
                 gpu_dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        check_frame_size(height, width, layers)
        self.gpu_dtype = gpu_dtype
        modules, inputs = [], channels
        for outputs, kernel, stride in layers:
            # Tensor cores want channels in multiples of eight: a stem over colours does not.
            convolution = (StemConvolution if stride > 1 and kernel % stride == 0
                           and inputs % 8 else nn.Conv2d)
            modules += [convolution(inputs, outputs, kernel, stride=stride), nn.ReLU()]
            inputs = outputs
        self.net = nn.Sequential(*modules)
        with torch.no_grad():
            self.output_dim = int(self.net(torch.zeros(1, channels, height, width)).numel())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Return (batch, output_dim) features of (batch, channels, height, width) frames."""
        if not frames.is_cuda:
            return self.net(frames.float() / 255.0 - 0.5).flatten(1)
        # uint8 straight to the convolutions' type, channels last (random_shift's frames are
        # already): two passes over the bytes, not four over float32 copies of them.
        pixels = frames.contiguous(memory_format=torch.channels_last).to(self.gpu_dtype)
        pixels = pixels.mul_(1.0 / 255.0).sub_(0.5)
        with torch.autocast('cuda', dtype=self.gpu_dtype,
                            enabled=self.gpu_dtype != torch.float32):
            features = self.net(pixels)
        return features.flatten(1).float()


class ImageEncoder(nn.Module):
    """Every camera's frames -> one feature vector: a CameraEncoder per camera, one trunk."""

    def __init__(self, inputs: ImageInputs, feature_dim: int = 50, layers=DRQV2_LAYERS):
        super().__init__()
        self.inputs = inputs
        self.feature_dim = feature_dim
        self.cameras = nn.ModuleList(
            CameraEncoder(inputs.channels, inputs.height, inputs.width, layers)
            for _ in inputs.cameras)
        self.trunk = nn.Sequential(
            nn.Linear(sum(camera.output_dim for camera in self.cameras), feature_dim),
            nn.LayerNorm(feature_dim), nn.Tanh())

    def forward(self, frames: Sequence[torch.Tensor]) -> torch.Tensor:
        """Return (batch, feature_dim) for one uint8 frame batch per camera, in camera order."""
        if len(frames) != len(self.cameras):
            raise ValueError(f'{len(frames)} frame batches for {len(self.cameras)} cameras '
                             f'({", ".join(self.inputs.cameras)})')
        return self.trunk(torch.cat([encoder(batch)
                                     for encoder, batch in zip(self.cameras, frames)], dim=-1))


def random_shift(frames: torch.Tensor, pad: int = 4,
                 generator: torch.Generator = None) -> torch.Tensor:
    """
    Return each image shifted by up to ``pad`` whole pixels in each direction (DrQ's shift).

    The border is repeated into the space the shift opens, so every output pixel is an input
    pixel of the same image at most ``pad`` rows and columns away. Same shape and dtype, laid
    out channels last: one gather of the bytes, each output pixel's row and column clamped to
    the image (the crop of the border-padded image, without padding it).
    """
    if pad == 0:
        return frames
    count, _, height, width = frames.shape
    shifts = torch.randint(-pad, pad + 1, (count, 2), generator=generator,
                           device=generator.device if generator is not None else frames.device)
    shifts = shifts.to(frames.device)
    rows = (torch.arange(height, device=frames.device)[None, :] + shifts[:, :1]).clamp(
        0, height - 1)
    columns = (torch.arange(width, device=frames.device)[None, :] + shifts[:, 1:]).clamp(
        0, width - 1)
    samples = torch.arange(count, device=frames.device)[:, None, None]
    # Indexed as (sample, row, column) with the channels left whole: (count, height, width,
    # channels) in memory, the channels-last layout of (count, channels, height, width).
    shifted = frames.permute(0, 2, 3, 1)[samples, rows[:, :, None], columns[:, None, :]]
    return shifted.permute(0, 3, 1, 2)


class PretrainedEncoder(nn.Module):
    """
    A frozen pretrained network over each camera's frames, its pooled features joined.

    ``architecture`` and ``weights_sha256`` say which network and which weights file it is:
    actors built on it carry them instead of its tensors (FrozenImageEncoder).
    """

    def __init__(self, network: nn.Module, inputs: ImageInputs, architecture: str = '',
                 weights_sha256: str = '', imagenet_statistics: bool = True):
        super().__init__()
        self.inputs = inputs
        self.architecture, self.weights_sha256 = architecture, weights_sha256
        self.network = network.eval().requires_grad_(False)
        # torchvision's and timm's networks take ImageNet-normalised pixels; a base policy's
        # encoder takes pixels in [0, 1] and normalises them its own way (vision_encoder).
        mean, std = ((IMAGENET_MEAN, IMAGENET_STD) if imagenet_statistics
                     else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1))
        with torch.no_grad():
            probe = torch.zeros(1, inputs.channels, inputs.height, inputs.width)
            self.camera_dim = int(self.network(probe).numel())
        self.feature_dim = len(inputs.cameras) * self.camera_dim

    def train(self, mode: bool = True) -> 'PretrainedEncoder':
        """Keep the frozen network in evaluation mode (its BatchNorm statistics fixed)."""
        super().train(mode)
        self.network.eval()
        return self

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Return one camera's pooled features (batch, camera_dim) of its uint8 frames."""
        with torch.no_grad():
            return self.network((frames.float() / 255.0 - self.mean) / self.std).flatten(1)

    def forward(self, frames: Sequence[torch.Tensor]) -> torch.Tensor:
        """Return (batch, feature_dim): every camera's pooled features, in camera order."""
        return torch.cat([self.encode(batch) for batch in frames], dim=-1)


def file_sha256(path: Union[str, pathlib.Path]) -> str:
    """Return the SHA-256 of a file's bytes (hex), read in pieces."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for piece in iter(lambda: file.read(1 << 20), b''):
            digest.update(piece)
    return digest.hexdigest()


# A Python callable that builds the network (tests, notebooks): the core API takes one where the
# parameters take a torchvision:<name> or timm:<name> string.
NetworkBuilder = Callable[[], nn.Module]


def load_pretrained_encoder(architecture: Union[str, NetworkBuilder], weights_file: str,
                            inputs: ImageInputs) -> PretrainedEncoder:
    """
    Return a frozen pretrained encoder: ``torchvision:<name>`` or ``timm:<name>`` weights.

    The weights come from ``weights_file`` only (a state dict saved with torch.save, or a
    .safetensors file); the classifier is dropped, the pooled features kept. In the core API
    ``architecture`` may also be a callable that returns the network (named
    ``python:<module>.<name>``). The encoder carries the architecture's name and the file's
    SHA-256.
    """
    if callable(architecture):
        builder = architecture
        library = 'python'
        name = f'{getattr(builder, "__module__", "")}.{getattr(builder, "__qualname__", "")}'
        architecture = f'{library}:{name}'
    else:
        builder = None
        library, _, name = architecture.partition(':')
        if library not in ('torchvision', 'timm') or not name:
            raise ValueError(f'pretrained encoder {architecture!r}: give torchvision:<name> or '
                             'timm:<name> (e.g. torchvision:resnet18)')
    if not str(weights_file).strip():
        raise FileNotFoundError(f'pretrained encoder {architecture}: no weights file given '
                                '(image_encoder_weights); hilresrl never downloads at run time')
    path = pathlib.Path(weights_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f'pretrained encoder weights {str(path)!r} not found: hilresrl never downloads at '
            f'run time. On a machine with internet, save them there, e.g. '
            f'torch.save({library}-built {name} with its pretrained weights .state_dict(), '
            f'{str(path)!r})')
    if inputs.channels != 3:
        raise ValueError(f'pretrained encoders take 3-channel images, not {inputs.channels}')
    try:
        if builder is not None:
            network = builder()
        elif library == 'torchvision':
            import torchvision.models as models
            network = getattr(models, name)(weights=None)
        else:
            import timm
            network = timm.create_model(name, pretrained=False)
    except ImportError as error:
        raise ImportError(f'pretrained encoder {architecture!r} needs {library}, which is not '
                          f'installed (pip install {library})') from error
    except (AttributeError, RuntimeError) as error:
        raise ValueError(f'{library} has no architecture {name!r}') from error
    try:
        if path.suffix == '.safetensors':
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location='cpu', weights_only=True)
        network.load_state_dict(state)
    except Exception as error:  # noqa: B902 - torch, pickle and safetensors raise their own
        raise ValueError(f'pretrained encoder weights {str(path)!r} do not fit {architecture}: '
                         f'{error}') from error
    for head in ('fc', 'classifier', 'head'):  # torchvision's and timm's classifiers
        if isinstance(getattr(network, head, None), nn.Module):
            setattr(network, head, nn.Identity())
            break
    return PretrainedEncoder(network, inputs, architecture, file_sha256(path))


def load_base_policy_encoder(kind: str, checkpoint: str, inputs: ImageInputs,
                             action_dim: int = 0) -> PretrainedEncoder:
    """
    Return the vision encoder of the base policy of adapter ``kind`` at ``checkpoint``, frozen.

    The adapter is loaded from the checkpoint (its file or folder, as base_policy.checkpoint
    names it) and asked for its encoder (BasePolicy.vision_encoder: pixels in [0, 1] ->
    features); an adapter that exposes none says so. The encoder carries the name
    base_policy:<kind> and the checkpoint's SHA-256 (every file of a folder).
    """
    from hilresrl_policy.adapters.base import BasePolicyError, load_base_policy
    architecture = f'{BASE_POLICY_ENCODER}:{kind}'
    if not str(checkpoint).strip():
        raise FileNotFoundError(f'{architecture}: no base policy checkpoint given '
                                '(image_encoder_weights: the file or folder that '
                                'base_policy.checkpoint names)')
    path = pathlib.Path(checkpoint).expanduser()
    if not path.exists():
        raise FileNotFoundError(f'{architecture}: no base policy checkpoint at {str(path)!r}')
    try:
        policy = load_base_policy(kind, {'checkpoint': str(path), 'action_dim': action_dim})
        try:
            network = policy.vision_encoder()
        finally:
            policy.close()
    except BasePolicyError as error:
        raise ValueError(f'{architecture} from {str(path)!r}: {error}') from error
    return PretrainedEncoder(network, inputs, architecture, checkpoint_sha256(path),
                             imagenet_statistics=False)


def checkpoint_sha256(path: Union[str, pathlib.Path]) -> str:
    """Return the SHA-256 of a file, or of a folder's files (each one's name and bytes)."""
    path = pathlib.Path(path)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for item in sorted(item for item in path.rglob('*') if item.is_file()):
        digest.update(f'{item.relative_to(path).as_posix()}\0{file_sha256(item)}\0'.encode())
    return digest.hexdigest()


def configured_pretrained_encoder(image_encoder: str, weights_file: str,
                                  inputs: Optional[ImageInputs],
                                  action_dim: int = 0) -> Optional[PretrainedEncoder]:
    """
    Return the frozen encoder the image_encoder parameters name, or None for a built-in one.

    What the residual node and the learner both call at start-up; any reason it cannot be
    loaded (no file, no library, weights that do not fit, no cameras, a base policy without a
    vision encoder) is a ValueError. ``action_dim``: the cell's, for a base policy's adapter.
    """
    architecture = pretrained_architecture(image_encoder)
    if not architecture:
        return None
    if inputs is None:
        raise ValueError(f'image_encoder {architecture!r} needs camera_inputs: there are no '
                         'images to encode')
    library, _, name = architecture.partition(':')
    try:
        if library == BASE_POLICY_ENCODER:
            return load_base_policy_encoder(name, weights_file, inputs, action_dim)
        return load_pretrained_encoder(architecture, weights_file, inputs)
    except (OSError, ImportError) as error:
        raise ValueError(str(error)) from error


class _Shared:
    """
    A module held outside the module tree of its holder.

    Not in the holder's state_dict, parameters() or train()/eval(), and shared rather than
    copied by copy.deepcopy (nothing changes it).
    """

    def __init__(self, module: nn.Module):
        self.module = module

    def __deepcopy__(self, memo) -> '_Shared':
        return self


class _FrozenCamera:
    """One camera's part of a FrozenImageEncoder (as CameraShares splits an encoder)."""

    def __init__(self, frozen: _Shared):
        self._frozen = frozen
        self.output_dim = frozen.module.camera_dim

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return self._frozen.module.encode(frames)


class FrozenImageEncoder(nn.Module):
    """
    A frozen PretrainedEncoder, then a trained projection (linear, LayerNorm, tanh).

    The projection plays DrQ-v2's trunk: the critic's loss trains it, the actor reads its
    output, and it gives ``feature_dim`` features whatever the network's pooled size. The frozen
    network is no part of this module's state: the weights an actor broadcasts and the learner's
    checkpoints hold the projection alone (kilobytes, not a ResNet's tens of megabytes), and
    name the network by its architecture and its weights file's SHA-256 (ResidualConfig), which
    every side loads from its own copy of the file. ``.to()`` moves it all the same.
    """

    def __init__(self, pretrained: PretrainedEncoder, feature_dim: int = 50):
        super().__init__()
        self.inputs = pretrained.inputs
        self.feature_dim = feature_dim
        self._frozen = _Shared(pretrained.eval())
        self.cameras = [_FrozenCamera(self._frozen) for _ in self.inputs.cameras]
        self.trunk = nn.Sequential(nn.Linear(pretrained.feature_dim, feature_dim),
                                   nn.LayerNorm(feature_dim), nn.Tanh())

    @property
    def pretrained(self) -> PretrainedEncoder:
        """Return the frozen network this encoder projects."""
        return self._frozen.module

    def _apply(self, fn, *args, **kwargs):
        self.pretrained._apply(fn, *args, **kwargs)  # device and dtype moves reach it too
        return super()._apply(fn, *args, **kwargs)

    def forward(self, frames: Sequence[torch.Tensor]) -> torch.Tensor:
        """Return (batch, feature_dim) for one uint8 frame batch per camera, in camera order."""
        if len(frames) != len(self.cameras):
            raise ValueError(f'{len(frames)} frame batches for {len(self.cameras)} cameras '
                             f'({", ".join(self.inputs.cameras)})')
        return self.trunk(self.pretrained(frames))
