"""
Base-policy adapter for an exported torch module: TorchScript (.pt) or torch.export (.pt2).

Registered as 'torch_module'. Configuration: ``checkpoint`` (the file), ``inputs`` (observation
names concatenated into the module's one input, default ['task_state']), ``device``, and
``action_dim``. The module maps a (1, features) float32 tensor to actions of shape (action_dim,),
(horizon, action_dim) or (1, horizon, action_dim). No pickled Python objects are loaded: both
formats hold a graph and tensors.

A generative policy (a diffusion or flow sampler, e.g. LeRobot's Diffusion or pi0 exported with
its noise as an input) is steerable when ``latent_dim`` is set: the module then takes a second
input, the (1, latent_dim) noise it generates from. ``act`` draws that noise from N(0, I) with
its own generator (``seed``); ``act_with_latent`` passes the refinement actor's latent instead,
which is what actor_mode latent and dual need.

A TorchScript module may also export its vision tower as a method ``encode_images`` (decorated
``@torch.jit.export``: (batch, 3, height, width) float pixels in [0, 1] -> features): the
residual and the critic can then see through it (image_encoder:=base_policy:torch_module,
image_encoder_weights:=<the .pt file>), frozen, as the policy sees.
"""

import pathlib
from typing import Any, Dict, Mapping, Sequence

from hilresrl_policy.adapters.base import BasePolicy, BasePolicyError
import numpy as np
from torch import nn


class TorchModulePolicy(BasePolicy):
    """A frozen, exported torch module as a base policy."""

    def __init__(self, checkpoint: str, action_dim: int, inputs: Sequence[str] = ('task_state',),
                 device: str = 'cpu', latent_dim: int = 0, seed: int = 0):
        import torch
        path = pathlib.Path(checkpoint).expanduser()
        if not path.is_file():
            raise BasePolicyError(f'no module file at {path} (a TorchScript .pt or a '
                                  'torch.export .pt2)')
        try:
            if path.suffix == '.pt2':
                self._module = torch.export.load(str(path)).module()
            else:
                self._module = torch.jit.load(str(path), map_location=device)
                self._module.eval()
        except (RuntimeError, ValueError, OSError) as error:
            raise BasePolicyError(f'cannot load {path}: {error}') from error
        self._torch, self._device = torch, device
        self.action_dim = int(action_dim)
        self.inputs = list(inputs)
        self.source_model = f'torch_module:{path.name}'
        self.horizon = 1
        self.latent_dim = int(latent_dim)
        if self.latent_dim < 0:
            raise BasePolicyError(f'latent_dim must be 0 (no latent) or more, not {latent_dim}')
        self._latents = np.random.default_rng(seed)

    def vision_encoder(self):
        """Return the module's exported encode_images method as a torch module."""
        if not hasattr(self._module, 'encode_images'):
            raise BasePolicyError(
                f'{self.source_model} exports no encode_images method (a TorchScript module '
                'with @torch.jit.export def encode_images(self, images) -> features; a '
                'torch.export .pt2 holds forward only)')
        return ExportedEncoder(self._module)

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run the module on the concatenated inputs; return float32 (horizon, action_dim)."""
        if self.latent_dim:
            return self._run(observation, self._latents.standard_normal(
                self.latent_dim).astype(np.float32))
        return self._run(observation, None)

    def act_with_latent(self, observation: Mapping[str, np.ndarray],
                        latent: np.ndarray) -> np.ndarray:
        """Run the module with ``latent`` as its noise input; return (horizon, action_dim)."""
        if not self.latent_dim:
            return super().act_with_latent(observation, latent)
        values = np.asarray(latent, np.float32).reshape(-1)
        if values.size != self.latent_dim or not np.all(np.isfinite(values)):
            raise BasePolicyError(f'{self.source_model} takes a finite latent of '
                                  f'{self.latent_dim} values, not {values.size}')
        return self._run(observation, values)

    def _run(self, observation: Mapping[str, np.ndarray], latent) -> np.ndarray:
        missing = [name for name in self.inputs if name not in observation]
        if missing:
            raise BasePolicyError(f'{self.source_model} needs observation(s) '
                                  f'{", ".join(missing)}; got {", ".join(sorted(observation))}')
        features = np.concatenate([np.asarray(observation[name], np.float32).ravel()
                                   for name in self.inputs])
        torch = self._torch
        with torch.no_grad():
            module_inputs = [torch.from_numpy(features)[None].to(self._device)]
            if latent is not None:
                module_inputs.append(torch.from_numpy(latent)[None].to(self._device))
            try:
                output = self._module(*module_inputs)
            except (RuntimeError, TypeError) as error:
                raise BasePolicyError(
                    f'{self.source_model} failed on {len(module_inputs)} input(s) '
                    f'(latent_dim {self.latent_dim}: a module with a noise input needs '
                    f'latent_dim, one without needs none): {error}') from error
        actions = np.asarray(output.detach().cpu().numpy(), np.float32)
        actions = actions.reshape(-1, actions.shape[-1]) if actions.ndim else actions
        if actions.ndim != 2 or actions.shape[1] != self.action_dim:
            raise BasePolicyError(f'{self.source_model} returned shape {output.shape}; the '
                                  f'cell has {self.action_dim} action axes')
        self.horizon = actions.shape[0]
        return actions


class ExportedEncoder(nn.Module):
    """A scripted module's exported encode_images method, as a module's forward."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, images):
        """Return the module's features of (batch, 3, height, width) pixels in [0, 1]."""
        return self.module.encode_images(images)


def make_torch_module_policy(config: Dict[str, Any]) -> BasePolicy:
    """Create a TorchModulePolicy from a base-policy configuration."""
    if not config.get('checkpoint') or not config.get('action_dim'):
        raise BasePolicyError('torch_module needs checkpoint (a .pt or .pt2 file) and '
                              'action_dim (base_policy.config_json)')
    return TorchModulePolicy(str(config['checkpoint']), int(config['action_dim']),
                             config.get('inputs', ['task_state']),
                             str(config.get('device', 'cpu')), int(config.get('latent_dim', 0)),
                             int(config.get('seed', 0)))
