"""
The camera images that transitions refer to, kept by the learner until its steps take them.

A Transition names its images (ImageRef: topic and stamp) instead of carrying them; the learner
reads the same camera topics and keeps each image resized, once, for a few seconds, under the
camera's raw topic whether it came raw or compressed (<raw topic>/compressed). A step is
complete when every camera's image of its observation and of its next observation is here; a
transition that arrives before its images waits for them, at most ``wait_s``. No ROS here.
"""

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Generic, Iterator, List, Optional, Sequence, Tuple, TypeVar

import numpy as np

Pending = TypeVar('Pending')


def camera_topic(camera: str) -> str:
    """Return the topic of a camera input named as observations name it (image/<topic>)."""
    kind, _, topic = camera.partition('/')
    return topic if kind in ('image', 'depth') and topic else camera


def camera_image_topic(topic: str) -> str:
    """Return the raw image topic of a camera read from ``topic`` (itself, or <raw>/compressed)."""
    return topic[:-len('/compressed')] if topic.endswith('/compressed') else topic


@dataclass(frozen=True)
class FrameRef:
    """
    Where one camera image of an observation is: its camera name, topic and stamp.

    ``topic``: the camera's raw image topic (resolved), where frames are kept and stored;
    ``read_from``: the topic the transition says it was read from (raw, or its /compressed).
    """

    camera: str
    topic: str
    stamp_ns: int
    read_from: str = ''


def frame_refs(transition: Any, cameras: Sequence[str]) -> List[FrameRef]:
    """
    Return the images a Transition names for ``cameras``: of o_t, then of o_t+1.

    ValueError: it names no image of one of them.
    """
    refs = []
    for images, which in ((transition.images, 'images'),
                          (transition.next_images, 'next_images')):
        named = {ref.name: ref for ref in images}
        for camera in cameras:
            ref = named.get(camera_topic(camera))
            if ref is None:
                raise ValueError(f'its {which} name no {camera_topic(camera)} (they name '
                                 f'{sorted(named) or "none"}): check camera_inputs')
            stamp_ns = int(ref.stamp.sec) * 1_000_000_000 + int(ref.stamp.nanosec)
            refs.append(FrameRef(camera, camera_image_topic(ref.topic), stamp_ns, ref.topic))
    return refs


def attach_frames(record: Any, cameras: Sequence[str], frames: Sequence[np.ndarray]) -> None:
    """Give a step record the frames of its cameras, as frame_refs names them."""
    count = len(cameras)
    record.frames = dict(zip(cameras, frames[:count]))
    record.next_frames = dict(zip(cameras, frames[count:]))


class CameraFrames(Generic[Pending]):
    """Recent frames per topic by stamp, and the steps waiting for theirs."""

    def __init__(self, keep_s: float = 10.0, wait_s: float = 2.0, match_s: float = 0.0):
        """
        Keep each topic's frames for ``keep_s`` (by stamp, behind its newest one).

        ``match_s``: how far a frame's stamp may be from the stamp a step names, the nearest
        one within it taken (0: the very stamp, as the episode manager names each image by its
        own; a search over the kept frames at every look-up otherwise).
        """
        self.keep_ns, self.wait_s, self.match_ns = int(keep_s * 1e9), wait_s, int(match_s * 1e9)
        self._frames: Dict[str, 'OrderedDict[int, np.ndarray]'] = {}
        self._newest: Dict[str, int] = {}
        self._waiting: List[Tuple[float, Pending, Tuple[FrameRef, ...]]] = []
        self.expired = 0  # steps whose frames never came within wait_s

    def add(self, topic: str, stamp_ns: int, frame: np.ndarray) -> None:
        """Keep one topic's frame (as the encoder takes it); drop frames older than keep_s."""
        frames = self._frames.setdefault(topic, OrderedDict())
        frames[stamp_ns] = frame
        newest = self._newest[topic] = max(self._newest.get(topic, stamp_ns), stamp_ns)
        while frames and next(iter(frames)) < newest - self.keep_ns:
            frames.popitem(last=False)  # in arrival order: a late one goes when those before

    def frame(self, ref: FrameRef) -> Optional[np.ndarray]:
        """Return the frame a reference names (the nearest within match_s), or None."""
        frames = self._frames.get(ref.topic)
        if not frames:
            return None
        found = frames.get(ref.stamp_ns)
        if found is not None or self.match_ns <= 0:
            return found
        nearest = min(frames, key=lambda stamp: abs(stamp - ref.stamp_ns))
        return frames[nearest] if abs(nearest - ref.stamp_ns) <= self.match_ns else None

    def kept(self) -> Iterator[Tuple[str, int, np.ndarray]]:
        """Yield (topic, stamp in ns, frame) of every frame kept, each topic's in arrival order."""
        for topic, frames in self._frames.items():
            for stamp_ns, frame in frames.items():
                yield topic, stamp_ns, frame

    def frames(self, refs: Sequence[FrameRef]) -> Optional[List[np.ndarray]]:
        """Return the frames ``refs`` name, in their order, or None while one is missing."""
        found = []
        for ref in refs:
            frame = self.frame(ref)
            if frame is None:
                return None
            found.append(frame)
        return found

    def wait(self, now_s: float, pending: Pending, refs: Sequence[FrameRef]) -> None:
        """Hold ``pending`` (a step) until the frames ``refs`` name are all here."""
        self._waiting.append((now_s, pending, tuple(refs)))

    def ready(self, now_s: float) -> Tuple[List[Tuple[Pending, List[np.ndarray]]],
                                           List[Pending]]:
        """Return the waiting steps whose frames are here (with them), and those that expired."""
        complete, expired, still = [], [], []
        for since, pending, refs in self._waiting:
            frames = self.frames(refs)
            if frames is not None:
                complete.append((pending, frames))
            elif now_s - since > self.wait_s:
                expired.append(pending)
            else:
                still.append((since, pending, refs))
        self._waiting = still
        self.expired += len(expired)
        return complete, expired

    def take_waiting(self) -> List[Pending]:
        """Return the steps still waiting for their frames, and wait for them no more."""
        taken = [pending for _, pending, _ in self._waiting]
        self._waiting = []
        return taken

    @property
    def waiting(self) -> int:
        """How many steps wait for their frames."""
        return len(self._waiting)
