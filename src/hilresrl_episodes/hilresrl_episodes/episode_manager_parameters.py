"""
The episode manager node's parameters, described once (no rclpy).

episode_manager_node declares them with hilresrl_common.parameter_declaration
.declare_parameters, which checks every value at start-up.
"""

from hilresrl_common.parameters import one_of, Parameter

from .episodes import Mode

REWARD_SOURCES = ('observation', 'topic', 'button')
INITIAL_MODES = tuple(mode.name.lower() for mode in Mode)


def _initial_mode(value: str) -> str:
    return '' if value.lower() in INITIAL_MODES else 'must be train, eval or pause'


PARAMETERS = (
    Parameter('robot_id', 'robot1', 'Identifier of this cell in episode events and transitions'),
    Parameter('initial_mode', 'train', 'Mode at start-up: train, eval or pause',
              check=_initial_mode),
    Parameter('max_episode_steps', None,
              'Time limit of an episode in control steps (unset or 0: the limit the reset '
              'service reports, else none)', type='integer'),
    Parameter('reward_source', 'topic',
              'Where success comes from: observation (a stamped observation source, e.g. a '
              "simulator's success), topic (any std_msgs/Bool topic), button (a SpaceMouse "
              'button)', check=one_of(REWARD_SOURCES)),
    Parameter('reward_name', 'success',
              'The observation source (reward_source=observation) or std_msgs/Bool topic '
              '(reward_source=topic) of success'),
    Parameter('spacemouse.success_button', 1, 'Joy button a person presses to mark success'),
    Parameter('reset_service', 'reset',
              'hilresrl_msgs/ResetCell service that resets the cell before an episode (empty: a '
              'person resets the cell and calls start_episode)'),
    Parameter('auto_start', True, 'Start the next episode as soon as one ends'),
    Parameter('episodes', None, 'Episodes to run before exiting (unset or 0: no limit)',
              type='integer'),
    Parameter('seed', 0, 'Reset seed of the first episode (+1 each)'),
    Parameter('wait_for_topics', ['base_action_chunk', 'proposed_action', 'executed_action'],
              "Topics that must have a publisher before the first episode starts (['']: none)"),
    Parameter('summary_file', None, 'JSON file for the final summary (unset or empty: none)',
              type='string'),
    Parameter('eval_every', None,
              'Training episodes between evaluation rounds (unset or 0: no rounds)',
              type='integer'),
    Parameter('eval_episodes', 20,
              'Evaluation episodes in a round (no exploration, no intervention)'),
    Parameter('learner_pace', None,
              'Before a training episode, wait until the learner has done this share of the '
              'updates its update-to-data ratio asks for (lockstep cells; unset or 0: never '
              'wait)', type='double'),
    Parameter('learner_pace_slack', 500,
              'Transitions the learner may be behind before the cell waits for it'),
    Parameter('wait_for_learner', False,
              'Start training episodes only once the learner is up and done loading and warming '
              'up on recorded runs'),
    Parameter('learner_timeout_s', 10.0,
              'Where the cell waits on the learner (wait_for_learner or learner_pace): seconds '
              'without a learner_status before the running training episode is aborted and the '
              'robot paused until the learner is back (0: never)'),
    Parameter('wait_for_recorder', False,
              'Start the first episode only once the recorder records (recorder_status)'),
)
