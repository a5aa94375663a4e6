"""The base-policy adapters by name: registered by setup.py, and found without an install."""

import ast
import pathlib

from hilresrl_policy.adapters import base
from hilresrl_policy.adapters.base import (BasePolicyError, load_base_policy,
                                           registered_base_policies, SUITE_ADAPTERS)
from hilresrl_policy.adapters.torch_module import TorchModulePolicy
import pytest
import torch

SETUP = pathlib.Path(__file__).resolve().parents[1] / 'setup.py'


def _setup_entry_points() -> dict:
    """Return setup.py's hilresrl.base_policies entry points: {name: module:function}."""
    tree = ast.parse(SETUP.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == base.ENTRY_POINT_GROUP:
                    lines = [item.value for item in value.elts]
                    return dict((part.strip() for part in line.split('=')) for line in lines)
    raise AssertionError(f'{SETUP} registers no {base.ENTRY_POINT_GROUP}')


def test_the_suites_adapters_are_the_ones_setup_py_registers():
    assert SUITE_ADAPTERS == _setup_entry_points()


def test_without_an_install_the_suites_adapters_are_found_by_name(tmp_path, monkeypatch):
    # Sources on the path, nothing installed (the GPU machine): no entry point at all.
    monkeypatch.setattr(base, '_entry_points', lambda: [])
    module = torch.jit.script(torch.nn.Linear(3, 2))
    module.save(str(tmp_path / 'policy.pt'))
    policy = load_base_policy('torch_module', {'checkpoint': str(tmp_path / 'policy.pt'),
                                               'action_dim': 2, 'inputs': ['task_state']})
    assert isinstance(policy, TorchModulePolicy)
    assert registered_base_policies() == sorted(SUITE_ADAPTERS)
    with pytest.raises(BasePolicyError, match="no base policy named 'vla'; registered: bc, "
                       'flow_bc, lerobot, openpi, torch_module'):
        load_base_policy('vla', {})
