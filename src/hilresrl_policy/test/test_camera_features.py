"""The image features of a step from each camera's share, encoded as the frames arrive."""

from hilresrl_policy.camera_features import ArrivingFrames, CameraShares
from hilresrl_policy.image_encoder import encoder_frame, ImageEncoder, ImageInputs
import numpy as np
import pytest
import torch

INPUTS = ImageInputs(('image/front', 'image/wrist'), 24, 20)


def _encoder(seed: int = 0) -> ImageEncoder:
    torch.manual_seed(seed)
    return ImageEncoder(INPUTS, feature_dim=8).eval()


def _pictures(seed: int):
    rng = np.random.default_rng(seed)
    return {camera: rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
            for camera in INPUTS.cameras}  # resized to 24 x 20


def _expected(encoder: ImageEncoder, pictures) -> torch.Tensor:
    with torch.no_grad():
        return encoder([torch.from_numpy(encoder_frame(pictures[camera], INPUTS))[None]
                        for camera in INPUTS.cameras])


def test_the_shares_of_the_cameras_give_the_encoders_features():
    encoder, pictures = _encoder(), _pictures(0)
    shares = CameraShares(encoder)
    parts = [shares.share(index, torch.from_numpy(encoder_frame(pictures[camera], INPUTS))[None])
             for index, camera in enumerate(INPUTS.cameras)]
    torch.testing.assert_close(shares.features(parts), _expected(encoder, pictures),
                               rtol=0, atol=1e-5)


def test_a_step_gets_its_own_frames_features_whoever_encoded_them():
    encoder = _encoder()
    arriving = ArrivingFrames(CameraShares(encoder), INPUTS.cameras)
    try:
        for seed in range(3):
            pictures = _pictures(seed)
            for camera, picture in pictures.items():
                arriving.offer(camera, picture)
            torch.testing.assert_close(arriving.features(pictures),
                                       _expected(encoder, pictures), rtol=0, atol=1e-5)
    finally:
        arriving.close()


def test_newest_ready_never_encodes_in_the_step_once_a_frame_is_encoded():
    encoder = _encoder()
    first, second = _pictures(0), _pictures(1)
    # No worker: offered frames wait, so what the step does is seen alone.
    for newest_ready, expected in ((True, first), (False, second)):
        arriving = ArrivingFrames(CameraShares(encoder), INPUTS.cameras, worker=False,
                                  newest_ready=newest_ready)
        arriving.features(first)  # nothing encoded yet: the step encodes its own frames
        assert arriving.encoded_in_step == 2
        for camera, picture in second.items():
            arriving.offer(camera, picture)
        features = arriving.features(second)
        # cameras on their own clocks: the newest encoded frame, no encoder in the step;
        # lockstep: the step's own frame, encoded now
        assert arriving.encoded_in_step == (2 if newest_ready else 4)
        torch.testing.assert_close(features, _expected(encoder, expected), rtol=0, atol=1e-5)


def test_new_weights_drop_what_the_old_ones_encoded():
    encoder, pictures = _encoder(0), _pictures(0)
    arriving = ArrivingFrames(CameraShares(encoder), INPUTS.cameras, worker=False,
                              newest_ready=True)
    before = arriving.features(pictures)
    encoder.load_state_dict(_encoder(1).state_dict())
    arriving.refresh()
    after = arriving.features(pictures)
    assert arriving.encoded_in_step == 4
    torch.testing.assert_close(after, _expected(encoder, pictures), rtol=0, atol=1e-5)
    assert not torch.allclose(before, after)


def test_an_encoder_without_a_linear_trunk_has_no_shares():
    encoder = _encoder()
    encoder.trunk = torch.nn.Sequential(torch.nn.Tanh())
    with pytest.raises(TypeError, match='linear'):
        CameraShares(encoder)
