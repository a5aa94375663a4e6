"""
Residual TD3 with a critic ensemble: learns per-step corrections to a frozen base policy.

The actor (hilresrl_policy.residual) sees the state and the base action and outputs a residual;
the executed action is clip(base + residual_scale * residual). The critic ensemble (LayerNorm
MLPs, heads batched in one matrix product) scores (state, base action, executed action); its
target takes the minimum over a random pair of target heads. Steps a person took over teach the
critic with the human action that was executed, and, with ``bc_weight``, pull the residual
toward (human - base) / residual_scale on the axes the person took. The actor waits
``warmup_updates`` critic-only updates before it moves, and then moves slowly; with
``support_weight`` it is also held near the residuals the cell executed (support_loss), so
that it does not climb the critic's extrapolation away from the base policy. With
``observation_normalization`` actor and critic see the observation through statistics set once
(set_observation_statistics), kept in their state and so in checkpoints and broadcast weights.
With cameras, one image encoder (DrQ-v2's, or a frozen pretrained network under a projection)
that the critic trains and the actor reads. Torch only: no ROS.
"""

import copy
from dataclasses import asdict, dataclass
import json
from typing import Dict, Optional, Sequence, Tuple

from hilresrl_common.residual_contract import (compose, encoder_name, RESIDUAL_SCALE,
                                               residual_scale_vector, residual_toward)
from hilresrl_policy.image_encoder import PretrainedEncoder, random_shift
from hilresrl_policy.residual import (ObservationNormalizer, ResidualActor, ResidualConfig,
                                      with_identity_normalizer)
import numpy as np
import torch
from torch import nn

from .replay import Batch


@dataclass(frozen=True)
class LearnerConfig:
    """Networks and hyperparameters of residual TD3; a checkpoint must match it exactly."""

    obs_dim: int
    action_dim: int
    residual_scale: Tuple[float, ...] = tuple(RESIDUAL_SCALE.default)
    actor_hidden: Tuple[int, ...] = (256, 256)
    critic_hidden: Tuple[int, ...] = (256, 256, 256)
    critic_heads: int = 2
    layer_norm: bool = True
    gamma: float = 0.99
    n_step: int = 3
    batch_size: int = 256
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    tau: float = 0.005
    target_noise: float = 0.2
    target_noise_clip: float = 0.5
    actor_delay: int = 2
    warmup_updates: int = 500
    grad_clip: float = 10.0
    bc_weight: float = 1.0
    # The pull of the residual toward the residuals the stored steps executed: the actor may
    # leave the actions its critic has data on only as far as the critic's gain outweighs it.
    support_weight: float = 0.0
    # Normalize observations with statistics of the first stored steps, fixed from then on
    # (hilresrl_policy.residual.ObservationNormalizer), in actor and critic alike.
    observation_normalization: bool = False
    # td3 (what the learner node runs) or sac (residual_sac: kept to measure the choice)
    algorithm: str = 'td3'
    # Camera images (hilresrl_policy.image_encoder): one encoder, trained by the critic's loss
    # and read by the actor (DrQ-v2), on frames shifted by up to image_shift pixels.
    cameras: Tuple[str, ...] = ()
    image_size: Tuple[int, ...] = ()  # height, width, channels
    image_features: int = 50
    # image_encoder: '' (DrQ-v2's), another built-in one (residual_contract's
    # IMAGE_ENCODER_LAYOUTS), or a frozen pretrained network.
    # With a frozen pretrained network in place of DrQ-v2's encoder (image_encoder names it,
    # as ResidualConfig does, with its weights file's SHA-256) the shifts still apply: the
    # trained projection and the critic above the frozen features can overfit to exact frames
    # as DrQ's encoder does, and SERL's DrQ agent shifts (random crop, padding 4) in front of
    # its frozen pretrained ResNet-10 too. They cost a gather, not a pass; image_shift 0: none.
    image_shift: int = 4
    image_encoder: str = ''
    image_encoder_sha256: str = ''

    def __post_init__(self):
        for name in ('residual_scale', 'actor_hidden', 'critic_hidden', 'cameras',
                     'image_size'):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, 'image_encoder', encoder_name(self.image_encoder))
        if self.cameras and self.algorithm != 'td3':
            raise ValueError('camera images are learnt with td3 only')
        if self.image_encoder and not self.cameras:
            raise ValueError(f'image_encoder {self.image_encoder!r} needs cameras '
                             '(camera_inputs): there are no images to encode')
        if self.critic_heads < 2:
            raise ValueError('the critic needs at least 2 heads (the target takes a pair)')
        if self.support_weight < 0 or self.bc_weight < 0:
            raise ValueError('bc_weight and support_weight must not be negative')
        if self.algorithm not in ('td3', 'sac'):
            raise ValueError(f'algorithm must be td3 or sac, not {self.algorithm!r}')
        self.scale_vector()  # one value or one per axis, else ValueError

    @property
    def actor_config(self) -> ResidualConfig:
        """Return the actor's shapes and scale, as the residual node builds them."""
        return ResidualConfig(self.obs_dim, self.action_dim, self.actor_hidden, self.layer_norm,
                              residual_scale=tuple(self.scale_vector()), cameras=self.cameras,
                              image_size=self.image_size, image_features=self.image_features,
                              image_encoder=self.image_encoder,
                              image_encoder_sha256=self.image_encoder_sha256)

    def scale_vector(self) -> np.ndarray:
        """Return the residual scale per axis."""
        return residual_scale_vector(self.residual_scale, self.action_dim)

    def to_json(self) -> str:
        """Return the config as canonical JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    def differences(self, other: 'LearnerConfig') -> Sequence[str]:
        """Return 'name: ours != theirs' for every field that differs."""
        ours, theirs = asdict(self), asdict(other)
        return [f'{key}: {ours[key]!r} != {theirs[key]!r}' for key in ours
                if ours[key] != theirs[key]]


class EnsembleLinear(nn.Module):
    """A linear layer for every head at once: (heads, batch, in) -> (heads, batch, out)."""

    def __init__(self, heads: int, inputs: int, outputs: int):
        super().__init__()
        bound = 1.0 / np.sqrt(inputs)
        self.weight = nn.Parameter(torch.empty(heads, inputs, outputs).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(heads, 1, outputs).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply every head's layer to its slice of x."""
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with its own gain and bias per head."""

    def __init__(self, heads: int, features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(heads, 1, features))
        self.bias = nn.Parameter(torch.zeros(heads, 1, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize the last axis, then scale and shift per head."""
        return torch.addcmul(self.bias, nn.functional.layer_norm(x, x.shape[-1:]), self.weight)


class CriticEnsemble(nn.Module):
    """Q(state, base action, action) for every head: (heads, batch)."""

    def __init__(self, config: LearnerConfig):
        super().__init__()
        heads = config.critic_heads
        features = config.image_features if config.cameras else 0
        sizes = [config.obs_dim + features + 2 * config.action_dim, *config.critic_hidden, 1]
        layers = []
        for index, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(EnsembleLinear(heads, inputs, outputs))
            if index < len(sizes) - 2:
                if config.layer_norm:
                    layers.append(EnsembleLayerNorm(heads, outputs))
                layers.append(nn.ReLU())
        self.heads = heads
        self.observation_normalizer = ObservationNormalizer(config.obs_dim)
        self.net = nn.Sequential(*layers)

    def forward(self, observation, base_action, action,
                image_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Return Q of every head for a batch (and the image encoder's features of it)."""
        parts = [self.observation_normalizer(observation)]
        if image_features is not None:
            parts.append(image_features)
        x = torch.cat(parts + [base_action, action], dim=-1)
        return self.net(x.unsqueeze(0).expand(self.heads, -1, -1)).squeeze(-1)


class ResidualTD3:
    """
    The residual actor-critic learner: update from batches, act with the current actor.

    ``pretrained_encoder``: the frozen network a config with an image_encoder names
    (load_pretrained_encoder), which no optimiser steps and no checkpoint holds.
    """

    def __init__(self, config: LearnerConfig, device: str = 'cpu', seed: int = 0,
                 use_compile: bool = False, compile_mode: str = 'default',
                 pretrained_encoder: Optional[PretrainedEncoder] = None):
        self.config = config
        self.device = torch.device(device)
        # torch.compile of the losses: worth it on a GPU, where small updates are launch-bound.
        self.use_compile, self.compile_mode = use_compile, compile_mode
        self._compiled_functions: Dict[str, object] = {}
        torch.manual_seed(seed)
        # On a GPU the default generator (seeded above): CUDA graphs replay its draws anew.
        self.generator = (None if self.device.type == 'cuda' else
                          torch.Generator(device=self.device).manual_seed(seed))
        self.actor = ResidualActor(config.actor_config, pretrained_encoder).to(self.device)
        self.critic = CriticEnsemble(config).to(self.device)
        # With cameras, one encoder: the critic's loss trains it, targets and the actor read its
        # features without gradients (DrQ-v2), and it travels in the actor's weights. A frozen
        # pretrained network's parameters are not the encoder's (FrozenImageEncoder): only its
        # projection is optimised, and its features are computed without gradients.
        self.encoder: Optional[nn.Module] = self.actor.encoder
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.actor_target.encoder = None  # the targets take the online encoder's features
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # Fused Adam: one kernel for all parameters instead of a dozen per tensor; on CUDA its
        # step count on the device, so that a captured update can step it (graphed_updates).
        # Under torch.compile the step is compiled with the clipping and target averaging
        # around it (_apply_gradients), which takes Adam's foreach form.
        implementation = {'foreach': True} if use_compile else {'fused': True}
        if self.device.type == 'cuda':
            implementation['capturable'] = True
        encoder_parameters = list(self.encoder.parameters()) if self.encoder else []
        self.actor_optimizer = torch.optim.Adam(self.actor.net.parameters(), lr=config.actor_lr,
                                                **implementation)
        self.critic_optimizer = torch.optim.Adam(
            list(self.critic.parameters()) + encoder_parameters, lr=config.critic_lr,
            **implementation)
        # Optimiser steps taken since the optimisers were made or loaded (ready_for_capture).
        self._steps_since_load = {'actor': 0, 'critic': 0}
        self.scale = torch.as_tensor(config.scale_vector(), device=self.device)
        self.updates = 0
        self.actor_updates = 0

    @property
    def observations_normalized(self) -> bool:
        """Return whether observation statistics were set."""
        return not self.actor.observation_normalizer.identity

    def set_observation_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Normalize observations with these statistics from now on, in every network."""
        for module in (self.actor, self.actor_target, self.critic, self.critic_target):
            module.observation_normalizer.set_statistics(mean, std)

    # --- acting -------------------------------------------------------------------------
    def residual(self, observation: np.ndarray, base_action: np.ndarray,
                 noise_std: float = 0.0, rng: np.random.Generator = None,
                 frames: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
        """
        Return the actor's residual for one state (with exploration noise if asked).

        ``frames``: with cameras, each camera's uint8 frame (channels, height, width).
        """
        with torch.no_grad():
            residual = self.actor(
                torch.as_tensor(observation, dtype=torch.float32, device=self.device)[None],
                torch.as_tensor(base_action, dtype=torch.float32, device=self.device)[None],
                None if frames is None else [torch.as_tensor(np.asarray(frame),
                                                             device=self.device)[None]
                                             for frame in frames]
            )[0].cpu().numpy()
        if noise_std > 0:
            residual = np.clip(residual + rng.normal(0.0, noise_std, residual.shape), -1, 1)
        return residual.astype(np.float32)

    # --- learning -----------------------------------------------------------------------
    def update(self, batch: Batch) -> Dict[str, torch.Tensor]:
        """
        Update the critic once, and the actor every actor_delay updates after the warm-up.

        Returns the losses as 0-d tensors: reading them (float()) waits for the device, so the
        caller does it only when it reports, and a GPU runs update after update unhindered.
        """
        return self.update_tensors(self._tensors(batch))

    def actor_step_due(self, update: int) -> bool:
        """Return whether update number ``update`` (counted from 1) steps the actor too."""
        return update > self.config.warmup_updates and update % self.config.actor_delay == 0

    def update_tensors(self, tensors: Dict[str, torch.Tensor],
                       actor_step: Optional[bool] = None) -> Dict[str, torch.Tensor]:
        """
        Update from a batch already on the device (Batch's fields by name); see update().

        ``actor_step`` overrides the schedule (a captured run knows it in advance).
        """
        if self.use_compile and self.compile_mode == 'reduce-overhead':
            # CUDA graphs reuse their output memory from one replay to the next: a new step
            # begins here, and what is kept (the losses) was cloned out of the graph.
            torch.compiler.cudagraph_mark_step_begin()
        if self.encoder is not None:
            tensors = self._shifted(tensors)
        critic_loss, mean_q, features = self._critic_step(tensors)
        if features is not None:
            # The actor reads the features the critic's step computed, before that step moved
            # the encoder (DrQ-v2 does): a third fewer encoder passes per update.
            tensors['image_features'] = features
        self.updates += 1
        metrics = {'critic_loss': critic_loss, 'mean_q': mean_q}
        if self.actor_step_due(self.updates) if actor_step is None else actor_step:
            metrics['actor_loss'], metrics['guidance_loss'] = self._actor_step(tensors)
            self.actor_updates += 1
        return metrics

    def _shifted(self, tensors: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Return the batch with its frames shifted at random (DrQ's augmentation)."""
        shift = self.config.image_shift
        shifted = dict(tensors)
        for name in ('frames', 'bootstrap_frames'):
            shifted[name] = [random_shift(frames, shift, self.generator)
                             for frames in tensors[name]]
        return shifted

    def _image_features(self, tensors: Dict[str, torch.Tensor]):
        """Return the encoder's features of s_t (with gradients) and of the bootstrap state."""
        if self.encoder is None:
            return None, None
        with torch.no_grad():
            bootstrap = self.encoder(tensors['bootstrap_frames'])
        return self.encoder(tensors['frames']), bootstrap

    def ready_for_capture(self) -> bool:
        """
        Return whether an update would only replay work: nothing made or compiled on its way.

        Each optimiser makes its state in its first step, and a compiled step compiles once
        more for that state in its second; neither may happen inside a CUDA graph's capture.
        """
        needed = 2 if self.use_compile else 1
        return all(steps >= needed for steps in self._steps_since_load.values())

    def optimizers_loaded(self) -> None:
        """Note that the optimisers' state was replaced (a checkpoint was restored)."""
        self._steps_since_load = dict.fromkeys(self._steps_since_load, 0)

    def _apply_gradients(self, name: str) -> None:
        """Clip a network's gradients, step its optimiser and move its target toward it."""
        # The actor's own layers: its encoder is the critic's, stepped with the critic.
        network, target = ((self.critic, self.critic_target) if name == 'critic' else
                           (self.actor.net, self.actor_target.net))
        optimizer = self.critic_optimizer if name == 'critic' else self.actor_optimizer
        clipped = list(network.parameters())
        if name == 'critic' and self.encoder is not None:
            clipped += list(self.encoder.parameters())
        if self.use_compile:
            _clip_gradients_fusable(clipped, self.config.grad_clip)
        else:
            nn.utils.clip_grad_norm_(clipped, self.config.grad_clip, foreach=True)
        optimizer.step()
        _soft_update(network, target, self.config.tau)

    def _critic_loss(self, tensors: Dict[str, torch.Tensor], normal_draw: torch.Tensor,
                     pair: Optional[torch.Tensor]):
        config = self.config
        observation, base = tensors['observation'], tensors['base_action']
        features, next_features = self._image_features(tensors)
        with torch.no_grad():
            next_observation = tensors['bootstrap_observation']
            next_base = tensors['bootstrap_base_action']
            noise = (normal_draw * config.target_noise).clamp(-config.target_noise_clip,
                                                              config.target_noise_clip)
            next_residual = (self.actor_target(next_observation, next_base,
                                               image_features=next_features)
                             + noise).clamp(-1, 1)
            next_action = compose(next_base, next_residual, self.scale)
            target_q = self.critic_target(next_observation, next_base, next_action,
                                          next_features)
            if pair is not None:
                target_q = target_q[pair]
            target = tensors['n_step_return'] + tensors['bootstrap_discount'] * \
                target_q.min(dim=0).values
        q = self.critic(observation, base, tensors['executed_action'], features)
        return (((q - target.unsqueeze(0)) ** 2).mean(), q.detach().mean(),
                None if features is None else features.detach())

    def _critic_step(self, tensors: Dict[str, torch.Tensor]):
        config = self.config
        # The draws stay outside torch.compile, where a CUDA graph replays them anew.
        normal_draw = torch.randn(tensors['bootstrap_base_action'].shape,
                                  generator=self.generator, device=self.device)
        # Two heads are the pair whichever way they are drawn.
        pair = (None if config.critic_heads == 2 else
                torch.randperm(config.critic_heads, generator=self.generator,
                               device=self.device)[:2])
        critic_loss, mean_q, features = self._compiled('critic', self._critic_loss)(
            tensors, normal_draw, pair)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self._compiled('critic_gradients', self._apply_gradients)('critic')
        self._steps_since_load['critic'] += 1
        return critic_loss.detach().clone(), mean_q.clone(), features

    def _actor_loss(self, tensors: Dict[str, torch.Tensor]):
        config = self.config
        observation, base = tensors['observation'], tensors['base_action']
        features = tensors.get('image_features')  # the critic step's, without gradients
        if self.encoder is not None and features is None:
            with torch.no_grad():  # the critic trains the encoder, not the actor
                features = self.encoder(tensors['frames'])
        residual = self.actor(observation, base, image_features=features)
        action = compose(base, residual, self.scale)
        loss = -self.critic(observation, base, action, features).mean()
        guidance = guidance_loss(residual, tensors, self.scale)
        loss = loss + config.bc_weight * guidance
        if config.support_weight > 0:
            loss = loss + config.support_weight * support_loss(residual, tensors, self.scale)
        return loss, guidance.detach()

    def _actor_step(self, tensors: Dict[str, torch.Tensor]):
        # The actor's loss goes through the critic, whose own gradients it does not need: a
        # critic left out of the backward pass saves a third of its matrix products.
        self.critic.requires_grad_(False)
        try:
            loss, guidance = self._compiled('actor', self._actor_loss)(tensors)
        finally:
            self.critic.requires_grad_(True)
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._compiled('actor_gradients', self._apply_gradients)('actor')
        self._steps_since_load['actor'] += 1
        return loss.detach().clone(), guidance.clone()

    def _compiled(self, name: str, function):
        """Return function, through torch.compile when built with use_compile."""
        if not self.use_compile:
            return function
        if name not in self._compiled_functions:
            self._compiled_functions[name] = torch.compile(function, mode=self.compile_mode)
        return self._compiled_functions[name]

    def _tensors(self, batch: Batch) -> Dict[str, torch.Tensor]:
        tensors = {}
        for name in Batch.__dataclass_fields__:
            value = getattr(batch, name)
            if isinstance(value, tuple):  # one frame batch per camera
                tensors[name] = [torch.as_tensor(frames, device=self.device) for frames in value]
            elif value is not None:
                tensors[name] = torch.as_tensor(value, device=self.device)
        return tensors

    # --- state for checkpoints ------------------------------------------------------------
    def network_state(self) -> Dict[str, torch.Tensor]:
        """Return every network's tensors, flat, for a safetensors file."""
        state = {}
        for prefix, module in (('actor', self.actor), ('critic', self.critic),
                               ('actor_target', self.actor_target),
                               ('critic_target', self.critic_target)):
            for name, tensor in module.state_dict().items():
                state[f'{prefix}.{name}'] = tensor.detach().cpu().contiguous()
        return state

    def load_network_state(self, state: Dict[str, torch.Tensor]) -> None:
        """Load tensors written by network_state (shapes must match)."""
        for prefix, module in (('actor', self.actor), ('critic', self.critic),
                               ('actor_target', self.actor_target),
                               ('critic_target', self.critic_target)):
            own = {name[len(prefix) + 1:]: tensor.to(self.device)
                   for name, tensor in state.items()
                   if name.startswith(prefix + '.') and name.split('.')[0] == prefix}
            # Checkpoints from before observation normalization: identity statistics.
            module.load_state_dict(with_identity_normalizer(own, module))


def guidance_loss(residual: torch.Tensor, tensors: Dict[str, torch.Tensor],
                  scale: torch.Tensor) -> torch.Tensor:
    """
    Return the pull of ``residual`` toward what the person did, on the axes they took.

    The target is the residual that would have produced the human action; an axis the person
    left to the policy gets no pull. A mean over the steps a person controlled (masked: no host
    sync to ask if there are any).
    """
    wanted = residual_toward(tensors['human_action'], tensors['base_action'], scale)
    axes = tensors['human_axes'].to(residual.dtype)
    steps = tensors['intervened'].to(residual.dtype)
    return (((residual - wanted) ** 2) * axes).sum() / steps.sum().clamp(min=1.0)


def support_loss(residual: torch.Tensor, tensors: Dict[str, torch.Tensor],
                 scale: torch.Tensor) -> torch.Tensor:
    """
    Return the mean squared distance of ``residual`` from the residuals the steps executed.

    The critic knows the actions near the ones the cell executed (the actor's, with its
    exploration noise, and the person's); far from them its value is extrapolation, and an
    actor that climbs it wrecks the base policy. This pull keeps the actor where the data is
    and lets it move only as far as the critic's gain outweighs the pull: a trust region that
    widens as the executed residuals follow the actor (TD3+BC's behaviour term, on residuals).
    """
    executed = residual_toward(tensors['executed_action'], tensors['base_action'], scale)
    return ((residual - executed) ** 2).sum(dim=-1).mean()


def _clip_gradients_fusable(parameters, max_norm: float) -> None:
    """
    Scale gradients down to a total 2-norm of at most max_norm, as clip_grad_norm_ does.

    Written as one sum of squares, which torch.compile fuses into a few reductions; compiled,
    clip_grad_norm_'s per-tensor norms become a kernel per tensor. Eager, clip_grad_norm_'s
    multi-tensor kernels are the faster form.
    """
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    total_norm = torch.sqrt(sum((gradient * gradient).sum() for gradient in gradients))
    torch._foreach_mul_(gradients, (max_norm / (total_norm + 1e-6)).clamp(max=1.0))


def _soft_update(source: nn.Module, target: nn.Module, tau: float) -> None:
    """Move the target networks a step tau toward the trained ones (one fused call)."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)
