"""Camera images as ROS drivers send them, decoded without cv_bridge (no ROS)."""

from hilresrl_common.image_encodings import decode_pixels, ENCODINGS
import numpy as np
import pytest

RGB = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [40, 80, 120]],
                [[0, 0, 0], [255, 255, 255], [10, 20, 30], [200, 100, 50]]], dtype=np.uint8)


def _padded(pixels: np.ndarray, padding: int = 3):
    """Return the bytes of H x W x C uint8 pixels with padding after each row, and the step."""
    rows = pixels.reshape(pixels.shape[0], -1)
    step = rows.shape[1] + padding
    padded = np.zeros((rows.shape[0], step), dtype=np.uint8)
    padded[:, :rows.shape[1]] = rows
    return padded.tobytes(), step


@pytest.mark.parametrize('encoding, pixels', [
    ('rgb8', RGB), ('bgr8', RGB[..., ::-1]), ('8UC3', RGB[..., ::-1]),
    ('rgba8', np.concatenate([RGB, np.full((2, 4, 1), 255, np.uint8)], axis=2)),
    ('bgra8', np.concatenate([RGB[..., ::-1], np.full((2, 4, 1), 7, np.uint8)], axis=2)),
])
def test_colour_encodings_become_rgb_whatever_the_row_padding(encoding, pixels):
    data, step = _padded(np.ascontiguousarray(pixels))
    assert np.array_equal(decode_pixels(data, 2, 4, step, encoding), RGB)


def test_grey_encodings_become_three_equal_channels():
    grey = RGB[..., 0]
    for encoding in ('mono8', '8UC1'):
        data, step = _padded(grey[..., None])
        assert np.array_equal(decode_pixels(data, 2, 4, step, encoding)[..., 1], grey)
    wide = grey.astype('<u2') * 256 + 17  # mono16: the high byte is the grey value
    for bigendian, order in ((False, '<u2'), (True, '>u2')):
        data = wide.astype(order).tobytes()
        decoded = decode_pixels(data, 2, 4, 8, 'mono16', bigendian)
        assert decoded.shape == (2, 4, 3) and np.array_equal(decoded[..., 2], grey)


def _yuv(rgb: np.ndarray) -> np.ndarray:
    """Return BT.601 Y, U, V (0-255) of RGB pixels."""
    r, g, b = (rgb[..., index].astype(np.float64) for index in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack([y, 128 + (b - y) / 1.772, 128 + (r - y) / 1.402], axis=-1)


@pytest.mark.parametrize('encoding', ['uyvy', 'yuv422', 'yuyv', 'yuv422_yuy2'])
def test_packed_yuv_422_becomes_rgb(encoding):
    # Pairs of equal pixels, so that the shared chroma loses nothing.
    rgb = np.repeat(RGB[:, ::2], 2, axis=1)
    yuv = _yuv(rgb)
    y, u, v = yuv[..., 0], yuv[:, ::2, 1], yuv[:, ::2, 2]
    if encoding in ('uyvy', 'yuv422'):
        groups = np.stack([u, y[:, ::2], v, y[:, 1::2]], axis=-1)
    else:
        groups = np.stack([y[:, ::2], u, y[:, 1::2], v], axis=-1)
    data = np.clip(np.rint(groups), 0, 255).astype(np.uint8).tobytes()
    decoded = decode_pixels(data, 2, 4, 8, encoding)
    assert np.abs(decoded.astype(int) - rgb.astype(int)).max() <= 2


def test_depth_images_become_metres_and_a_missing_reading_stays_zero():
    millimetres = np.array([[0, 500, 1000, 65535], [1, 2, 3, 4]], dtype='<u2')
    depth = decode_pixels(millimetres.tobytes(), 2, 4, 8, '16UC1')
    assert depth.shape == (2, 4, 1) and depth.dtype == np.float32
    assert depth[0, :, 0].tolist() == pytest.approx([0.0, 0.5, 1.0, 65.535])
    big = decode_pixels(millimetres.astype('>u2').tobytes(), 2, 4, 8, '16UC1', True)
    assert np.array_equal(big, depth)
    metres = np.array([[0.25, np.nan, 1.5, 2.0]] * 2, dtype='<f4')
    decoded = decode_pixels(metres.tobytes(), 2, 4, 16, '32FC1')
    assert decoded[0, 0, 0] == 0.25 and np.isnan(decoded[0, 1, 0])


def test_unknown_encodings_short_data_and_odd_yuv_widths_are_refused_by_name():
    with pytest.raises(ValueError, match="'bayer_rggb8' is not supported; supported: rgb8"):
        decode_pixels(b'\0' * 8, 2, 4, 4, 'bayer_rggb8')
    with pytest.raises(ValueError, match='needs 24 bytes, got 20'):
        decode_pixels(b'\0' * 20, 2, 4, 12, 'rgb8')
    with pytest.raises(ValueError, match='width 3 is odd'):
        decode_pixels(b'\0' * 12, 2, 3, 6, 'uyvy')
    assert {'16UC1', '32FC1', 'uyvy', 'yuyv', 'mono16'} <= set(ENCODINGS)
