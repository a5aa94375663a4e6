"""
Learner checkpoints: networks, optimisers, counters and random states, written atomically.

A checkpoint is a directory with networks.safetensors, optimizers.safetensors and state.json
(safetensors and JSON only: loading never runs pickled code). It is written into a temporary
sibling and renamed into place, and ``latest`` is swapped to it by renaming a new symlink over
the old, so a learner killed at any moment leaves the previous checkpoint intact (the folder is
fsynced after each rename). A dangling or damaged ``latest`` falls back to the newest readable
checkpoint; a checkpoint with missing keys or non-finite tensors is refused with a message.
No ROS here.
"""

import json
import logging
import os
import pathlib
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import torch

from .residual_td3 import LearnerConfig, ResidualTD3

LATEST = 'latest'
FORMAT_VERSION = 1
FILES = ('state.json', 'networks.safetensors', 'optimizers.safetensors')
# Optimiser settings that choose an implementation, not a hyperparameter.
IMPLEMENTATION_FLAGS = ('fused', 'foreach', 'capturable', 'differentiable')
STATE_KEYS = ('config', 'updates', 'actor_updates', 'optimizers', 'numpy_rng', 'counters')
GENERATOR_TENSORS = ('torch_generator', 'torch_global')


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
    # Hyperparameters from the checkpoint; how the step is computed stays this optimiser's own
    # (a GPU learner's capturable Adam resumed on a CPU, a fused one under compile_updates).
    groups = [{**group, **{key: own[key] for key in IMPLEMENTATION_FLAGS if key in own}}
              for group, own in zip(settings['param_groups'], optimizer.param_groups)]
    optimizer.load_state_dict({'state': state, 'param_groups': groups})


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
        _fsync_folder(temporary)
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.rename(temporary, final)
        _fsync_folder(root)  # the rename itself on disk
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    link = root / f'.{LATEST}-{os.getpid()}'
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(name)
    os.replace(link, root / LATEST)
    _fsync_folder(root)
    for old in sorted(p for p in root.glob('update-*') if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_folder(folder: pathlib.Path) -> None:
    descriptor = os.open(str(folder), os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def latest_checkpoint(run_dir: os.PathLike, warn: Optional[Callable[[str], None]] = None
                      ) -> Optional[pathlib.Path]:
    """
    Return the run's newest readable checkpoint directory, or None when it has none.

    ``latest`` first; when it dangles or is damaged, the newest readable ``update-*`` folder,
    with a warning (to ``warn``, else the logging module) naming both. When none is readable,
    the one ``latest`` names, so that loading it reports what is wrong rather than the run
    silently starting from fresh networks.
    """
    root = pathlib.Path(run_dir) / 'checkpoints'
    latest = root / LATEST
    named = latest.resolve() if latest.is_symlink() or latest.exists() else None
    candidates = sorted((path for path in root.glob('update-*') if path.is_dir()),
                        reverse=True) if root.is_dir() else []
    order = ([named] if named is not None else []) + [
        path.resolve() for path in candidates if path.resolve() != named]
    problems: List[str] = []
    for directory in order:
        problem = checkpoint_problem(directory)
        if problem is None:
            if problems:
                (warn or logging.getLogger(__name__).warning)(
                    f'{"; ".join(problems)}: falling back to {directory}')
            return directory
        problems.append(problem)
    if problems:
        (warn or logging.getLogger(__name__).warning)(
            f'no readable checkpoint in {root}: {"; ".join(problems)}')
    return named


def checkpoint_problem(directory: os.PathLike) -> Optional[str]:
    """Return why a checkpoint cannot be loaded (missing, damaged, non-finite), or None."""
    try:
        _read_checked(pathlib.Path(directory))
    except CheckpointError as error:
        return str(error)
    return None


def _read_checked(directory: pathlib.Path) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor],
                                                    Dict[str, torch.Tensor]]:
    """Read a checkpoint's three files; refuse missing files or keys and non-finite tensors."""
    if not directory.is_dir():
        raise CheckpointError(f'{directory}: no such checkpoint folder')
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(f'{directory}: missing {", ".join(missing)}')
    try:
        state = json.loads((directory / 'state.json').read_text())
        networks = load_file(str(directory / 'networks.safetensors'))
        optimizers = load_file(str(directory / 'optimizers.safetensors'))
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(f'{directory}: unreadable checkpoint file ({error})') from error
    if not isinstance(state, dict):
        raise CheckpointError(f'{directory / "state.json"}: not a JSON object')
    absent = [key for key in STATE_KEYS if key not in state]
    optimizer_state = state.get('optimizers')
    if isinstance(optimizer_state, dict):
        absent += [f'optimizers.{key}' for key in ('actor', 'critic')
                   if not isinstance(optimizer_state.get(key), dict)]
    elif 'optimizers' in state:
        absent.append('optimizers.actor, optimizers.critic')
    if absent:
        raise CheckpointError(f'{directory / "state.json"}: missing {", ".join(absent)}')
    if not isinstance(state['counters'], dict):
        raise CheckpointError(f'{directory / "state.json"}: counters is not an object')
    absent = [name for name in GENERATOR_TENSORS if name not in optimizers]
    if absent:
        raise CheckpointError(f'{directory / "optimizers.safetensors"}: missing '
                              f'{", ".join(absent)}')
    for file, tensors in (('networks.safetensors', networks),
                          ('optimizers.safetensors', optimizers)):
        for name, tensor in tensors.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(
                    f'{directory / file}: tensor {name} holds '
                    f'{int((~torch.isfinite(tensor)).sum())} NaN or infinite value(s)')
    return state, networks, optimizers


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
    state, networks, optimizers = _read_checked(directory)
    try:
        agent.load_network_state(networks)
        restore_optimizer('actor', agent.actor_optimizer, optimizers,
                          state['optimizers']['actor'])
        restore_optimizer('critic', agent.critic_optimizer, optimizers,
                          state['optimizers']['critic'])
        agent.optimizers_loaded()
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f'{directory}: tensors do not fit the networks '
                              f'({type(error).__name__}: {error})') from error
    try:
        agent.generator.set_state(optimizers['torch_generator'])
        torch.set_rng_state(optimizers['torch_global'])
        agent.updates = int(state['updates'])
        agent.actor_updates = int(state['actor_updates'])
        rng.bit_generator.state = state['numpy_rng']
    except (RuntimeError, ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f'{directory}: unusable counters or random states '
                              f'({type(error).__name__}: {error})') from error
    return state['counters']
