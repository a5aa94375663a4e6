"""
Scripted experts of the simulated tasks: task state in, normalized action out.

Each expert is a function of the task state alone, so a simulated operator can run it on what it
reads from ROS topics. Plain numpy, no ROS.
"""

import os
from typing import Callable
import warnings

import numpy as np

PANDA_PICK_CUBE = 'PandaPickCube'

Expert = Callable[[np.ndarray], np.ndarray]

# PandaPickCube task state: agent_pos (7 joint positions, 7 joint velocities, the gripper
# command 0-255, the pinch point xyz) then the block position xyz.
_PANDA_GRIPPER = 14
_PANDA_TCP = slice(15, 18)
_PANDA_BLOCK = slice(18, 21)
_PANDA_STATE_DIM = 21
_PANDA_GRIPPER_MAX = 255.0
# Full speed beyond 2 cm: one translation step of the cell at action 1, so the hand neither
# crawls towards a target nor overshoots it.
_PANDA_GAIN_PER_M = 50.0
_PANDA_HOVER_M = 0.05        # above the block centre while aligning over it
_PANDA_CLEARANCE_M = 0.04    # the fingertips clear the block's top above this height
_PANDA_ALIGNED_M = 0.01      # horizontal error at which the hand descends
_PANDA_AT_GRASP_M = 0.008    # vertical error at which the gripper closes
_PANDA_HOLDING_M = 0.03      # block this close to the pinch point: it is in the hand
_PANDA_LIFT_Z_M = 0.25       # well above the 0.1 m lift that counts as success


def make_expert(task_name: str) -> Expert:
    """
    Return the scripted expert of a task: ``expert(task_state) -> action``.

    The action is float32, shape (4,), in [-1, 1]: x, y, z translation and gripper (+1 closes).
    Meta-World tasks use the policy Meta-World ships for the task; PandaPickCube uses ours.
    """
    if task_name == PANDA_PICK_CUBE:
        return panda_pick_cube_expert
    # mujoco picks its OpenGL backend when imported (metaworld imports it): headless unless the
    # user chose otherwise.
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from metaworld.policies import ENV_POLICY_MAP
    if task_name not in ENV_POLICY_MAP:
        raise ValueError(f'no scripted expert for task {task_name!r}: use a Meta-World v3 task '
                         f'(pick-place-v3, peg-insert-side-v3, assembly-v3, ...) or '
                         f'{PANDA_PICK_CUBE}')
    # The shipped policies warn on every step whose proportional response exceeds 1, which the
    # clip below handles by design.
    warnings.filterwarnings('ignore', message=r'Constant\(s\) may be too high',
                            module='metaworld.policies')
    policy = ENV_POLICY_MAP[task_name]()

    def metaworld_expert(task_state: np.ndarray) -> np.ndarray:
        state = np.asarray(task_state, dtype=np.float64).reshape(-1)
        return np.clip(policy.get_action(state), -1.0, 1.0).astype(np.float32)

    metaworld_expert.__name__ = f'{type(policy).__name__}_expert'
    return metaworld_expert


def panda_pick_cube_expert(task_state: np.ndarray) -> np.ndarray:
    """
    Pick up the block in PandaPickCube: hover over it, descend, close, lift.

    Stateless: the phase is read from the gripper command and the pinch-to-block offset, so the
    expert recovers from a missed or dropped grasp by opening and starting over.
    """
    state = np.asarray(task_state, dtype=np.float64).reshape(-1)
    if state.shape != (_PANDA_STATE_DIM,):
        raise ValueError(f'{PANDA_PICK_CUBE} task state has {_PANDA_STATE_DIM} values, '
                         f'got {state.size}')
    closed = state[_PANDA_GRIPPER] / _PANDA_GRIPPER_MAX > 0.05
    tcp = state[_PANDA_TCP]
    block = state[_PANDA_BLOCK]
    horizontal_error_m = np.linalg.norm(block[:2] - tcp[:2])
    gripper = -1.0
    if closed:
        if np.linalg.norm(block - tcp) < _PANDA_HOLDING_M:
            target = np.array([block[0], block[1], _PANDA_LIFT_Z_M])
            gripper = 1.0
        else:
            target = block + np.array([0.0, 0.0, _PANDA_HOVER_M])
    elif horizontal_error_m > _PANDA_ALIGNED_M:
        target = np.array([block[0], block[1], max(tcp[2], block[2] + _PANDA_HOVER_M)])
        if tcp[2] < block[2] + _PANDA_CLEARANCE_M:
            # Too low to pass over the block: rise before moving sideways.
            target[:2] = tcp[:2]
    else:
        target = block.copy()
        gripper = 1.0 if abs(tcp[2] - target[2]) < _PANDA_AT_GRASP_M else -1.0
    action = np.empty(4, dtype=np.float32)
    action[:3] = np.clip((target - tcp) * _PANDA_GAIN_PER_M, -1.0, 1.0)
    action[3] = gripper
    return action
