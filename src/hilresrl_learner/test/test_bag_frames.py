"""Camera frames in bags: written once before their steps, found again by stamp (no ROS)."""

import json
from types import SimpleNamespace

from hilresrl_learner.bag_frames import (BagImages, frame_window, frames_to_write,
                                         IMAGE_TYPE, recorded_frames, source_topics)
from hilresrl_learner.camera_frames import FrameRef
from hilresrl_learner.offline_data import add_image_topic, replay_run
from hilresrl_recording.bag import BagWriter
from hilresrl_recording.run_folders import TRANSITION_TYPE
import numpy as np

TOPIC, CAMERA = '/camera/front/image_raw', 'image/camera/front/image_raw'


def _frame(value: int) -> np.ndarray:
    return np.full((3, 4, 4), value, np.uint8)


def _ref(sequence: int) -> FrameRef:
    return FrameRef(CAMERA, TOPIC, sequence * 10**8)


# A frame on disk here: its stamp (8 bytes) and its pixels; a transition: JSON.
def _frame_bytes(stamp_ns: int, frame: np.ndarray) -> bytes:
    return stamp_ns.to_bytes(8, 'little') + frame.tobytes()


def _read(type_name: str, data: bytes):
    if len(data) != 8 + 48:
        raise ValueError(f'{len(data)} bytes')
    return int.from_bytes(data[:8], 'little'), lambda: np.frombuffer(
        data[8:], np.uint8).reshape(3, 4, 4).copy()


def _transition(sequence: int) -> bytes:
    return json.dumps({'sequence': sequence}).encode()


def _decode(data: bytes):
    sequence = json.loads(data)['sequence']

    def ref(number):
        stamp = SimpleNamespace(sec=number // 10, nanosec=(number % 10) * 10**8)
        return SimpleNamespace(name='camera/front/image_raw', topic=TOPIC, stamp=stamp)
    return SimpleNamespace(sequence=sequence, images=[ref(sequence)],
                           next_images=[ref(sequence + 1)])


def test_a_frame_is_written_once_even_when_two_steps_and_both_halves_of_one_name_it():
    on_disk = frame_window()
    first = frames_to_write(on_disk, [_ref(1), _ref(2)], [_frame(1), _frame(2)])
    assert [ref.stamp_ns for ref, _ in first] == [10**8, 2 * 10**8]
    second = frames_to_write(on_disk, [_ref(2), _ref(3)], [_frame(2), _frame(3)])
    assert [ref for ref, _ in second] == [_ref(3)]  # o_t: the step before's o_t+1
    # a camera slower than the steps: o_t and o_t+1 are one image
    assert len(frames_to_write(on_disk, [_ref(9), _ref(9)], [_frame(9), _frame(9)])) == 1


def _replay_bag(run_dir, order):
    bag = BagWriter(run_dir / 'replay', 'mcap')
    bag.add_topic('/transitions', TRANSITION_TYPE)
    add_image_topic(bag, TOPIC)
    for kind, number in order:
        if kind == 'image':
            bag.write(TOPIC, number, _frame_bytes(number * 10**8, _frame(number)))
        else:
            bag.write('/transitions', number, _transition(number))
    bag.close()


def test_a_resume_finds_every_frame_written_before_its_step_and_names_the_one_that_is_not(
        tmp_path):
    # steps 1-3 with their frames before them; step 4's next image never came
    _replay_bag(tmp_path, [('image', 1), ('image', 2), ('step', 1), ('image', 3), ('step', 2),
                           ('image', 4), ('step', 3), ('step', 4)])
    taken = []
    window = frame_window()
    count, skipped, problems = replay_run(
        tmp_path, _decode, lambda transition, frames: taken.append(
            (transition.sequence, [int(frame[0, 0, 0]) for frame in frames()])),
        images=BagImages((CAMERA,), _read), window=window)
    assert taken == [(1, [1, 2]), (2, [2, 3]), (3, [3, 4])]
    assert count == 3 and problems == []
    assert skipped == ['record 3: its image of /camera/front/image_raw at 0.500 s is not in '
                       'the replay bag (it never came while the learner ran)']
    # the window ends holding the frames read: a learner goes on from them
    assert sorted(stamp for _, stamp, _ in window.kept()) == [n * 10**8 for n in (1, 2, 3, 4)]


def test_without_images_a_resume_reads_the_transitions_alone(tmp_path):
    _replay_bag(tmp_path, [('image', 1), ('step', 1), ('step', 2)])
    taken = []
    count, skipped, _ = replay_run(tmp_path, _decode, lambda t: taken.append(t.sequence))
    assert (count, skipped, taken) == (2, [], [1, 2])


def test_a_recorded_image_topic_is_read_itself_or_from_its_compressed_topic():
    compressed = 'sensor_msgs/msg/CompressedImage'
    in_bag = {TOPIC: IMAGE_TYPE, '/wrist/image_raw/compressed': compressed,
              '/other/image_raw': 'std_msgs/msg/String'}
    sources, missing = source_topics({TOPIC, '/wrist/image_raw', '/other/image_raw'}, in_bag)
    assert sources == {TOPIC: TOPIC, '/wrist/image_raw/compressed': '/wrist/image_raw'}
    assert missing == ['/other/image_raw']


def test_only_the_frames_the_steps_name_are_decoded():
    decoded = []

    def read(type_name, data):
        stamp, frame = _read(type_name, data)
        return stamp, lambda: decoded.append(stamp) or frame()

    messages = [(TOPIC, n, _frame_bytes(n * 10**8, _frame(n))) for n in range(1, 7)]
    messages.insert(2, (TOPIC, 0, b'damaged'))
    frames, problems = recorded_frames(messages, {TOPIC: IMAGE_TYPE}, {TOPIC: TOPIC},
                                       {(TOPIC, 2 * 10**8), (TOPIC, 5 * 10**8)}, read)
    assert sorted(frames) == [(TOPIC, 2 * 10**8), (TOPIC, 5 * 10**8)]
    assert decoded == [2 * 10**8, 5 * 10**8]
    assert frames[(TOPIC, 5 * 10**8)][0, 0, 0] == 5
    assert problems == [f'1 image(s) of {TOPIC} could not be read (the first: 7 bytes)']
