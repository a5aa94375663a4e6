"""
Base-policy adapter for LeRobot policies (ACT, Diffusion, SmolVLA, pi0, ...) from a folder.

Registered as 'lerobot'. LeRobot is an optional extra with its own torch (0.4.x pins
torch<2.11): install it in an environment of its own (README). Configuration: ``checkpoint``
(a folder written by ``save_pretrained``, with its pre/post-processor files), ``device``,
``state_keys`` (observation names concatenated into ``observation.state``, default
['task_state']), ``image_map`` (LeRobot image key -> our observation name, e.g.
{'observation.images.front': 'image/camera/front/image_raw'}), ``environment_state`` (true: the
state goes to ``observation.environment_state``, as state-only ACT policies take it).
"""

import pathlib
from typing import Any, Dict, Mapping, Optional, Sequence

from hilresrl_policy.adapters.base import BasePolicy, BasePolicyError
import numpy as np

INSTALL_HINT = ('LeRobot is not installed: it is an optional extra with its own torch; in an '
                "environment of its own: pip install 'lerobot==0.4.4'")


class LeRobotPolicy(BasePolicy):
    """A pretrained LeRobot policy with its processors, one action chunk per observation."""

    def __init__(self, checkpoint: str, device: str = 'cpu',
                 state_keys: Sequence[str] = ('task_state',),
                 image_map: Optional[Mapping[str, str]] = None,
                 environment_state: bool = False):
        try:
            import torch
            from lerobot.configs.policies import PreTrainedConfig
            from lerobot.policies.factory import get_policy_class, make_pre_post_processors
        except ImportError as error:
            raise BasePolicyError(f'{INSTALL_HINT} ({error})') from error
        folder = pathlib.Path(checkpoint).expanduser()
        if not (folder / 'config.json').is_file():
            raise BasePolicyError(f'{folder} holds no LeRobot policy (no config.json)')
        config = PreTrainedConfig.from_pretrained(str(folder))
        config.device = device
        self._policy = get_policy_class(config.type).from_pretrained(str(folder), config=config)
        self._policy.eval()
        self._pre, self._post = make_pre_post_processors(config, pretrained_path=str(folder))
        self._torch, self._device = torch, device
        self.state_keys = list(state_keys)
        self.image_map = dict(image_map or {})
        self.state_key = ('observation.environment_state' if environment_state
                          else 'observation.state')
        self.action_dim = int(config.output_features['action'].shape[0])
        self.horizon = int(getattr(config, 'chunk_size', None) or getattr(config, 'horizon', 1))
        self.source_model = f'lerobot:{config.type}:{folder.name}'
        self._task = ''

    def reset(self, instruction: str = '') -> None:
        """Start of an episode: clear the policy's queues; the instruction is its task."""
        self._task = instruction
        self._policy.reset()

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the policy's action chunk for ``observation``: float32 (horizon, dim)."""
        torch = self._torch
        missing = [name for name in self.state_keys + list(self.image_map.values())
                   if name not in observation]
        if missing:
            raise BasePolicyError(f'{self.source_model} needs {", ".join(missing)}')
        state = np.concatenate([np.asarray(observation[name], np.float32).ravel()
                                for name in self.state_keys])
        batch: Dict[str, Any] = {self.state_key: torch.from_numpy(state)[None],
                                 'task': [self._task]}
        for key, name in self.image_map.items():  # H x W x 3 uint8 -> 1 x 3 x H x W in [0, 1]
            pixels = np.asarray(observation[name], np.float32) / 255.0
            batch[key] = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        with torch.no_grad():
            chunk = self._policy.predict_action_chunk(self._pre(batch))
            chunk = self._post(chunk)
        actions = np.asarray(chunk.detach().cpu().numpy(), np.float32).reshape(
            -1, self.action_dim)
        return actions


def make_lerobot_policy(config: Dict[str, Any]) -> BasePolicy:
    """Create a LeRobotPolicy from a base-policy configuration."""
    if not config.get('checkpoint'):
        raise BasePolicyError('lerobot needs checkpoint: a folder written by save_pretrained')
    return LeRobotPolicy(str(config['checkpoint']), str(config.get('device', 'cpu')),
                         config.get('state_keys', ['task_state']), config.get('image_map'),
                         bool(config.get('environment_state', False)))


def save_random_act_policy(folder: pathlib.Path, state_dim: int,
                           action_dim: int) -> pathlib.Path:
    """Write an ACT policy with random weights for a state-only cell (for tests and dry runs)."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors
    config = ACTConfig(
        input_features={'observation.environment_state': PolicyFeature(
            type=FeatureType.ENV, shape=(state_dim,))},
        output_features={'action': PolicyFeature(type=FeatureType.ACTION,
                                                 shape=(action_dim,))},
        chunk_size=10, n_action_steps=10, device='cpu')
    policy = ACTPolicy(config)
    policy.save_pretrained(str(folder))
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=None)
    preprocessor.save_pretrained(str(folder))
    postprocessor.save_pretrained(str(folder))
    return pathlib.Path(folder)
