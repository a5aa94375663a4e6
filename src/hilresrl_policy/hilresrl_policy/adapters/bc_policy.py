"""
Base-policy adapter for a behaviour-cloning checkpoint (hilresrl_policy.bc).

Registered as 'bc' in the hilresrl.base_policies entry-point group; configuration:
``checkpoint`` (the checkpoint directory) and optionally ``device`` (default 'cpu').
"""

from typing import Any, Dict, Mapping

from hilresrl_policy.adapters.base import BasePolicy, BasePolicyError
from hilresrl_policy.bc import load_checkpoint
from hilresrl_policy.model_checkpoint import CheckpointError
import numpy as np

STATE_KEY = 'task_state'


class BCPolicy(BasePolicy):
    """A BC network as a base policy: one action per observation (horizon 1)."""

    horizon = 1

    def __init__(self, checkpoint: str, device: str = 'cpu'):
        try:
            loaded = load_checkpoint(checkpoint, device=device)
        except CheckpointError as error:
            raise BasePolicyError(f'cannot load the BC checkpoint: {error}') from error
        self.checkpoint = loaded.directory
        self.metadata = loaded.metadata
        self._network = loaded.network
        config = self._network.config
        self.action_dim = config.action_dim
        task = config.task or 'unknown'
        self.source_model = f'bc_{config.kind}:{task}@{loaded.sha256[:12]}'

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the network's action for ``observation``: float32 (1, action_dim)."""
        config = self._network.config
        state = image = None
        if config.state_dim:
            state = self._entry(observation, STATE_KEY)
            state = np.asarray(state, dtype=np.float32).reshape(-1)
            if state.shape != (config.state_dim,):
                raise BasePolicyError(f'{STATE_KEY} has {state.size} values; '
                                      f'{self.source_model} reads {config.state_dim}')
        if config.kind == 'cnn':
            image = np.asarray(self._entry(observation, config.image_key))
            if image.shape != config.image_shape or image.dtype != np.uint8:
                raise BasePolicyError(f'{config.image_key} is {image.dtype} {image.shape}; '
                                      f'{self.source_model} reads uint8 {config.image_shape}')
        action = self._network.act(state=state, image=image)
        return np.clip(action, -1.0, 1.0).astype(np.float32).reshape(1, self.action_dim)

    def _entry(self, observation: Mapping[str, np.ndarray], key: str) -> np.ndarray:
        if key not in observation:
            raise BasePolicyError(f'{self.source_model} needs observation {key!r}; got '
                                  f'{", ".join(sorted(observation)) or "nothing"}')
        return observation[key]


def make_bc_policy(config: Dict[str, Any]) -> BasePolicy:
    """Create a BC base policy from {'checkpoint': directory, 'device': 'cpu'}."""
    if not config.get('checkpoint'):
        raise BasePolicyError("the bc base policy needs 'checkpoint': a checkpoint directory")
    return BCPolicy(str(config['checkpoint']), device=str(config.get('device', 'cpu')))
