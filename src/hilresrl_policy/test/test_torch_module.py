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
