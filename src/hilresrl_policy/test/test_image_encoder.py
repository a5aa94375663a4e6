"""The image encoder, its random shifts and the pretrained option (core, no ROS)."""

import copy
import dataclasses
import hashlib

from hilresrl_common.residual_contract import IMAGE_ENCODER_LAYOUTS
from hilresrl_policy.camera_features import CameraShares
from hilresrl_policy.image_encoder import (CameraEncoder, checkpoint_sha256,
                                           configured_pretrained_encoder,
                                           encoder_frame, FrozenImageEncoder, ImageEncoder,
                                           ImageInputs, load_pretrained_encoder,
                                           PretrainedEncoder, random_shift,
                                           space_to_depth_convolution, StemConvolution)
from hilresrl_policy.residual import (load_actor_weights, ResidualActor, ResidualConfig,
                                      serialize_actor, WeightsError)
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


@pytest.mark.parametrize('kernel, stride, height, width',
                         [(8, 4, 128, 128), (8, 4, 39, 37), (4, 2, 31, 30)])
def test_a_strided_stem_over_pixel_blocks_is_the_plain_convolution(kernel, stride, height, width):
    torch.manual_seed(0)
    stem = nn.Conv2d(3, 8, kernel, stride=stride)
    pixels = torch.randn(2, 3, height, width)
    with torch.no_grad():
        plain = stem(pixels)
        blocks = space_to_depth_convolution(pixels, stem.weight, stem.bias, stride)
    assert blocks.shape == plain.shape
    assert torch.allclose(blocks, plain, atol=1e-5)


def test_the_stem_over_colours_is_a_plain_convolution_in_every_state_dict():
    encoder = CameraEncoder(3, 128, 128, IMAGE_ENCODER_LAYOUTS['nature'])
    stems = [module for module in encoder.net if isinstance(module, StemConvolution)]
    assert len(stems) == 1 and stems[0] is encoder.net[0]  # only where channels are few
    plain = nn.Sequential(*(nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size,
                                      stride=m.stride) if isinstance(m, nn.Conv2d) else m
                            for m in encoder.net))
    plain.load_state_dict(encoder.net.state_dict())  # same names, same shapes
    assert encoder.output_dim == 12 * 12 * 64


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_on_a_gpu_the_stem_over_pixel_blocks_agrees_with_the_cpu():
    torch.manual_seed(0)
    encoder = CameraEncoder(3, 128, 128, IMAGE_ENCODER_LAYOUTS['nature'],
                            gpu_dtype=torch.float32)
    frames = torch.randint(0, 256, (4, 3, 128, 128), dtype=torch.uint8)
    on_cpu = encoder(frames)
    on_gpu = encoder.cuda()(frames.cuda()).cpu()
    assert torch.allclose(on_gpu, on_cpu, atol=1e-3)


def test_each_built_in_encoder_takes_frames_down_to_its_smallest_and_says_so():
    assert CameraEncoder(3, 15, 15).output_dim == 32 * 1 * 1  # DrQ-v2's
    assert CameraEncoder(3, 128, 128).output_dim == 32 * 57 * 57
    nature = IMAGE_ENCODER_LAYOUTS['nature']
    assert CameraEncoder(3, 36, 44, nature).output_dim == 64 * 1 * 2
    with pytest.raises(ValueError, match='frames of at least 36x36'):
        CameraEncoder(3, 35, 64, nature)
    with pytest.raises(ValueError, match='frames of at least 15x15'):
        CameraEncoder(3, 14, 64)


def test_weights_of_another_built_in_encoder_are_refused_naming_both():
    drqv2 = ResidualConfig(3, 2, (8,), cameras=('front',), image_size=(40, 40, 3),
                           image_features=4, image_encoder='drqv2')
    assert drqv2.image_encoder == ''  # named or not, the same encoder and the same weights
    nature = dataclasses.replace(drqv2, image_encoder='nature')
    weights = serialize_actor(ResidualActor(nature))
    with pytest.raises(WeightsError, match="image_encoder 'nature' != 'drqv2'"):
        load_actor_weights(ResidualActor(drqv2), weights.blob, weights.sha256,
                           weights.architecture)
    receiver = ResidualActor(nature)
    load_actor_weights(receiver, weights.blob, weights.sha256, weights.architecture)
    assert receiver.encoder.cameras[0].output_dim == 64


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


class Backbone(nn.Module):
    """A stand-in for a pretrained classifier: convolutions, pooling, a head named fc."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 64, 3, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.Conv2d(64, 64, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.body(x))


def _weights_file(path, seed=0):
    torch.manual_seed(seed)
    torch.save(Backbone().state_dict(), path)
    return str(path)


def _pretrained(path, inputs=TWO_CAMERAS):
    return load_pretrained_encoder(Backbone, path, inputs)


def test_a_pretrained_network_from_a_callable_carries_its_name_and_file_hash(tmp_path):
    path = _weights_file(tmp_path / 'backbone.pth')
    encoder = _pretrained(path)
    assert encoder.architecture == f'python:{__name__}.Backbone'
    assert encoder.weights_sha256 == hashlib.sha256(open(path, 'rb').read()).hexdigest()
    saved = torch.load(path)
    assert torch.equal(encoder.network.body[0].weight, saved['body.0.weight'])
    assert isinstance(encoder.network.fc, nn.Identity)  # pooled features, no classifier
    assert encoder.camera_dim == 64 and encoder(_frames()).shape == (5, 128)
    torch.save({'body.0.weight': torch.zeros(1)}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='other.pth.* do not fit python:'):
        _pretrained(str(tmp_path / 'other.pth'))


def test_the_image_encoder_parameters_name_drqv2_or_a_pretrained_file(tmp_path):
    assert configured_pretrained_encoder('', '', TWO_CAMERAS) is None
    assert configured_pretrained_encoder('drqv2', '', None) is None
    assert configured_pretrained_encoder('nature', '', TWO_CAMERAS) is None  # built in
    with pytest.raises(ValueError, match='needs camera_inputs'):
        configured_pretrained_encoder('torchvision:resnet18', 'resnet18.pth', None)
    with pytest.raises(ValueError, match='no weights file given'):
        configured_pretrained_encoder('torchvision:resnet18', '', TWO_CAMERAS)
    with pytest.raises(ValueError, match='missing.pth.*never downloads at run time'):
        configured_pretrained_encoder('timm:resnet10t', str(tmp_path / 'missing.pth'),
                                      TWO_CAMERAS)


def test_a_frozen_encoder_trains_its_projection_only_and_keeps_the_network_out_of_its_state(
        tmp_path):
    pretrained = _pretrained(_weights_file(tmp_path / 'backbone.pth'))
    encoder = FrozenImageEncoder(pretrained, feature_dim=8).train()
    assert not pretrained.network.training  # its BatchNorm statistics stay as loaded
    assert set(encoder.state_dict()) == {'trunk.0.weight', 'trunk.0.bias', 'trunk.1.weight',
                                         'trunk.1.bias'}
    assert {id(p) for p in encoder.parameters()} == {id(p) for p in encoder.trunk.parameters()}
    frozen = {name: tensor.clone() for name, tensor in pretrained.state_dict().items()}
    optimizer = torch.optim.Adam(encoder.parameters(), lr=0.1)
    features = encoder(_frames())
    assert features.shape == (5, 8) and features.abs().max() <= 1
    features.sum().backward()
    optimizer.step()
    assert all(torch.equal(tensor, frozen[name])
               for name, tensor in pretrained.state_dict().items())
    assert all(parameter.grad is None for parameter in pretrained.parameters())
    assert copy.deepcopy(encoder).pretrained is pretrained  # shared, not copied
    shares = CameraShares(encoder)  # the residual node encodes each camera as it arrives
    frames = _frames(count=1)
    combined = shares.features([shares.share(index, batch)
                                for index, batch in enumerate(frames)])
    torch.testing.assert_close(combined, encoder(frames).detach())
    encoder.double()  # moves (to a device, to a type) reach the frozen network too
    assert pretrained.network.body[0].weight.dtype == torch.float64


IMAGE_CONFIG = ResidualConfig(obs_dim=3, action_dim=2, hidden_sizes=(16,),
                              cameras=TWO_CAMERAS.cameras, image_size=(64, 64, 3),
                              image_features=8)


def _actor(pretrained):
    config = ResidualConfig(**{**IMAGE_CONFIG.__dict__, 'image_encoder': pretrained.architecture,
                               'image_encoder_sha256': pretrained.weights_sha256})
    return ResidualActor(config, pretrained)


def test_weights_over_a_frozen_encoder_name_its_file_and_stay_small(tmp_path):
    path = _weights_file(tmp_path / 'backbone.pth')
    pretrained = _pretrained(path)
    actor = _actor(pretrained)
    weights = serialize_actor(actor)
    network_bytes = sum(tensor.numel() * tensor.element_size()
                        for tensor in pretrained.state_dict().values())
    assert network_bytes > 140_000 and len(weights.blob) < 20_000
    architecture = ResidualConfig.from_json(weights.architecture)
    assert architecture.image_encoder == f'python:{__name__}.Backbone'
    assert architecture.image_encoder_sha256 == pretrained.weights_sha256
    # the same file copied elsewhere (the residual node's own copy): taken
    copied = tmp_path / 'elsewhere.pth'
    copied.write_bytes(open(path, 'rb').read())
    receiver = _actor(_pretrained(str(copied)))
    load_actor_weights(receiver, weights.blob, weights.sha256, weights.architecture)
    frames, observation, base = _frames(count=2), torch.randn(2, 3), torch.zeros(2, 2)
    with torch.no_grad():
        torch.testing.assert_close(receiver(observation, base, frames),
                                   actor(observation, base, frames))


def test_weights_over_another_encoder_file_or_architecture_are_refused_naming_it(tmp_path):
    ours = _pretrained(_weights_file(tmp_path / 'ours.pth', seed=0))
    theirs = _pretrained(_weights_file(tmp_path / 'theirs.pth', seed=1))
    weights = serialize_actor(_actor(theirs))
    receiver = _actor(ours)
    before = {name: tensor.clone() for name, tensor in receiver.state_dict().items()}
    with pytest.raises(WeightsError, match=(
            f'image_encoder_weights: a file of SHA-256 {theirs.weights_sha256[:16]} != '
            f'{ours.weights_sha256[:16]}')):
        load_actor_weights(receiver, weights.blob, weights.sha256, weights.architecture)
    assert all(torch.equal(tensor, before[name])
               for name, tensor in receiver.state_dict().items())
    drqv2 = serialize_actor(ResidualActor(IMAGE_CONFIG))
    with pytest.raises(WeightsError, match=f"image_encoder 'drqv2' != 'python:{__name__}"):
        load_actor_weights(receiver, drqv2.blob, drqv2.sha256, drqv2.architecture)
    with pytest.raises(WeightsError, match=f"image_encoder 'python:{__name__}.* != 'drqv2'"):
        load_actor_weights(ResidualActor(IMAGE_CONFIG), weights.blob, weights.sha256,
                           weights.architecture)


def test_an_actor_refuses_a_pretrained_encoder_other_than_its_configs(tmp_path):
    ours = _pretrained(_weights_file(tmp_path / 'ours.pth', seed=0))
    theirs = _pretrained(_weights_file(tmp_path / 'theirs.pth', seed=1))
    config = _actor(ours).config
    with pytest.raises(ValueError, match='give it .load_pretrained_encoder.'):
        ResidualActor(config)
    with pytest.raises(ValueError, match='not the one the actor was made for.*SHA-256'):
        ResidualActor(config, theirs)
    small = _pretrained(str(tmp_path / 'ours.pth'),
                        ImageInputs(TWO_CAMERAS.cameras, height=32, width=32))
    with pytest.raises(ValueError, match='image size .*32x32x3 != 64x64x3'):
        ResidualActor(config, small)
    assert ResidualConfig.from_json(config.to_json()) == config
    assert 'image_encoder' not in IMAGE_CONFIG.to_json()  # DrQ-v2's: as before


def test_a_base_policys_own_vision_encoder_is_loaded_frozen_from_its_checkpoint(
        tmp_path, seeing_policy_file):
    path = seeing_policy_file(tmp_path / 'seeing.pt')
    encoder = configured_pretrained_encoder('base_policy:torch_module', str(path), TWO_CAMERAS,
                                            action_dim=2)
    assert encoder.architecture == 'base_policy:torch_module'
    assert encoder.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert encoder.camera_dim == 8 and encoder.feature_dim == 16
    frames = _frames()
    with torch.no_grad():  # pixels in [0, 1]: the policy normalises them its own way
        expected = torch.jit.load(str(path)).encode_images(frames[0].float() / 255.0)
    assert torch.allclose(encoder.encode(frames[0]), expected, atol=1e-6)
    assert not any(parameter.requires_grad for parameter in encoder.parameters())
    projected = FrozenImageEncoder(encoder, feature_dim=4)
    assert projected(frames).shape == (5, 4)


def test_a_base_policy_without_a_vision_encoder_or_checkpoint_is_refused_naming_why(tmp_path):
    with pytest.raises(ValueError, match='no base policy checkpoint given'):
        configured_pretrained_encoder('base_policy:torch_module', '', TWO_CAMERAS, 2)
    with pytest.raises(ValueError, match='no base policy checkpoint at .*missing.pt'):
        configured_pretrained_encoder('base_policy:torch_module', str(tmp_path / 'missing.pt'),
                                      TWO_CAMERAS, 2)
    state_only = tmp_path / 'state_only.pt'
    torch.jit.save(torch.jit.trace(nn.Linear(4, 2), torch.zeros(1, 4)), str(state_only))
    with pytest.raises(ValueError, match='base_policy:torch_module from .*exports no '
                                         'encode_images'):
        configured_pretrained_encoder('base_policy:torch_module', str(state_only), TWO_CAMERAS,
                                      2)
    with pytest.raises(ValueError, match="no base policy named 'nothing'"):
        configured_pretrained_encoder('base_policy:nothing', str(state_only), TWO_CAMERAS, 2)


def test_a_checkpoint_folder_is_hashed_by_its_files_names_and_bytes(tmp_path):
    folder = tmp_path / 'policy'
    (folder / 'sub').mkdir(parents=True)
    (folder / 'config.json').write_text('{}')
    (folder / 'sub' / 'weights.bin').write_bytes(b'\x00\x01')
    first = checkpoint_sha256(folder)
    assert checkpoint_sha256(folder) == first
    (folder / 'sub' / 'weights.bin').write_bytes(b'\x00\x02')
    assert checkpoint_sha256(folder) != first
    (folder / 'sub' / 'weights.bin').write_bytes(b'\x00\x01')
    (folder / 'sub' / 'weights.bin').rename(folder / 'weights.bin')
    assert checkpoint_sha256(folder) != first  # the same bytes under another name
