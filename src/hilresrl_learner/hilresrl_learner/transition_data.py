"""
Transition messages as the learner stores them, and where a recorded run keeps them.

A run folder holds the recorder's bag (``bag/``, every topic) and the learner's own bag of the
transitions it took in (``replay/``); both are rosbag2 bags, read the same way. The learner node,
offline loading and export all turn a hilresrl_msgs/Transition into arrays here.
"""

import pathlib
from typing import Hashable, Sequence

from hilresrl_policy.conversions import from_named_arrays
from hilresrl_policy.instruction_features import policy_vector
import numpy as np

from .bag import BagError
from .training import StepRecord

TRANSITION_TYPE = 'hilresrl_msgs/msg/Transition'
RUN_BAG, RUN_REPLAY = 'bag', 'replay'


def bag_folder(path) -> pathlib.Path:
    """Return the bag of a path: a bag folder or file as it is, a run folder's bag or replay."""
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise BagError(f'{path}: no such bag or run folder')
    if path.is_file() or (path / 'metadata.yaml').is_file() or any(
            child.suffix in ('.mcap', '.db3') for child in path.iterdir()):
        return path
    for name in (RUN_BAG, RUN_REPLAY):
        if (path / name).is_dir():
            return path / name
    raise BagError(f'{path}: neither a rosbag2 bag nor a run folder (no {RUN_BAG}/ or '
                   f'{RUN_REPLAY}/ in it)')


def observation_vector(named, policy_inputs: Sequence[str], instruction: str = '') -> np.ndarray:
    """Return the policy's inputs of an observation in order ('instruction': its features)."""
    arrays = from_named_arrays(named)
    try:
        return policy_vector(arrays, policy_inputs, instruction)
    except KeyError as error:
        raise ValueError(f'transitions carry {error.args[0]}: check policy_inputs') from None


def step_record(transition, policy_inputs: Sequence[str], action_dim: int,
                episode: Hashable) -> StepRecord:
    """Return a Transition message as the learner's StepRecord."""
    intervened = transition.intervened and len(transition.human_action) == action_dim
    return StepRecord(
        episode, transition.step,
        observation_vector(transition.observation, policy_inputs, transition.instruction),
        np.asarray(transition.base_action, np.float32),
        np.asarray(transition.executed_action, np.float32), transition.reward,
        observation_vector(transition.next_observation, policy_inputs, transition.instruction),
        transition.terminated, transition.truncated,
        np.asarray(transition.human_action, np.float32) if intervened else None)
