"""
Base-policy adapter for an exported torch module: TorchScript (.pt) or torch.export (.pt2).

Registered as 'torch_module'. Configuration: ``checkpoint`` (the file), ``inputs`` (observation
names concatenated into the module's one input, default ['task_state']), ``device``, and
``action_dim``. The module maps a (1, features) float32 tensor to actions of shape (action_dim,),
(horizon, action_dim) or (1, horizon, action_dim). No pickled Python objects are loaded: both
formats hold a graph and tensors.
"""

import pathlib
from typing import Any, Dict, Mapping, Sequence

from hilresrl_policy.adapters.base import BasePolicy, BasePolicyError
import numpy as np


class TorchModulePolicy(BasePolicy):
    """A frozen, exported torch module as a base policy."""

    def __init__(self, checkpoint: str, action_dim: int, inputs: Sequence[str] = ('task_state',),
                 device: str = 'cpu'):
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

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run the module on the concatenated inputs; return float32 (horizon, action_dim)."""
        missing = [name for name in self.inputs if name not in observation]
        if missing:
            raise BasePolicyError(f'{self.source_model} needs observation(s) '
                                  f'{", ".join(missing)}; got {", ".join(sorted(observation))}')
        features = np.concatenate([np.asarray(observation[name], np.float32).ravel()
                                   for name in self.inputs])
        with self._torch.no_grad():
            output = self._module(self._torch.from_numpy(features)[None].to(self._device))
        actions = np.asarray(output.detach().cpu().numpy(), np.float32)
        actions = actions.reshape(-1, actions.shape[-1]) if actions.ndim else actions
        if actions.ndim != 2 or actions.shape[1] != self.action_dim:
            raise BasePolicyError(f'{self.source_model} returned shape {output.shape}; the '
                                  f'cell has {self.action_dim} action axes')
        self.horizon = actions.shape[0]
        return actions


def make_torch_module_policy(config: Dict[str, Any]) -> BasePolicy:
    """Create a TorchModulePolicy from a base-policy configuration."""
    if not config.get('checkpoint') or not config.get('action_dim'):
        raise BasePolicyError('torch_module needs checkpoint (a .pt or .pt2 file) and '
                              'action_dim (base_policy.config_json)')
    return TorchModulePolicy(str(config['checkpoint']), int(config['action_dim']),
                             config.get('inputs', ['task_state']),
                             str(config.get('device', 'cpu')))
