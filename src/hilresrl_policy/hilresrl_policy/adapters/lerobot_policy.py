"""
Base-policy adapter for LeRobot policies (ACT, Diffusion, SmolVLA, pi0, ...) from a folder.

Registered as 'lerobot'. LeRobot is an optional extra with its own torch (0.6.1 wants Python
3.12 and torch<2.12): scripts/setup-lerobot.sh makes the environment it runs in (README).
Configuration: ``checkpoint`` (a folder written by ``save_pretrained``, with its pre- and
post-processor files: the policy's own normalisation), ``device``, ``state_keys`` (observation
names concatenated into ``observation.state``, default ['task_state']), ``image_map`` (LeRobot
image key -> our observation name, e.g. {'observation.images.front':
'image/camera/front/image_raw'}), ``environment_keys`` (observation names concatenated into
``observation.environment_state``, for policies that take one: ACT without cameras must),
``environment_state`` (true: the state_keys go there instead). Nothing is downloaded: the
weights, config and processors are read from the folder alone (local_files_only); torchvision
backbone weights a config names (ACT's and Diffusion's ResNet) are left out, as the saved weights
hold the whole network; a policy built on a Hugging Face model (a VLA's language model, a
tokenizer) that this machine's cache lacks is refused, naming it.

A policy that looks at several past observations (Diffusion's ``n_obs_steps``) gets them: the
adapter keeps that many, the first one repeated at an episode's start, as LeRobot's own
select_action does. Each act() returns the chunk the policy predicts from them (LeRobot's
n_action_steps rows), which the base-policy node executes receding-horizon or ensembled. The
types that plan only inside their own select_action (SINGLE_ACTION_TYPES) give one action per
observation from it instead.
"""

from collections import deque
import dataclasses
import pathlib
import re
from typing import Any, Deque, Dict, List, Mapping, Optional, Sequence

from hilresrl_policy.adapters.base import BasePolicy, BasePolicyError
import numpy as np

# Config fields naming torchvision weights a policy's backbone starts from before training.
BACKBONE_WEIGHT_FIELDS = ('pretrained_backbone_weights',)
# Config fields naming Hugging Face models a policy is built on (SmolVLA's vlm_model_name,
# pi0-FAST's text_tokenizer_name, ...): loaded by name when the policy is made.
HUB_MODEL_FIELD = re.compile(r'(^|_)(model|tokenizer|encoder)_name$')
INSTALL_HINT = ('LeRobot is not installed: it is an optional extra with its own Python (3.12) '
                'and torch; scripts/setup-lerobot.sh makes that environment')
PROCESSOR_FILES = ('policy_preprocessor.json', 'policy_postprocessor.json')
# Policy types (LeRobot 0.6.1) that plan from observation queues only their own select_action
# fills (VQ-BeT, TD-MPC) or return single actions (the Gaussian actor): asked through
# select_action, one action per observation, queued and replanned as LeRobot does it.
SINGLE_ACTION_TYPES = ('vqbet', 'tdmpc', 'gaussian_actor')


class LeRobotPolicy(BasePolicy):
    """A pretrained LeRobot policy with its processors, one action chunk per observation."""

    def __init__(self, checkpoint: str, device: str = 'cpu',
                 state_keys: Sequence[str] = ('task_state',),
                 image_map: Optional[Mapping[str, str]] = None,
                 environment_state: bool = False, environment_keys: Sequence[str] = ()):
        try:
            import torch
            from lerobot.configs.policies import PreTrainedConfig
            from lerobot.policies.factory import get_policy_class, make_pre_post_processors
        except ImportError as error:
            raise BasePolicyError(f'{INSTALL_HINT} ({error})') from error
        folder = pathlib.Path(checkpoint).expanduser()
        missing = [name for name in ('config.json', 'model.safetensors') + PROCESSOR_FILES
                   if not (folder / name).is_file()]
        if missing:
            raise BasePolicyError(
                f'{folder} is not a LeRobot policy folder as save_pretrained writes it (with '
                f'its processors): no {", ".join(missing)}')
        config = PreTrainedConfig.from_pretrained(str(folder), local_files_only=True)
        config.device = device
        for name in BACKBONE_WEIGHT_FIELDS:  # in model.safetensors: fetching them is for nothing
            if getattr(config, name, None):
                setattr(config, name, None)
        missing_models = hub_models_missing(config)
        if missing_models:
            raise BasePolicyError(
                f'{folder.name} ({config.type}) is built on {", ".join(missing_models)} from '
                "the Hugging Face hub, which is not in this machine's cache (nothing is "
                f'downloaded at run time): fetch it once, e.g. hf download {missing_models[0]}')
        self.state_key = ('observation.environment_state' if environment_state
                          else 'observation.state')
        self.state_keys = list(state_keys)
        self.environment_keys = list(environment_keys)
        self.image_map = dict(image_map or {})
        expected = set(config.input_features)
        given = {self.state_key} | set(self.image_map)
        if self.environment_keys:
            given.add('observation.environment_state')
        if expected != given:
            raise BasePolicyError(
                f'{folder.name} ({config.type}) takes {sorted(expected)}; this configuration '
                f'gives {sorted(given)} (state_keys -> {self.state_key}, environment_keys, '
                'image_map keys)')
        try:
            self._policy = get_policy_class(config.type).from_pretrained(
                str(folder), config=config, local_files_only=True)
        except OSError as error:  # hub weights it names and the local cache lacks
            raise BasePolicyError(f'{folder.name} ({config.type}) needs files that are not on '
                                  f'this machine (nothing is downloaded at run time): '
                                  f'{error}') from error
        self._policy.eval()
        self._pre, self._post = make_pre_post_processors(config, pretrained_path=str(folder))
        self._torch, self._device = torch, device
        self.action_dim = int(config.output_features['action'].shape[0])
        self.observation_steps = int(getattr(config, 'n_obs_steps', 1) or 1)
        self.single_action = config.type in SINGLE_ACTION_TYPES
        self.horizon = 1 if self.single_action else int(
            getattr(config, 'n_action_steps', None) or getattr(config, 'chunk_size', None) or 1)
        self.source_model = f'lerobot:{config.type}:{folder.name}'
        self._task = ''
        self._history: Deque[Dict[str, Any]] = deque(maxlen=self.observation_steps)

    def reset(self, instruction: str = '') -> None:
        """Start of an episode: clear the policy's queues; the instruction is its task."""
        self._task = instruction
        self._history.clear()
        self._policy.reset()

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the policy's action chunk for ``observation``: float32 (horizon, dim)."""
        torch = self._torch
        missing = [name for name in self.state_keys + self.environment_keys
                   + list(self.image_map.values()) if name not in observation]
        if missing:
            raise BasePolicyError(f'{self.source_model} needs {", ".join(missing)}')
        state = np.concatenate([np.asarray(observation[name], np.float32).ravel()
                                for name in self.state_keys])
        frame: Dict[str, Any] = {self.state_key: torch.from_numpy(state)[None],
                                 'task': [self._task]}
        if self.environment_keys:
            frame['observation.environment_state'] = torch.from_numpy(np.concatenate(
                [np.asarray(observation[name], np.float32).ravel()
                 for name in self.environment_keys]))[None]
        for key, name in self.image_map.items():  # H x W x 3 uint8 -> 1 x 3 x H x W in [0, 1]
            pixels = np.asarray(observation[name], np.float32) / 255.0
            frame[key] = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        with torch.no_grad():
            frame = self._pre(frame)  # the policy's own normalisation, per observation
            if self.single_action:
                action = self._post(self._policy.select_action(frame))
                return np.asarray(action.detach().cpu().numpy(), np.float32).reshape(
                    1, self.action_dim)
            while len(self._history) < self.observation_steps - 1:
                self._history.append(frame)  # an episode starts with its first one repeated
            self._history.append(frame)
            batch = frame if self.observation_steps == 1 else {
                key: (torch.stack([past[key] for past in self._history], dim=1)
                      if torch.is_tensor(value) else value) for key, value in frame.items()}
            chunk = self._post(self._policy.predict_action_chunk(batch))
        actions = np.asarray(chunk.detach().cpu().numpy(), np.float32).reshape(
            -1, self.action_dim)
        self.horizon = actions.shape[0]
        return actions


def hub_models_missing(config: Any) -> List[str]:
    """Return the Hugging Face models a LeRobot policy config names that the cache lacks."""
    from huggingface_hub import snapshot_download
    missing = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if (not HUB_MODEL_FIELD.search(field.name) or not isinstance(value, str)
                or value.count('/') != 1 or pathlib.Path(value).expanduser().exists()):
            continue  # not a repository id: unset, or a local folder
        try:
            snapshot_download(value, local_files_only=True)
        except (OSError, ValueError):  # not in the cache, or not a repository id after all
            missing.append(value)
    return missing


def make_lerobot_policy(config: Dict[str, Any]) -> BasePolicy:
    """Create a LeRobotPolicy from a base-policy configuration."""
    if not config.get('checkpoint'):
        raise BasePolicyError('lerobot needs checkpoint: a folder written by save_pretrained')
    return LeRobotPolicy(str(config['checkpoint']), str(config.get('device', 'cpu')),
                         config.get('state_keys', ['task_state']), config.get('image_map'),
                         bool(config.get('environment_state', False)),
                         config.get('environment_keys', ()))


# Policy types a folder can be made for from their config alone, random weights, no download
# (LeRobot 0.6.1's others need transformers and a hub model).
RANDOM_POLICY_TYPES = ('act', 'diffusion') + SINGLE_ACTION_TYPES
QUICK_SETTINGS = {'act': {'chunk_size': 10, 'n_action_steps': 10},
                  'diffusion': {'horizon': 16, 'n_action_steps': 8, 'num_inference_steps': 4}}


def save_random_policy(folder: pathlib.Path, policy_type: str, state_dim: int, action_dim: int,
                       images: Optional[Mapping[str, Sequence[int]]] = None,
                       statistics: Optional[Mapping[str, Mapping[str, np.ndarray]]] = None,
                       seed: int = 0, environment_dim: int = 0) -> pathlib.Path:
    """
    Write a LeRobot policy with random weights and its processors, as save_pretrained does.

    ``policy_type`` one of RANDOM_POLICY_TYPES, built from its LeRobot config with no pretrained
    backbone (nothing is downloaded); ``images``: LeRobot
    image key -> (channels, height, width); ``statistics``: the normalisation statistics its
    processors apply (feature -> {'mean', 'std', 'min', 'max'}), as a dataset would give them;
    ``environment_dim``: an ``observation.environment_state`` of that size too (ACT without
    cameras needs one). For tests and dry runs.
    """
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import (get_policy_class, make_policy_config,
                                          make_pre_post_processors)
    if policy_type not in RANDOM_POLICY_TYPES:
        raise ValueError(f'policy type {policy_type!r}: one of {", ".join(RANDOM_POLICY_TYPES)}')
    inputs = {'observation.state': PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))}
    for key, shape in (images or {}).items():
        inputs[key] = PolicyFeature(type=FeatureType.VISUAL, shape=tuple(shape))
    if environment_dim:
        inputs['observation.environment_state'] = PolicyFeature(type=FeatureType.ENV,
                                                                shape=(environment_dim,))
    outputs = {'action': PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))}
    torch.manual_seed(seed)
    # LeRobot's config of the type, with no pretrained backbone, a crop inside the images and
    # (ACT, Diffusion) short chunks and few denoising steps, so that tests run quickly.
    config = make_policy_config(policy_type, input_features=inputs, output_features=outputs,
                                device='cpu', **QUICK_SETTINGS.get(policy_type, {}))
    if hasattr(config, 'pretrained_backbone_weights'):
        config.pretrained_backbone_weights = None
    if getattr(config, 'crop_shape', None) and images:
        side = min(min(shape[1:]) for shape in images.values())
        config.crop_shape = (side - side // 8,) * 2
    policy = get_policy_class(policy_type)(config)
    policy.save_pretrained(str(folder))
    stats = {feature: {name: torch.as_tensor(np.asarray(value, np.float32))
                       for name, value in values.items()}
             for feature, values in (statistics or {}).items()}
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=stats or None)
    preprocessor.save_pretrained(str(folder))
    postprocessor.save_pretrained(str(folder))
    return pathlib.Path(folder)
