"""
The learner node's parameters, described once: the node declares them, benchmarks read them.

``PARAMETERS`` is what ``ros2 param describe`` shows for the learner; ``config_settings``
turns its values into LearnerConfig fields. No rclpy and no torch here, so that a headless
benchmark can read the defaults cheaply.
"""

from typing import Any, Dict, List, Mapping, Tuple

from hilresrl_common.parameters import above, at_least, between, one_of, Parameter
from hilresrl_common.residual_contract import (encoder_name, IMAGE_INPUT_PARAMETERS,
                                               LATENT_SCALE, RESIDUAL_SCALE)

ACTOR_MODES = ('residual', 'latent', 'dual')
# The learner's name for the latent scale before it took the base policy node's name.
DEPRECATED_LATENT_SCALE = 'latent.scale'
DEPRECATED_UPDATE_BUDGET = 'update_budget_s'
# Parameter name -> LearnerConfig field, for the settings both actors share.
CONFIG_FIELDS = {
    RESIDUAL_SCALE.name: 'residual_scale', 'hidden_sizes': 'actor_hidden',
    'layer_norm': 'layer_norm', 'critic.hidden_sizes': 'critic_hidden',
    'critic.heads': 'critic_heads', 'gamma': 'gamma', 'n_step': 'n_step',
    'batch_size': 'batch_size', 'actor_lr': 'actor_lr', 'critic_lr': 'critic_lr', 'tau': 'tau',
    'warmup_updates': 'warmup_updates', 'bc_weight': 'bc_weight',
    'support_weight': 'support_weight',
    'observation_normalization': 'observation_normalization'}

PARAMETERS = (
    Parameter('run_dir', None, 'Folder of this run (checkpoints, transition log, curves); '
              'empty: $HILRESRL_HOME/runs/<date-time>, or the newest run there with resume',
              type='string'),
    Parameter('resume', False, 'Continue the run in run_dir: its checkpoint, its logged '
              'transitions and its counters'),
    Parameter('device', 'cpu', 'Torch device of the learner'),
    Parameter('graph_updates', 8, 'On a CUDA device: updates per captured CUDA graph, batches '
              'drawn on the device (0: eager updates); the node trains in runs of this many',
              check=at_least(0)),
    Parameter('compile_updates', False, 'The losses, the gradient step and (on a GPU) the '
              "replay's look-ahead through torch.compile: fused kernels, inside the captured "
              'graphs on a GPU (H200, 10 critic heads, TF32: 2,868 updates/s against 1,370; '
              '2-core CPU, 2 heads, 2 threads: 126 against 86); compiling takes about a minute '
              'first and needs a C compiler'),
    Parameter('matmul_precision', 'highest', "float32 matrix products (torch's "
              'set_float32_matmul_precision): high lets an NVIDIA GPU use TF32 (10-bit '
              'mantissa, several times faster), medium also bfloat16; highest: full float32',
              check=one_of(('highest', 'high', 'medium'))),
    # One learner for several cells (robot1, robot2, ...): their transitions and episode
    # events come from their namespaces; the weights go out on this node's topic.
    Parameter('cells', [], 'Namespaces of the cells this learner learns from, relative to its '
              "own (['']: its own namespace)", type='string_array'),
    Parameter('policy_inputs', ['task_state'], 'Observation arrays the actor sees, in order (as '
              "the residual node has them; instruction: the features of the transition's "
              'instruction)'),
    *IMAGE_INPUT_PARAMETERS,
    Parameter('image_shift', 4, 'Random shift of the images in updates, in pixels (DrQ-v2; '
              '0: none)', check=at_least(0)),
    Parameter('image_wait_s', 2.0, 'How long a transition waits for the camera images it '
              'names before it is left out (counted and logged)', check=above(0.0)),
    Parameter('action_dim', 4, 'Number of action axes', check=at_least(1)),
    RESIDUAL_SCALE,
    Parameter('hidden_sizes', [256, 256], 'Hidden layer sizes of the actor', check=at_least(1)),
    Parameter('layer_norm', True, 'LayerNorm in actor and critic'),
    Parameter('critic.hidden_sizes', [256, 256, 256], 'Hidden layer sizes of each critic head',
              check=at_least(1)),
    Parameter('critic.heads', 2, 'Critic ensemble size; the target takes the minimum over a '
              'random pair', check=at_least(2)),
    Parameter('gamma', 0.99, 'Discount per control step', check=between(0.0, 1.0)),
    Parameter('n_step', 3, 'Steps of the n-step return', check=at_least(1)),
    Parameter('batch_size', 256, 'Samples per update', check=at_least(1)),
    Parameter('actor_lr', 1e-4, 'Actor learning rate (small: the actor must not wreck the base '
              'policy)', check=above(0.0)),
    Parameter('critic_lr', 3e-4, 'Critic learning rate', check=above(0.0)),
    Parameter('tau', 0.005, 'Target network averaging rate', check=between(0.0, 1.0)),
    Parameter('warmup_updates', 500, 'Critic-only updates before the actor moves',
              check=at_least(0)),
    Parameter('bc_weight', 1.0, 'Weight of the pull toward (human - base) / scale on steps a '
              'person corrected (0: off)', check=at_least(0.0)),
    Parameter('support_weight', 0.0, 'Weight of the pull of the residual toward the residuals '
              'the stored steps executed: the actor leaves the actions the critic has data on '
              'only as far as the critic gains (0: off)', check=at_least(0.0)),
    Parameter('observation_normalization', False, 'Normalize the observation for actor and '
              'critic with the mean and standard deviation of the steps stored when the first '
              'update is due (demonstrations included), fixed from then on'),
    Parameter('update_to_data', 1.0, 'Gradient updates per training transition (evaluation '
              'steps are not trained on)', check=at_least(0.0)),
    Parameter('actor_mode', 'residual', 'What is learned: residual (the residual actor), latent '
              "(the refinement actor that steers a generative base policy's latent, on "
              'latent_weights) or dual (both)', check=one_of(ACTOR_MODES)),
    Parameter('latent.dim', 0, "Values of the base policy's latent (0: as many as the first "
              'steered transition carries)', check=at_least(0)),
    LATENT_SCALE,
    Parameter(DEPRECATED_LATENT_SCALE, None, f'Deprecated name of {LATENT_SCALE.name} (when '
              'given, it overrides it, with a warning)', type='double', check=above(0.0)),
    Parameter('latent.update_to_data', 1.0, 'Refinement-actor updates per training transition',
              check=at_least(0.0)),
    Parameter('latent.actor_lr', 3e-4, 'Refinement actor learning rate (it picks a latent, '
              'which the frozen base policy keeps on its data)', check=above(0.0)),
    Parameter('intervention_fraction', 0.5, 'Share of each batch drawn from the intervention '
              'and demonstration buffer', check=between(0.0, 1.0)),
    Parameter('offline_bags', [], 'Recorded runs to learn from (bag folders, .mcap/.db3 files '
              "or run folders), loaded before the robot moves; ['']: none",
              type='string_array'),
    Parameter('offline_fraction', 0.0, 'Share of each batch from an offline buffer of the '
              "recorded runs' own steps (0: they join the online buffer); their human steps "
              'join the intervention buffer', check=between(0.0, 1.0)),
    Parameter('offline_warmup_updates', 0, 'Updates on the recorded runs (and demonstrations) '
              'before the robot moves (critic first, as warmup_updates says)',
              check=at_least(0)),
    Parameter('demonstrations', [], 'Demonstration files (.npz of hilresrl demos) for the '
              'intervention buffer, their base action relabelled by the base policy below; '
              "['']: none", type='string_array'),
    Parameter('base_policy.kind', 'bc', 'Base policy that relabels the demonstrations: a '
              'registered adapter'),
    Parameter('base_policy.checkpoint', '', "Its checkpoint (the base policy node's)"),
    Parameter('base_policy.task', '', 'Its task, for task-specific adapters'),
    Parameter('min_steps', 256, 'Transitions before updates begin', check=at_least(0)),
    Parameter('seed', 0, 'Seed of networks and sampling'),
    Parameter('weights_period_updates', 200, 'Broadcast the actor after this many updates...',
              check=at_least(0)),
    Parameter('weights_period_s', 5.0, '... or this many seconds, whichever first',
              check=at_least(0.0)),
    Parameter('checkpoint_period_s', 60.0, 'Seconds between checkpoints', check=at_least(0.0)),
    Parameter('status_period_s', 1.0, 'Seconds between learner_status messages',
              check=above(0.0)),
    Parameter('progress_period_s', 10.0, 'Seconds between progress lines', check=at_least(0.0)),
    Parameter('eval_episodes', 20, 'Evaluation episodes per round (as the episode manager runs '
              'them)', check=at_least(1)),
    Parameter('target_success', 0.95, 'End the run when an evaluation round reaches this '
              'success rate (0: never)', check=between(0.0, 1.0)),
    Parameter('target_window_episodes', 40, 'The target counts when the last this-many '
              'evaluation episodes together reach it (two rounds of 20: one lucky round does '
              'not end a run)', check=at_least(1)),
    Parameter('max_env_steps', 0, 'End the run after this many training transitions '
              '(evaluation steps do not count; 0: none)',
              check=at_least(0)),
    Parameter(DEPRECATED_UPDATE_BUDGET, None, 'Deprecated and ignored: the updates run in a '
              "thread of their own, and the node's callbacks take their turn after every round "
              'of them', type='double'),
    Parameter('success_window', 20, 'Training episodes over which success is reported',
              check=at_least(1)),
    Parameter('tensorboard', True, 'Write TensorBoard events'),
    Parameter('torch_threads', 1, 'CPU threads for updates (on 2 cores shared with the cell, 2 '
              'threads ran 8-14 updates/s against 35 with 1: measured)', check=at_least(1)),
    Parameter('checkpoint_allow_dirs', [], 'Folders besides the run folder whose checkpoints '
              "the load_checkpoint service may load (symlinks and '..' resolved); ['']: the "
              'run folder only', type='string_array'),
    Parameter('load_bag_max_warmup_updates', 2000, 'Most warm-up updates one load_bag call may '
              'ask for (the robot holds meanwhile)', check=at_least(0)),
    # Asked to stop, go on taking the transitions that have already arrived, so that what the
    # cells were acknowledged is in the replay bag.
    Parameter('drain_on_stop_s', 2.0, 'Seconds to store transitions already received after a '
              'stop request (Ctrl-C, SIGTERM)', check=at_least(0.0)),
)


def camera_inputs(values: Mapping[str, Any]) -> Tuple[str, ...]:
    """Return the cameras the learner sees (none: empty)."""
    return tuple(values['camera_inputs'])


def config_settings(values: Mapping[str, Any]) -> Dict[str, Any]:
    """
    Return the LearnerConfig fields (all but the sizes) of the parameters' values.

    The image_encoder is named here ('' for DrQ-v2's); a pretrained one's weights file's SHA-256
    (image_encoder_sha256) comes when the file is loaded (ActorLearners).
    """
    settings = {field: tuple(values[name]) if isinstance(values[name], list) else values[name]
                for name, field in CONFIG_FIELDS.items()}
    cameras = camera_inputs(values)
    encoder = encoder_name(values.get('image_encoder', ''))
    if encoder and not cameras:
        raise ValueError(f'image_encoder {encoder!r} needs camera_inputs: there are no images '
                         'to encode')
    if cameras:
        if len(values['image_size']) != 2:
            raise ValueError(f'image_size {list(values["image_size"])}: give height and width')
        settings.update(cameras=cameras, image_size=(*values['image_size'], 3),
                        image_features=values['image_features'],
                        image_shift=values['image_shift'], image_encoder=encoder)
    return settings


def latent_scale(values: Mapping[str, Any]) -> float:
    """Return the latent scale: latent_scale, unless the deprecated latent.scale is given."""
    given = values.get(DEPRECATED_LATENT_SCALE)
    return float(values[LATENT_SCALE.name] if given is None else given)


def deprecation_warnings(values: Mapping[str, Any]) -> List[str]:
    """Return a warning for each deprecated parameter that was given."""
    warnings = []
    if values.get(DEPRECATED_LATENT_SCALE) is not None:
        warnings.append(
            f'{DEPRECATED_LATENT_SCALE} is deprecated: it overrides {LATENT_SCALE.name} '
            f'({values[LATENT_SCALE.name]:g}) with {values[DEPRECATED_LATENT_SCALE]:g}; name it '
            f'{LATENT_SCALE.name}, as the base policy node does')
    if values.get(DEPRECATED_UPDATE_BUDGET) is not None:
        warnings.append(f'{DEPRECATED_UPDATE_BUDGET} is deprecated and ignored: the updates run '
                        "in a thread of their own and the node's callbacks take turns with them")
    return warnings
