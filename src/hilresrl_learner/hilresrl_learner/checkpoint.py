"""
Learner checkpoints: networks, optimisers, counters and random states, written atomically.

A checkpoint is a directory with networks.safetensors, optimizers.safetensors and state.json
(safetensors and JSON only: loading never runs pickled code). It is written into a temporary
sibling and renamed into place, and ``latest`` is swapped to it by renaming a new symlink over
the old, so a learner killed at any moment leaves the previous checkpoint intact. No ROS here.
"""

import json
import os
import pathlib
import shutil
import tempfile
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import torch

from .residual_td3 import LearnerConfig, ResidualTD3

LATEST = 'latest'
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file or the mismatch."""


def optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> Tuple[
        Dict[str, torch.Tensor], Dict[str, Any]]:
    """Split an optimiser's state into named tensors and JSON-able settings."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state['state'].items():
        for key, value in values.items():
            name = f'{prefix}.{index}.{key}'
            if torch.is_tensor(value):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {'param_groups': state['param_groups'], 'scalars': scalars}


def restore_optimizer(prefix: str, optimizer: torch.optim.Optimizer,
                      tensors: Dict[str, torch.Tensor], settings: Dict[str, Any]) -> None:
    """Rebuild an optimiser's state from optimizer_tensors' output."""
    state: Dict[int, Dict[str, Any]] = {}
    device = next((p.device for group in optimizer.param_groups for p in group['params']),
                  torch.device('cpu'))
    for name, value in tensors.items():
        if name.startswith(prefix + '.'):
            _, index, key = name.split('.', 2)
            state.setdefault(int(index), {})[key] = value if key == 'step' else value.to(device)
    for name, value in settings['scalars'].items():
        if name.startswith(prefix + '.'):
            _, index, key = name.split('.', 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({'state': state, 'param_groups': settings['param_groups']})


def save_checkpoint(run_dir: os.PathLike, agent: ResidualTD3, rng: np.random.Generator,
                    counters: Dict[str, Any], keep: int = 2) -> pathlib.Path:
    """Write a checkpoint of the agent under run_dir/checkpoints and point 'latest' to it."""
    root = pathlib.Path(run_dir) / 'checkpoints'
    root.mkdir(parents=True, exist_ok=True)
    name = f'update-{agent.updates:010d}'
    temporary = pathlib.Path(tempfile.mkdtemp(prefix=f'.{name}-', dir=root))
    try:
        save_file(agent.network_state(), str(temporary / 'networks.safetensors'))
        actor_tensors, actor_settings = optimizer_tensors('actor', agent.actor_optimizer)
        critic_tensors, critic_settings = optimizer_tensors('critic', agent.critic_optimizer)
        generator_state = {'torch_generator': agent.generator.get_state(),
                           'torch_global': torch.get_rng_state()}
        save_file({**actor_tensors, **critic_tensors, **generator_state},
                  str(temporary / 'optimizers.safetensors'))
        state = {
            'format': FORMAT_VERSION, 'written_at': time.time(),
            'config': json.loads(agent.config.to_json()),
            'updates': agent.updates, 'actor_updates': agent.actor_updates,
            'optimizers': {'actor': actor_settings, 'critic': critic_settings},
            'numpy_rng': rng.bit_generator.state, 'counters': counters,
        }
        (temporary / 'state.json').write_text(json.dumps(state, indent=1))
        for path in temporary.iterdir():  # on disk before the rename makes it visible
            with open(path, 'rb') as stream:
                os.fsync(stream.fileno())
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.rename(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    link = root / f'.{LATEST}-{os.getpid()}'
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(name)
    os.replace(link, root / LATEST)
    for old in sorted(p for p in root.glob('update-*') if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: os.PathLike) -> Optional[pathlib.Path]:
    """Return the run's latest checkpoint directory, or None when it has none."""
    latest = pathlib.Path(run_dir) / 'checkpoints' / LATEST
    return latest.resolve() if latest.exists() else None


def read_config(directory: os.PathLike) -> LearnerConfig:
    """Return the learner config a checkpoint was written with."""
    path = pathlib.Path(directory) / 'state.json'
    try:
        values = json.loads(path.read_text())['config']
        return LearnerConfig(**values)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f'{path}: unreadable checkpoint state ({error})') from error


def load_checkpoint(directory: os.PathLike, agent: ResidualTD3,
                    rng: np.random.Generator) -> Dict[str, Any]:
    """Load a checkpoint into agent and rng; refuse one written for other networks."""
    directory = pathlib.Path(directory)
    saved = read_config(directory)
    if saved != agent.config:
        raise CheckpointError(f'{directory} was written for other networks: '
                              + '; '.join(saved.differences(agent.config)))
    try:
        state = json.loads((directory / 'state.json').read_text())
        networks = load_file(str(directory / 'networks.safetensors'))
        optimizers = load_file(str(directory / 'optimizers.safetensors'))
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(f'{directory}: unreadable checkpoint file ({error})') from error
    try:
        agent.load_network_state(networks)
        restore_optimizer('actor', agent.actor_optimizer, optimizers,
                          state['optimizers']['actor'])
        restore_optimizer('critic', agent.critic_optimizer, optimizers,
                          state['optimizers']['critic'])
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(f'{directory}: tensors do not fit the networks ({error})') \
            from error
    agent.generator.set_state(optimizers['torch_generator'])
    torch.set_rng_state(optimizers['torch_global'])
    agent.updates = int(state['updates'])
    agent.actor_updates = int(state['actor_updates'])
    rng.bit_generator.state = state['numpy_rng']
    return state['counters']
