"""
The task instruction as numbers, so that one residual or refinement actor serves several tasks.

A policy input named ``instruction`` is not a topic: it is the latched task instruction in force,
turned into a fixed-size vector by hashing its words (a signed bag of words, normalised). The
same text gives the same vector on every machine and in every release (blake2b, not Python's
salted hash), so transitions recorded today train tomorrow's actor. No language model, no ROS.
"""

import hashlib
import re
from typing import Mapping, Sequence

import numpy as np

INSTRUCTION_INPUT = 'instruction'
INSTRUCTION_FEATURE_SIZE = 16
_WORD = re.compile(r'[a-z0-9]+')


def instruction_features(text: str, size: int = INSTRUCTION_FEATURE_SIZE) -> np.ndarray:
    """Return the (size,) float32 features of an instruction; zeros for an empty one."""
    features = np.zeros(size, np.float32)
    for word in _WORD.findall((text or '').lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], 'little') % size
        features[index] += 1.0 if digest[4] & 1 else -1.0
    norm = float(np.linalg.norm(features))
    return features / norm if norm > 0 else features


def policy_vector(arrays: Mapping[str, np.ndarray], policy_inputs: Sequence[str],
                  instruction: str) -> np.ndarray:
    """Return the policy inputs concatenated in order, 'instruction' as its features."""
    missing = [name for name in policy_inputs
               if name != INSTRUCTION_INPUT and name not in arrays]
    if missing:
        raise KeyError(f'observation has no {", ".join(missing)}; it has '
                       f'{", ".join(sorted(arrays))}')
    return np.concatenate([
        instruction_features(instruction) if name == INSTRUCTION_INPUT
        else np.asarray(arrays[name], dtype=np.float32).ravel() for name in policy_inputs])
