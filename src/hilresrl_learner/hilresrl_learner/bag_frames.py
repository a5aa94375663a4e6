"""
Camera frames in bags: written once into the learner's replay bag, and found again by stamp.

The learner writes the frames of a step into its replay bag just before the step's record,
each frame once (a step's observation is, as a rule, the step before's next one): a record
never names a frame that is not on disk, and a resume, reading the bag in order, finds each
frame a record names among the frames of the last FRAME_WINDOW_S before it. A recorded run's
images (a recorder's bag: every image at the camera's rate, in the order they arrived) are
found by topic and stamp over the whole bag, and only those its steps name are decoded.
Messages are decoded by the caller's ``read`` (the node's, with rclpy), so no ROS here.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from .camera_frames import attach_frames, CameraFrames, FrameRef

# How far back (by stamp, per topic) the writer looks for a frame it wrote already, and the
# reader for a frame a record names: the same window, so what one finds the other finds.
FRAME_WINDOW_S = 10.0
IMAGE_TYPE, COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
# (the bag's type name, a serialized image) -> (its header stamp in ns, a function returning
# it as the encoder takes it); ValueError: not an image the encoder can take
ReadImage = Callable[[str, bytes], Tuple[int, Callable[[], np.ndarray]]]


@dataclass(frozen=True)
class BagImages:
    """How the learner reads the images of its camera inputs out of a bag."""

    cameras: Tuple[str, ...]
    read: ReadImage


def frame_window() -> CameraFrames:
    """Return the frames the replay bag holds already (the writer's) or has given (a reader's)."""
    return CameraFrames(keep_s=FRAME_WINDOW_S)


def frames_to_write(on_disk: CameraFrames, refs: Sequence[FrameRef],
                    frames: Sequence[np.ndarray]) -> List[Tuple[FrameRef, np.ndarray]]:
    """Return the frames of a step that the replay bag does not hold yet, and count them in."""
    new = []
    for ref, frame in zip(refs, frames):
        if on_disk.frame(ref) is None:
            on_disk.add(ref.topic, ref.stamp_ns, frame)
            new.append((ref, frame))
    return new


def found_frames(window: CameraFrames, refs: Sequence[FrameRef], where: str
                 ) -> List[np.ndarray]:
    """Return the frames ``refs`` name; ValueError names the first that is not in ``where``."""
    frames = []
    for ref in refs:
        frame = window.frame(ref)
        if frame is None:
            raise ValueError(f'its image of {ref.topic} at {ref.stamp_ns / 1e9:.3f} s is not '
                             f'in {where}')
        frames.append(frame)
    return frames


def image_topics(topics: Dict[str, Any]) -> Dict[str, str]:
    """Return the image topics of a bag's topics (name -> TopicInfo) and their types."""
    return {name: topic.type_name for name, topic in topics.items()
            if topic.type_name in IMAGE_TYPES}


def source_topics(named: Set[str], in_bag: Dict[str, str]) -> Tuple[Dict[str, str], List[str]]:
    """
    Return the bag topic to read for each image topic named (itself, or its /compressed).

    And the topics named that the bag has neither way.
    """
    sources, missing = {}, []
    for topic in sorted(named):
        if in_bag.get(topic) in IMAGE_TYPES:
            sources[topic] = topic
        elif in_bag.get(f'{topic}/compressed') == COMPRESSED_IMAGE_TYPE:
            sources[f'{topic}/compressed'] = topic
        else:
            missing.append(topic)
    return sources, missing


def recorded_frames(messages, types: Dict[str, str], sources: Dict[str, str],
                    wanted: Set[Tuple[str, int]], read: ReadImage,
                    between: Callable[[], None] = lambda: None
                    ) -> Tuple[Dict[Tuple[str, int], np.ndarray], List[str]]:
    """
    Return the frames ``wanted`` ((image topic, stamp) pairs) among a bag's ``messages``.

    ``messages``: (topic, time, data) of the ``sources`` topics (bag topic -> the image topic
    it carries), of ``types``. Each frame is decoded once, and only a wanted one; the second
    value says what could not be decoded.
    """
    frames: Dict[Tuple[str, int], np.ndarray] = {}
    undecoded: Dict[str, Tuple[int, str]] = {}
    for topic, _, data in messages:
        try:
            stamp_ns, frame = read(types[topic], data)
            key = (sources[topic], stamp_ns)
            if key in wanted and key not in frames:
                frames[key] = frame()
        except ValueError as error:
            count, first = undecoded.get(topic, (0, str(error)))
            undecoded[topic] = (count + 1, first)
        between()
    problems = [f'{count} image(s) of {topic} could not be read (the first: {first})'
                for topic, (count, first) in undecoded.items()]
    return frames, problems


def attach_recorded_frames(records: Sequence[Tuple[Any, Any]],
                           refs: Sequence[Sequence[FrameRef]], cameras: Sequence[str],
                           frames: Dict[Tuple[str, int], np.ndarray]
                           ) -> Tuple[List[Tuple[Any, Any]], int]:
    """Give each step its frames; return the steps that have all of them, and how many lack."""
    complete, lacking = [], 0
    for step, named in zip(records, refs):
        found: List[Optional[np.ndarray]] = [frames.get((ref.topic, ref.stamp_ns))
                                             for ref in named]
        if any(frame is None for frame in found):
            lacking += 1
            continue
        attach_frames(step[0], cameras, found)
        complete.append(step)
    return complete, lacking
