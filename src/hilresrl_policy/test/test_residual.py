"""The residual actor, composition and weight transport (core, no ROS)."""

import hashlib

from hilresrl_common.residual_contract import compose, residual_scale_vector
from hilresrl_policy.residual import (load_actor_weights, NORMALIZED_LIMIT, NORMALIZER_TENSORS,
                                      observation_statistics, ResidualActor, ResidualConfig,
                                      serialize_actor, SingleStepActor, STD_FLOOR,
                                      WeightsError)
import numpy as np
import pytest
from safetensors.torch import save as save_tensors
import torch

CONFIG = ResidualConfig(obs_dim=5, action_dim=3, hidden_sizes=(16, 16))


def _trained_actor(seed=0):
    torch.manual_seed(seed)
    actor = ResidualActor(CONFIG)
    with torch.no_grad():
        for parameter in actor.parameters():
            parameter.normal_(0.0, 0.5)
    return actor


def test_zero_initialised_actor_gives_composed_equal_to_base():
    actor = ResidualActor(CONFIG)
    observation, base = torch.randn(8, 5), torch.rand(8, 3) * 2 - 1
    residual = actor(observation, base)
    assert torch.count_nonzero(residual) == 0
    composed = compose(base.numpy(), residual.detach().numpy(), np.full(3, 0.5))
    assert np.array_equal(composed, base.numpy())


def test_composition_scales_and_clips():
    composed = compose([0.5, -0.9, 0.0], [1.0, -1.0, 0.5], [0.2, 0.5, 1.0])
    assert composed.tolist() == pytest.approx([0.7, -1.0, 0.5])
    assert composed.dtype == np.float32


def test_residual_scale_per_axis_or_one_value():
    assert residual_scale_vector([0.3], 3).tolist() == pytest.approx([0.3] * 3)
    assert residual_scale_vector([0.1, 0.2, 0.3], 3).tolist() == pytest.approx([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match='give 1 or 3'):
        residual_scale_vector([0.1, 0.2], 3)


def test_the_architecture_carries_the_residual_scale():
    config = ResidualConfig(5, 3, (16, 16), residual_scale=residual_scale_vector([0.3], 3))
    assert config.residual_scale == tuple(float(np.float32(0.3)) for _ in range(3))
    assert ResidualConfig.from_json(config.to_json()) == config
    assert '"residual_scale"' in config.to_json()
    assert '"residual_scale"' not in CONFIG.to_json()  # unknown: the old architecture text
    with pytest.raises(WeightsError, match='2 values for 3 action axes'):
        ResidualConfig.from_json(ResidualConfig(5, 3).to_json().replace(
            '"obs_dim"', '"residual_scale": [0.1, 0.2], "obs_dim"'))


def test_weights_of_another_scale_are_refused_and_of_an_unknown_scale_taken():
    ours = ResidualConfig(5, 3, (16, 16), residual_scale=(0.3, 0.3, 0.3))
    target = ResidualActor(ours)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    other = ResidualActor(ResidualConfig(5, 3, (16, 16), residual_scale=(0.5, 0.5, 0.5)))
    weights = serialize_actor(other)
    with pytest.raises(WeightsError, match=r'residual_scale \(0.5, 0.5, 0.5\) != \(0.3'):
        load_actor_weights(target, weights.blob, weights.sha256, weights.architecture)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    # Weights of a learner that did not send the scale (an older one): taken.
    old = serialize_actor(_trained_actor(4))
    assert 'residual_scale' not in old.architecture
    load_actor_weights(target, old.blob, old.sha256, old.architecture)
    assert torch.equal(target.net[-1].weight, _trained_actor(4).net[-1].weight)
    assert target.config == ours
    # The same scale: taken.
    same = serialize_actor(ResidualActor(ours))
    load_actor_weights(target, same.blob, same.sha256, same.architecture)


def test_weights_round_trip_exactly():
    source, target = _trained_actor(1), ResidualActor(CONFIG)
    weights = serialize_actor(source)
    load_actor_weights(target, weights.blob, weights.sha256, weights.architecture)
    observation, base = torch.randn(4, 5), torch.randn(4, 3)
    assert torch.equal(source(observation, base), target(observation, base))


def test_corrupt_weights_are_refused_and_the_actor_is_untouched():
    target = ResidualActor(CONFIG)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    weights = serialize_actor(_trained_actor(2))
    corrupt = bytearray(weights.blob)
    corrupt[-1] ^= 0xFF
    with pytest.raises(WeightsError, match='sha256 mismatch'):
        load_actor_weights(target, bytes(corrupt), weights.sha256, weights.architecture)
    garbage = b'not safetensors'
    with pytest.raises(WeightsError, match='unreadable safetensors'):
        load_actor_weights(target, garbage, hashlib.sha256(garbage).hexdigest(),
                           weights.architecture)
    with pytest.raises(WeightsError, match="format 'pickle'"):
        load_actor_weights(target, weights.blob, weights.sha256, weights.architecture,
                           'pickle')
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_mismatched_architecture_is_refused_naming_the_difference():
    other = ResidualActor(ResidualConfig(obs_dim=7, action_dim=3, hidden_sizes=(16, 16)))
    weights = serialize_actor(other)
    with pytest.raises(WeightsError, match='architecture mismatch: obs_dim 7 != 5'):
        load_actor_weights(ResidualActor(CONFIG), weights.blob, weights.sha256,
                           weights.architecture)


def test_architecture_json_round_trip():
    assert ResidualConfig.from_json(CONFIG.to_json()) == CONFIG
    with pytest.raises(WeightsError, match='unreadable architecture'):
        ResidualConfig.from_json('{"obs_dim": 1}')


def test_weights_with_nan_or_inf_are_refused_naming_the_tensor():
    target = ResidualActor(CONFIG)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    poisoned = _trained_actor(4)
    with torch.no_grad():
        poisoned.net[0].bias[1] = float('inf')
    weights = serialize_actor(poisoned)
    with pytest.raises(WeightsError, match=r'net\.0\.bias holds 1 NaN or infinite'):
        load_actor_weights(target, weights.blob, weights.sha256, weights.architecture)
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())


def test_a_non_finite_sum_is_not_clipped_into_full_speed():
    composed = compose([np.inf, 0.5, -np.inf], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3])
    assert np.isnan(composed[0]) and np.isnan(composed[2]) and composed[1] == 0.5


def test_the_weights_gate_orders_versions_within_a_run():
    from hilresrl_policy.weights_acceptance import WeightsGate
    gate = WeightsGate(max_bytes=1000)
    with pytest.raises(WeightsError, match='1001 bytes, over the limit of 1000'):
        gate.check_size(1001)
    with pytest.raises(WeightsError, match='unknown run'):
        gate.check_order('', 1)
    gate.accepted('stray', 10**9)
    assert 'new learner run' in gate.check_order('real', 1)
    gate.accepted('real', 1)
    with pytest.raises(WeightsError, match='stale run'):
        gate.check_order('stray', 10**9 + 1)
    with pytest.raises(WeightsError, match='not newer'):
        gate.check_order('real', 1)
    pinned = WeightsGate(pinned_run_id='real')
    with pytest.raises(WeightsError, match='parameter learner_run_id'):
        pinned.check_order('other', 1)


def test_observation_statistics_travel_with_the_weights_and_old_weights_mean_identity():
    actor = _trained_actor()
    observations = np.array([[0.0, 1.0, 200.0, 0.3, 5.0], [2.0, 1.0, 0.0, 0.3, 7.0]])
    mean, std = observation_statistics(observations)
    assert mean.tolist() == [1.0, 1.0, 100.0, pytest.approx(0.3), 6.0]
    # a value that did not vary is divided by the floor, not by zero
    assert std.tolist() == pytest.approx([1.0, STD_FLOOR, 100.0, STD_FLOOR, 1.0])
    assert actor.observation_normalizer.identity
    actor.observation_normalizer.set_statistics(mean, std)
    assert not actor.observation_normalizer.identity
    observation, base = torch.as_tensor(observations, dtype=torch.float32), torch.zeros(2, 3)
    receiver = ResidualActor(CONFIG)
    weights = serialize_actor(actor)
    load_actor_weights(receiver, weights.blob, weights.sha256, weights.architecture)
    assert torch.equal(receiver(observation, base), actor(observation, base))
    assert torch.equal(receiver.observation_normalizer.std, torch.as_tensor(std))

    # weights written before the statistics existed: the receiver takes identity statistics
    old = {name: tensor for name, tensor in actor.state_dict().items()
           if name not in NORMALIZER_TENSORS}
    blob = save_tensors(old)
    load_actor_weights(receiver, blob, hashlib.sha256(blob).hexdigest(), weights.architecture)
    assert receiver.observation_normalizer.identity
    unnormalized = _trained_actor()
    assert torch.equal(receiver(observation, base), unnormalized(observation, base))
    # half a set is damage, not an old format
    partial = dict(old, **{NORMALIZER_TENSORS[0]: torch.zeros(5)})
    blob = save_tensors(partial)
    with pytest.raises(WeightsError, match='observation_normalizer.std'):
        load_actor_weights(receiver, blob, hashlib.sha256(blob).hexdigest(),
                           weights.architecture)


def test_normalized_observations_are_clipped_and_bad_statistics_refused():
    normalizer = ResidualActor(CONFIG).observation_normalizer
    raw = torch.tensor([[255.0, -1e6, 0.5, 3.0, 1e6]])
    assert torch.equal(normalizer(raw), raw)  # no statistics: nothing changed, nothing clipped
    normalizer.set_statistics(np.zeros(5), np.full(5, 0.1))
    assert normalizer(torch.full((1, 5), 1e6)).max().item() == NORMALIZED_LIMIT
    for mean, std in ((np.zeros(4), np.ones(4)), (np.zeros(5), np.zeros(5)),
                      (np.full(5, np.nan), np.ones(5))):
        with pytest.raises(ValueError):
            normalizer.set_statistics(mean, std)
    with pytest.raises(ValueError, match='at least one observation'):
        observation_statistics(np.zeros((0, 5)))


@pytest.mark.parametrize('config', [
    ResidualConfig(obs_dim=39, action_dim=4),  # the simulated cell's default actor
    ResidualConfig(obs_dim=5, action_dim=3, hidden_sizes=(16, 8, 32)),
    ResidualConfig(obs_dim=7, action_dim=2, hidden_sizes=(64,), layer_norm=False)],
    ids=['default', 'three-hidden', 'no-layer-norm'])
@pytest.mark.parametrize('normalized', [False, True], ids=['raw', 'normalized'])
def test_the_numpy_single_step_forward_equals_the_torch_forward(config, normalized):
    torch.manual_seed(1)
    actor = ResidualActor(config).eval()
    with torch.no_grad():  # every weight, LayerNorm's scale and shift too, away from its start
        for parameter in actor.parameters():
            parameter.normal_(0.0, 0.3)
    rng = np.random.default_rng(2)
    if normalized:
        actor.observation_normalizer.set_statistics(
            rng.normal(size=config.obs_dim), rng.uniform(0.05, 2.0, size=config.obs_dim))
    fast = SingleStepActor(actor)
    # Some observations far enough out to be clipped by the normalizer.
    observations = rng.normal(scale=3.0, size=(50, config.obs_dim)).astype(np.float32)
    observations[:5] *= 100.0
    bases = rng.uniform(-1.0, 1.0, size=(50, config.action_dim)).astype(np.float32)
    with torch.no_grad():
        expected = actor(torch.from_numpy(observations), torch.from_numpy(bases)).numpy()
    got = np.stack([fast(observation, base) for observation, base in zip(observations, bases)])
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got).max() > 0.1  # not the zero start: the comparison means something
    np.testing.assert_allclose(got, expected, rtol=0.0, atol=1e-5)


def test_the_numpy_forward_takes_new_weights_on_refresh_and_returns_fresh_arrays():
    actor = ResidualActor(CONFIG).eval()
    fast = SingleStepActor(actor)
    observation, base = np.ones(5, np.float32), np.zeros(3, np.float32)
    first = fast(observation, base)
    assert first.tolist() == [0.0, 0.0, 0.0]  # the zero start
    trained = serialize_actor(_trained_actor())
    load_actor_weights(actor, trained.blob, trained.sha256, trained.architecture)
    assert fast(observation, base).tolist() == [0.0, 0.0, 0.0]  # a copy, until refreshed
    fast.refresh(actor)
    second = fast(observation, base)
    with torch.no_grad():
        expected = actor(torch.from_numpy(observation)[None], torch.from_numpy(base)[None])[0]
    np.testing.assert_allclose(second, expected.numpy(), rtol=0.0, atol=1e-5)
    assert first.tolist() == [0.0, 0.0, 0.0]  # an earlier result is not a reused buffer


IMAGE_CONFIG = ResidualConfig(obs_dim=5, action_dim=3, hidden_sizes=(16, 16),
                              cameras=('front', 'wrist'), image_size=(32, 32, 3),
                              image_features=8)


def _frames(count, config=IMAGE_CONFIG, seed=0):
    generator = torch.Generator().manual_seed(seed)
    height, width, channels = config.image_size
    return [torch.randint(0, 256, (count, channels, height, width), dtype=torch.uint8,
                          generator=generator) for _ in config.cameras]


def test_an_actor_with_cameras_starts_at_the_base_and_sees_its_frames():
    actor = ResidualActor(IMAGE_CONFIG)
    observation, base = torch.randn(4, 5), torch.rand(4, 3)
    assert torch.equal(actor(observation, base, _frames(4)), torch.zeros(4, 3))
    with torch.no_grad():
        for parameter in actor.net.parameters():
            parameter.normal_(0.0, 0.5)
    assert not torch.equal(actor(observation, base, _frames(4, seed=0)),
                           actor(observation, base, _frames(4, seed=1)))  # frames matter
    with pytest.raises(ValueError, match=r"sees cameras \['front', 'wrist'\]: give their frames"):
        actor(observation, base)
    with pytest.raises(TypeError, match='camera images'):
        SingleStepActor(actor)  # the numpy path has no convolutions: torch acts


def test_weights_with_an_encoder_round_trip_bit_exactly():
    torch.manual_seed(3)
    source, target = ResidualActor(IMAGE_CONFIG), ResidualActor(IMAGE_CONFIG)
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    weights = serialize_actor(source)
    assert any(name.startswith('encoder.') for name in source.state_dict())
    load_actor_weights(target, weights.blob, weights.sha256, weights.architecture)
    for name, tensor in source.state_dict().items():
        assert torch.equal(tensor, target.state_dict()[name]), name
    observation, base, frames = torch.randn(4, 5), torch.randn(4, 3), _frames(4)
    assert torch.equal(source(observation, base, frames), target(observation, base, frames))


def test_weights_for_other_cameras_or_another_frame_size_are_refused_naming_them():
    receiver = ResidualActor(IMAGE_CONFIG)
    cases = [
        ({'cameras': ('front',)}, r"cameras: \['front'\] != \['front', 'wrist'\]"),
        ({'image_size': (64, 64, 3)},
         r'image size \(height x width x channels\): 64x64x3 != 32x32x3'),
        ({'cameras': (), 'image_size': ()}, r"cameras \[\] != \['front', 'wrist'\]")]
    for change, message in cases:
        sender = ResidualActor(ResidualConfig(**{**IMAGE_CONFIG.__dict__, **change}))
        weights = serialize_actor(sender)
        with pytest.raises(WeightsError, match='architecture mismatch: .*' + message):
            load_actor_weights(receiver, weights.blob, weights.sha256, weights.architecture)


def test_a_state_only_architecture_is_written_as_before_images():
    assert 'cameras' not in CONFIG.to_json() and CONFIG.image_inputs is None
    assert ResidualConfig.from_json(IMAGE_CONFIG.to_json()) == IMAGE_CONFIG
    assert IMAGE_CONFIG.image_inputs.cameras == ('front', 'wrist')
    with pytest.raises(ValueError, match='give height, width and channels'):
        ResidualConfig(obs_dim=5, action_dim=3, cameras=('front',), image_size=(32, 32))
