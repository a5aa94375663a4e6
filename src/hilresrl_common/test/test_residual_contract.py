"""The residual contract: the scale per axis, the composition, and the latent's scale."""

from hilresrl_common.parameters import defaults
from hilresrl_common.residual_contract import (compose, latent_from_unit, LATENT_SCALE,
                                               RESIDUAL_SCALE, residual_scale_vector,
                                               residual_toward, unit_from_latent)
import numpy as np
import pytest


def test_the_scales_have_one_default_and_must_be_positive():
    assert defaults([RESIDUAL_SCALE, LATENT_SCALE]) == {'residual_scale': [0.5],
                                                        'latent_scale': 1.5}
    assert RESIDUAL_SCALE.value_type == 'double_array'
    assert RESIDUAL_SCALE.refusal([0.5, 0.0]) and LATENT_SCALE.refusal(-1.0)
    assert RESIDUAL_SCALE.refusal([0.5, 1.0]) == ''


def test_one_scale_value_serves_every_axis():
    vector = residual_scale_vector([0.3], 4)
    assert vector.dtype == np.float32 and vector.tolist() == pytest.approx([0.3] * 4)
    assert residual_scale_vector(0.25, 2).tolist() == [0.25, 0.25]


def test_a_scale_per_axis_is_kept_and_a_wrong_count_refused():
    assert residual_scale_vector([0.5, 0.5, 0.5, 1.0], 4).tolist() == [0.5, 0.5, 0.5, 1.0]
    with pytest.raises(ValueError, match='residual_scale has 3 values; give 1 or 4'):
        residual_scale_vector([0.1, 0.2, 0.3], 4)


def test_compose_adds_the_scaled_residual_and_clips():
    executed = compose(np.array([0.2, 0.9, -0.9, 0.0]), np.array([1.0, 1.0, -1.0, 0.5]),
                       np.array([0.5, 0.5, 0.5, 1.0]))
    assert executed.dtype == np.float32
    assert executed.tolist() == pytest.approx([0.7, 1.0, -1.0, 0.5])


def test_compose_keeps_a_non_finite_sum_nan_for_the_arbiter_to_refuse():
    executed = compose(np.array([0.0, np.nan, 0.0, np.inf]), np.array([np.nan, 0.0, 0.1, 0.0]),
                       np.float32(0.5))
    assert np.isnan(executed[[0, 1, 3]]).all() and executed[2] == pytest.approx(0.05)


def test_residual_toward_inverts_compose_within_the_bound():
    base, scale = np.array([0.1, -0.2], np.float32), np.array([0.5, 0.25], np.float32)
    residual = residual_toward(np.array([0.3, -0.1], np.float32), base, scale)
    assert residual.tolist() == pytest.approx([0.4, 0.4])
    assert compose(base, residual, scale).tolist() == pytest.approx([0.3, -0.1])
    assert residual_toward(np.array([1.0]), np.array([0.0]), np.array([0.1])).tolist() == [1.0]


def test_the_latent_scale_maps_the_unit_interval_both_ways():
    unit = np.array([-2.0, -0.5, 0.0, 1.0], np.float32)
    latent = latent_from_unit(unit, 1.5)
    assert latent.tolist() == pytest.approx([-1.5, -0.75, 0.0, 1.5])
    assert unit_from_latent(latent, 1.5).tolist() == pytest.approx([-1.0, -0.5, 0.0, 1.0])
    assert unit_from_latent([3.0], 1.5).tolist() == [1.0]


def test_torch_and_numpy_agree():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(0)
    base = rng.uniform(-1.2, 1.2, (16, 4)).astype(np.float32)
    residual = rng.uniform(-1.0, 1.0, (16, 4)).astype(np.float32)
    scale = residual_scale_vector([0.5, 0.5, 0.5, 1.0], 4)
    as_numpy = compose(base, residual, scale)
    as_torch = compose(torch.from_numpy(base), torch.from_numpy(residual),
                       torch.from_numpy(scale))
    assert isinstance(as_torch, torch.Tensor)
    np.testing.assert_allclose(as_torch.numpy(), as_numpy, atol=1e-6)
    np.testing.assert_allclose(
        residual_toward(torch.from_numpy(as_numpy), torch.from_numpy(base),
                        torch.from_numpy(scale)).numpy(),
        residual_toward(as_numpy, base, scale), atol=1e-6)
    unit = torch.linspace(-2.0, 2.0, 9)
    np.testing.assert_allclose(latent_from_unit(unit, 1.5).numpy(),
                               latent_from_unit(unit.numpy(), 1.5), atol=1e-6)
    np.testing.assert_allclose(unit_from_latent(unit, 1.5).numpy(),
                               unit_from_latent(unit.numpy(), 1.5), atol=1e-6)
