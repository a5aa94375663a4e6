"""The lerobot base-policy adapter against LeRobot itself (its environment; core, no ROS)."""

from hilresrl_policy.adapters.base import BasePolicyError
from hilresrl_policy.adapters.lerobot_policy import make_lerobot_policy, save_random_policy
import numpy as np
import pytest

pytest.importorskip('lerobot', reason='LeRobot runs in an environment of its own (Python 3.12, '
                                      'its torch): scripts/setup-lerobot.sh makes it, and '
                                      'test/test_lerobot_environment.py runs these tests there')
pytestmark = pytest.mark.lerobot

FRONT = 'observation.images.front'
IMAGES = {FRONT: (3, 64, 64)}
CONFIG = {'state_keys': ['joint_positions'], 'image_map': {FRONT: 'image/camera/front'}}


def _statistics(action_mean=0.0, state_mean=0.0):
    return {'observation.state': {'mean': np.full(7, state_mean), 'std': np.full(7, 2.0),
                                  'min': -np.ones(7), 'max': np.ones(7)},
            FRONT: {'mean': np.full((3, 1, 1), 0.5), 'std': np.full((3, 1, 1), 0.2),
                    'min': np.zeros((3, 1, 1)), 'max': np.ones((3, 1, 1))},
            # (whether a policy normalises its actions by mean and std or by range, the
            # statistics of action_mean > 0 are those of the same actions moved up so much)
            'action': {'mean': np.full(4, action_mean), 'std': np.full(4, 3.0),
                       'min': np.full(4, action_mean - 1), 'max': np.full(4, action_mean + 1)}}


def _observation(seed=0):
    rng = np.random.default_rng(seed)
    return {'joint_positions': rng.normal(size=7).astype(np.float32),
            'image/camera/front': rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)}


def _policy(folder, **config):
    return make_lerobot_policy({'checkpoint': str(folder), **CONFIG, **config})


def test_an_act_folder_acts_through_the_adapter_in_its_own_normalisation(tmp_path):
    plain = _policy(save_random_policy(tmp_path / 'act', 'act', 7, 4, IMAGES, _statistics()))
    chunk = plain.act(_observation())
    assert chunk.shape == (10, 4) and chunk.dtype == np.float32 and plain.horizon == 10
    assert plain.source_model == 'lerobot:act:act'
    assert np.array_equal(plain.act(_observation()), chunk)  # ACT acts deterministically
    assert not np.array_equal(plain.act(_observation(1)), chunk)  # it sees state and image
    # The same weights under other statistics: actions come back through the action's mean
    # and std (its postprocessor), states go in through the state's (its preprocessor).
    shifted = _policy(save_random_policy(tmp_path / 'shifted', 'act', 7, 4, IMAGES,
                                         _statistics(action_mean=1.0)))
    assert np.allclose(shifted.act(_observation()), chunk + 1.0, atol=1e-5)
    state_moved = _policy(save_random_policy(tmp_path / 'state', 'act', 7, 4, IMAGES,
                                             _statistics(state_mean=5.0)))
    assert not np.allclose(state_moved.act(_observation()), chunk, atol=1e-3)


def test_a_diffusion_folder_acts_on_its_observation_history_within_its_action_range(tmp_path):
    policy = _policy(save_random_policy(tmp_path / 'diffusion', 'diffusion', 7, 4, IMAGES,
                                        _statistics()))
    assert policy.observation_steps == 2  # Diffusion looks at the last two observations
    policy.reset()
    first = policy.act(_observation())  # the episode's first observation, repeated
    second = policy.act(_observation(1))
    assert first.shape == second.shape == (8, 4) and policy.horizon == 8
    # Its actions are min-max normalised and clipped: back within the statistics' range.
    assert np.all(np.abs(np.concatenate([first, second])) <= 1.0 + 1e-5)


@pytest.mark.parametrize('policy_type', ['vqbet', 'gaussian_actor'])
def test_a_policy_that_plans_inside_select_action_gives_an_action_per_observation(
        tmp_path, policy_type):
    plain = _policy(save_random_policy(tmp_path / 'plain', policy_type, 7, 4, IMAGES,
                                       _statistics()))
    assert plain.horizon == 1
    plain.reset()
    actions = [plain.act(_observation(seed)) for seed in range(3)]
    assert all(action.shape == (1, 4) and action.dtype == np.float32 for action in actions)
    # Through the policy's own normalisation: the same weights under an action mean 1 higher.
    shifted = _policy(save_random_policy(tmp_path / 'shifted', policy_type, 7, 4, IMAGES,
                                         _statistics(action_mean=1.0)))
    shifted.reset()
    assert np.allclose(shifted.act(_observation(0)), actions[0] + 1.0, atol=1e-5)


def test_a_td_mpc_folder_plans_an_action_from_the_state(tmp_path):
    statistics = {name: values for name, values in _statistics().items() if name != FRONT}
    policy = make_lerobot_policy({'checkpoint': str(save_random_policy(
        tmp_path / 'tdmpc', 'tdmpc', 7, 4, statistics=statistics)),
        'state_keys': ['joint_positions']})
    action = policy.act({'joint_positions': np.zeros(7, np.float32)})
    assert action.shape == (1, 4) and np.all(np.isfinite(action))


def test_a_folder_without_its_processors_or_with_other_inputs_is_refused_naming_them(tmp_path):
    folder = save_random_policy(tmp_path / 'act', 'act', 7, 4, IMAGES, _statistics())
    with pytest.raises(BasePolicyError, match=r"takes \['observation.images.front', "
                                              r"'observation.state'\]; this configuration "
                                              r"gives \['observation.state'\]"):
        make_lerobot_policy({'checkpoint': str(folder), 'state_keys': ['joint_positions']})
    (folder / 'policy_postprocessor.json').unlink()
    with pytest.raises(BasePolicyError, match='no policy_postprocessor.json'):
        _policy(folder)
    with pytest.raises(BasePolicyError, match='no config.json, model.safetensors'):
        _policy(tmp_path / 'nothing')
    policy = _policy(save_random_policy(tmp_path / 'again', 'act', 7, 4, IMAGES,
                                        _statistics()))
    with pytest.raises(BasePolicyError, match='needs image/camera/front'):
        policy.act({'joint_positions': np.zeros(7, np.float32)})


def test_a_config_naming_backbone_weights_loads_from_the_folder_without_fetching_them(
        tmp_path, monkeypatch):
    import json
    folder = save_random_policy(tmp_path / 'act', 'act', 7, 4, IMAGES, _statistics())
    chunk = _policy(folder).act(_observation())
    # As lerobot-train writes it by default: the backbone started from ImageNet weights.
    config_file = folder / 'config.json'
    config = json.loads(config_file.read_text())
    config['pretrained_backbone_weights'] = 'ResNet18_Weights.IMAGENET1K_V1'
    config_file.write_text(json.dumps(config))
    torch_home = tmp_path / 'torch-home'  # where torchvision would fetch them to
    monkeypatch.setenv('TORCH_HOME', str(torch_home))
    assert np.array_equal(_policy(folder).act(_observation()), chunk)  # the saved weights
    assert not torch_home.exists() or not any(torch_home.rglob('*.pth'))


def test_a_policy_built_on_a_hub_model_missing_here_is_refused_naming_it(
        tmp_path, monkeypatch):
    import huggingface_hub.constants
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
    folder = tmp_path / 'smolvla'
    folder.mkdir()
    SmolVLAConfig()._save_pretrained(folder)
    for name in ('model.safetensors', 'policy_preprocessor.json', 'policy_postprocessor.json'):
        (folder / name).write_text('{}')
    with pytest.raises(BasePolicyError, match=r'smolvla \(smolvla\) is built on '
                       r'HuggingFaceTB/SmolVLM2-500M-Video-Instruct from the Hugging Face hub.*'
                       r'nothing is downloaded at run time.*hf download '
                       r'HuggingFaceTB/SmolVLM2-500M-Video-Instruct'):
        make_lerobot_policy({'checkpoint': str(folder)})
