"""The learner's parameter table: one declaration, the contract's defaults, checks (no ROS)."""

from hilresrl_common.parameters import checked, defaults
from hilresrl_common.residual_contract import LATENT_SCALE, RESIDUAL_SCALE
from hilresrl_learner.actor_learners import ActorLearners
from hilresrl_learner.learner_parameters import (config_settings, deprecation_warnings,
                                                 latent_scale, PARAMETERS)
from hilresrl_learner.residual_td3 import LearnerConfig
import pytest


def _values(**given):
    return checked(PARAMETERS, {**defaults(PARAMETERS), **given})


def test_every_name_once_and_the_scales_from_the_residual_contract():
    names = [parameter.name for parameter in PARAMETERS]
    # 57 before, camera_inputs, image_size, image_features, image_shift, image_wait_s,
    # image_encoder, image_encoder_weights
    assert len(names) == len(set(names)) == 64
    assert RESIDUAL_SCALE in PARAMETERS and LATENT_SCALE in PARAMETERS
    table = defaults(PARAMETERS)
    assert table['residual_scale'] == [0.5] and table['latent_scale'] == 1.5
    assert all(parameter.read_only for parameter in PARAMETERS)


def test_defaults_make_the_learner_config_of_residual_td3():
    settings = config_settings(_values())
    assert LearnerConfig(obs_dim=3, action_dim=4, **settings) == LearnerConfig(
        obs_dim=3, action_dim=4)


def test_optional_lists_are_empty_and_a_given_empty_string_still_means_none():
    values = _values()
    assert values['offline_bags'] == values['demonstrations'] == values['cells'] == []
    assert values['run_dir'] is None and values['latent.scale'] is None
    assert _values(offline_bags=[''], checkpoint_allow_dirs=[''])['offline_bags'] == []


@pytest.mark.parametrize('name, value, reason', [
    ('actor_mode', 'both', 'must be one of residual, latent, dual'),
    ('hidden_sizes', [256, 0], 'must be at least 1'),
    ('critic.heads', 1, 'must be at least 2'),
    ('residual_scale', [0.5, -0.1], 'must be above 0'),
    ('eval_episodes', 0, 'must be at least 1'),
    ('intervention_fraction', 1.5, 'must lie in [0, 1]'),
    ('matmul_precision', 'low', 'must be one of highest, high, medium')])
def test_a_bad_value_is_refused_by_name(name, value, reason):
    with pytest.raises(ValueError, match=f'{name}=.*{reason}'.replace('[', r'\[')):
        _values(**{name: value})


def test_the_deprecated_latent_scale_overrides_with_a_warning():
    assert latent_scale(_values(latent_scale=2.0)) == 2.0 and not deprecation_warnings(
        _values())
    old = _values(**{'latent.scale': 1.2})
    assert latent_scale(old) == 1.2
    assert 'latent.scale is deprecated' in deprecation_warnings(old)[0]


def test_a_configuration_the_networks_cannot_take_is_refused_before_any_data(tmp_path):
    with pytest.raises(ValueError, match='residual_scale has 3 values; give 1 or 4'):
        ActorLearners(_values(residual_scale=[0.5, 0.5, 0.5]), tmp_path)
    learners = ActorLearners(_values(action_dim=3, residual_scale=[0.5, 0.5, 0.5],
                                     **{'latent.scale': 1.2}), tmp_path)
    assert learners.residual is None and learners.latent_scale == 1.2  # built on data


def test_the_ignored_update_budget_is_named_in_a_warning():
    assert not deprecation_warnings(_values())
    warnings = deprecation_warnings(_values(update_budget_s=0.5))
    assert len(warnings) == 1 and 'update_budget_s is deprecated and ignored' in warnings[0]


def test_cells_are_paced_by_the_ratio_of_the_slower_learned_actor(tmp_path):
    values = {'update_to_data': 4.0, 'latent.update_to_data': 2.0}
    for mode, ratio in (('residual', 4.0), ('latent', 2.0), ('dual', 2.0)):
        learners = ActorLearners(_values(actor_mode=mode, **values), tmp_path)
        assert learners.paced_update_to_data == ratio


CAMERA = {'camera_inputs': ['image/camera/front'], 'image_size': [24, 24]}


def test_a_pretrained_encoder_is_named_and_its_file_checked_at_start(tmp_path):
    assert config_settings(_values(**CAMERA, image_encoder='drqv2'))['image_encoder'] == ''
    assert config_settings(_values(**CAMERA, image_encoder='nature'))['image_encoder'] == \
        'nature'
    with pytest.raises(ValueError, match='image_encoder=.*drqv2 .the default., nature, or'):
        _values(**CAMERA, image_encoder='natur')
    assert config_settings(_values(**CAMERA, image_encoder='timm:resnet10t'))[
        'image_encoder'] == 'timm:resnet10t'
    with pytest.raises(ValueError, match='image_encoder=.*torchvision:<name> or timm:<name>'):
        _values(**CAMERA, image_encoder='resnet18')
    with pytest.raises(ValueError, match="image_encoder 'timm:resnet10t' needs camera_inputs"):
        config_settings(_values(image_encoder='timm:resnet10t'))
    missing = tmp_path / 'resnet18.pth'
    with pytest.raises(ValueError, match='resnet18.pth.*not found: hilresrl never downloads'):
        ActorLearners(_values(**CAMERA, image_encoder='torchvision:resnet18',
                              image_encoder_weights=str(missing)), tmp_path)
    with pytest.raises(ValueError, match='no weights file given .image_encoder_weights.'):
        ActorLearners(_values(**CAMERA, image_encoder='torchvision:resnet18'), tmp_path)


def test_a_base_policys_vision_encoder_is_loaded_at_start_and_named_by_its_hash(
        tmp_path, seeing_policy_file):
    import hashlib
    path = seeing_policy_file(tmp_path / 'seeing.pt')
    learners = ActorLearners(_values(**CAMERA, image_encoder='base_policy:torch_module',
                                     image_encoder_weights=str(path)), tmp_path)
    assert learners.settings['image_encoder'] == 'base_policy:torch_module'
    assert learners.settings['image_encoder_sha256'] == hashlib.sha256(
        path.read_bytes()).hexdigest()
    assert learners.pretrained_encoder.camera_dim == 8


def test_a_pretrained_encoder_without_its_library_is_refused_at_start(tmp_path):
    try:
        import timm  # noqa: F401
        pytest.skip('timm is installed here: the message cannot be seen')
    except ImportError:
        pass
    import torch
    weights = tmp_path / 'resnet10t.pth'
    torch.save({}, weights)
    with pytest.raises(ValueError, match=r'needs timm, which is not installed \(pip install'):
        ActorLearners(_values(**CAMERA, image_encoder='timm:resnet10t',
                              image_encoder_weights=str(weights)), tmp_path)
