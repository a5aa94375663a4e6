"""
Base-policy adapter for a flow-matching checkpoint (hilresrl_policy.flow_bc), steerable by latent.

Registered as 'flow_bc' in the hilresrl.base_policies entry-point group; configuration:
``checkpoint`` (directory), optionally ``device`` ('cpu') and ``seed`` (of act's latents, 0).
"""

from typing import Any, Dict, Mapping

from hilresrl_policy.adapters.base import BasePolicy, BasePolicyError
from hilresrl_policy.flow_bc import load_flow_checkpoint
from hilresrl_policy.model_checkpoint import CheckpointError
import numpy as np

STATE_KEY = 'task_state'


class FlowBCPolicy(BasePolicy):
    """
    A flow policy as a base policy: one action per observation (horizon 1).

    ``act`` draws its latent from N(0, I) with the policy's own seeded generator;
    ``act_with_latent`` takes the latent from the caller (a refinement actor that steers the
    policy) and gives the same action for the same latent and observation.
    """

    horizon = 1

    def __init__(self, checkpoint: str, device: str = 'cpu', seed: int = 0):
        try:
            loaded = load_flow_checkpoint(checkpoint, device=device)
        except CheckpointError as error:
            raise BasePolicyError(f'cannot load the flow checkpoint: {error}') from error
        self.checkpoint = loaded.directory
        self.metadata = loaded.metadata
        self._model = loaded.model
        config = self._model.config
        self.action_dim = config.action_dim
        self.latent_dim = config.latent_dim
        self.seed = int(seed)
        # Its own generator: the latents act() draws depend on the seed alone, not on what
        # else in the process uses numpy's global one.
        self._latents = np.random.default_rng(self.seed)
        self.source_model = f'{config.kind}:{config.task or "unknown"}@{loaded.sha256[:12]}'

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the action generated from a fresh N(0, I) latent: float32 (1, action_dim)."""
        latent = self._latents.standard_normal(self.latent_dim).astype(np.float32)
        return self._generate(observation, latent)

    def act_with_latent(self, observation: Mapping[str, np.ndarray],
                        latent: np.ndarray) -> np.ndarray:
        """Return the action generated from ``latent`` (latent_dim values): (1, action_dim)."""
        values = np.asarray(latent, dtype=np.float32).reshape(-1)
        if values.size != self.latent_dim:
            raise BasePolicyError(f'the latent has {values.size} values; {self.source_model} '
                                  f'takes {self.latent_dim}')
        if not np.all(np.isfinite(values)):
            raise BasePolicyError(f'the latent for {self.source_model} has non-finite values: '
                                  f'{values.tolist()}')
        return self._generate(observation, values)

    def _generate(self, observation: Mapping[str, np.ndarray],
                  latent: np.ndarray) -> np.ndarray:
        config = self._model.config
        if STATE_KEY not in observation:
            raise BasePolicyError(f'{self.source_model} needs observation {STATE_KEY!r}; got '
                                  f'{", ".join(sorted(observation)) or "nothing"}')
        state = np.asarray(observation[STATE_KEY], dtype=np.float32).reshape(-1)
        if state.shape != (config.state_dim,):
            raise BasePolicyError(f'{STATE_KEY} has {state.size} values; '
                                  f'{self.source_model} reads {config.state_dim}')
        action = self._model.act(state, latent)
        return action.astype(np.float32).reshape(1, self.action_dim)


def make_flow_policy(config: Dict[str, Any]) -> BasePolicy:
    """Create a flow base policy from {'checkpoint': directory, 'device': 'cpu', 'seed': 0}."""
    if not config.get('checkpoint'):
        raise BasePolicyError("the flow_bc base policy needs 'checkpoint': a checkpoint "
                              'directory')
    try:
        seed = int(config.get('seed', 0))
    except (TypeError, ValueError):
        raise BasePolicyError(f"the flow_bc base policy's 'seed' must be an integer, got "
                              f'{config.get("seed")!r}') from None
    return FlowBCPolicy(str(config['checkpoint']), device=str(config.get('device', 'cpu')),
                        seed=seed)
