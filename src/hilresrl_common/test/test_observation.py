"""Observation assembly from stamped sources (core, no ROS)."""

from hilresrl_common.observation import ObservationAssembler, SilentSources
import numpy as np
import pytest


def _arrays(name, value):
    return {name: np.array([value], dtype=np.float32)}


def test_exact_sync_hands_out_each_stamp_once_and_never_mixes_steps():
    assembler = ObservationAssembler(['a', 'b'], 'exact')
    assert assembler.add('a', 100, _arrays('a', 1.0)) is None
    assert assembler.add('a', 200, _arrays('a', 2.0)) is None  # b of stamp 100 still missing
    observation = assembler.add('b', 100, _arrays('b', 10.0))
    assert observation.stamp_ns == 100
    assert observation.vector(['a', 'b']).tolist() == [1.0, 10.0]
    observation = assembler.add('b', 200, _arrays('b', 20.0))
    assert observation.vector(['b', 'a']).tolist() == [20.0, 2.0]
    assert assembler.add('a', 100, _arrays('a', 9.0)) is None  # a straggler of an old step


def test_exact_sync_drops_stamps_a_source_skipped():
    assembler = ObservationAssembler(['a', 'b'], 'exact', pending_stamps=2)
    for stamp in (1, 2, 3, 4):
        assembler.add('a', stamp, _arrays('a', stamp))
    assert assembler.add('b', 1, _arrays('b', 0.0)) is None  # stamp 1 was dropped
    assert assembler.add('b', 4, _arrays('b', 0.0)).stamp_ns == 4


def test_latest_sync_combines_the_newest_of_each_source():
    assembler = ObservationAssembler(['a', 'b'], 'latest')
    assert assembler.add('a', 100, _arrays('a', 1.0)) is None
    observation = assembler.add('b', 150, _arrays('b', 2.0))
    assert observation.stamp_ns == 150
    observation = assembler.add('a', 300, _arrays('a', 3.0))
    assert (observation.stamp_ns, observation.vector(['a', 'b']).tolist()) == (300, [3.0, 2.0])
    # each source's own stamp, for what names a message (a transition names its images)
    assert (observation.stamp_of('a'), observation.stamp_of('b')) == (300, 150)
    exact = ObservationAssembler(['a', 'b'], 'exact')
    exact.add('a', 7, _arrays('a', 1.0))
    assert exact.add('b', 7, _arrays('b', 1.0)).stamp_of('b') == 7


def test_missing_array_is_named():
    observation = ObservationAssembler(['a'], 'exact').add('a', 1, _arrays('a', 1.0))
    with pytest.raises(KeyError, match='no task_state; it has a'):
        observation.vector(['task_state'])


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match='at least one source'):
        ObservationAssembler([])
    with pytest.raises(ValueError, match='sync must be one of exact, latest'):
        ObservationAssembler(['a'], 'approximate')


def test_compressed_camera_images_decode_to_the_raw_topic_name():
    import io

    from hilresrl_common.conversions import parse_source, source_arrays
    from PIL import Image as PilImage
    from sensor_msgs.msg import CompressedImage
    pixels = np.zeros((8, 12, 3), np.uint8)
    pixels[:, :6] = (255, 0, 0)  # left half red, right half black
    stream = io.BytesIO()
    PilImage.fromarray(pixels).save(stream, format='PNG')
    message = CompressedImage(format='png', data=stream.getvalue())
    topic, kind = parse_source('camera/front/image_raw/compressed')
    assert kind == 'compressed_image'
    arrays = source_arrays(topic, kind, message)
    assert list(arrays) == ['image/camera/front/image_raw']
    assert np.array_equal(arrays['image/camera/front/image_raw'], pixels)  # lossless, RGB
    with pytest.raises(ValueError, match='cannot decode'):
        source_arrays(topic, kind, CompressedImage(format='jpeg', data=b'not an image'))


def test_a_depth_camera_gives_metres_under_its_own_name_and_colour_stays_rgb():
    from hilresrl_common.conversions import parse_source, source_arrays, to_named_arrays
    from sensor_msgs.msg import Image
    topic, kind = parse_source('camera/wrist/depth/image_rect_raw')
    assert kind == 'image'
    millimetres = np.array([[0, 250], [500, 1000]], dtype='<u2')
    depth = Image(height=2, width=2, encoding='16UC1', step=4, data=millimetres.tobytes())
    arrays = source_arrays(topic, kind, depth)
    assert list(arrays) == ['depth/camera/wrist/depth/image_rect_raw']
    assert arrays['depth/camera/wrist/depth/image_rect_raw'][..., 0].tolist() == [
        [0.0, 0.25], [0.5, 1.0]]
    assert to_named_arrays(arrays) == []  # pixels never go into the state vectors
    uyvy = Image(height=1, width=2, encoding='uyvy', step=4,
                 data=bytes([128, 76, 128, 76]))  # two grey pixels
    grey = source_arrays('camera/usb/image_raw', 'image', uyvy)['image/camera/usb/image_raw']
    assert grey.tolist() == [[[76, 76, 76], [76, 76, 76]]]


def test_a_source_is_silent_only_while_another_one_sends():
    silence = SilentSources(['task_state', 'camera/front'], timeout_s=1.0, now_s=0.0)
    assert silence.silent(0.5) == []
    silence.heard('task_state', 1.2)
    assert silence.silent(1.5) == ['camera/front']  # never heard, while the state sends
    silence.heard('camera/front', 1.6)
    assert silence.silent(2.0) == []
    assert silence.silent(3.0) == []  # both quiet: a paused cell, not a silent camera
    silence.heard('task_state', 3.0)
    assert silence.silent(3.1) == ['camera/front']
