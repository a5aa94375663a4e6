"""
The residual policy node's parameters, described once (no rclpy).

residual_policy_node declares them; a headless benchmark reads their defaults
(hilresrl_common.parameters.defaults), so the two cannot drift apart.
"""

from hilresrl_common.parameters import above, at_least, Parameter
from hilresrl_common.residual_contract import IMAGE_INPUT_PARAMETERS, RESIDUAL_SCALE

ACTOR_MODES = ('residual', 'latent', 'dual')
TRIGGERS = ('observation', 'timer')
CHUNK_EXECUTIONS = ('receding', 'ensemble')

PARAMETERS = (
    Parameter('action_dim', 4, 'Number of action axes', check=at_least(1)),
    Parameter('policy_inputs', ['task_state'],
              'Observation arrays the actor sees, concatenated in this order (instruction: the '
              'features of the task instruction in force)'),
    RESIDUAL_SCALE,
    *IMAGE_INPUT_PARAMETERS,
    Parameter('hidden_sizes', [256, 256], 'Hidden layer sizes of the actor', check=at_least(1)),
    Parameter('layer_norm', True, 'LayerNorm in the actor'),
    Parameter('exploration_std', 0.1,
              'Gaussian noise added to the residual in TRAIN mode (none in EVAL)',
              check=at_least(0.0)),
    Parameter('device', 'cpu', 'Torch device of the actor (cpu: each step runs in numpy, '
                               'without torch per-op overhead)'),
    Parameter('trigger', 'observation', 'observation: one step per observation (lockstep; '
                                        'with observation_sync latest, per message of a source '
                                        'that is not a camera); timer: one step per control '
                                        'period (real time)'),
    Parameter('control_rate_hz', 10.0, 'Control rate for trigger=timer', check=above(0.0)),
    Parameter('frame_id', 'world', 'Frame of the Cartesian axes'),
    Parameter('wait_for_chunk', True,
              'Wait for the chunk the base policy plans from this very observation when a '
              'replan is due (lockstep: every step is exact); false: correct the newest chunk '
              'at once (real time)'),
    Parameter('execute_steps', None,
              'Rows of a chunk executed before the base policy replans (as the base policy '
              'node has it; unset or 0: all)', type='integer', check=at_least(0)),
    Parameter('chunk_hold_steps', 2,
              'Periods the last row of a chunk stands past its end when the next chunk is late',
              check=at_least(0)),
    Parameter('actor_mode', 'residual',
              'residual: correct the base action; latent: no residual (the refinement actor '
              'steers the base policy); dual: both'),
    Parameter('chunk_execution', 'receding',
              'receding: the newest chunk row by row; ensemble: a weighted mean of the rows '
              'every recent chunk has for the time (temporal ensembling, as ACT)'),
    Parameter('ensemble_decay', 0.01,
              'Temporal ensembling: chunk i (0 the oldest) weighs exp(-ensemble_decay * i)'),
    Parameter('seed', 0, 'Seed of the exploration noise'),
    Parameter('source_timeout_s', 1.0,
              'An observation source silent this long while others send is named in a warning '
              '(no observation, no proposal: the arbiter holds the robot); 0: never',
              check=at_least(0.0)),
)
