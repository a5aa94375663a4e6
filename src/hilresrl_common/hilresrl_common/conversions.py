"""
Messages to numpy and back: the only module that knows how messages lay out their fields.

Observation sources are named after their topic; the message type comes from a ``:kind`` suffix
or, without one, from the name (``joint_states``, ``ee_pose``, ``wrench``, images under
``camera/...``; anything else is a ``hilresrl_msgs/StateVector``).
"""

import array
from typing import Dict, List, Mapping, Sequence, Tuple

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, WrenchStamped
from hilresrl_msgs.msg import NamedArray, StateVector
import numpy as np
from sensor_msgs.msg import CompressedImage, Image, JointState

from .image_encodings import decode_pixels, DEPTH_ENCODINGS

SOURCE_KINDS = {
    'joint_state': JointState,
    'pose': PoseStamped,
    'wrench': WrenchStamped,
    'state': StateVector,
    'image': Image,
    'compressed_image': CompressedImage,
}
COMPRESSED_SUFFIX = '/compressed'  # image_transport's compressed topic beside the raw one


def stamp_to_ns(stamp: Time) -> int:
    """Return a builtin_interfaces/Time as integer nanoseconds (exact, for matching)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(nanoseconds: int) -> Time:
    """Return integer nanoseconds as a builtin_interfaces/Time."""
    return Time(sec=int(nanoseconds // 1_000_000_000), nanosec=int(nanoseconds % 1_000_000_000))


def parse_source(source: str) -> Tuple[str, str]:
    """Split 'topic[:kind]' into (topic, kind), inferring the kind from the topic name."""
    topic, _, kind = source.partition(':')
    if not kind:
        leaf = topic.rsplit('/', 1)[-1]
        if leaf == 'joint_states':
            kind = 'joint_state'
        elif leaf.endswith('pose'):
            kind = 'pose'
        elif leaf.endswith('wrench'):
            kind = 'wrench'
        elif leaf == 'compressed':
            kind = 'compressed_image'
        elif topic.startswith('camera/') or leaf.startswith('image'):
            kind = 'image'
        else:
            kind = 'state'
    if kind not in SOURCE_KINDS:
        raise ValueError(f'observation source {source!r}: unknown kind {kind!r}; '
                         f'kinds: {", ".join(SOURCE_KINDS)}')
    return topic, kind


def raw_image_topic(topic: str) -> str:
    """Return the raw image topic a compressed one carries (image_transport's <raw>/compressed)."""
    return topic[:-len(COMPRESSED_SUFFIX)] if topic.endswith(COMPRESSED_SUFFIX) else topic


def source_arrays(topic: str, kind: str, message) -> Dict[str, np.ndarray]:
    """Return the named arrays one observation message contributes."""
    if kind == 'joint_state':
        return {'joint_positions': np.asarray(message.position, dtype=np.float32),
                'joint_velocities': np.asarray(message.velocity, dtype=np.float32)}
    if kind == 'pose':
        return {topic: pose_to_array(message)}
    if kind == 'wrench':
        force, torque = message.wrench.force, message.wrench.torque
        return {topic: np.array([force.x, force.y, force.z, torque.x, torque.y, torque.z],
                                dtype=np.float32)}
    if kind == 'image':  # a depth image is no RGB picture: policies ask for it by its name
        prefix = 'depth' if message.encoding in DEPTH_ENCODINGS else 'image'
        return {f'{prefix}/{topic}': image_to_array(message)}
    if kind == 'compressed_image':  # named as the raw topic it compresses
        return {f'image/{raw_image_topic(topic)}': compressed_image_to_array(message)}
    return {topic: np.asarray(message.data, dtype=np.float32)}


def pose_to_array(message: PoseStamped) -> np.ndarray:
    """Return [x, y, z, qx, qy, qz, qw] of a PoseStamped."""
    p, q = message.pose.position, message.pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float32)


def image_to_array(message: Image) -> np.ndarray:
    """
    Return an Image as H x W x 3 uint8 RGB, or a depth image as H x W x 1 float32 metres.

    Through cv_bridge where it is installed (every encoding it knows), else the suite's own
    decoding (image_encodings: the colour, grey, YUV 4:2:2 and depth encodings cameras send).
    """
    bridge = _cv_bridge()
    if bridge is None:
        return decode_pixels(message.data, message.height, message.width, message.step,
                             message.encoding, bool(message.is_bigendian))
    try:
        if message.encoding in DEPTH_ENCODINGS:
            depth = np.asarray(bridge.imgmsg_to_cv2(message, desired_encoding='passthrough'),
                               dtype=np.float32)
            scale = 1000.0 if message.encoding == '16UC1' else 1.0  # millimetres
            return (depth / scale).reshape(message.height, message.width, 1)
        return np.ascontiguousarray(bridge.imgmsg_to_cv2(message, desired_encoding='rgb8'))
    except Exception as error:  # noqa: B902 - CvBridgeError, or OpenCV's own on a bad image
        raise ValueError(f'cannot convert a {message.encoding!r} image: {error}') from error


_BRIDGE = []


def _cv_bridge():
    """Return a CvBridge where cv_bridge is installed (a ROS 2 distribution), else None."""
    if not _BRIDGE:
        try:
            from cv_bridge import CvBridge
            _BRIDGE.append(CvBridge())
        except ImportError:
            _BRIDGE.append(None)
    return _BRIDGE[0]


def compressed_image_to_array(message: CompressedImage) -> np.ndarray:
    """Return a JPEG or PNG CompressedImage as H x W x 3 uint8 RGB (OpenCV, else Pillow)."""
    data = np.frombuffer(bytes(message.data), dtype=np.uint8)
    try:
        import cv2
        pixels = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if pixels is None:
            raise ValueError(f'cannot decode a {message.format!r} image')
        return np.ascontiguousarray(pixels[..., ::-1])  # OpenCV decodes to BGR
    except ImportError:
        import io
        from PIL import Image as PilImage
        try:
            return np.asarray(PilImage.open(io.BytesIO(data.tobytes())).convert('RGB'))
        except OSError as error:
            raise ValueError(f'cannot decode a {message.format!r} image: {error}') from error


def array_to_image(pixels: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """Return an H x W x 3 uint8 RGB array as an rgb8 Image."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    message = Image(height=height, width=width, encoding='rgb8', is_bigendian=0,
                    step=width * 3)
    message.header.stamp, message.header.frame_id = stamp, frame_id
    message.data = pixels.tobytes()
    return message


def to_named_arrays(arrays: Mapping[str, np.ndarray]) -> List[NamedArray]:
    """Return the non-image arrays of an observation as NamedArray messages, sorted by name."""
    return [NamedArray(name=name, data=float32_field(value))
            for name, value in sorted(arrays.items())
            if not name.startswith(('image/', 'depth/'))]


def from_named_arrays(named: Sequence[NamedArray]) -> Dict[str, np.ndarray]:
    """Return NamedArray messages as a dictionary of float32 arrays."""
    return {item.name: np.asarray(item.data, dtype=np.float32) for item in named}


def float32_field(values) -> array.array:
    """Return values for a float32[] message field (an array.array is taken without copying)."""
    field = array.array('f')
    field.frombytes(np.ascontiguousarray(values, dtype=np.float32).ravel().tobytes())
    return field


def bool_field(values) -> List[bool]:
    """Return values for a bool[] message field."""
    return [bool(value) for value in np.asarray(values).ravel()]
