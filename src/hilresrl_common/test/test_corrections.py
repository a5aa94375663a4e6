"""Talk-and-tweak: corrections described as commands and commands parsed back (core, no ROS)."""

import math

from hilresrl_common.corrections import (
    command_features, Correction, CorrectionDescriber, HOLD_STILL, parse_command)
import numpy as np
import pytest

CARTESIAN = ['x', 'y', 'z', 'roll', 'pitch', 'yaw', 'gripper']
# 0.1 m/s for 0.1 s: a difference of 1.0 for one step moves 1 cm; 1.0 rad/s: 0.1 rad.
LINEAR_MPS, ANGULAR_RPS, PERIOD_S = 0.1, 1.0, 0.1


def describer(names=CARTESIAN, **kwargs) -> CorrectionDescriber:
    """Return a describer where one step of difference 1.0 is 1 cm or 0.1 rad."""
    return CorrectionDescriber(names, LINEAR_MPS, ANGULAR_RPS, PERIOD_S, **kwargs)


def segment(names=CARTESIAN, steps=4, **differences):
    """Return (human, base) T x A actions whose difference is the given value on each axis."""
    base = np.tile(np.linspace(-0.3, 0.3, len(names)), (steps, 1))
    human = base.copy()
    for name, value in differences.items():
        human[:, names.index(name)] += value
    return human, base


def describe(names=CARTESIAN, steps=4, **differences) -> str:
    """Return the command of a segment of constant differences."""
    return describer(names).describe(*segment(names, steps, **differences))


@pytest.mark.parametrize('axis, value, text', [
    ('x', 0.5, 'move forward 2 cm'), ('x', -0.5, 'move back 2 cm'),
    ('y', 0.5, 'move left 2 cm'), ('y', -0.5, 'move right 2 cm'),
    ('z', 0.5, 'move up 2 cm'), ('z', -0.5, 'move down 2 cm')])
def test_each_translation_direction(axis, value, text):
    assert describe(**{axis: value}) == text


@pytest.mark.parametrize('axis, value, text', [
    ('yaw', 0.5, 'rotate the wrist counterclockwise'),
    ('yaw', -0.5, 'rotate the wrist clockwise'),
    ('pitch', 0.5, 'tilt the wrist forward'), ('pitch', -0.5, 'tilt the wrist back'),
    ('roll', 0.5, 'tilt the wrist right'), ('roll', -0.5, 'tilt the wrist left')])
def test_each_rotation_direction(axis, value, text):
    assert describe(**{axis: value}) == text


def test_gripper_closed_and_opened():
    assert describe(gripper=1.5) == 'close the gripper'
    assert describe(gripper=-1.5) == 'open the gripper'
    # The mean difference decides: closed for half of the steps is a difference of 0.5 on the
    # mean, not above the threshold.
    human, base = segment(steps=4)
    human[:2, 6] += 1.0
    assert describer().describe(human, base) == HOLD_STILL
    human[:3, 6] += 0.5
    assert describer().describe(human, base) == 'close the gripper'


def test_two_axes_largest_first_and_a_third_left_out():
    assert describe(y=0.5, z=-0.25) == 'move left 2 cm and down 1 cm'
    assert describe(y=0.25, z=-0.5) == 'move down 2 cm and left 1 cm'
    assert describe(x=0.75, y=0.5, z=-0.25) == 'move forward 3 cm and left 2 cm'
    # Equal magnitudes keep the axis order x, y, z.
    assert describe(x=-0.5, z=0.5) == 'move back 2 cm and up 2 cm'


def test_clauses_in_a_fixed_order():
    assert describe(gripper=2.0, yaw=-0.5, y=0.5, z=-0.25) == (
        'move left 2 cm and down 1 cm, then rotate the wrist clockwise, then close the gripper')
    assert describe(yaw=0.25, pitch=0.5, roll=-0.1) == (
        'tilt the wrist forward, then rotate the wrist counterclockwise')


def test_small_motions_hold_still():
    # 4 steps of 0.1: 4 mm and 0.04 rad, under the 5 mm and 0.05 rad thresholds.
    assert describe(x=0.1, y=-0.1, z=0.1, roll=0.1, pitch=-0.1, yaw=0.1, gripper=0.4) == (
        HOLD_STILL)
    assert describe(x=0.15) == 'move forward 1 cm'
    assert describe(yaw=-0.15) == 'rotate the wrist clockwise'
    assert describer().describe(np.zeros((0, 7)), np.zeros((0, 7))) == HOLD_STILL
    assert describer().describe([], []) == HOLD_STILL


def test_thresholds_are_settable():
    quiet = describer(min_translation_m=0.03, min_rotation_rad=0.5, gripper_threshold=1.5)
    assert quiet.describe(*segment(y=0.5, yaw=1.0, gripper=1.0)) == HOLD_STILL
    assert quiet.describe(*segment(y=1.0, yaw=1.5, gripper=1.75)) == (
        'move left 4 cm, then rotate the wrist counterclockwise, then close the gripper')


@pytest.mark.parametrize('total_m, cm', [
    (0.0051, 1), (0.0149, 1), (0.015, 2), (0.025, 3), (0.0349, 3), (0.2, 20), (1.234, 123)])
def test_centimetres_round_half_up_and_at_least_one(total_m, cm):
    human, base = segment(steps=10, x=total_m * 10.0)
    assert describer().describe(human, base) == f'move forward {cm} cm'


@pytest.mark.parametrize('names', [['gripper', 'z', 'x'], ['z'], ['yaw', 'y'],
                                   ['gripper'], ['pitch', 'roll', 'x', 'y']])
def test_axis_subsets_in_any_order(names):
    differences = dict.fromkeys(names, 1.0)
    words = {'x': 'forward 4 cm', 'y': 'left 4 cm', 'z': 'up 4 cm'}
    text = describe(names, **differences)
    moved = [words[name] for name in ('x', 'y', 'z') if name in names]
    for word in moved:
        assert word in text
    assert ('close the gripper' in text) == ('gripper' in names)
    assert ('rotate the wrist counterclockwise' in text) == ('yaw' in names)
    assert ('tilt the wrist forward' in text) == ('pitch' in names)
    assert ('tilt the wrist right' in text) == ('roll' in names)


def test_subset_reads_each_axis_from_its_column():
    names = ['gripper', 'z', 'x']
    assert describe(names, x=-1.0, z=0.5, gripper=-2.0) == (
        'move back 4 cm and up 2 cm, then open the gripper')


def test_same_input_same_words():
    rng = np.random.default_rng(7)
    human = rng.uniform(-1.0, 1.0, (50, 7))
    base = rng.uniform(-1.0, 1.0, (50, 7))
    texts = {describer().describe(human, base) for _ in range(3)}
    texts.add(describer().describe(human.tolist(), base.tolist()))
    assert len(texts) == 1


def test_bad_input_raises():
    with pytest.raises(ValueError):
        CorrectionDescriber(['x', 'elbow'], LINEAR_MPS, ANGULAR_RPS, PERIOD_S)
    with pytest.raises(ValueError):
        CorrectionDescriber(['x', 'x'], LINEAR_MPS, ANGULAR_RPS, PERIOD_S)
    with pytest.raises(ValueError):
        CorrectionDescriber(['x'], 0.0, ANGULAR_RPS, PERIOD_S)
    with pytest.raises(ValueError):
        describer().describe(np.zeros((3, 6)), np.zeros((3, 6)))
    with pytest.raises(ValueError):
        describer().describe(np.zeros((3, 7)), np.zeros((2, 7)))
    with pytest.raises(ValueError):
        describer().add(np.full(7, np.nan), np.zeros(7))


def test_live_command_grows_as_steps_come():
    live = describer()
    live.start()
    assert live.command() == HOLD_STILL
    human, base = segment(steps=6, y=0.6, z=-0.3, gripper=2.0)
    commands = []
    for human_action, base_action in zip(human, base):
        live.add(human_action, base_action)
        commands.append(live.command())
    assert live.steps == 6
    assert commands == [
        'move left 1 cm, then close the gripper',
        'move left 1 cm and down 1 cm, then close the gripper',
        'move left 2 cm and down 1 cm, then close the gripper',
        'move left 2 cm and down 1 cm, then close the gripper',
        'move left 3 cm and down 2 cm, then close the gripper',
        'move left 4 cm and down 2 cm, then close the gripper']
    assert live.finish() == commands[-1] == describer().describe(human, base)
    assert live.steps == 0
    assert live.command() == HOLD_STILL
    human, base = segment(steps=1, x=1.0)
    live.add(human[0], base[0])
    assert live.command() == 'move forward 1 cm'
    live.start()
    assert live.command() == HOLD_STILL


@pytest.mark.parametrize('text, translation_m, rotation_rad, gripper', [
    ('move left 2 cm', [0, 0.02, 0], [0, 0, 0], 0),
    ('move forward 3 cm', [0.03, 0, 0], [0, 0, 0], 0),
    ('move back 1 cm', [-0.01, 0, 0], [0, 0, 0], 0),
    ('move right 4 cm', [0, -0.04, 0], [0, 0, 0], 0),
    ('move up 5 cm', [0, 0, 0.05], [0, 0, 0], 0),
    ('move down 3 cm', [0, 0, -0.03], [0, 0, 0], 0),
    ('move left 2 cm and down 1 cm', [0, 0.02, -0.01], [0, 0, 0], 0),
    ('rotate the wrist clockwise', [0, 0, 0], [0, 0, -0.2], 0),
    ('rotate the wrist counterclockwise', [0, 0, 0], [0, 0, 0.2], 0),
    ('tilt the wrist forward', [0, 0, 0], [0, 0.2, 0], 0),
    ('tilt the wrist back', [0, 0, 0], [0, -0.2, 0], 0),
    ('tilt the wrist left', [0, 0, 0], [-0.2, 0, 0], 0),
    ('tilt the wrist right', [0, 0, 0], [0.2, 0, 0], 0),
    ('close the gripper', [0, 0, 0], [0, 0, 0], 1),
    ('open the gripper', [0, 0, 0], [0, 0, 0], -1),
    ('hold still', [0, 0, 0], [0, 0, 0], 0),
    ('move left 2 cm and down 1 cm, then rotate the wrist clockwise, then close the gripper',
     [0, 0.02, -0.01], [0, 0, -0.2], 1)])
def test_parse_canonical_forms(text, translation_m, rotation_rad, gripper):
    parsed = parse_command(text, CARTESIAN)
    assert parsed.understood
    assert parsed.text == text
    assert parsed.translation_m.shape == parsed.rotation_rad.shape == (3,)
    assert parsed.translation_m == pytest.approx(translation_m)
    assert parsed.rotation_rad == pytest.approx(rotation_rad)
    assert parsed.gripper == gripper


@pytest.mark.parametrize('text, translation_m, rotation_rad, gripper', [
    ('  Move   LEFT 2 CM  ', [0, 0.02, 0], [0, 0, 0], 0),
    ('move left 2cm.', [0, 0.02, 0], [0, 0, 0], 0),
    ('move left 20 mm', [0, 0.02, 0], [0, 0, 0], 0),
    ('move left 2 centimeters', [0, 0.02, 0], [0, 0, 0], 0),
    ('move left 2 centimetres', [0, 0.02, 0], [0, 0, 0], 0),
    ('move left 15 millimetres', [0, 0.015, 0], [0, 0, 0], 0),
    ('move left 5 millimeters', [0, 0.005, 0], [0, 0, 0], 0),
    ('move left 2.5 cm', [0, 0.025, 0], [0, 0, 0], 0),
    ('move left by 0.1 m', [0, 0.1, 0], [0, 0, 0], 0),
    ('move 2 cm left', [0, 0.02, 0], [0, 0, 0], 0),
    ('move left', [0, 0.01, 0], [0, 0, 0], 0),
    ('move left 2 cm and left 1 cm', [0, 0.03, 0], [0, 0, 0], 0),
    ('move backwards 2 cm', [-0.02, 0, 0], [0, 0, 0], 0),
    ('move left 2 cm, down 1 cm and then close gripper', [0, 0.02, -0.01], [0, 0, 0], 1),
    ('Rotate the wrist counter-clockwise', [0, 0, 0], [0, 0, 0.2], 0),
    ('turn wrist anticlockwise', [0, 0, 0], [0, 0, 0.2], 0),
    ('rotate the wrist clockwise 90 degrees', [0, 0, 0], [0, 0, -math.pi / 2], 0),
    ('rotate the wrist clockwise by 0.3 rad', [0, 0, 0], [0, 0, -0.3], 0),
    ('tilt the wrist forward and left', [0, 0, 0], [-0.2, 0.2, 0], 0),
    ('close the gripper, then open the gripper', [0, 0, 0], [0, 0, 0], -1),
    ('HOLD STILL!', [0, 0, 0], [0, 0, 0], 0),
    ('lower the gripper', [0, 0, -0.01], [0, 0, 0], 0),
    ('lower the gripper by 2 cm and move left', [0, 0.01, -0.02], [0, 0, 0], 0),
    ('raise gripper 5 mm', [0, 0, 0.005], [0, 0, 0], 0),
    ('lift the gripper, then close the gripper', [0, 0, 0.01], [0, 0, 0], 1)])
def test_parse_variants(text, translation_m, rotation_rad, gripper):
    parsed = parse_command(text, CARTESIAN)
    assert parsed.understood
    assert parsed.translation_m == pytest.approx(translation_m)
    assert parsed.rotation_rad == pytest.approx(rotation_rad)
    assert parsed.gripper == gripper


def test_parse_defaults_are_settable():
    parsed = parse_command('move up and rotate the wrist clockwise', CARTESIAN,
                           default_translation_m=0.02, default_rotation_rad=0.4)
    assert parsed.translation_m == pytest.approx([0, 0, 0.02])
    assert parsed.rotation_rad == pytest.approx([0, 0, -0.4])


@pytest.mark.parametrize('text', [
    '', '   ', ',', 'and then', 'hello robot', 'move', 'move sideways 2 cm', 'move left 2',
    'move left 2 cm please', 'move left -2 cm', 'move left 2 cm 3 cm', 'move left right',
    'rotate the wrist forward', 'tilt the wrist clockwise', 'rotate the elbow clockwise',
    'close the door', 'lower the arm', 'lower the gripper left', 'left 2 cm',
    'close the gripper and left 2 cm',
    'move left 2 cm; close the gripper', 'move left ' + '9' * 400 + ' cm',
    'move left 2 cm and hello'])
def test_unknown_text_is_not_understood(text):
    parsed = parse_command(text, CARTESIAN)
    assert not parsed.understood
    assert parsed.text == text
    assert parsed.translation_m.tolist() == parsed.rotation_rad.tolist() == [0.0] * 3
    assert parsed.gripper == 0


def test_parse_never_raises_on_odd_input():
    assert not parse_command(None, CARTESIAN).understood
    assert not parse_command(42, CARTESIAN).understood
    assert not parse_command('move left 2 cm \u00e9', CARTESIAN).understood


def test_parse_needs_the_axes_of_the_action():
    names = ['gripper', 'z', 'x']
    assert parse_command('move up 2 cm and forward 1 cm, then close the gripper', names).understood
    assert not parse_command('move left 2 cm', names).understood
    assert not parse_command('rotate the wrist clockwise', names).understood
    assert not parse_command('close the gripper', ['x', 'y', 'z']).understood
    assert parse_command('hold still', ['x']).understood
    with pytest.raises(ValueError):
        parse_command('move left 2 cm', ['x', 'elbow'])


def _said_cm(text: str) -> dict:
    """Return {direction word: cm} of the move clause of a canonical command."""
    said = {}
    for clause in text.split(', then '):
        if clause.startswith('move '):
            for part in clause[len('move '):].split(' and '):
                word, cm, unit = part.split()
                assert unit == 'cm'
                said[word] = int(cm)
    return said


def test_round_trip_recovers_axes_signs_and_centimetres():
    rng = np.random.default_rng(3)
    words = {'forward': (0, 1), 'back': (0, -1), 'left': (1, 1), 'right': (1, -1),
             'up': (2, 1), 'down': (2, -1)}
    for names in (CARTESIAN, ['gripper', 'z', 'x'], ['yaw', 'y', 'pitch', 'roll']):
        subject = describer(names)
        for _ in range(200):
            steps = int(rng.integers(1, 30))
            human = rng.uniform(-1.0, 1.0, (steps, len(names)))
            base = rng.uniform(-1.0, 1.0, (steps, len(names)))
            text = subject.describe(human, base)
            parsed = parse_command(text, names)
            assert parsed.understood, text
            correction = subject.measure(human, base)
            said = _said_cm(text)
            expected_m = np.zeros(3)
            for word, cm in said.items():
                axis, sign = words[word]
                assert np.sign(correction.translation_m[axis]) == sign
                expected_m[axis] = sign * cm / 100.0
            assert parsed.translation_m == pytest.approx(expected_m), text
            for axis, angle in enumerate(parsed.rotation_rad):
                if angle != 0.0:
                    assert np.sign(angle) == np.sign(correction.rotation_rad[axis]), text
                    assert abs(correction.rotation_rad[axis]) > subject.min_rotation_rad
            assert np.count_nonzero(parsed.rotation_rad) == min(2, int(np.sum(
                np.abs(correction.rotation_rad) > subject.min_rotation_rad)))
            change = correction.gripper_change
            assert parsed.gripper == (1 if change > 0.5 else -1 if change < -0.5 else 0), text


def test_round_trip_of_hand_made_corrections():
    for differences in ({'y': 0.5, 'z': -0.25}, {'x': -1.0, 'yaw': 0.5, 'gripper': -2.0},
                        {'pitch': -0.5, 'gripper': 2.0}, {'roll': 0.5, 'z': 0.5}, {}):
        text = describe(**differences)
        parsed = parse_command(text, CARTESIAN)
        assert parsed.understood
        # The gripper as a full change from open to closed or back.
        correction = Correction(parsed.translation_m, parsed.rotation_rad,
                                2.0 * parsed.gripper, 1)
        assert describer().phrase(correction) == text


def test_command_features():
    features = command_features(parse_command(
        'move left 2 cm and down 10 cm, then rotate the wrist clockwise, then close the gripper',
        CARTESIAN))
    assert features.dtype == np.float32
    assert features.shape == (8,)
    assert features.tolist() == pytest.approx([0.0, 0.4, -1.0, 0.0, 0.0, -0.4, 1.0, 1.0])
    features = command_features(parse_command(
        'tilt the wrist right 90 degrees and back 0.1 rad, then open the gripper', CARTESIAN))
    assert features.tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0, -0.2, 0.0, -1.0, 1.0])
    assert command_features(parse_command('hold still', CARTESIAN)).tolist() == (
        [0.0] * 7 + [1.0])
    assert command_features(parse_command('', CARTESIAN)).tolist() == [0.0] * 8
    assert command_features(parse_command('do a dance', CARTESIAN)).tolist() == [0.0] * 8
