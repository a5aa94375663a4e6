"""Replayed camera frames stored once (core, no ROS)."""

from hilresrl_learner.frame_store import FrameStore, StepFrames
import numpy as np
import pytest

SHAPE = (3, 8, 8)


def _image(value):
    return np.full(SHAPE, value, dtype=np.uint8)


def _episode(frames, episode, values, start_step=0):
    """Add steps whose observations are values[k] and next observations values[k + 1]."""
    for step in range(len(values) - 1):
        last = step == len(values) - 2
        frames.add(episode, start_step + step,
                   {'front': _image(values[step]), 'wrist': _image(100 + values[step])},
                   {'front': _image(values[step + 1]), 'wrist': _image(100 + values[step + 1])},
                   ended=last)


def test_a_frame_is_stored_once_and_each_step_gets_its_frame_and_next_frame():
    frames = StepFrames(('front', 'wrist'), SHAPE)
    _episode(frames, 'a', [0, 1, 2, 3, 4, 5])  # 5 steps, 6 distinct images per camera
    assert len(frames) == 5
    assert len(frames.stores['front']) == 6 and len(frames.stores['wrist']) == 6
    indices = np.arange(5)
    np.testing.assert_array_equal(frames.frames(indices)['front'][:, 0, 0, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(frames.next_frames(indices)['wrist'][:, 0, 0, 0],
                                  [101, 102, 103, 104, 105])
    assert frames.nbytes == 2 * 6 * int(np.prod(SHAPE)) + 16 * 5 * 2


def test_interleaved_episodes_keep_their_own_frames():
    frames = StepFrames(('front', 'wrist'), SHAPE)
    for step in range(3):  # two robots, a step each in turn
        for episode, offset in (('r1', 0), ('r2', 50)):
            frames.add(episode, step, {'front': _image(offset + step),
                                       'wrist': _image(offset + step)},
                       {'front': _image(offset + step + 1), 'wrist': _image(offset + step + 1)},
                       ended=False)
    np.testing.assert_array_equal(frames.frames(np.arange(6))['front'][:, 0, 0, 0],
                                  [0, 50, 1, 51, 2, 52])
    np.testing.assert_array_equal(frames.next_frames(np.arange(6))['front'][:, 0, 0, 0],
                                  [1, 51, 2, 52, 3, 53])
    assert len(frames.stores['front']) == 8  # 2 first frames + 6 next frames


def test_a_step_whose_frame_is_not_the_last_next_frame_is_stored_too():
    frames = StepFrames(('front', 'wrist'), SHAPE)
    _episode(frames, 'a', [0, 1, 2])
    _episode(frames, 'b', [9, 10])  # a new episode: its first frame is its own
    frames.add('c', 0, {'front': _image(20), 'wrist': _image(20)},
               {'front': _image(21), 'wrist': _image(21)}, ended=False)
    frames.add('c', 1, {'front': _image(30), 'wrist': _image(30)},  # not 21: a new frame
               {'front': _image(31), 'wrist': _image(31)}, ended=True)
    np.testing.assert_array_equal(frames.frames(np.arange(5))['front'][:, 0, 0, 0],
                                  [0, 1, 9, 20, 30])


def test_frames_of_another_shape_or_a_missing_camera_are_refused_by_name():
    frames = StepFrames(('front', 'wrist'), SHAPE)
    with pytest.raises(ValueError, match='no frame from camera.s. wrist'):
        frames.add('a', 0, {'front': _image(0)}, {'front': _image(1)}, ended=False)
    store = FrameStore(SHAPE)
    with pytest.raises(ValueError, match=r'shape \(3, 4, 4\) and type uint8; .* \(3, 8, 8\)'):
        frames.add('a', 0, {'front': _image(0), 'wrist': np.zeros((3, 4, 4), np.uint8)},
                   {'front': _image(1), 'wrist': _image(1)}, ended=False)
    assert len(frames.stores['front']) == 0  # nothing stored of a refused step
    with pytest.raises(ValueError, match=r'shape \(3, 4, 4\) and type uint8; .* \(3, 8, 8\)'):
        store.add(np.zeros((3, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match='type float32'):
        store.add(np.zeros(SHAPE, dtype=np.float32))


def test_the_stores_grow_past_their_first_allocation():
    store = FrameStore(SHAPE, initial_size=2)
    for value in range(5):
        assert store.add(_image(value)) == value
    np.testing.assert_array_equal(store.get([4, 0])[:, 0, 0, 0], [4, 0])
