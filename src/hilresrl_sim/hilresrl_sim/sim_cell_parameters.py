"""
The simulated cell node's parameters, described once (no rclpy).

sim_cell_node declares them; a headless benchmark reads their defaults
(hilresrl_common.parameters.defaults), so the two cannot drift apart.
"""

from hilresrl_common.parameters import above, at_least, Parameter

CLOCK_MODES = ('lockstep', 'realtime')

PARAMETERS = (
    Parameter('task', 'pick-place-v3',
              'Meta-World v3 task name (e.g. pick-place-v3) or PandaPickCube'),
    Parameter('seed', 0, 'Seed of the first reset'),
    Parameter('clock_mode', 'lockstep', 'lockstep: one step per command, as fast as the loop '
                                        'answers; realtime: steps at control_rate_hz'),
    Parameter('control_rate_hz', 10.0, 'Control steps per (simulated) second',
              check=above(0.0)),
    Parameter('cameras', [''], 'Cameras to render and publish (empty: none)'),
    Parameter('image_size', 128, 'Camera image width and height', check=at_least(1)),
    Parameter('publish_wrench', False, 'Publish what a wrist force/torque sensor reads (the '
              "contact forces on the gripper, in frame_id) on 'wrench' every step"),
    Parameter('action_names', ['x', 'y', 'z', 'gripper'], 'Names of the action axes, in order'),
    Parameter('linear_speed_scale_mps', 0.1, 'Twist speed (m/s) that maps to action 1',
              check=above(0.0)),
    Parameter('command_timeout_s', 0.3, 'realtime: stop the arm when no twist came for this '
                                        'long (as MoveIt Servo does)'),
    Parameter('frame_id', 'world', 'Frame of poses and twists'),
    Parameter('tool_frame_id', 'tool0', 'The hand frame: twists with this frame_id are turned '
                                        'into the base frame, as MoveIt Servo does'),
    Parameter('republish_after_s', 1.0,
              'lockstep: publish the current observation again when no command answered it '
              'for this long (s), so a message lost at start-up never stalls the loop'),
    Parameter('idle_between_episodes', True,
              'lockstep: take no step before the first reset and from the end of an episode to '
              'the next reset (nothing to simulate while the cell waits: the CPU goes to the '
              'learner)'),
)
