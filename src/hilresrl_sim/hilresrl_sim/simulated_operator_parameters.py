"""
The simulated operator node's parameters, described once, and the operator config they make.

simulated_operator_node declares them; a headless benchmark reads their defaults
(hilresrl_common.parameters.defaults), so the two cannot drift apart. No rclpy here.
"""

from typing import Any, Mapping

from hilresrl_common.parameters import above, at_least, Parameter
from hilresrl_teleop.arbiter_parameters import PARAMETERS as ARBITER_PARAMETERS

from .operator_model import OperatorConfig

OPERATOR_PREFIX = 'operator.'

PARAMETERS = (
    Parameter('task', 'pick-place-v3', 'Task whose scripted expert the person knows'),
    Parameter('operator.stuck_steps', 20,
              'Steps in which nothing got nearer (task_progress) and the hand stood still before '
              'the person steps in', check=at_least(1)),
    Parameter('operator.stuck_distance_m', 0.01,
              'Hand movement (m) over stuck_steps below which the hand stands still',
              check=at_least(0.0)),
    Parameter('operator.wander_steps', 40,
              'Steps in which nothing got nearer (task_progress), the hand moving or not, before '
              'the person steps in', check=at_least(1)),
    Parameter('operator.progress_epsilon', 0.005,
              'Gain on a task_progress measure (m, or shaped reward 0-1) that counts as getting '
              'nearer', check=at_least(0.0)),
    Parameter('operator.setback_m', 0.05,
              'The object out of the hand and further from its goal than ever by this (m): '
              'knocked or dropped away, the person steps in', check=above(0.0)),
    Parameter('operator.gripper_patience_steps', 2,
              "Steps in a row the policy's gripper contradicts the expert's (open and closed as "
              'the expert uses them) before the person steps in', check=at_least(1)),
    Parameter('operator.reaction_delay_steps', 1, 'Steps between noticing and acting',
              check=at_least(0)),
    Parameter('operator.correction_steps', 15,
              'Least steps of a correction; the person then lets go once the correction got '
              'somewhere and the policy would carry on sensibly', check=at_least(1)),
    Parameter('operator.noise_std', 0.05, 'Imprecision of the hand (action units, per axis)',
              check=at_least(0.0)),
    Parameter('operator.late_factor', 1.25,
              'The person steps in when the progress left (task_progress reward_to_go) is more '
              "than the slowest of the expert's own episodes had left this many times earlier "
              'in the episode: too late to finish (0: never judged by time)',
              check=lambda value: '' if value == 0 or value >= 1 else 'must be 0 or at least 1'),
    Parameter('operator.pace_episodes', 8,
              'Expert episodes played at start-up to learn the pace', check=at_least(1)),
    Parameter('seed', 0, 'Seed of the hand noise'),
    # The person's device is mapped as the arbiter maps it: the same declarations.
    *(parameter for parameter in ARBITER_PARAMETERS if parameter.name in (
        'spacemouse.deadband', 'spacemouse.channels', 'spacemouse.scales',
        'spacemouse.gripper_button')),
    Parameter('gripper_axis', 3, 'Index of the gripper axis'),
)


def operator_settings(values: Mapping[str, Any]) -> dict:
    """Return the OperatorConfig fields among parameter values (operator.<field>)."""
    return {name[len(OPERATOR_PREFIX):]: value for name, value in values.items()
            if name.startswith(OPERATOR_PREFIX)}


def operator_config(values: Mapping[str, Any]) -> OperatorConfig:
    """Return the simulated person's config from parameter values."""
    return OperatorConfig(**operator_settings(values))
