"""
The base policy node's parameters, described once (no rclpy).

base_policy_node declares them; a headless benchmark reads their defaults
(hilresrl_common.parameters.defaults), so the two cannot drift apart.
"""

from hilresrl_common.parameters import above, at_least, Parameter
from hilresrl_common.residual_contract import LATENT_SCALE

from .residual_policy_parameters import ACTOR_MODES, TRIGGERS  # noqa: F401 (the nodes share them)

PARAMETERS = (
    Parameter('base_policy.kind', 'bc',
              'Adapter name in the hilresrl.base_policies entry-point group (bc, scripted, or '
              'one a user registered)'),
    Parameter('base_policy.checkpoint', '',
              'Checkpoint directory of the model, for adapters that load one'),
    Parameter('base_policy.task', '', 'Task name, for task-specific adapters'),
    Parameter('base_policy.device', 'cpu', 'Torch device: cpu, cuda, cuda:1'),
    Parameter('base_policy.config_json', '{}', 'Further adapter settings as a JSON object'),
    Parameter('trigger', 'observation',
              'observation: plan when an observation needs a new chunk (lockstep); timer: plan '
              'at rate_hz (real time)'),
    Parameter('rate_hz', 10.0, 'Planning rate for trigger=timer', check=above(0.0)),
    Parameter('step_period_s', 0.1,
              'Seconds between consecutive rows of a chunk (the control period the policy was '
              'trained at)'),
    Parameter('execute_steps', None,
              'Rows of a chunk executed before replanning (receding horizon); unset or 0: the '
              'whole chunk', type='integer', check=at_least(0)),
    Parameter('frame_id', 'world', 'Frame of the Cartesian action axes'),
    Parameter('actor_mode', 'residual',
              'residual: the base policy samples its own latent; latent and dual: the '
              'refinement actor (latent_weights) chooses it'),
    LATENT_SCALE,
    Parameter('latent_exploration_std', 0.2,
              "Exploration noise on the refinement actor's output in training episodes (its "
              'units: 1 = latent_scale)', check=at_least(0.0)),
    Parameter('policy_inputs', ['task_state'],
              "Observation arrays the refinement actor sees (instruction: the task instruction's "
              'features)'),
    Parameter('action_names', ['x', 'y', 'z', 'gripper'], 'Action axes, to read refinement '
                                                          'commands'),
    Parameter('seed', 0, 'Seed of sampled latents and exploration'),
)
