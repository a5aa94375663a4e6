"""The image encoder, its random shifts and the pretrained option (core, no ROS)."""

from hilresrl_policy.image_encoder import (encoder_frame, ImageEncoder, ImageInputs,
                                           load_pretrained_encoder, PretrainedEncoder,
                                           random_shift)
import numpy as np
import pytest
import torch
from torch import nn

TWO_CAMERAS = ImageInputs(('front', 'wrist'), height=64, width=64)


def _frames(count=5, inputs=TWO_CAMERAS, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (count, inputs.channels, inputs.height, inputs.width),
                          generator=generator, dtype=torch.uint8) for _ in inputs.cameras]


def test_the_encoder_gives_one_bounded_feature_vector_per_sample_and_learns():
    encoder = ImageEncoder(TWO_CAMERAS, feature_dim=50)
    features = encoder(_frames())
    assert features.shape == (5, 50)
    assert bool((features.abs() < 1).all())  # the trunk ends in tanh
    features.sum().backward()
    assert all(parameter.grad is not None for parameter in encoder.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_on_a_gpu_the_encoder_agrees_with_its_cpu_features_in_bfloat16():
    torch.manual_seed(0)
    encoder = ImageEncoder(TWO_CAMERAS, feature_dim=16)
    frames = _frames()
    on_cpu = encoder(frames)
    on_gpu = encoder.cuda()([batch.cuda() for batch in frames])
    assert on_gpu.dtype == torch.float32
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=0.05)
    assert not torch.equal(on_gpu.cpu(), on_cpu)  # computed in bfloat16, not as on the CPU


def test_the_encoder_wants_a_frame_batch_per_camera_and_says_which():
    with pytest.raises(ValueError, match='1 frame batches for 2 cameras .front, wrist.'):
        ImageEncoder(TWO_CAMERAS)(_frames()[:1])


def test_image_inputs_name_what_differs():
    other = ImageInputs(('front',), height=96, width=64)
    assert TWO_CAMERAS.differences(other) == [
        "cameras: ['front', 'wrist'] != ['front']",
        'image size (height x width x channels): 64x64x3 != 96x64x3']
    assert TWO_CAMERAS.differences(ImageInputs(('front', 'wrist'), 64, 64)) == []
    with pytest.raises(ValueError, match='listed twice'):
        ImageInputs(('front', 'front'))


def test_a_shift_moves_each_image_by_at_most_pad_pixels_repeating_its_border():
    frames = _frames(count=64, inputs=ImageInputs(('front',), 16, 12))[0]
    pad = 3
    shifted = random_shift(frames, pad, torch.Generator().manual_seed(1))
    assert shifted.shape == frames.shape and shifted.dtype == torch.uint8
    rows, columns = torch.arange(16), torch.arange(12)
    found = set()
    for sample in range(64):
        matches = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)
                   if torch.equal(shifted[sample], frames[sample][
                       :, (rows + dy).clamp(0, 15)[:, None], (columns + dx).clamp(0, 11)])]
        assert matches, f'sample {sample} is not its image shifted by at most {pad} pixels'
        found.add(matches[0])
    assert len(found) > 10  # the shifts differ from image to image
    assert random_shift(frames, 0) is frames


def test_a_pretrained_network_stays_frozen_and_in_evaluation_mode():
    network = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten())
    encoder = PretrainedEncoder(network, TWO_CAMERAS).train()
    assert encoder.feature_dim == 16 and not network.training
    assert encoder(_frames()).shape == (5, 16)
    assert not any(parameter.requires_grad for parameter in encoder.parameters())


def test_a_missing_pretrained_weights_file_is_named_and_never_downloaded(tmp_path):
    missing = tmp_path / 'resnet18.pth'
    with pytest.raises(FileNotFoundError, match='resnet18.pth.*never downloads at run time'):
        load_pretrained_encoder('torchvision:resnet18', str(missing), TWO_CAMERAS)
    with pytest.raises(ValueError, match='give torchvision:<name> or timm:<name>'):
        load_pretrained_encoder('resnet18', str(missing), TWO_CAMERAS)


def test_a_pretrained_encoder_without_its_library_says_what_to_install(tmp_path):
    try:
        import torchvision  # noqa: F401
        pytest.skip('torchvision is installed here: the message cannot be seen')
    except ImportError:
        pass
    weights = tmp_path / 'resnet18.pth'
    torch.save({}, weights)
    with pytest.raises(ImportError, match=r'needs torchvision.*pip install torchvision'):
        load_pretrained_encoder('torchvision:resnet18', str(weights), TWO_CAMERAS)


def test_a_camera_image_becomes_an_encoder_frame_of_the_inputs_size():
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    image[:, :160, 0] = 200  # left half red, right half blue
    image[:, 160:, 2] = 100
    frame = encoder_frame(image, TWO_CAMERAS)
    assert frame.shape == (3, 64, 64) and frame.dtype == np.uint8
    assert (frame[0, :, :32] == 200).all() and (frame[0, :, 32:] == 0).all()
    assert (frame[2, :, 32:] == 100).all() and (frame[2, :, :32] == 0).all()
    small = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)  # enlarged, bilinear
    assert encoder_frame(small, TWO_CAMERAS).shape == (3, 64, 64)
    exact = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(encoder_frame(exact, TWO_CAMERAS), exact.transpose(2, 0, 1))
    with pytest.raises(ValueError, match='float32; the encoder takes height x width x 3 uint8'):
        encoder_frame(np.zeros((64, 64, 1), dtype=np.float32), TWO_CAMERAS)
