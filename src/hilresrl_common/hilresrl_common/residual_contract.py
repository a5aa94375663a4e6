"""
The residual contract: executed = clip(base + residual_scale * residual), residual in [-1, 1].

The one definition of the composition and of the scale that the residual node, the learner's
agents and the headless cell share; numpy arrays and torch tensors alike (no torch import
here). The refinement actor's latent follows the same rule with ``latent_scale``.
"""

from typing import Sequence

import numpy as np

from .parameters import above, at_least, Parameter

RESIDUAL_SCALE = Parameter(
    'residual_scale', [0.5], 'Residual scale: one value, or one per action axis (the '
    'residual, in [-1, 1], is multiplied by it before it is added to the base action)',
    check=above(0.0))
LATENT_SCALE = Parameter(
    'latent_scale', 1.5, "Half-width of the base policy's latent that the refinement actor "
    'steers (its output in [-1, 1] times this)', check=above(0.0))
ACTION_BOUND = 1.0  # every action axis is normalised to [-1, 1]

# Built-in image encoders, trained from scratch by the critic on shifted frames: each camera's
# convolutions as (output channels, kernel, stride), each followed by a ReLU, then the trunk.
IMAGE_ENCODER_LAYOUTS = {
    # DrQ-v2's, made for 84x84 frames (35x35x32 features a camera there); at 128x128 its first
    # stride leaves 63x63 maps for three full convolutions (57x57x32 features a camera).
    'drqv2': ((32, 3, 2), (32, 3, 1), (32, 3, 1), (32, 3, 1)),
    # The DQN (Nature) stack: an 8x8 stride-4 stem takes the frame to a quarter of its side
    # first, as ResNet stems do (HIL-SERL's ResNet-10 too); 12x12x64 features a camera at
    # 128x128, from a sixth of DrQ-v2's convolution work there (README, image learner).
    'nature': ((32, 8, 4), (64, 4, 2), (64, 3, 1)),
}
DRQV2_ENCODER = 'drqv2'  # the image encoder of '' (what weights without a name were made with)
# A frozen pretrained encoder: <library>:<name>; base_policy:<adapter kind> is the base
# policy's own vision encoder (its adapter's vision_encoder, loaded from its checkpoint).
BASE_POLICY_ENCODER = 'base_policy'
PRETRAINED_LIBRARIES = ('torchvision', 'timm', BASE_POLICY_ENCODER)


def smallest_image_side(layers) -> int:
    """Return the smallest frame side a stack of (channels, kernel, stride) convolutions takes."""
    side = 1
    for _, kernel, stride in reversed(layers):
        side = (side - 1) * stride + kernel
    return side


# The actor's image inputs: the residual node and the learner must agree on them (weights for
# other cameras or another size are refused), so both declare these.
SMALLEST_IMAGE_SIDE = min(smallest_image_side(layers)
                          for layers in IMAGE_ENCODER_LAYOUTS.values())
CAMERA_INPUTS = Parameter(
    'camera_inputs', [], 'Camera images the actor (and the critic) see beside policy_inputs, in '
    'order, as observations name them: image/<camera topic>, e.g. image/camera/front/image_raw '
    "(their topics among the residual node's observation_sources; the learner reads them from "
    "each cell); ['']: none", type='string_array')
IMAGE_SIZE = Parameter(
    'image_size', [128, 128], 'Height and width every camera image is resized to for the image '
    'encoder', check=at_least(SMALLEST_IMAGE_SIDE))
IMAGE_FEATURES = Parameter('image_features', 50, "Features of the image encoder's output",
                           check=at_least(1))


def encoder_name(image_encoder: str) -> str:
    """Return an image_encoder value as configs hold it: '' for DrQ-v2's, else the name."""
    name = image_encoder.strip()
    return '' if name == DRQV2_ENCODER else name


def built_in_layers(image_encoder: str):
    """Return the convolutions of a built-in encoder ('': DrQ-v2's), or None (pretrained)."""
    return IMAGE_ENCODER_LAYOUTS.get(encoder_name(image_encoder) or DRQV2_ENCODER)


def pretrained_architecture(image_encoder: str) -> str:
    """Return the pretrained architecture an image_encoder value names ('': a built-in one)."""
    return '' if built_in_layers(image_encoder) is not None else image_encoder.strip()


def _encoder_refusal(value: str) -> str:
    library, _, name = pretrained_architecture(value).partition(':')
    if not library or (library in PRETRAINED_LIBRARIES and name):
        return ''
    return (f"must be '' or {DRQV2_ENCODER} (the default), "
            f"{', '.join(sorted(set(IMAGE_ENCODER_LAYOUTS) - {DRQV2_ENCODER}))}, or "
            'torchvision:<name> or timm:<name> (e.g. torchvision:resnet18), or '
            f'{BASE_POLICY_ENCODER}:<adapter kind> (e.g. {BASE_POLICY_ENCODER}:torch_module)')


IMAGE_ENCODER = Parameter(
    'image_encoder', '', f"The image encoder: '' or {DRQV2_ENCODER}: DrQ-v2's small "
    'convolutional encoder, trained from scratch by the critic on randomly shifted images; '
    'nature: the DQN stack (an 8x8 stride-4 stem), trained the same way, for larger frames; '
    'torchvision:<name> or timm:<name> (e.g. torchvision:resnet18): that pretrained network, '
    'frozen, loaded from image_encoder_weights, with a small projection to image_features that '
    'the critic trains; base_policy:<adapter kind> (e.g. base_policy:torch_module): the base '
    "policy's own vision encoder, frozen the same way, loaded from its checkpoint given as "
    'image_encoder_weights. The residual node and the learner must name the same one',
    check=_encoder_refusal)
IMAGE_ENCODER_WEIGHTS = Parameter(
    'image_encoder_weights', '', 'Local weights file of a pretrained image_encoder (a state '
    'dict saved with torch.save, or .safetensors; for base_policy:<kind>, the base policy '
    'checkpoint, file or folder); nothing is downloaded. The residual node and '
    'the learner each load their own copy: weights learnt over a file of another SHA-256 are '
    'refused')
IMAGE_INPUT_PARAMETERS = (CAMERA_INPUTS, IMAGE_SIZE, IMAGE_FEATURES, IMAGE_ENCODER,
                          IMAGE_ENCODER_WEIGHTS)


def residual_scale_vector(scale: Sequence[float], action_dim: int) -> np.ndarray:
    """Return the residual scale per axis (float32) from one value or one per axis."""
    values = np.asarray(list(np.ravel(scale)), dtype=np.float32)
    if values.size == 1:
        return np.full(action_dim, values[0], dtype=np.float32)
    if values.size != action_dim:
        raise ValueError(f'residual_scale has {values.size} values; give 1 or {action_dim}')
    return values


def compose(base_action, residual, residual_scale, bound: float = ACTION_BOUND):
    """
    Return clip(base + residual_scale * residual, -bound, bound).

    numpy in, float32 numpy out: a non-finite sum stays NaN rather than being clipped to full
    speed, so that the arbiter rejects it. Torch tensors in, a tensor out (clamped).
    """
    if hasattr(base_action, 'clamp'):
        return (base_action + residual_scale * residual).clamp(-bound, bound)
    with np.errstate(invalid='ignore', over='ignore'):
        raw = (np.asarray(base_action, dtype=np.float32)
               + np.asarray(residual_scale, dtype=np.float32)
               * np.asarray(residual, dtype=np.float32))
    return np.where(np.isfinite(raw), np.clip(raw, -bound, bound), np.nan).astype(np.float32)


def residual_toward(action, base_action, residual_scale):
    """Return the residual in [-1, 1] that composes ``base_action`` closest to ``action``."""
    wanted = (action - base_action) / residual_scale
    if hasattr(wanted, 'clamp'):
        return wanted.clamp(-1.0, 1.0)
    return np.clip(wanted, -1.0, 1.0).astype(np.float32)


def latent_from_unit(unit, latent_scale: float):
    """Return the latent of an actor output in [-1, 1]."""
    if hasattr(unit, 'clamp'):
        return latent_scale * unit.clamp(-1.0, 1.0)
    return (latent_scale * np.clip(unit, -1.0, 1.0)).astype(np.float32)


def unit_from_latent(latent, latent_scale: float):
    """Return the actor output in [-1, 1] that stands for a latent."""
    if hasattr(latent, 'clamp'):
        return (latent / latent_scale).clamp(-1.0, 1.0)
    return np.clip(np.asarray(latent, dtype=np.float32) / latent_scale, -1.0, 1.0).astype(
        np.float32)
