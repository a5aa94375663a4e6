"""The learner's camera images: kept by topic and stamp, steps waiting for theirs (no ROS)."""

from hilresrl_learner.camera_frames import camera_topic, CameraFrames, frame_refs, FrameRef
import numpy as np
import pytest

TOPIC = '/camera/front/image_raw'


def _frame(value: int) -> np.ndarray:
    return np.full((3, 4, 4), value, np.uint8)


def test_a_frame_is_found_by_topic_and_stamp_and_the_nearest_within_the_match():
    frames = CameraFrames(match_s=0.002)
    frames.add(TOPIC, 1_000_000_000, _frame(1))
    frames.add(TOPIC, 1_020_000_000, _frame(2))
    assert frames.frame(FrameRef('front', TOPIC, 1_000_000_000))[0, 0, 0] == 1
    assert frames.frame(FrameRef('front', TOPIC, 1_021_000_000))[0, 0, 0] == 2  # 1 ms off
    assert frames.frame(FrameRef('front', TOPIC, 1_010_000_000)) is None  # 10 ms from both
    assert frames.frame(FrameRef('front', '/camera/wrist/image_raw', 1_000_000_000)) is None
    exact = CameraFrames(match_s=0.0)
    exact.add(TOPIC, 5, _frame(3))
    assert exact.frame(FrameRef('front', TOPIC, 6)) is None


def test_frames_older_than_keep_s_behind_the_newest_are_dropped():
    frames = CameraFrames(keep_s=1.0)
    for second in range(5):
        frames.add(TOPIC, second * 10**9, _frame(second))
    kept = [second for second in range(5)
            if frames.frame(FrameRef('front', TOPIC, second * 10**9)) is not None]
    assert kept == [3, 4]


def test_a_step_waits_for_its_frames_and_one_whose_frames_never_come_expires():
    frames = CameraFrames(wait_s=2.0)
    refs = [FrameRef('front', TOPIC, 10**9), FrameRef('front', TOPIC, 11 * 10**8)]  # o_t, o_t+1
    frames.add(TOPIC, 10**9, _frame(10))
    frames.wait(0.0, 'step 1', refs)
    frames.wait(0.5, 'step 2', [FrameRef('front', TOPIC, 99 * 10**8)])
    assert frames.ready(1.0) == ([], []) and frames.waiting == 2
    frames.add(TOPIC, 11 * 10**8, _frame(11))
    complete, expired = frames.ready(1.5)
    assert [step for step, _ in complete] == ['step 1'] and expired == []
    assert [frame[0, 0, 0] for frame in complete[0][1]] == [10, 11]  # in the refs' order
    complete, expired = frames.ready(2.6)  # step 2 has waited 2.1 s
    assert complete == [] and expired == ['step 2']
    assert frames.waiting == 0 and frames.expired == 1


def test_camera_inputs_name_their_topics_as_observations_do():
    assert camera_topic('image/camera/front/image_raw') == 'camera/front/image_raw'
    assert camera_topic('depth/camera/wrist/depth') == 'camera/wrist/depth'
    assert camera_topic('camera/front/image_raw') == 'camera/front/image_raw'


def test_steps_waiting_at_the_stop_are_handed_over_and_kept_frames_listed():
    frames = CameraFrames()
    frames.add(TOPIC, 10**9, _frame(1))
    frames.add('/camera/wrist/image_raw', 2 * 10**9, _frame(2))
    frames.wait(0.0, 'step 1', [FrameRef('front', TOPIC, 3 * 10**9)])
    assert frames.take_waiting() == ['step 1'] and frames.waiting == 0
    assert [(topic, stamp) for topic, stamp, _ in frames.kept()] == [
        (TOPIC, 10**9), ('/camera/wrist/image_raw', 2 * 10**9)]


def test_a_transition_names_its_images_of_o_t_then_of_o_t_plus_1_per_camera():
    from types import SimpleNamespace

    def ref(name, seconds):
        return SimpleNamespace(name=name, topic='/' + name,
                               stamp=SimpleNamespace(sec=seconds, nanosec=5))
    transition = SimpleNamespace(images=[ref('wrist', 1), ref('front', 1)],
                                 next_images=[ref('front', 2), ref('wrist', 2)])
    refs = frame_refs(transition, ['image/front', 'image/wrist'])
    assert [(r.camera, r.topic, r.stamp_ns) for r in refs] == [
        ('image/front', '/front', 10**9 + 5), ('image/wrist', '/wrist', 10**9 + 5),
        ('image/front', '/front', 2 * 10**9 + 5), ('image/wrist', '/wrist', 2 * 10**9 + 5)]
    transition.next_images = transition.next_images[:1]
    with pytest.raises(ValueError, match='its next_images name no wrist'):
        frame_refs(transition, ['image/front', 'image/wrist'])


def test_an_image_read_compressed_is_kept_under_its_cameras_raw_topic():
    from types import SimpleNamespace
    stamp = SimpleNamespace(sec=1, nanosec=0)
    transition = SimpleNamespace(
        images=[SimpleNamespace(name='camera/front/image_raw', stamp=stamp,
                                topic='/robot1/camera/front/image_raw/compressed')],
        next_images=[SimpleNamespace(name='camera/front/image_raw', stamp=stamp,
                                     topic='/robot1/camera/front/image_raw')])
    refs = frame_refs(transition, ['image/camera/front/image_raw'])
    assert [(r.topic, r.read_from) for r in refs] == [
        ('/robot1/camera/front/image_raw', '/robot1/camera/front/image_raw/compressed'),
        ('/robot1/camera/front/image_raw', '/robot1/camera/front/image_raw')]
