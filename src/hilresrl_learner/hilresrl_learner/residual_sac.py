"""
Residual SAC: the maximum-entropy alternative to residual TD3, kept to measure the choice.

Same residual actor (its tanh mean is what a robot executes), same critic ensemble, warm-up and
human guidance as residual TD3; the residual is sampled from a squashed Gaussian with a learned,
state-independent standard deviation, the critic's target includes the entropy bonus, and the
temperature is tuned toward a target entropy. The learner node deploys TD3 (see the README for
the measurement); this class runs in the headless benchmark. Torch only: no ROS.
"""

import math
from typing import Dict, Optional, Tuple

from hilresrl_common.residual_contract import compose
import numpy as np
import torch
from torch import nn

from .residual_td3 import guidance_loss, LearnerConfig, ResidualTD3, support_loss

INITIAL_STD = 0.1  # as TD3's exploration noise on the residual


class ResidualSAC(ResidualTD3):
    """Residual actor-critic with a stochastic residual and a tuned entropy temperature."""

    def __init__(self, config: LearnerConfig, device: str = 'cpu', seed: int = 0,
                 use_compile: bool = False, compile_mode: str = 'default'):
        super().__init__(config, device, seed, use_compile, compile_mode)
        self.log_std = nn.Parameter(torch.full((config.action_dim,), math.log(INITIAL_STD),
                                               device=self.device))
        self.actor_optimizer.add_param_group({'params': [self.log_std]})
        self.log_alpha = nn.Parameter(torch.zeros((), device=self.device))
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=config.actor_lr)
        # Per axis, the entropy of the initial exploration: the temperature keeps it there.
        self.target_entropy = config.action_dim * (0.5 * math.log(2 * math.pi * math.e)
                                                   + math.log(INITIAL_STD))

    def _sample(self, observation: torch.Tensor, base: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return a reparameterized residual sample and its log-probability."""
        mean = self.actor.net(self.actor.inputs(observation, base))
        std = self.log_std.exp().expand_as(mean)
        noise = torch.randn(mean.shape, generator=self.generator, device=self.device)
        pre_tanh = mean + std * noise
        residual = torch.tanh(pre_tanh)
        log_prob = (-0.5 * noise ** 2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log(1 - residual ** 2 + 1e-6).sum(-1)
        return residual, log_prob

    def residual(self, observation: np.ndarray, base_action: np.ndarray,
                 noise_std: float = 0.0, rng: np.random.Generator = None,
                 frames=None) -> np.ndarray:
        """Return the residual: the mean's, or (exploring: noise_std > 0) a sample."""
        if noise_std <= 0:
            return super().residual(observation, base_action)
        with torch.no_grad():
            residual, _ = self._sample(
                torch.as_tensor(observation, dtype=torch.float32, device=self.device)[None],
                torch.as_tensor(base_action, dtype=torch.float32, device=self.device)[None])
        return residual[0].cpu().numpy().astype(np.float32)

    @property
    def alpha(self) -> torch.Tensor:
        """Return the entropy temperature (a constant for the losses that use it)."""
        return self.log_alpha.detach().exp()

    def _critic_loss(self, tensors: Dict[str, torch.Tensor], normal_draw: torch.Tensor,
                     pair: Optional[torch.Tensor]):
        observation, base = tensors['observation'], tensors['base_action']
        with torch.no_grad():
            next_observation = tensors['bootstrap_observation']
            next_base = tensors['bootstrap_base_action']
            next_residual, next_log_prob = self._sample(next_observation, next_base)
            next_action = compose(next_base, next_residual, self.scale)
            target_q = self.critic_target(next_observation, next_base, next_action)
            if pair is not None:
                target_q = target_q[pair]
            soft_value = target_q.min(dim=0).values - self.alpha * next_log_prob
            target = tensors['n_step_return'] + tensors['bootstrap_discount'] * soft_value
        q = self.critic(observation, base, tensors['executed_action'])
        # (no image features: SAC learns from the state alone)
        return ((q - target.unsqueeze(0)) ** 2).mean(), q.detach().mean(), None

    def _actor_loss(self, tensors: Dict[str, torch.Tensor]):
        config = self.config
        observation, base = tensors['observation'], tensors['base_action']
        residual, log_prob = self._sample(observation, base)
        action = compose(base, residual, self.scale)
        q = self.critic(observation, base, action).mean(dim=0)
        loss = (self.alpha * log_prob - q).mean()
        # Human guidance on the mean residual, as in TD3.
        mean_residual = self.actor(observation, base)
        guidance = guidance_loss(mean_residual, tensors, self.scale)
        self._last_log_prob = log_prob.detach()
        loss = loss + config.bc_weight * guidance
        if config.support_weight > 0:
            loss = loss + config.support_weight * support_loss(mean_residual, tensors,
                                                               self.scale)
        return loss, guidance.detach()

    def _actor_step(self, tensors: Dict[str, torch.Tensor]):
        loss, guidance = super()._actor_step(tensors)
        alpha_loss = -(self.log_alpha * (self._last_log_prob + self.target_entropy)).mean()
        self.alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_optimizer.step()
        return loss, guidance
