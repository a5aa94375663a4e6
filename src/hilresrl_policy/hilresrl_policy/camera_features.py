"""
The residual actor's image features for one control step, computed as each camera frame arrives.

Almost all of an image actor's forward pass is its encoder's, and each camera's part of it
depends on that camera's frame alone; a worker thread computes it when the frame arrives, so
that a step only adds the cameras' shares and runs the small MLP. Torch only: no ROS.
"""

from dataclasses import dataclass
import os
import threading
from typing import Dict, List, Mapping, Optional, Sequence

from hilresrl_policy.image_encoder import encoder_frame, ImageEncoder
import numpy as np
import torch
from torch import nn


class CameraShares:
    """
    An ImageEncoder split by camera: each camera's share, and the features from all shares.

    The encoder's trunk starts with one linear layer over every camera's feature map joined, so
    W [f_1; f_2] + b = W_1 f_1 + W_2 f_2 + b: a camera's convolutions and its columns of that
    layer (with 128x128 frames about 3 ms of the 3.5 ms per camera on one core here; the
    layer's weights alone are 21 MB a camera) need its frame only. ``features`` adds the shares,
    the bias, and the rest of the trunk: equal to the encoder's output within float rounding.
    Call ``refresh`` after the encoder's weights change (the column blocks are copies).
    """

    def __init__(self, encoder: ImageEncoder):
        trunk = encoder.trunk
        if not (isinstance(trunk, nn.Sequential) and isinstance(trunk[0], nn.Linear)):
            raise TypeError('the encoder trunk does not start with a linear layer: no shares')
        self.encoder = encoder
        self.refresh()

    def refresh(self) -> None:
        """Take the encoder's current weights."""
        linear = self.encoder.trunk[0]
        sizes = [camera.output_dim for camera in self.encoder.cameras]
        with torch.no_grad():
            self._columns = [block.contiguous() for block in torch.split(linear.weight.detach(),
                                                                         sizes, dim=1)]
            self._bias = linear.bias.detach().clone()

    def share(self, index: int, frames: torch.Tensor) -> torch.Tensor:
        """Return one camera's part of the features, (batch, feature_dim), of its uint8 frames."""
        with torch.inference_mode():
            return nn.functional.linear(self.encoder.cameras[index](frames), self._columns[index])

    def features(self, shares: Sequence[torch.Tensor]) -> torch.Tensor:
        """Return the encoder's output (batch, feature_dim) from every camera's share, in order."""
        with torch.inference_mode():
            total = self._bias + shares[0]
            for share in shares[1:]:
                total = total + share
            return self.encoder.trunk[1:](total)


@dataclass
class _Camera:
    """One camera's frames: the newest waiting, the one being encoded, those encoded."""

    pending: Optional[np.ndarray] = None
    busy: Optional[np.ndarray] = None
    done: List[tuple] = None  # (frame, share), oldest first

    def __post_init__(self):
        self.done = []


class ArrivingFrames:
    """
    Each camera's frames encoded to their shares in a worker thread as they arrive.

    ``offer`` a frame (the very array the observation will hold) as it arrives; ``features``
    returns a step's image features. With ``newest_ready`` (cameras on their own clocks) a step
    takes each camera's newest encoded frame and never waits for the encoder; else (frames
    stamped with the step, as a lockstep simulator sends them) each camera's own frame of the
    step, waiting for the worker when it is encoding that very frame. A frame nobody encoded yet
    is encoded in the caller's thread. ``refresh`` after new weights: encodings made with the
    old ones are dropped, and so is any the worker finishes after it.
    """

    KEEP = 4  # encoded frames kept per camera
    NICE = 10  # the worker thread's scheduling priority (Linux nice: higher runs later)

    def __init__(self, shares: CameraShares, cameras: Sequence[str],
                 device: torch.device = torch.device('cpu'), newest_ready: bool = False,
                 worker: bool = True):
        """Encode frames in a worker thread (``worker``; else only as steps ask for them)."""
        self._shares = shares
        self._index = {camera: index for index, camera in enumerate(cameras)}
        self._device = device
        self.newest_ready = newest_ready
        self._cameras: Dict[str, _Camera] = {camera: _Camera() for camera in cameras}
        self._generation = 0
        self._closed = False
        self._condition = threading.Condition()
        self.encoded_in_step = 0  # frames the step had to encode itself (none ready)
        self._worker = (threading.Thread(target=self._run, name='camera_features', daemon=True)
                        if worker else None)
        if self._worker is not None:
            self._worker.start()

    def offer(self, camera: str, frame: np.ndarray) -> None:
        """Queue a camera's new frame; an older one still waiting is dropped."""
        with self._condition:
            self._cameras[camera].pending = frame
            self._condition.notify_all()

    def features(self, frames: Mapping[str, np.ndarray]) -> torch.Tensor:
        """Return a step's image features, (1, feature_dim), from its frames by camera input."""
        shares = [self._share_for(camera, frames[camera]) for camera in self._index]
        return self._shares.features(shares)

    def refresh(self) -> None:
        """Take the encoder's new weights; forget what the old ones encoded."""
        with self._condition:
            self._shares.refresh()
            self._generation += 1
            for state in self._cameras.values():
                state.done.clear()

    def close(self) -> None:
        """Stop the worker thread."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5.0)

    def _share_for(self, camera: str, frame: np.ndarray) -> torch.Tensor:
        state = self._cameras[camera]
        with self._condition:
            while True:
                if self.newest_ready and state.done:
                    return state.done[-1][1]
                found = [share for encoded, share in state.done if encoded is frame]
                if found:
                    return found[0]
                if state.busy is frame:  # the worker is on it: wait rather than do it twice
                    self._condition.wait(timeout=1.0)
                    continue
                if state.pending is frame:
                    state.pending = None
                generation = self._generation
                break
        share = self._encode(camera, frame)
        self.encoded_in_step += 1
        self._keep(camera, frame, share, generation)
        return share

    def _encode(self, camera: str, frame: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(encoder_frame(frame, self._shares.encoder.inputs))
        return self._shares.share(self._index[camera], pixels.unsqueeze(0).to(self._device))

    def _keep(self, camera: str, frame: np.ndarray, share: torch.Tensor,
              generation: int) -> None:
        with self._condition:
            if generation == self._generation:
                done = self._cameras[camera].done
                done.append((frame, share))
                del done[:-self.KEEP]
            self._condition.notify_all()

    def _run(self) -> None:
        try:  # the control path comes first: this thread's work waits where cores are few
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.NICE)
        except (AttributeError, OSError):  # not Linux
            pass
        while True:
            with self._condition:
                while not self._closed and not any(
                        state.pending is not None for state in self._cameras.values()):
                    self._condition.wait()
                if self._closed:
                    return
                camera, state = next((name, state) for name, state in self._cameras.items()
                                     if state.pending is not None)
                frame, state.pending, state.busy = state.pending, None, state.pending
                generation = self._generation
            try:
                share = self._encode(camera, frame)
            except Exception:  # noqa: B902 - a bad frame: the step meets it and says why
                share = None
            with self._condition:
                state.busy = None
                if share is not None:
                    self._keep(camera, frame, share, generation)
                self._condition.notify_all()
