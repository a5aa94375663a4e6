"""
Transition messages as the learner stores them: a hilresrl_msgs/Transition turned into arrays.

The learner node and offline loading (recorded runs, through hilresrl_recording) both use it.
No message module is imported here until a message is read, so that a headless benchmark can
import the learner without ROS.
"""

from typing import Hashable, Optional, Sequence

from hilresrl_common.instruction_features import policy_vector
from hilresrl_common.residual_contract import residual_scale_vector
import numpy as np

from .training import StepRecord


class ForeignResidualScale(ValueError):
    """A transition taken under another residual scale than the learner's."""


def observation_vector(named, policy_inputs: Sequence[str], instruction: str = '') -> np.ndarray:
    """Return the policy's inputs of an observation in order ('instruction': its features)."""
    from hilresrl_common.conversions import from_named_arrays  # message modules: lazily
    arrays = from_named_arrays(named)
    try:
        return policy_vector(arrays, policy_inputs, instruction)
    except KeyError as error:
        raise ValueError(f'transitions carry {error.args[0]}: check policy_inputs') from None


def step_record(transition, policy_inputs: Sequence[str], action_dim: int,
                episode: Hashable) -> StepRecord:
    """Return a Transition message as the learner's StepRecord."""
    intervened = transition.intervened and len(transition.human_action) == action_dim
    # Per-axis interventions say which axes the person took; older cells say nothing (all).
    axes = (np.asarray(transition.intervened_axes, bool)
            if intervened and len(transition.intervened_axes) == action_dim else None)
    return StepRecord(
        episode, transition.step,
        observation_vector(transition.observation, policy_inputs, transition.instruction),
        np.asarray(transition.base_action, np.float32),
        np.asarray(transition.executed_action, np.float32), transition.reward,
        observation_vector(transition.next_observation, policy_inputs, transition.instruction),
        transition.terminated, transition.truncated,
        np.asarray(transition.human_action, np.float32) if intervened else None, axes)


def check_residual_scale(given: Sequence[float], ours: Sequence[float], action_dim: int) -> None:
    """
    Raise ForeignResidualScale when a transition's residual scale is not the learner's.

    Both are compared per axis (one value stands for every axis); an empty one (a transition
    of an older cell) is taken as the learner's. ValueError: a scale of the wrong length.
    """
    if len(given) == 0:
        return
    theirs = residual_scale_vector(given, action_dim)
    wanted = residual_scale_vector(ours, action_dim)
    if not np.allclose(theirs, wanted, rtol=1e-6, atol=0.0):
        raise ForeignResidualScale(
            f"residual_scale {_values(theirs)} is not the learner's {_values(wanted)}: it was "
            'taken under another residual scale')


def _values(vector: np.ndarray) -> str:
    return '[' + ', '.join(f'{value:g}' for value in vector.tolist()) + ']'


def checked_step_record(transition, policy_inputs: Sequence[str], action_dim: int,
                        episode: Hashable, obs_dim: Optional[int] = None,
                        residual_scale: Optional[Sequence[float]] = None) -> StepRecord:
    """
    Return a Transition as a StepRecord once it is fit to learn from; else raise ValueError.

    Fit: base and executed actions of ``action_dim`` values, every policy input in both
    observations (of ``obs_dim`` values when given), all of it and the reward finite, and,
    when ``residual_scale`` is given, taken under that scale (ForeignResidualScale if not).
    """
    lengths = (len(transition.base_action), len(transition.executed_action))
    if lengths != (action_dim, action_dim):
        raise ValueError(f'base and executed actions of {lengths[0]} and {lengths[1]} values, '
                         f'not {action_dim}')
    if residual_scale is not None:
        check_residual_scale(transition.residual_scale, residual_scale, action_dim)
    axes = len(transition.intervened_axes)
    if transition.intervened and axes not in (0, action_dim):
        raise ValueError(f'intervened_axes of {axes} values, not {action_dim}')
    record = step_record(transition, policy_inputs, action_dim, episode)
    if obs_dim is not None and (record.observation.size, record.next_observation.size) != (
            obs_dim, obs_dim):
        raise ValueError(f'observations of {record.observation.size} and '
                         f'{record.next_observation.size} values, not {obs_dim}')
    parts = {'observation': record.observation, 'next_observation': record.next_observation,
             'base_action': record.base_action, 'executed_action': record.executed_action,
             'reward': np.asarray([record.reward], np.float64)}
    if record.human_action is not None:
        parts['human_action'] = record.human_action
    bad = [name for name, values in parts.items() if not np.all(np.isfinite(values))]
    if bad:
        raise ValueError(f'non-finite values in {", ".join(bad)}')
    return record
