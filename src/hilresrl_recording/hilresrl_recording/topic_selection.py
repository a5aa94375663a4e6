"""
What the recorder records and how it subscribes: topic patterns and QoS choice (no ROS).

Topics are chosen by regular expressions matched against the whole topic name, relative to the
recorder's namespace (``transitions``, ``camera/.*/image_raw``) or absolute (``/tf``). The
subscription's QoS follows what the publishers offer, as ``ros2 bag record`` does: reliable
only if every publisher is reliable, transient-local only if every publisher is (so latched
topics arrive with their last message).
"""

import re
from typing import Dict, List, Sequence

# Everything the learner, a debugging session or a dataset export needs from a run.
DEFAULT_TOPICS = (
    'transitions', 'proposed_action', 'executed_action', 'intervention_state',
    'episode_events', 'learner_status', 'policy_weights', 'mode', 'base_action_chunk',
    'task_instruction', 'joint_states', 'ee_pose', 'task_state', 'success', 'wrench',
    'camera/.*/image_raw', 'camera/.*/image_raw/compressed', 'servo/delta_twist_cmds',
    'target_pose', 'gripper/command', 'spacenav/twist', 'spacenav/joy', 'estop',
    # talk-and-tweak: corrections in words, a person's refinement commands, the refinement actor
    'correction', 'refinement_command', 'latent_weights',
)
# The recorder says it is recording once it takes these in: the episode manager waits for
# that before the first episode, so no step of a run goes unrecorded.
DEFAULT_REQUIRED_TOPICS = ('transitions', 'executed_action', 'proposed_action',
                           'base_action_chunk')


class TopicSelector:
    """Decide which topics of the graph to record."""

    def __init__(self, patterns: Sequence[str], exclude: Sequence[str] = (),
                 namespace: str = '/'):
        self.namespace = '/' + namespace.strip('/') if namespace.strip('/') else ''
        try:
            self._patterns = [re.compile(pattern) for pattern in patterns if pattern]
            self._exclude = [re.compile(pattern) for pattern in exclude if pattern]
        except re.error as error:
            raise ValueError(f'topic pattern {error.pattern!r} is not a regular expression: '
                             f'{error}') from error
        if not self._patterns:
            raise ValueError('no topics to record: give at least one name or pattern')

    def relative(self, topic: str) -> str:
        """Return a topic's name relative to the namespace ('' where it is outside it)."""
        prefix = self.namespace + '/'
        return topic[len(prefix):] if topic.startswith(prefix) else ''

    def absolute(self, name: str) -> str:
        """Return the fully qualified name of a relative or absolute topic name."""
        return name if name.startswith('/') else f'{self.namespace}/{name}'

    def matches(self, topic: str) -> bool:
        """Return whether a fully qualified topic name is to be recorded."""
        names = [topic] + ([self.relative(topic)] if self.relative(topic) else [])
        if any(pattern.fullmatch(name) for pattern in self._exclude for name in names):
            return False
        return any(pattern.fullmatch(name) for pattern in self._patterns for name in names)


def subscription_qos(offered: List[Dict[str, object]], depth: int) -> Dict[str, object]:
    """Return the reliability, durability and depth to subscribe with, given offered QoS."""
    reliable = bool(offered) and all(profile.get('reliability') == 'reliable'
                                     for profile in offered)
    latched = bool(offered) and all(profile.get('durability') == 'transient_local'
                                    for profile in offered)
    return {'reliability': 'reliable' if reliable else 'best_effort',
            'durability': 'transient_local' if latched else 'volatile',
            'depth': depth}
