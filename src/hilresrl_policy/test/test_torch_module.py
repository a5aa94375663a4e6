"""Exported torch modules (TorchScript, torch.export) as base policies (core, no ROS)."""

from hilresrl_policy.adapters.base import BasePolicyError
from hilresrl_policy.adapters.torch_module import make_torch_module_policy
import numpy as np
import pytest
import torch


class ChunkPolicy(torch.nn.Module):
    """State in, a chunk of 3 rows x 2 axes out."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 6)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.layer(state)).reshape(-1, 3, 2)


@pytest.mark.parametrize('suffix', ['.pt', '.pt2'])
def test_an_exported_module_acts_as_it_did_before_export(tmp_path, suffix):
    torch.manual_seed(0)
    module = ChunkPolicy().eval()
    example = torch.zeros(1, 4)
    path = tmp_path / f'policy{suffix}'
    if suffix == '.pt':
        torch.jit.save(torch.jit.trace(module, example), str(path))
    else:
        torch.export.save(torch.export.export(module, (example,)), str(path))
    policy = make_torch_module_policy({'checkpoint': str(path), 'action_dim': 2,
                                       'inputs': ['task_state', 'ee_pose']})
    observation = {'task_state': np.array([0.1, -0.2], np.float32),
                   'ee_pose': np.array([0.3, 0.4], np.float32)}
    actions = policy.act(observation)
    with torch.no_grad():
        expected = module(torch.tensor([[0.1, -0.2, 0.3, 0.4]]))[0].numpy()
    assert actions.shape == (3, 2) and actions.dtype == np.float32
    assert np.allclose(actions, expected, atol=1e-6) and policy.horizon == 3
    assert policy.source_model == f'torch_module:policy{suffix}'
    with pytest.raises(BasePolicyError, match='needs observation'):
        policy.act({'task_state': np.zeros(2, np.float32)})


def test_wrong_shapes_and_missing_files_are_refused(tmp_path):
    path = tmp_path / 'policy.pt'
    torch.jit.save(torch.jit.trace(ChunkPolicy().eval(), torch.zeros(1, 4)), str(path))
    policy = make_torch_module_policy({'checkpoint': str(path), 'action_dim': 4})
    with pytest.raises(BasePolicyError, match='the cell has 4 action axes'):
        policy.act({'task_state': np.zeros(4, np.float32)})
    with pytest.raises(BasePolicyError, match='no module file'):
        make_torch_module_policy({'checkpoint': str(tmp_path / 'none.pt'), 'action_dim': 2})
    with pytest.raises(BasePolicyError, match='needs checkpoint'):
        make_torch_module_policy({'action_dim': 2})


class NoisePolicy(torch.nn.Module):
    """A one-step sampler: state and noise in, one action of 2 axes out (a flow policy's shape)."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4 + 3, 2)

    def forward(self, state: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.layer(torch.cat([state, noise], dim=1)))


@pytest.mark.parametrize('suffix', ['.pt', '.pt2'])
def test_a_module_with_a_noise_input_is_steered_by_the_latent_it_is_given(tmp_path, suffix):
    torch.manual_seed(0)
    module = NoisePolicy().eval()
    example = (torch.zeros(1, 4), torch.zeros(1, 3))
    path = tmp_path / f'sampler{suffix}'
    if suffix == '.pt':
        torch.jit.save(torch.jit.trace(module, example), str(path))
    else:
        torch.export.save(torch.export.export(module, example), str(path))
    policy = make_torch_module_policy({'checkpoint': str(path), 'action_dim': 2,
                                       'latent_dim': 3, 'seed': 5})
    observation = {'task_state': np.array([0.1, -0.2, 0.3, 0.4], np.float32)}
    latent = np.array([1.0, -0.5, 0.25], np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(observation['task_state'])[None],
                          torch.from_numpy(latent)[None]).numpy()
    assert policy.latent_dim == 3
    assert np.allclose(policy.act_with_latent(observation, latent), expected, atol=1e-6)
    assert not np.allclose(policy.act_with_latent(observation, -latent), expected, atol=1e-3)
    # act() samples its own noise, from its own seed: the same sequence in a new adapter.
    sampled = [policy.act(observation) for _ in range(3)]
    again = make_torch_module_policy({'checkpoint': str(path), 'action_dim': 2,
                                      'latent_dim': 3, 'seed': 5})
    assert all(np.array_equal(a, again.act(observation)) for a in sampled)
    assert not np.array_equal(sampled[0], sampled[1])
    with pytest.raises(BasePolicyError, match='finite latent of 3'):
        policy.act_with_latent(observation, np.zeros(2, np.float32))


def test_latents_are_refused_by_a_module_without_a_noise_input(tmp_path):
    path = tmp_path / 'policy.pt'
    torch.jit.save(torch.jit.trace(ChunkPolicy().eval(), torch.zeros(1, 4)), str(path))
    policy = make_torch_module_policy({'checkpoint': str(path), 'action_dim': 2})
    with pytest.raises(BasePolicyError, match='takes no latent'):
        policy.act_with_latent({'task_state': np.zeros(4, np.float32)}, np.zeros(3))
    # Configured with a latent the module does not take: the error says what to change.
    wrong = make_torch_module_policy({'checkpoint': str(path), 'action_dim': 2,
                                      'latent_dim': 3})
    with pytest.raises(BasePolicyError, match='needs latent_dim, one without needs none'):
        wrong.act({'task_state': np.zeros(4, np.float32)})


def test_an_exported_encode_images_is_the_policys_vision_encoder(tmp_path, seeing_policy_file):
    path = seeing_policy_file(tmp_path / 'seeing.pt')
    policy = make_torch_module_policy({'checkpoint': str(path), 'action_dim': 2})
    encoder = policy.vision_encoder()
    images = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        expected = torch.jit.load(str(path)).encode_images(images)
        assert torch.equal(encoder(images), expected) and expected.shape == (5, 8)
    assert policy.act({'task_state': np.zeros(4, np.float32)}).shape == (1, 2)


def test_a_module_without_encode_images_says_how_to_export_one(tmp_path):
    path = tmp_path / 'policy.pt'
    torch.jit.save(torch.jit.trace(ChunkPolicy().eval(), torch.zeros(1, 4)), str(path))
    policy = make_torch_module_policy({'checkpoint': str(path), 'action_dim': 2})
    with pytest.raises(BasePolicyError, match='exports no encode_images method.*jit.export'):
        policy.vision_encoder()


def test_an_adapter_is_found_by_its_import_path_where_nothing_registers_it(tmp_path):
    from hilresrl_policy.adapters.base import load_base_policy
    path = tmp_path / 'policy.pt'
    torch.jit.save(torch.jit.trace(ChunkPolicy().eval(), torch.zeros(1, 4)), str(path))
    policy = load_base_policy('hilresrl_policy.adapters.torch_module:make_torch_module_policy',
                              {'checkpoint': str(path), 'action_dim': 2})
    assert policy.act({'task_state': np.zeros(4, np.float32)}).shape == (3, 2)
    with pytest.raises(BasePolicyError, match="no base policy factory 'hilresrl_policy.adapters"
                                              ".torch_module:missing'"):
        load_base_policy('hilresrl_policy.adapters.torch_module:missing', {})
    with pytest.raises(BasePolicyError, match="no base policy factory 'nowhere:make'"):
        load_base_policy('nowhere:make', {})
