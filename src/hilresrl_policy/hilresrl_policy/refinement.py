"""
The refinement actor: chooses the latent a generative base policy generates its actions from.

DSRL-style steering: instead of sampling the noise, a small actor maps (state, refinement
command features) to a latent in [-latent_scale, latent_scale]; the base policy stays frozen.
Until the learner sends the actor, latents are sampled (clipped to the same box), which is the
base policy's own behaviour. Torch and numpy only: no ROS.
"""

from typing import Optional, Tuple

from hilresrl_common.corrections import COMMAND_FEATURE_SIZE
from hilresrl_common.residual_contract import latent_from_unit, LATENT_SCALE
import numpy as np
import torch

from .residual import load_actor_weights, ResidualActor, ResidualConfig, WeightsError

COMMAND_FEATURES = COMMAND_FEATURE_SIZE


class LatentSteering:
    """Sampled latents, or the refinement actor's once its weights have arrived."""

    def __init__(self, latent_dim: int, latent_scale: float = LATENT_SCALE.default,
                 seed: int = 0):
        if latent_dim < 1:
            raise ValueError('a latent needs at least one dimension')
        self.latent_dim, self.latent_scale = latent_dim, float(latent_scale)
        self.actor: Optional[ResidualActor] = None
        self.version = 0
        self._rng = np.random.default_rng(seed)

    def adopt(self, blob: bytes, sha256: str, architecture: str, weights_format: str,
              version: int) -> None:
        """Take new refinement-actor weights; WeightsError leaves the current ones in use."""
        config = ResidualConfig.from_json(architecture)
        if config.action_dim != self.latent_dim:
            raise WeightsError(f'the refinement actor outputs {config.action_dim} values; the '
                               f'base policy takes a latent of {self.latent_dim}')
        actor = self.actor if self.actor is not None and self.actor.config == config \
            else ResidualActor(config)
        load_actor_weights(actor, blob, sha256, architecture, weights_format)
        self.actor, self.version = actor.eval(), int(version)

    def choose(self, state: np.ndarray, condition: np.ndarray,
               exploration_std: float = 0.0) -> Tuple[np.ndarray, int]:
        """Return (latent, version of the actor that chose it; 0: sampled)."""
        if self.actor is None:
            latent = self._rng.normal(size=self.latent_dim)
            return np.clip(latent, -self.latent_scale, self.latent_scale).astype(
                np.float32), 0
        features = np.concatenate([np.asarray(state, np.float32).ravel(),
                                   np.asarray(condition, np.float32).ravel()])
        with torch.no_grad():
            output = self.actor(torch.from_numpy(features)[None],
                                torch.zeros(1, self.latent_dim))[0].numpy()
        if exploration_std > 0:
            output = output + self._rng.normal(0.0, exploration_std, output.shape)
        return latent_from_unit(output, self.latent_scale), self.version
