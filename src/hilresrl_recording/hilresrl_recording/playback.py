"""
When each message of a bag is due when it is played back: original timing, scaled, offset.

A bag's messages carry their receive times; played at ``rate`` from ``start_s`` seconds into
the bag, a message recorded at t is due (t - t0 - start) / rate seconds after playback began.
Which topics play by default: observations only; topics that act on a cell (commands, devices,
e-stop, weights, modes) only when named exactly, with a warning. No ROS here.
"""

from dataclasses import dataclass
import re
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

# Types a cell observes: played by default (unless the name says the topic commands).
OBSERVATION_TYPES = frozenset({
    'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage', 'sensor_msgs/msg/CameraInfo',
    'sensor_msgs/msg/JointState', 'sensor_msgs/msg/Imu', 'sensor_msgs/msg/PointCloud2',
    'sensor_msgs/msg/LaserScan', 'sensor_msgs/msg/Range', 'geometry_msgs/msg/PoseStamped',
    'geometry_msgs/msg/PoseWithCovarianceStamped', 'geometry_msgs/msg/TransformStamped',
    'geometry_msgs/msg/WrenchStamped', 'tf2_msgs/msg/TFMessage', 'std_msgs/msg/String',
    'hilresrl_msgs/msg/StateVector', 'hilresrl_msgs/msg/ImageRef',
    'hilresrl_msgs/msg/NamedArray',
})
# Types that move a robot or change what acts, whatever their topic's name.
ACTING_TYPES = {
    'geometry_msgs/msg/Twist': 'command', 'geometry_msgs/msg/TwistStamped': 'command',
    'trajectory_msgs/msg/JointTrajectory': 'command',
    'trajectory_msgs/msg/MultiDOFJointTrajectory': 'command',
    'std_msgs/msg/Float64MultiArray': 'command', 'sensor_msgs/msg/Joy': 'device',
    'std_msgs/msg/Bool': 'trigger', 'std_msgs/msg/Empty': 'trigger',
    'hilresrl_msgs/msg/PolicyWeights': 'weights', 'hilresrl_msgs/msg/ProposedAction': 'command',
    'hilresrl_msgs/msg/ExecutedAction': 'command', 'hilresrl_msgs/msg/ActionChunk': 'command',
    'hilresrl_msgs/msg/Mode': 'mode',
}
# Name parts (between slashes) of topics that act, whatever their type.
ACTING_NAMES = (
    ('e-stop', re.compile(r'.*(estop|e_stop|emergency).*')),
    ('device', re.compile(r'(spacenav|joy|keyboard).*')),
    ('weights', re.compile(r'.*weights.*')),
    ('command', re.compile(r'.*(cmd|command|target|goal|trajector|servo|twist).*')),
    ('command', re.compile(r'(mode|proposed_action|executed_action|base_action_chunk|'
                           r'correction)')),
)
ROLE_HELP = (
    'By default only observation topics play (images, joint states, poses, task state, '
    'instructions: types such as sensor_msgs Image/JointState, geometry_msgs PoseStamped, '
    'hilresrl_msgs StateVector, on names that do not command). Topics that act on a cell are '
    'left out: command types (Twist, TwistStamped, JointTrajectory, Float64MultiArray, '
    'ProposedAction, ExecutedAction, ActionChunk), devices (Joy, spacenav/*, keyboard/*), '
    'e-stop and triggers (Bool, Empty, *estop*), weights (PolicyWeights, *weights*), modes, '
    'and names with cmd, command, target, goal, trajectory, servo or twist. One plays only '
    'when --topics names it exactly (or --allow-command-topics lets a pattern take it), with '
    'a warning. Other topics (transitions, events, status) play when --topics selects them.')


def topic_role(name: str, type_name: str) -> Tuple[str, str]:
    """Return ('acting', why) | ('observation', '') | ('other', '') for a bag's topic."""
    if type_name in ACTING_TYPES:
        return 'acting', f'{ACTING_TYPES[type_name]} topic (type {type_name})'
    for part in name.strip('/').split('/'):
        for kind, pattern in ACTING_NAMES:
            if pattern.fullmatch(part):
                return 'acting', f'{kind} topic (name part {part!r})'
    if type_name in OBSERVATION_TYPES:
        return 'observation', ''
    return 'other', ''


def choose_topics(types: Dict[str, str], patterns: Optional[Sequence[str]],
                  allow_acting: bool = False) -> Tuple[List[str], List[str], List[str]]:
    """
    Return (topics to play, topics left out with the reason, warnings) for a bag's topics.

    Without patterns: the observation topics. With patterns: the topics they select, except
    acting topics that no pattern names exactly (unless allow_acting); each acting topic
    played gets a warning.
    """
    roles = {name: topic_role(name, type_name) for name, type_name in types.items()}
    chosen, left_out, warnings = [], [], []
    for name in select_topics(types, patterns):
        role, why = roles[name]
        if not patterns and role != 'observation':
            left_out.append(f'{name} ({why or "not an observation"})')
        elif role == 'acting' and not allow_acting and name not in patterns:
            left_out.append(f'{name} ({why}: name it exactly to play it)')
        else:
            chosen.append(name)
            if role == 'acting':
                warnings.append(f'playing {name}, a {why}: on a live cell it acts around the '
                                'arbiter and the safety filter')
    if not chosen:
        raise ValueError(f'nothing to play: {"; ".join(left_out)} left out (name topics with '
                         '--topics)')
    return chosen, left_out, warnings


@dataclass(frozen=True)
class PlaybackOptions:
    """How to play a bag back."""

    rate: float = 1.0
    start_s: float = 0.0
    loop: bool = False

    def __post_init__(self):
        if self.rate <= 0:
            raise ValueError(f'rate must be positive, not {self.rate}')
        if self.start_s < 0:
            raise ValueError(f'start must not be negative, not {self.start_s}')


def select_topics(available: Iterable[str], patterns: Optional[Sequence[str]]) -> list:
    """Return the topics to play: all, or those matching a name or regular expression."""
    available = sorted(available)
    if not patterns:
        return available
    compiled = [re.compile(pattern) for pattern in patterns]
    chosen = [topic for topic in available
              if any(pattern.fullmatch(topic) for pattern in compiled)]
    if not chosen:
        raise ValueError(f'no topic of the bag matches {", ".join(patterns)}; it has '
                         f'{", ".join(available)}')
    return chosen


def schedule(messages: Iterable[Tuple[str, int, bytes]], first_ns: int,
             options: PlaybackOptions) -> Iterator[Tuple[float, str, bytes]]:
    """Yield (seconds after playback start, topic, data) for the messages from start_s on."""
    start_ns = first_ns + int(options.start_s * 1e9)
    for topic, stamp_ns, data in messages:
        if stamp_ns < start_ns:
            continue
        yield (stamp_ns - start_ns) / 1e9 / options.rate, topic, data
