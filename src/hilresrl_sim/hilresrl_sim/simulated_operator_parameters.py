"""
The simulated operator node's parameters, described once, and the operator config they make.

simulated_operator_node declares them; a headless benchmark reads their defaults
(hilresrl_common.parameters.defaults), so the two cannot drift apart. No rclpy here.
"""

from typing import Any, Mapping

from hilresrl_common.parameters import at_least, Parameter
from hilresrl_teleop.arbiter_parameters import PARAMETERS as ARBITER_PARAMETERS

from .operator_model import OperatorConfig

OPERATOR_PREFIX = 'operator.'

PARAMETERS = (
    Parameter('task', 'pick-place-v3', 'Task whose scripted expert the person knows'),
    Parameter('operator.deviation_threshold', 0.5,
              'Difference from the expert on a translation axis (action units) that counts as '
              'drifting', check=at_least(0.0)),
    Parameter('operator.patience_steps', 4, 'Drifting steps in a row before the person steps in',
              check=at_least(0)),
    Parameter('operator.stuck_steps', 25, 'Steps without end-effector progress before stepping '
                                          'in', check=at_least(0)),
    Parameter('operator.stuck_distance_m', 0.01,
              'Movement (m) over stuck_steps that counts as progress', check=at_least(0.0)),
    Parameter('operator.reaction_delay_steps', 1, 'Steps between noticing and acting',
              check=at_least(0)),
    Parameter('operator.correction_steps', 15, 'Steps the person corrects before letting go',
              check=at_least(0)),
    Parameter('operator.noise_std', 0.05, 'Imprecision of the hand (action units, per axis)',
              check=at_least(0.0)),
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
