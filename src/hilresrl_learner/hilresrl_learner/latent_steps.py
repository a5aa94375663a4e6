"""
Steps as the refinement actor learns them: the latent is its action, the command its context.

The refinement actor (hilresrl_policy.refinement) picks the latent a generative base policy acts
from. To the learner that is an MDP of its own: the observation is the policy inputs followed by
the features of the refinement command in force, the action is latent / latent_scale in
[-1, 1] (residual_contract.unit_from_latent), and the reward is the cell's. It is learned by
the same residual TD3 with a base action of zeros and a residual scale of 1, so that its
"residual" is the latent itself. Steps a person controlled are left out: their outcome did not
come from the latent. No ROS here.
"""

from typing import Hashable, Optional, Sequence

from hilresrl_common.corrections import COMMAND_FEATURE_SIZE as COMMAND_FEATURES
from hilresrl_common.residual_contract import unit_from_latent
import numpy as np

from .residual_td3 import LearnerConfig
from .training import StepRecord
from .transition_data import observation_vector


def condition_vector(values: Sequence[float]) -> np.ndarray:
    """Return a transition's latent condition as COMMAND_FEATURES values (zeros when none)."""
    condition = np.asarray(values, np.float32).ravel()
    if condition.size == 0:
        return np.zeros(COMMAND_FEATURES, np.float32)
    if condition.size != COMMAND_FEATURES:
        raise ValueError(f'a latent condition has {COMMAND_FEATURES} values, not '
                         f'{condition.size}')
    return condition


def refinement_config(obs_dim: int, latent_dim: int, settings: dict,
                      actor_lr: float) -> LearnerConfig:
    """
    Return the refinement actor's learner config: the residual one's, on the latent.

    No guidance and no support pull: no person picks a latent, and the first latents are drawn
    at random, so there is no executed behaviour to keep to (the pull is measured for the
    residual only).
    """
    return LearnerConfig(obs_dim=obs_dim + COMMAND_FEATURES, action_dim=latent_dim,
                         **{**settings, 'residual_scale': (1.0,), 'bc_weight': 0.0,
                            'support_weight': 0.0, 'actor_lr': actor_lr})


def steered_step(episode: Hashable, step: int, observation: np.ndarray,
                 next_observation: np.ndarray, latent: np.ndarray, condition: np.ndarray,
                 reward: float, terminated: bool, truncated: bool,
                 latent_scale: float) -> StepRecord:
    """
    Return one steered step as the refinement actor's record.

    The condition is held for the next observation too: a command stays in force until a
    person changes it.
    """
    condition = condition_vector(condition)
    latent = np.asarray(latent, np.float32).ravel()
    return StepRecord(episode, step, np.concatenate([observation, condition]),
                      np.zeros(latent.size, np.float32),
                      unit_from_latent(latent, latent_scale), reward,
                      np.concatenate([next_observation, condition]), terminated, truncated)


def latent_step_record(transition, policy_inputs: Sequence[str], latent_dim: int,
                       latent_scale: float, episode: Hashable) -> Optional[StepRecord]:
    """
    Return a Transition as a step of the refinement actor, or None when it holds none.

    None for steps under a person's control and for steps without a latent of ``latent_dim``
    values (a base policy that was not steered, or another one).
    """
    latent = np.asarray(transition.latent, np.float32).ravel()
    if transition.intervened or latent.size != latent_dim:
        return None
    instruction = transition.instruction
    return steered_step(
        episode, transition.step,
        observation_vector(transition.observation, policy_inputs, instruction),
        observation_vector(transition.next_observation, policy_inputs, instruction),
        latent, transition.latent_condition, transition.reward, transition.terminated,
        transition.truncated, latent_scale)
