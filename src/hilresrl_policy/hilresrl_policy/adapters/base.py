"""
The base-policy adapter interface and its entry-point registry.

Observations are dictionaries of named numpy arrays: state sources by their source name
(``task_state``, ``joint_positions``, ``ee_pose``, ...) and camera images as ``image/<camera>``
(H x W x 3 uint8). Actions are in the cell's normalized action space, one value in [-1, 1] per
axis. No ROS here: adapters run the same in a node, a benchmark or a notebook.
"""

import abc
import importlib
from typing import Any, Dict, List, Mapping

import numpy as np

ENTRY_POINT_GROUP = 'hilresrl.base_policies'
# The suite's own adapters, as setup.py registers them (a test keeps the two alike): found by
# name also where the suite's sources are on the path but not installed (the GPU machine).
SUITE_ADAPTERS = {
    'bc': 'hilresrl_policy.adapters.bc_policy:make_bc_policy',
    'openpi': 'hilresrl_policy.adapters.openpi_client:make_openpi_policy',
    'torch_module': 'hilresrl_policy.adapters.torch_module:make_torch_module_policy',
    'lerobot': 'hilresrl_policy.adapters.lerobot_policy:make_lerobot_policy',
    'flow_bc': 'hilresrl_policy.adapters.flow_policy:make_flow_policy',
}


class BasePolicyError(RuntimeError):
    """A base policy that cannot be loaded or cannot act; the message says why."""


class BasePolicy(abc.ABC):
    """A frozen base policy: observation in, action chunk out."""

    #: identifies the model in ActionChunk.source_model, e.g. "bc_mlp:pick-place-v3"
    source_model: str = 'unknown'
    #: number of action axes
    action_dim: int = 0
    #: rows of each chunk returned by act()
    horizon: int = 1

    #: size of the noise/latent a generative policy draws its actions from (0: none)
    latent_dim: int = 0

    def reset(self, instruction: str = '') -> None:
        """Start of an episode: forget any internal state (history, latent, queue)."""

    @abc.abstractmethod
    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return a float32 array of shape (horizon, action_dim) for this observation."""

    def act_with_latent(self, observation: Mapping[str, np.ndarray],
                        latent: np.ndarray) -> np.ndarray:
        """
        Return the chunk generated from this latent instead of a sampled one (DSRL steering).

        Generative policies (diffusion, flow matching) override this and set ``latent_dim``;
        the others cannot be steered, which actor_mode latent and dual need.
        """
        raise BasePolicyError(f'{self.source_model} takes no latent: actor_mode latent and dual '
                              'need a generative base policy (e.g. flow_bc, or an adapter '
                              'with act_with_latent)')

    def vision_encoder(self):
        """
        Return the policy's own image encoder, for the residual to see through (frozen).

        A torch module from (batch, 3, height, width) float pixels in [0, 1] to features
        (batch, ...), normalising them as the policy does (image_encoder:=base_policy:<kind>).
        Adapters of policies that see images override this; the others have none.
        """
        raise BasePolicyError(f'{self.source_model} exposes no vision encoder (its adapter '
                              'has no vision_encoder)')

    def close(self) -> None:
        """Release what the policy holds (servers, devices)."""


def registered_base_policies() -> List[str]:
    """Return the names registered in the hilresrl.base_policies group, and the suite's own."""
    return sorted({entry_point.name for entry_point in _entry_points()} | set(SUITE_ADAPTERS))


def load_base_policy(kind: str, config: Dict[str, Any]) -> BasePolicy:
    """
    Create the base policy registered as ``kind`` from its configuration.

    ``kind`` may also name a factory by its import path, ``package.module:function``: an
    adapter where nothing is installed that registers it (one's own, from its sources).
    """
    matches = [entry_point for entry_point in _entry_points() if entry_point.name == kind]
    if matches:
        return _made(kind, matches[0].load(), config)
    factory_path = SUITE_ADAPTERS.get(kind, kind)
    if ':' in factory_path:
        module, _, name = factory_path.partition(':')
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as error:
            raise BasePolicyError(f'no base policy factory {kind!r}: {error}') from error
        return _made(kind, factory, config)
    raise BasePolicyError(
        f'no base policy named {kind!r}; registered: {", ".join(registered_base_policies())} '
        f'(entry-point group {ENTRY_POINT_GROUP})')


def _made(kind: str, factory, config: Dict[str, Any]) -> BasePolicy:
    policy = factory(dict(config))
    if not isinstance(policy, BasePolicy):
        raise BasePolicyError(f'{kind!r} made a {type(policy).__name__}, not a BasePolicy')
    return policy


def _entry_points():
    from importlib.metadata import entry_points
    found = entry_points()
    if hasattr(found, 'select'):  # Python 3.10+
        return list(found.select(group=ENTRY_POINT_GROUP))
    return list(found.get(ENTRY_POINT_GROUP, []))  # pragma: no cover (older importlib)
