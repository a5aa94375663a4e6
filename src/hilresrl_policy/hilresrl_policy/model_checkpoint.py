"""
A model checkpoint folder: model.safetensors plus config.json, written atomically, read safely.

The one implementation behind the BC and flow-matching checkpoints (bc.py, flow_bc.py): the
format names the model family, config.json holds its config and free metadata, and reading
unpickles nothing. No ROS.
"""

import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Tuple, Union
import uuid

from hilresrl_common.home import is_base_policy_demonstrations
import safetensors.torch
import torch
from torch import nn

MODEL_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file."""


class CheckpointFormat(NamedTuple):
    """
    What one model family's checkpoints are.

    ``name`` and ``version`` are stored in config.json; ``what`` names the family in messages
    ('BC', 'flow'); ``others`` maps the formats of other families to (what they are, what to
    do instead), so that loading the wrong one says so and says that this one is
    ``described``.
    """

    name: str
    version: int
    what: str
    described: str = ''
    others: Mapping[str, Tuple[str, str]] = {}


class LoadedModel(NamedTuple):
    """A model read from a checkpoint, its metadata and the digest of its weights file."""

    model: nn.Module
    metadata: Dict[str, Any]
    sha256: str


def check_checkpoint_destination(directory: PathLike) -> None:
    """
    Raise CheckpointError unless ``directory`` is absent or holds only a checkpoint.

    A built base policy's demonstrations, beside its checkpoint, belong to it.
    """
    directory = pathlib.Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise CheckpointError(f'{directory} exists and is not a directory')
        strangers = sorted(path.name for path in directory.iterdir()
                           if path.name not in (MODEL_FILE, CONFIG_FILE)
                           and not is_base_policy_demonstrations(path.name))
        if strangers:
            raise CheckpointError(f'{directory} holds other files ({", ".join(strangers)}): '
                                  'not replacing it with a checkpoint')


def save_model(directory: PathLike, model: nn.Module, config: Dict[str, Any],
               checkpoint_format: CheckpointFormat,
               metadata: Optional[Dict[str, Any]] = None) -> pathlib.Path:
    """
    Write ``model`` and its ``config`` to ``directory``, atomically.

    Both files are written into a temporary sibling directory that then takes the place of
    ``directory``: a reader sees the old checkpoint or the new one, never half of one.
    ``metadata`` (JSON values: training data, measured success, ...) is stored in config.json.
    An existing directory is replaced only if it holds nothing but a checkpoint.
    """
    directory = pathlib.Path(directory)
    check_checkpoint_destination(directory)
    stored = {'format': checkpoint_format.name, 'format_version': checkpoint_format.version,
              'model': config, 'metadata': dict(metadata or {})}
    try:
        config_text = json.dumps(stored, indent=2, sort_keys=True, allow_nan=False) + '\n'
    except (TypeError, ValueError) as error:
        raise CheckpointError(f'metadata for {directory / CONFIG_FILE} is not plain JSON '
                              f'(no NaN or infinity): {error}') from error
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f'.{directory.name}.', suffix='.tmp',
                                            dir=directory.parent))
    try:
        tensors = {name: tensor.detach().to('cpu').contiguous()
                   for name, tensor in model.state_dict().items()}
        safetensors.torch.save_file(tensors, str(staging / MODEL_FILE),
                                    metadata={'format': checkpoint_format.name})
        (staging / CONFIG_FILE).write_text(config_text, encoding='utf-8')
        for name in (MODEL_FILE, CONFIG_FILE):
            with open(staging / name, 'rb') as stream:
                os.fsync(stream.fileno())  # on disk before the rename makes them visible
        staging.chmod(0o755)  # mkdtemp makes it private to the user
        if directory.exists():
            retired = directory.parent / f'.{directory.name}.{uuid.uuid4().hex}.old'
            os.rename(directory, retired)
            os.rename(staging, directory)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def load_model(directory: PathLike, checkpoint_format: CheckpointFormat,
               build: Callable[[Dict[str, Any]], nn.Module],
               device: str = 'cpu') -> LoadedModel:
    """
    Read a checkpoint written by ``save_model``, in eval mode on ``device``.

    ``build(config)`` makes the (untrained) model from config.json's model section; a
    ValueError, KeyError or TypeError from it means that section is invalid. Reads JSON and
    safetensors only (nothing is unpickled). Raises CheckpointError naming the file for a
    missing or corrupt file, a checkpoint of another format, or weights that do not match
    config.json.
    """
    directory = pathlib.Path(directory)
    config_path = directory / CONFIG_FILE
    model_path = directory / MODEL_FILE
    if not directory.is_dir():
        raise CheckpointError(f'no {checkpoint_format.what} checkpoint at {directory}: not a '
                              'directory')
    stored = _read_config(config_path, checkpoint_format)
    try:
        model = build(dict(stored['model']))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f'{config_path} has an invalid model section: {error}') from error
    metadata = stored.get('metadata', {})
    if not isinstance(metadata, dict):
        raise CheckpointError(f'{config_path}: metadata must be an object')
    try:
        data = model_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f'{model_path} is missing') from None
    except OSError as error:
        raise CheckpointError(f'cannot read {model_path}: {error}') from error
    try:
        tensors = safetensors.torch.load(data)
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f'{model_path} is not a valid safetensors file: '
                              f'{error}') from error
    _check_tensors(tensors, model.state_dict(), model_path, config_path)
    model.load_state_dict(tensors)
    model.to(device).eval()
    return LoadedModel(model, metadata, hashlib.sha256(data).hexdigest())


def _read_config(config_path: pathlib.Path,
                 checkpoint_format: CheckpointFormat) -> Dict[str, Any]:
    try:
        stored = json.loads(config_path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise CheckpointError(f'{config_path} is missing') from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f'{config_path} is not readable JSON: {error}') from error
    found = stored.get('format') if isinstance(stored, dict) else None
    if found in checkpoint_format.others:
        what, remedy = checkpoint_format.others[found]
        raise CheckpointError(f'{config_path} is {what} ({found}), not '
                              f'{checkpoint_format.described} ({checkpoint_format.name}): '
                              f'{remedy}')
    if found != checkpoint_format.name:
        raise CheckpointError(f'{config_path} is not a {checkpoint_format.name} checkpoint '
                              'config')
    if stored.get('format_version') != checkpoint_format.version:
        raise CheckpointError(f'{config_path} has format_version '
                              f'{stored.get("format_version")!r}; this code reads '
                              f'{checkpoint_format.version}')
    return stored


def _check_tensors(tensors: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor],
                   model_path: pathlib.Path, config_path: pathlib.Path) -> None:
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f'{model_path} does not match {config_path}: missing tensors '
            f'{", ".join(missing) or "none"}; unexpected tensors '
            f'{", ".join(unexpected) or "none"}')
    for name, tensor in expected.items():
        stored_tensor = tensors[name]
        if stored_tensor.shape != tensor.shape or stored_tensor.dtype != tensor.dtype:
            raise CheckpointError(
                f'{model_path} does not match {config_path}: tensor {name} is '
                f'{stored_tensor.dtype} {tuple(stored_tensor.shape)}, the config needs '
                f'{tensor.dtype} {tuple(tensor.shape)}')
        if not bool(torch.all(torch.isfinite(stored_tensor))):
            raise CheckpointError(f'{model_path}: tensor {name} has non-finite values')
