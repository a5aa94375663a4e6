"""
Pixels of a sensor_msgs/Image from its raw bytes, for the encodings cameras send (no ROS).

Colour and grey images become H x W x 3 uint8 RGB: rgb8, bgr8, rgba8, bgra8, mono8, mono16
(its high byte), 8UC1 and 8UC3 (OpenCV's grey and BGR), and the packed YUV 4:2:2 of USB cameras
(``uyvy``/``yuv422``, ``yuyv``/``yuv422_yuy2``, BT.601). Depth images become H x W x 1 float32
metres: 16UC1 (millimetres, as RealSense and Kinect drivers send them; 0 = no reading) and
32FC1 (metres). The message's row ``step`` (padding) and ``is_bigendian`` are honoured.
"""

import numpy as np

# encoding: (bytes per pixel, kind)
ENCODINGS = {
    'rgb8': (3, 'rgb'), 'bgr8': (3, 'bgr'), '8UC3': (3, 'bgr'),
    'rgba8': (4, 'rgb'), 'bgra8': (4, 'bgr'),
    'mono8': (1, 'grey'), '8UC1': (1, 'grey'), 'mono16': (2, 'grey16'),
    'uyvy': (2, 'uyvy'), 'yuv422': (2, 'uyvy'), 'yuyv': (2, 'yuyv'), 'yuv422_yuy2': (2, 'yuyv'),
    '16UC1': (2, 'depth_mm'), '32FC1': (4, 'depth_m'),
}
DEPTH_ENCODINGS = tuple(name for name, (_, kind) in ENCODINGS.items()
                        if kind.startswith('depth'))


def decode_pixels(data, height: int, width: int, step: int, encoding: str,
                  is_bigendian: bool = False) -> np.ndarray:
    """
    Return the image: H x W x 3 uint8 RGB, or H x W x 1 float32 metres for depth.

    data: the message's bytes (bytes, or the array.array rclpy gives), read without a copy.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f'image encoding {encoding!r} is not supported; supported: '
                         f'{", ".join(ENCODINGS)}')
    size, kind = ENCODINGS[encoding]
    if step < width * size or len(data) < height * step:
        raise ValueError(f'{encoding} image of {width} x {height} with step {step} needs '
                         f'{height * max(step, width * size)} bytes, got {len(data)}')
    rows = np.frombuffer(data, dtype=np.uint8)[:height * step].reshape(height, step)
    packed = rows[:, :width * size]
    if kind in ('rgb', 'bgr', 'grey'):
        pixels = packed.reshape(height, width, size)
        if kind == 'grey':
            return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
        return np.ascontiguousarray(pixels[..., 2::-1] if kind == 'bgr' else pixels[..., :3])
    if kind in ('uyvy', 'yuyv'):
        if width % 2:
            raise ValueError(f'{encoding} packs two pixels in four bytes: width {width} is odd')
        return _yuv422_to_rgb(packed.reshape(height, width // 2, 4), kind, width)
    byte_order = '>' if is_bigendian else '<'
    if kind == 'grey16':
        values = packed.copy().view(f'{byte_order}u2').reshape(height, width, 1)
        return np.ascontiguousarray(np.repeat((values >> 8).astype(np.uint8), 3, axis=2))
    if kind == 'depth_mm':
        values = packed.copy().view(f'{byte_order}u2').reshape(height, width, 1)
        return values.astype(np.float32) / 1000.0
    return packed.copy().view(f'{byte_order}f4').reshape(height, width, 1).astype(np.float32)


def _yuv422_to_rgb(groups: np.ndarray, kind: str, width: int) -> np.ndarray:
    """Return RGB from packed 4:2:2 groups of two pixels (U Y V Y or Y U Y V), BT.601."""
    if kind == 'uyvy':
        u, y0, v, y1 = (groups[..., index].astype(np.float32) for index in range(4))
    else:
        y0, u, y1, v = (groups[..., index].astype(np.float32) for index in range(4))
    luma = np.stack([y0, y1], axis=-1).reshape(groups.shape[0], width)
    u = np.repeat(u, 2, axis=1) - 128.0
    v = np.repeat(v, 2, axis=1) - 128.0
    rgb = np.stack([luma + 1.402 * v, luma - 0.344136 * u - 0.714136 * v, luma + 1.772 * u],
                   axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
