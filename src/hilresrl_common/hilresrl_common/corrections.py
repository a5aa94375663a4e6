"""
Talk-and-tweak: a person's correction during an intervention as a short command, and back.

Plain Python and numpy (no ROS): the words a node publishes, the vector a refinement actor reads.
"""

from dataclasses import dataclass
import math
import re
from typing import List, Optional, Sequence, Tuple

from hilresrl_common.action_axes import ANGULAR_AXES, GRIPPER_AXIS, LINEAR_AXES
import numpy as np

HOLD_STILL = 'hold still'
CLAUSE_SEPARATOR = ', then '
AXIS_SEPARATOR = ' and '
MAX_TRANSLATION_AXES = 2
MAX_ROTATION_AXES = 2

# command_features(): the size of the vector and the magnitudes that map to 1.
COMMAND_FEATURE_SIZE = 8
FEATURE_TRANSLATION_SCALE_M = 0.05
FEATURE_ROTATION_SCALE_RAD = 0.5

# (axis index in x y z, sign) -> word.
_TRANSLATION_WORDS = {(0, 1): 'forward', (0, -1): 'back', (1, 1): 'left', (1, -1): 'right',
                      (2, 1): 'up', (2, -1): 'down'}
# (axis index in roll pitch yaw, sign) -> clause; the tilt rule is CorrectionDescriber's.
_ROTATION_CLAUSES = {(0, 1): 'tilt the wrist right', (0, -1): 'tilt the wrist left',
                     (1, 1): 'tilt the wrist forward', (1, -1): 'tilt the wrist back',
                     (2, 1): 'rotate the wrist counterclockwise',
                     (2, -1): 'rotate the wrist clockwise'}

# Words a person may use -> (axis index, sign).
_MOVE_DIRECTIONS = {'forward': (0, 1), 'forwards': (0, 1), 'back': (0, -1),
                    'backward': (0, -1), 'backwards': (0, -1), 'left': (1, 1),
                    'right': (1, -1), 'up': (2, 1), 'down': (2, -1)}
# 'lower the gripper' and its opposites: moves along z.
_VERTICAL_VERBS = {'lower': 'down', 'raise': 'up', 'lift': 'up'}
_ROTATE_DIRECTIONS = {'counterclockwise': (2, 1), 'clockwise': (2, -1)}
_TILT_DIRECTIONS = {'right': (0, 1), 'left': (0, -1), 'forward': (1, 1), 'forwards': (1, 1),
                    'back': (1, -1), 'backward': (1, -1), 'backwards': (1, -1)}
_LENGTH_UNITS_M = {'mm': 0.001, 'millimeter': 0.001, 'millimeters': 0.001,
                   'millimetre': 0.001, 'millimetres': 0.001,
                   'cm': 0.01, 'centimeter': 0.01, 'centimeters': 0.01,
                   'centimetre': 0.01, 'centimetres': 0.01,
                   'm': 1.0, 'meter': 1.0, 'meters': 1.0, 'metre': 1.0, 'metres': 1.0}
_ANGLE_UNITS_RAD = {'deg': math.pi / 180.0, 'degree': math.pi / 180.0,
                    'degrees': math.pi / 180.0, 'rad': 1.0, 'radian': 1.0, 'radians': 1.0}
_SEPARATOR_TOKENS = (',', 'and', 'then')
_NUMBER = re.compile(r'\d+(?:\.\d+)?|\.\d+')
_TOKEN = re.compile(r'\d+(?:\.\d+)?|\.\d+|[a-z]+|\S')


def _validate_action_names(action_names: Sequence[str]) -> Tuple[str, ...]:
    names = tuple(action_names)
    known = LINEAR_AXES + ANGULAR_AXES + (GRIPPER_AXIS,)
    if any(name not in known for name in names) or len(set(names)) != len(names):
        raise ValueError(f'action_names {list(names)}: each must be one of '
                         f'{", ".join(known)}, once')
    return names


@dataclass(frozen=True)
class Correction:
    """
    What a person changed over the steps of a segment, integrated from human minus base action.

    ``translation_m`` (3,) is the displacement along base x, y, z in metres and ``rotation_rad``
    (3,) the angle about base x, y, z (roll, pitch, yaw); axes the action lacks are 0.
    ``gripper_change`` is mean human minus mean base gripper command (0 without a gripper axis
    or steps); ``steps`` counts the steps.
    """

    translation_m: np.ndarray
    rotation_rad: np.ndarray
    gripper_change: float
    steps: int


class CorrectionDescriber:
    """
    Describe corrections in canonical English, deterministically (same input, same words).

    Words follow the cell (base) frame: +x forward, -x back, +y left, -y right, +z up, -z down;
    yaw + is 'counterclockwise', yaw - 'clockwise'. A tilt is named after where the top of the
    wrist (the base +z axis carried by the rotation) goes: pitch + 'forward', pitch - 'back',
    roll + 'right', roll - 'left'. A command is clauses joined by ', then ' in a fixed order:
    one 'move' clause (at most two axes, largest first, joined by ' and '), up to two wrist
    clauses (largest first), one gripper clause; e.g. 'move left 2 cm and down 1 cm, then
    rotate the wrist clockwise, then close the gripper'. Nothing significant: 'hold still'.

    Batch: describe() the T x A human and base actions of a segment. Live: start(), add() one
    step at a time, command() for the words so far (to publish during the intervention) and
    finish() for the final words. A translation axis counts when its displacement is above
    ``min_translation_m`` (centimetres rounded half up, at least 1), a rotation axis when its
    angle is above ``min_rotation_rad``; the person closed the gripper when ``gripper_change``
    is above ``gripper_threshold`` and opened it when below its negative.
    """

    def __init__(self, action_names: Sequence[str], linear_speed_scale_mps: float,
                 angular_speed_scale_rps: float, period_s: float,
                 min_translation_m: float = 0.005, min_rotation_rad: float = 0.05,
                 gripper_threshold: float = 0.5):
        self.action_names = _validate_action_names(action_names)
        if linear_speed_scale_mps <= 0 or angular_speed_scale_rps <= 0:
            raise ValueError('speed scales must be positive')
        if period_s <= 0:
            raise ValueError('the control period must be positive')
        if min_translation_m < 0 or min_rotation_rad < 0 or gripper_threshold < 0:
            raise ValueError('thresholds must not be negative')
        self.linear_speed_scale_mps = float(linear_speed_scale_mps)
        self.angular_speed_scale_rps = float(angular_speed_scale_rps)
        self.period_s = float(period_s)
        self.min_translation_m = float(min_translation_m)
        self.min_rotation_rad = float(min_rotation_rad)
        self.gripper_threshold = float(gripper_threshold)
        self._linear = [(i, self.action_names.index(n)) for i, n in enumerate(LINEAR_AXES)
                        if n in self.action_names]
        self._angular = [(i, self.action_names.index(n)) for i, n in enumerate(ANGULAR_AXES)
                         if n in self.action_names]
        self._gripper = (self.action_names.index(GRIPPER_AXIS)
                         if GRIPPER_AXIS in self.action_names else None)
        self.start()

    # Live segment.
    def start(self) -> None:
        """Begin a segment: forget the steps added so far."""
        self._translation_m = np.zeros(3)
        self._rotation_rad = np.zeros(3)
        self._gripper_sum = 0.0
        self._steps = 0

    def add(self, human_action: Sequence[float], base_action: Sequence[float]) -> None:
        """Add one step of the segment: the person's action and the base policy's, (A,) each."""
        human = self._check(human_action, 'human_action')
        base = self._check(base_action, 'base_action')
        # Running sums, step by step: describe() takes the same path, so the live words and the
        # batch words of the same steps are the same to the last bit.
        delta = human - base
        linear_step_m = self.linear_speed_scale_mps * self.period_s
        angular_step_rad = self.angular_speed_scale_rps * self.period_s
        for axis, index in self._linear:
            self._translation_m[axis] += delta[index] * linear_step_m
        for axis, index in self._angular:
            self._rotation_rad[axis] += delta[index] * angular_step_rad
        if self._gripper is not None:
            self._gripper_sum += delta[self._gripper]
        self._steps += 1

    @property
    def steps(self) -> int:
        """Return the number of steps in the running segment."""
        return self._steps

    def current(self) -> Correction:
        """Return the correction of the steps added so far."""
        change = self._gripper_sum / self._steps if self._steps else 0.0
        return Correction(self._translation_m.copy(), self._rotation_rad.copy(), float(change),
                          self._steps)

    def command(self) -> str:
        """Return the command describing the steps added so far."""
        return self.phrase(self.current())

    def finish(self) -> str:
        """Return the command of the whole segment and start an empty one."""
        text = self.command()
        self.start()
        return text

    # Batch.
    def measure(self, human_actions: np.ndarray, base_actions: np.ndarray) -> Correction:
        """Return the correction of one segment's T x A human and base actions."""
        human = self._steps_array(human_actions, 'human_actions')
        base = self._steps_array(base_actions, 'base_actions')
        if human.shape != base.shape:
            raise ValueError(f'human_actions {human.shape} and base_actions {base.shape} '
                             'must have the same shape')
        # A describer of its own, so a batch call leaves a live segment in progress untouched.
        segment = CorrectionDescriber(
            self.action_names, self.linear_speed_scale_mps, self.angular_speed_scale_rps,
            self.period_s, self.min_translation_m, self.min_rotation_rad, self.gripper_threshold)
        for human_action, base_action in zip(human, base):
            segment.add(human_action, base_action)
        return segment.current()

    def describe(self, human_actions: np.ndarray, base_actions: np.ndarray) -> str:
        """Return the canonical command of one segment's T x A human and base actions."""
        return self.phrase(self.measure(human_actions, base_actions))

    def phrase(self, correction: Correction) -> str:
        """Return the canonical command of a correction ('hold still' when nothing counts)."""
        clauses = []
        moves = self._largest(correction.translation_m, self.min_translation_m,
                              MAX_TRANSLATION_AXES)
        if moves:
            clauses.append('move ' + AXIS_SEPARATOR.join(
                f'{_TRANSLATION_WORDS[axis, sign]} {_whole_cm(value)} cm'
                for axis, sign, value in moves))
        for axis, sign, _ in self._largest(correction.rotation_rad, self.min_rotation_rad,
                                           MAX_ROTATION_AXES):
            clauses.append(_ROTATION_CLAUSES[axis, sign])
        if correction.gripper_change > self.gripper_threshold:
            clauses.append('close the gripper')
        elif correction.gripper_change < -self.gripper_threshold:
            clauses.append('open the gripper')
        return CLAUSE_SEPARATOR.join(clauses) if clauses else HOLD_STILL

    @staticmethod
    def _largest(values: np.ndarray, minimum: float,
                 count: int) -> List[Tuple[int, int, float]]:
        # Ties keep the axis order (x before y before z), so equal motions always read the same.
        significant = [(axis, 1 if value > 0 else -1, abs(float(value)))
                       for axis, value in enumerate(values) if abs(value) > minimum]
        significant.sort(key=lambda item: -item[2])
        return significant[:count]

    def _check(self, action: Sequence[float], name: str) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (len(self.action_names),):
            raise ValueError(f'{name} has shape {action.shape}, expected '
                             f'({len(self.action_names)},) for {list(self.action_names)}')
        if not np.all(np.isfinite(action)):
            raise ValueError(f'{name} is not finite: {action.tolist()}')
        return action

    def _steps_array(self, actions: np.ndarray, name: str) -> np.ndarray:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.size == 0:
            return np.zeros((0, len(self.action_names)))
        if actions.ndim != 2 or actions.shape[1] != len(self.action_names):
            raise ValueError(f'{name} has shape {actions.shape}, expected (T, '
                             f'{len(self.action_names)}) for {list(self.action_names)}')
        return actions


def _whole_cm(distance_m: float) -> int:
    # Half up, not Python's round-half-even; the small epsilon keeps a sum like 0.0249999... at
    # the 3 cm a person would expect from 2.5 cm.
    return max(1, int(math.floor(distance_m * 100.0 + 0.5 + 1e-9)))


@dataclass(frozen=True)
class ParsedCommand:
    """
    A typed or spoken command, parsed.

    ``translation_m`` (3,) along base x, y, z in metres, ``rotation_rad`` (3,) about base x, y,
    z; ``gripper`` is -1 (open), 0 (unchanged) or +1 (close). When ``understood`` is false every
    value is 0. ``text`` is the text as given.
    """

    translation_m: np.ndarray
    rotation_rad: np.ndarray
    gripper: int
    understood: bool
    text: str


def _not_understood(text: str) -> ParsedCommand:
    return ParsedCommand(np.zeros(3), np.zeros(3), 0, False, text)


def _tokens(text: str) -> Optional[List[str]]:
    text = text.lower().strip()
    text = re.sub(r'[.!?]+$', '', text)
    text = re.sub(r'\b(?:counter|anti)[\s-]*clockwise\b', 'counterclockwise', text)
    tokens = _TOKEN.findall(text)
    if any(not (token.isalnum() or _NUMBER.fullmatch(token) or token == ',')
           for token in tokens):
        return None
    return tokens


def _clauses(tokens: List[str]) -> List[List[str]]:
    clauses, clause = [], []
    for token in tokens:
        if token in _SEPARATOR_TOKENS:
            if clause:
                clauses.append(clause)
            clause = []
        else:
            clause.append(token)
    if clause:
        clauses.append(clause)
    return clauses


def _direction_and_amount(tokens: List[str], directions: dict, units: dict,
                          default: float) -> Optional[Tuple[Tuple[int, int], float]]:
    """Return ((axis, sign), magnitude) of e.g. ['left', '2', 'cm'], or None."""
    direction, amount, rest = None, None, [token for token in tokens if token != 'by']
    index = 0
    while index < len(rest):
        token = rest[index]
        if _NUMBER.fullmatch(token):
            # A number needs its unit: '2' alone could be centimetres or millimetres.
            if amount is not None or index + 1 >= len(rest) or rest[index + 1] not in units:
                return None
            amount = float(token) * units[rest[index + 1]]
            index += 2
        elif token in directions and direction is None:
            direction = directions[token]
            index += 1
        else:
            return None
    if direction is None or (amount is not None and not math.isfinite(amount)):
        return None
    return direction, default if amount is None else amount


def parse_command(text: str, action_names: Sequence[str], default_translation_m: float = 0.01,
                  default_rotation_rad: float = 0.2) -> ParsedCommand:
    """
    Parse a command of the canonical forms that CorrectionDescriber writes; never raises on text.

    Case, extra spaces and a final '.', '!' or '?' do not matter. Lengths take mm, cm or m (also
    spelled out, -meter or -metre); 'move left' without a length moves ``default_translation_m``.
    Wrist clauses may give an angle ('rotate the wrist clockwise 30 degrees', deg or rad), else
    they turn ``default_rotation_rad``. Clauses are separated by ',', 'and', 'then' in any mix; a
    clause without a verb continues the one before ('move left 2 cm and down 1 cm', 'tilt the
    wrist forward and left'); motions along one axis add up and the last gripper clause counts.
    'lower the gripper' moves down, 'raise' or 'lift the gripper' up (by a length, if given).
    Text that does not parse, or that needs an axis the action lacks, is not understood.
    Invalid ``action_names`` raise ValueError (a configuration error, not a text one).
    """
    names = _validate_action_names(action_names)
    if not isinstance(text, str):
        return _not_understood('' if text is None else str(text))
    tokens = _tokens(text)
    clauses = _clauses(tokens) if tokens else []
    if not clauses:
        return _not_understood(text)
    translation, rotation, gripper = np.zeros(3), np.zeros(3), 0
    verb = None
    for clause in clauses:
        if clause == ['hold', 'still']:
            verb = None
            continue
        if clause[0] in ('open', 'close') and clause[1:] in (['gripper'], ['the', 'gripper']):
            if GRIPPER_AXIS not in names:
                return _not_understood(text)
            gripper, verb = (1 if clause[0] == 'close' else -1), None
            continue
        if clause[0] in _VERTICAL_VERBS:
            # 'lower the gripper (by 2 cm)': a move down (up for raise and lift).
            gripper_words = 2 if clause[1:2] == ['the'] else 1
            if clause[gripper_words:gripper_words + 1] != ['gripper']:
                return _not_understood(text)
            verb, clause = 'move', [_VERTICAL_VERBS[clause[0]]] + clause[gripper_words + 1:]
        elif clause[0] == 'move':
            verb, clause = 'move', clause[1:]
        elif clause[0] in ('rotate', 'turn', 'tilt'):
            wrist = 2 if clause[1:2] == ['the'] else 1
            if clause[wrist:wrist + 1] != ['wrist']:
                return _not_understood(text)
            verb, clause = ('tilt' if clause[0] == 'tilt' else 'rotate'), clause[wrist + 1:]
        if verb == 'move':
            found = _direction_and_amount(clause, _MOVE_DIRECTIONS, _LENGTH_UNITS_M,
                                          default_translation_m)
            axis_names, values = LINEAR_AXES, translation
        elif verb in ('rotate', 'tilt'):
            directions = _ROTATE_DIRECTIONS if verb == 'rotate' else _TILT_DIRECTIONS
            found = _direction_and_amount(clause, directions, _ANGLE_UNITS_RAD,
                                          default_rotation_rad)
            axis_names, values = ANGULAR_AXES, rotation
        else:
            return _not_understood(text)
        if found is None or axis_names[found[0][0]] not in names:
            return _not_understood(text)
        (axis, sign), magnitude = found
        values[axis] += sign * magnitude
    return ParsedCommand(translation, rotation, gripper, True, text)


def command_features(parsed: ParsedCommand) -> np.ndarray:
    """
    Return the (8,) float32 conditioning vector of a parsed command.

    translation / 0.05 m (3) and rotation / 0.5 rad (3), each clipped to [-1, 1], the gripper
    (-1, 0, 1) and understood (0 or 1); a command that was not understood gives zeros.
    """
    features = np.zeros(COMMAND_FEATURE_SIZE, dtype=np.float32)
    if not parsed.understood:
        return features
    features[0:3] = np.clip(np.asarray(parsed.translation_m) / FEATURE_TRANSLATION_SCALE_M,
                            -1.0, 1.0)
    features[3:6] = np.clip(np.asarray(parsed.rotation_rad) / FEATURE_ROTATION_SCALE_RAD,
                            -1.0, 1.0)
    features[6] = parsed.gripper
    features[7] = 1.0
    return features
